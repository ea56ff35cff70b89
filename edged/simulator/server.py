"""The simulated Sinqro cloud over real sockets (aiohttp): REST, websocket, admin and faults.

REST is served under the production path prefix (``/pos-app/v1``) with the paths of
:mod:`edged.sinqro.endpoints`; the websocket at ``/pos-app/v1/notifications?sellingPointId=N``.
Both auth headers are checked on every call and on the websocket upgrade.

Admin and fault endpoints live under ``/_sim/`` without auth; docs/simulator.md lists them.
Tests and the demo usually drive the same things through the :class:`Simulator` methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from edged.simulator.cloud import Cloud, CloudError, error_body
from edged.sinqro import endpoints

log = logging.getLogger(__name__)

DEFAULT_SERVER_TOKEN = "sim-server-token"
DEFAULT_USER_TOKEN = "sim-user-token-demo"
ADMIN_PREFIX = "/_sim"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Which order an API path is about: /orders/{id}... or /sellingPoints/{sp}/orders/{id}/...
_ORDER_PATH = re.compile(r"/orders/(\d+)(?:/|$)")


@dataclass
class Faults:
    """Fault switches; all off by default."""

    refuse_websockets: bool = False
    refuse_all: str | None = None  # "503" | "close"
    delay: float = 0.0  # seconds added before every API answer
    late_answer: float = 0.0  # seconds added after the request was applied (answer lost)
    fail_count: int = 0  # answer the next N API requests with fail_status
    fail_always: bool = False
    fail_status: int = 500
    stall: bool = False  # half-open: no notifications, no pongs
    mute: bool = False  # no notifications, pongs still answered
    garble_count: int = 0  # answer the next N API requests with 200 and a non-JSON body
    # Per order: every call about these orders answers fail_status (GET, actions, status).
    fail_orders: set[int] = field(default_factory=set)
    # Per order: only GET /orders/{id} fails (the refresh of that one order).
    fail_order_gets: set[int] = field(default_factory=set)
    # Actions answer "delayMinutes": null, like the reference's only OrderAction example.
    null_action_delays: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "refuseWebsockets": self.refuse_websockets,
            "refuseAll": self.refuse_all,
            "delay": self.delay,
            "lateAnswer": self.late_answer,
            "failCount": self.fail_count,
            "failAlways": self.fail_always,
            "failStatus": self.fail_status,
            "stall": self.stall,
            "mute": self.mute,
            "garbleCount": self.garble_count,
            "failOrders": sorted(self.fail_orders),
            "failOrderGets": sorted(self.fail_order_gets),
            "nullActionDelays": self.null_action_delays,
        }

    def fails_order_call(self, method: str, path: str) -> bool:
        """Is this API call about an order that is set to fail?"""
        match = _ORDER_PATH.search(path)
        if match is None:
            return False
        order_id = int(match.group(1))
        if order_id in self.fail_orders:
            return True
        return (
            method == "GET" and order_id in self.fail_order_gets and path.endswith(f"/{order_id}")
        )


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    selling_point_id: int
    user_token: str
    transport: asyncio.Transport | None = None
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _error(exc: CloudError) -> web.Response:
    return _json(exc.body(), exc.http)


class Simulator:
    """A running fake Sinqro cloud.

    ``async with Simulator(host="127.0.0.1", port=0) as sim:`` starts it on a free port;
    ``sim.base_url``, ``sim.websocket_url``, ``sim.server_token``, ``sim.user_token`` (user
    ``demo``, pre-issued) and ``sim.selling_point_id`` are what a daemon config needs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server_token: str = DEFAULT_SERVER_TOKEN,
        user_token: str = DEFAULT_USER_TOKEN,
        generate_every: float | None = None,
        state_file: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.server_token = server_token
        self.user_token = user_token
        self.cloud = Cloud(server_token=server_token, demo_token=user_token)
        if seed is not None:
            self.cloud.rng.seed(seed)
        self.selling_point_id = self.cloud.users["demo"].selling_points[0]
        self.faults = Faults()
        self.requests: list[dict[str, Any]] = []
        self._clients: set[_Client] = set()
        self._generate_every = generate_every
        self._generator: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._state_file = Path(state_file) if state_file else None
        self._dirty = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self.cloud.listeners.append(self._broadcast)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + endpoints.API_PREFIX

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.host}:{self.port}{endpoints.API_PREFIX}{endpoints.WEBSOCKET_PATH}"

    @property
    def _ws_path(self) -> str:
        return endpoints.API_PREFIX + endpoints.WEBSOCKET_PATH

    @property
    def admin_url(self) -> str:
        return self.origin + ADMIN_PREFIX

    async def start(self) -> None:
        if self._state_file is not None and self._state_file.exists():
            data = json.loads(self._state_file.read_text("utf-8"))
            self.cloud.load_json(data)
        if self._state_file is not None:
            self.cloud.on_change = self._dirty.set
            self._saver = asyncio.create_task(self._save_loop(), name="sim-state-saver")
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        if self._generate_every:
            self.start_generator(self._generate_every)
        log.info("Sinqro simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        self.stop_generator()
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"simulator stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
            await asyncio.to_thread(self._save_sync, self.cloud.to_json())

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await asyncio.to_thread(self._save_sync, self.cloud.to_json())
            await asyncio.sleep(0.05)

    def _save_sync(self, data: dict[str, Any]) -> None:
        assert self._state_file is not None
        text = json.dumps(data, ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=".sim-state-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self._state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- direct methods (tests, demo) ------------------------------------------------------

    def create_order(
        self, type: str | None = None, *, selling_point_id: int | None = None
    ) -> dict[str, Any]:
        """A new waiting order of ``type`` (random when None), pushed as ``new_order``."""
        return self.cloud.create_order(type, selling_point_id or self.selling_point_id)

    def create_orders(self, count: int, type: str | None = None) -> list[dict[str, Any]]:
        return [self.create_order(type) for _ in range(count)]

    def set_status(self, order_id: int, code: str, comment: str | None = None) -> dict[str, Any]:
        """Change an order's status as the client, driver or team would (any known code)."""
        return self.cloud.force_status(order_id, code, comment)

    def order(self, order_id: int) -> dict[str, Any]:
        return dict(self.cloud.orders[order_id])

    def orders(self) -> list[dict[str, Any]]:
        return list(self.cloud.orders.values())

    def posted_actions(self) -> list[dict[str, Any]]:
        """Every action and status POST received, with its result (``ok`` or error code)."""
        return list(self.cloud.posted)

    def menus(self) -> list[dict[str, Any]]:
        """Every accepted ``collectionRaw`` body."""
        return list(self.cloud.menus)

    def connected(self, selling_point_id: int | None = None) -> int:
        """How many websocket clients are connected (to one selling point, or all)."""
        return sum(
            1
            for c in self._clients
            if selling_point_id is None or c.selling_point_id == selling_point_id
        )

    def login_token(self, username: str, password: str) -> str:
        return self.cloud.login(username, password)

    # faults

    async def drop_websockets(self, *, abrupt: bool = False) -> int:
        """Close every websocket now (``abrupt``: cut the TCP connection without a close
        frame, like a network failure); returns how many were closed."""
        clients = list(self._clients)
        for client in clients:
            if abrupt and client.transport is not None:
                client.transport.abort()
                continue
            with contextlib.suppress(Exception):
                await client.ws.close(code=1012, message=b"dropped by the simulator")
        return len(clients)

    def refuse_websockets(self, on: bool = True) -> None:
        """Answer websocket upgrades with 503 (REST keeps working)."""
        self.faults.refuse_websockets = on

    def refuse_all(self, mode: str | None = "503") -> None:
        """Refuse every API and websocket request: ``"503"``, ``"close"`` (drop the
        connection without an answer) or None to stop refusing."""
        if mode not in (None, "503", "close"):
            raise ValueError("mode must be '503', 'close' or None")
        self.faults.refuse_all = mode

    def set_delay(self, seconds: float) -> None:
        """Delay every API answer by ``seconds``."""
        self.faults.delay = max(0.0, seconds)

    def set_late_answers(self, seconds: float) -> None:
        """Apply each API request, then wait ``seconds`` before answering."""
        self.faults.late_answer = max(0.0, seconds)

    def fail_requests(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` API requests with HTTP ``status``."""
        self.faults.fail_count = count
        self.faults.fail_status = status

    def fail_always(self, on: bool = True, status: int = 500) -> None:
        self.faults.fail_always = on
        self.faults.fail_status = status

    async def revoke_token(self, token: str | None = None) -> None:
        """Make a user token (default: the demo one) answer 401, and drop its websockets."""
        token = token or self.user_token
        self.cloud.revoke(token)
        for client in [c for c in self._clients if c.user_token == token]:
            with contextlib.suppress(Exception):
                await client.ws.close(code=1008, message=b"token revoked")

    def restore_token(self, token: str | None = None) -> None:
        self.cloud.restore(token or self.user_token)

    def send_raw(self, text: str, selling_point_id: int | None = None) -> int:
        """Queue a raw text frame to connected clients; returns how many got it."""
        targets = [
            c
            for c in self._clients
            if selling_point_id is None or c.selling_point_id == selling_point_id
        ]
        for client in targets:
            client.queue.put_nowait(text)
        return len(targets)

    def stall_websockets(self, on: bool = True) -> None:
        """Half-open link: sockets stay open, but no notification and no pong is sent."""
        self.faults.stall = on

    def mute_notifications(self, on: bool = True) -> None:
        """Stop pushing notifications; the sockets stay healthy (pings answered)."""
        self.faults.mute = on

    def garble_responses(self, count: int = 1) -> None:
        """Answer the next ``count`` API requests with 200 and a body that is not JSON."""
        self.faults.garble_count = count

    def fail_order(self, order_id: int, on: bool = True, status: int = 503) -> None:
        """Every call about ``order_id`` answers ``status`` (GET, actions, status POST)."""
        (self.faults.fail_orders.add if on else self.faults.fail_orders.discard)(order_id)
        self.faults.fail_status = status

    def fail_order_get(self, order_id: int, on: bool = True, status: int = 503) -> None:
        """Only ``GET /orders/{order_id}`` answers ``status``."""
        gets = self.faults.fail_order_gets
        (gets.add if on else gets.discard)(order_id)
        self.faults.fail_status = status

    def null_action_delays(self, on: bool = True) -> None:
        """Answer ``delayMinutes: null`` on every action, even a delayed accept's."""
        self.faults.null_action_delays = on

    def clear_faults(self) -> None:
        self.faults = Faults()

    def start_generator(self, every: float) -> None:
        """Create a random order every ``every`` seconds (the demo's order stream)."""
        self.stop_generator()
        self._generator = asyncio.create_task(self._generate(every), name="sim-generator")

    def stop_generator(self) -> None:
        if self._generator is not None:
            self._generator.cancel()
            self._generator = None

    async def _generate(self, every: float) -> None:
        while True:
            await asyncio.sleep(every * random.uniform(0.7, 1.3))
            self.create_order()

    # -- websocket fan-out -----------------------------------------------------------------

    def _broadcast(self, sp_id: int, envelope: dict[str, Any]) -> None:
        text = json.dumps(envelope, ensure_ascii=False)
        for client in self._clients:
            if client.selling_point_id == sp_id:
                client.queue.put_nowait(text)

    async def _writer(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if self.faults.stall or self.faults.mute:
                continue  # the cloud "sent" it into a dead link
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    # -- HTTP ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        self.requests.append({"method": request.method, "path": request.path})
        faults = self.faults
        if faults.refuse_all == "close":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if faults.refuse_all == "503":
            return _json(error_body("UNAVAILABLE", "Service unavailable", 503), 503)
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.fails_order_call(request.method, request.path):
            status = faults.fail_status
            return _json(error_body("INTERNAL_ERROR", "Simulated order failure", status), status)
        if faults.fail_always or faults.fail_count > 0:
            faults.fail_count = max(0, faults.fail_count - 1)
            status = faults.fail_status
            return _json(error_body("INTERNAL_ERROR", "Simulated failure", status), status)
        if faults.garble_count > 0 and request.path != self._ws_path:
            faults.garble_count -= 1
            return web.Response(status=200, text="<html>gateway says hi</html>")
        try:
            response = await handler(request)
        except CloudError as exc:
            return _error(exc)
        if faults.late_answer and request.path != self._ws_path:
            # Applied already: a client that gives up now cannot know it landed.
            await asyncio.sleep(faults.late_answer)
        return response

    def _auth(self, request: web.Request) -> str:
        return self.cloud.authenticate(
            request.headers.get(endpoints.SERVER_TOKEN_HEADER),
            request.headers.get(endpoints.USER_TOKEN_HEADER),
        )

    def _routes(self, app: web.Application) -> None:
        p = endpoints.API_PREFIX
        r = app.router
        r.add_post(p + endpoints.LOGIN, self._login)
        r.add_post(p + endpoints.LOGOUT, self._logout)
        r.add_get(p + endpoints.SELLING_POINTS, self._selling_points)
        r.add_get(p + "/sellingPoints/{sp}/orders/active", self._active)
        r.add_get(p + "/sellingPoints/{sp}/orders", self._orders)
        r.add_post(p + "/sellingPoints/{sp}/orders/{id}/status", self._post_status)
        r.add_patch(p + "/sellingPoints/{sp}/menus/collectionRaw", self._patch_menus)
        r.add_get(p + "/orders/{id}", self._get_order)
        r.add_get(p + "/orders/{id}/actions", self._get_actions)
        r.add_post(p + "/orders/{id}/actions", self._post_action)
        r.add_get(p + endpoints.WEBSOCKET_PATH, self._websocket)
        a = ADMIN_PREFIX
        r.add_get(a + "/state", self._admin_state)
        r.add_get(a + "/orders", self._admin_orders)
        r.add_post(a + "/orders", self._admin_create)
        r.add_post(a + "/orders/{id}/status", self._admin_status)
        r.add_get(a + "/actions", self._admin_actions)
        r.add_get(a + "/menus", self._admin_menus)
        r.add_get(a + "/requests", self._admin_requests)
        r.add_get(a + "/faults", self._admin_faults)
        r.add_post(a + "/faults", self._admin_set_faults)
        r.add_delete(a + "/faults", self._admin_clear_faults)
        r.add_post(a + "/websockets/drop", self._admin_drop)
        r.add_post(a + "/websockets/send", self._admin_send)
        r.add_post(a + "/tokens/revoke", self._admin_revoke)
        r.add_post(a + "/tokens/restore", self._admin_restore)
        r.add_post(a + "/generator", self._admin_generator)

    @staticmethod
    def _int(request: web.Request, key: str) -> int:
        try:
            return int(request.match_info[key])
        except ValueError:
            raise web.HTTPNotFound() from None

    async def _login(self, request: web.Request) -> web.Response:
        self.cloud.check_server(request.headers.get(endpoints.SERVER_TOKEN_HEADER))
        form: Any
        if request.content_type == "application/json":
            try:
                form = await request.json()
            except ValueError:
                raise CloudError("LOGIN_ERROR") from None
        else:
            form = dict(await request.post())
        if not isinstance(form, dict):
            raise CloudError("LOGIN_ERROR")
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise CloudError("LOGIN_ERROR")
        return _json({"token": self.cloud.login(username, password), "username": username})

    async def _logout(self, request: web.Request) -> web.Response:
        self._auth(request)
        self.cloud.logout(request.headers[endpoints.USER_TOKEN_HEADER])
        return web.Response(status=204)

    async def _selling_points(self, request: web.Request) -> web.Response:
        return _json(self.cloud.user_selling_points(self._auth(request)))

    async def _active(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        return _json(self.cloud.active_orders(user, self._int(request, "sp")))

    async def _orders(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        q = request.query
        return _json(
            self.cloud.filter_orders(
                user,
                self._int(request, "sp"),
                start_date=q.get("startDate"),
                end_date=q.get("endDate"),
                order_type=q.get("orderType"),
                global_status=q.get("globalStatusCode"),
            )
        )

    async def _get_order(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        return _json(self.cloud.get_order(user, self._int(request, "id")))

    async def _get_actions(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        raw = request.query.get("delayMinutes")
        delay: int | None = None
        if raw not in (None, ""):
            try:
                delay = int(float(raw or ""))
            except ValueError:
                raise CloudError("BAD_REQUEST", "delayMinutes must be a number") from None
            if not 0 <= delay <= 1440:
                raise CloudError("BAD_REQUEST", "delayMinutes out of range")
        actions = self.cloud.actions(user, self._int(request, "id"), delay)
        if self.faults.null_action_delays:
            actions = [{**action, "delayMinutes": None} for action in actions]
        return _json(actions)

    async def _post_action(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        form = await request.post()
        token, comment = form.get("token"), form.get("cancellationComment")
        return _json(
            self.cloud.post_action(
                user,
                self._int(request, "id"),
                token if isinstance(token, str) else None,
                comment if isinstance(comment, str) else None,
            )
        )

    async def _post_status(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise CloudError("BAD_REQUEST", "body must be JSON (NewOrderStatus)") from None
        order = self.cloud.post_status(
            user, self._int(request, "sp"), self._int(request, "id"), body
        )
        return _json(order)

    async def _patch_menus(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise CloudError("BAD_REQUEST", "body must be JSON") from None
        return _json(self.cloud.patch_menus(user, self._int(request, "sp"), body), 201)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.faults.refuse_websockets:
            return _json(error_body("UNAVAILABLE", "Websocket refused", 503), 503)
        user = self._auth(request)
        raw_sp = request.query.get(endpoints.WEBSOCKET_SELLING_POINT_PARAM, "")
        if not raw_sp.isdigit():
            raise CloudError("SELLING_POINT_ID_REQUIRED")
        sp_id = int(raw_sp)
        self.cloud.check_selling_point(user, sp_id)
        # Pings are answered by hand so a half-open link can be simulated.
        ws = web.WebSocketResponse(
            timeout=2.0, autoping=False, heartbeat=None, max_msg_size=1024 * 1024
        )
        await ws.prepare(request)
        client = _Client(
            ws, sp_id, request.headers.get(endpoints.USER_TOKEN_HEADER, ""), request.transport
        )
        self._clients.add(client)
        writer = asyncio.create_task(self._writer(client), name="sim-ws-writer")
        log.info("sim: websocket client for selling point %d connected", sp_id)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING and not self.faults.stall:
                    await ws.pong(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self._clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            log.info("sim: websocket client for selling point %d gone", sp_id)
        return ws

    # -- admin -----------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return data

    async def _admin_state(self, request: web.Request) -> web.Response:
        return _json(
            {
                "baseUrl": self.base_url,
                "websocketUrl": self.websocket_url,
                "sellingPointId": self.selling_point_id,
                "orders": len(self.cloud.orders),
                "websockets": self.connected(),
                "faults": self.faults.to_json(),
            }
        )

    async def _admin_orders(self, request: web.Request) -> web.Response:
        return _json(self.orders())

    async def _admin_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        count = int(body.get("count", 1))
        sp = body.get("sellingPointId")
        try:
            created = [
                self.create_order(body.get("type"), selling_point_id=int(sp) if sp else None)
                for _ in range(max(1, min(count, 500)))
            ]
        except CloudError as exc:
            return _error(exc)
        return _json(created, 201)

    async def _admin_status(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            order = self.set_status(
                self._int(request, "id"), str(body.get("code")), body.get("comment")
            )
        except CloudError as exc:
            return _error(exc)
        return _json(order)

    async def _admin_actions(self, request: web.Request) -> web.Response:
        return _json(self.posted_actions())

    async def _admin_menus(self, request: web.Request) -> web.Response:
        return _json(self.menus())

    async def _admin_requests(self, request: web.Request) -> web.Response:
        return _json(self.requests)

    async def _admin_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.to_json())

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        f = self.faults
        try:
            if "refuseWebsockets" in body:
                f.refuse_websockets = bool(body["refuseWebsockets"])
            if "refuseAll" in body:
                self.refuse_all(body["refuseAll"])
            if "delay" in body:
                f.delay = max(0.0, float(body["delay"]))
            if "lateAnswer" in body:
                f.late_answer = max(0.0, float(body["lateAnswer"]))
            if "failCount" in body:
                f.fail_count = int(body["failCount"])
            if "failAlways" in body:
                f.fail_always = bool(body["failAlways"])
            if "failStatus" in body:
                f.fail_status = int(body["failStatus"])
            if "stall" in body:
                f.stall = bool(body["stall"])
            if "mute" in body:
                f.mute = bool(body["mute"])
            if "garbleCount" in body:
                f.garble_count = int(body["garbleCount"])
            if "failOrders" in body:
                f.fail_orders = {int(i) for i in body["failOrders"] or []}
            if "failOrderGets" in body:
                f.fail_order_gets = {int(i) for i in body["failOrderGets"] or []}
            if "nullActionDelays" in body:
                f.null_action_delays = bool(body["nullActionDelays"])
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return _json(f.to_json())

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return _json(self.faults.to_json())

    async def _admin_drop(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return _json({"dropped": await self.drop_websockets(abrupt=bool(body.get("abrupt")))})

    async def _admin_send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        text = body.get("text")
        if not isinstance(text, str):
            raise web.HTTPBadRequest(text="text must be a string")
        sp = body.get("sellingPointId")
        return _json({"sent": self.send_raw(text, int(sp) if sp else None)})

    async def _admin_revoke(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self.revoke_token(body.get("token") or None)
        return _json({"revoked": True})

    async def _admin_restore(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.restore_token(body.get("token") or None)
        return _json({"restored": True})

    async def _admin_generator(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        every = body.get("every")
        if every:
            self.start_generator(float(every))
        else:
            self.stop_generator()
        return _json({"every": every or None})


async def serve(
    host: str,
    port: int,
    *,
    generate_every: float | None = None,
    server_token: str = DEFAULT_SERVER_TOKEN,
    user_token: str = DEFAULT_USER_TOKEN,
    state_file: str | Path | None = None,
    announce: bool = True,
) -> None:
    """Run the simulator until cancelled (``edged sim``, ``python -m edged.simulator``).

    With ``announce`` it prints, on stdout, what a daemon config needs to reach it (the
    simulator's own fake tokens included).
    """
    async with Simulator(
        host,
        port,
        server_token=server_token,
        user_token=user_token,
        generate_every=generate_every,
        state_file=state_file,
    ) as sim:
        if announce:
            print(
                "Sinqro simulator running\n"
                f"  base_url         = {sim.base_url}\n"
                f"  websocket_url    = {sim.websocket_url}\n"
                f"  server_token     = {sim.server_token}\n"
                f"  user_token       = {sim.user_token}   (user demo/demo)\n"
                f"  selling_point_id = {sim.selling_point_id}\n"
                f"  admin            = {sim.admin_url}/state\n",
                flush=True,
            )
        await asyncio.Event().wait()


def new_token() -> str:
    """A random token, for callers that want a simulator with unguessable credentials."""
    return secrets.token_urlsafe(24)
