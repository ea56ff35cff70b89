"""The simulated Sinqro cloud over real sockets (aiohttp): REST, websocket, admin and faults.

:class:`Simulator` runs it: it starts the HTTP server, keeps the connected websocket
clients and pushes the cloud's notifications to them, saves the cloud's state to a file
when asked, and offers tests and the demo direct methods (create orders, change their
status, switch faults on). The pieces it serves:

* :mod:`edged.simulator.cloud`: the orders, users and tokens, and what each call does;
* :mod:`edged.simulator.routes`: the Sinqro REST API and websocket over HTTP;
* :mod:`edged.simulator.faults`: the switches that make it answer badly on purpose;
* :mod:`edged.simulator.admin`: the same controls under ``/_sim/`` without auth
  (docs/simulator.md lists them);
* :mod:`edged.simulator.wire`: what those share (JSON answers, the websocket client, the
  narrow state the routes take), so neither imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from edged.simulator.admin import AdminRoutes
from edged.simulator.cloud import Cloud
from edged.simulator.faults import Faults
from edged.simulator.routes import SinqroRoutes
from edged.simulator.wire import ADMIN_PREFIX, WsClient
from edged.sinqro import endpoints

log = logging.getLogger(__name__)

DEFAULT_SERVER_TOKEN = "sim-server-token"
DEFAULT_USER_TOKEN = "sim-user-token-demo"


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
        self.clients: set[WsClient] = set()
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
    def admin_url(self) -> str:
        return self.origin + ADMIN_PREFIX

    async def start(self) -> None:
        if self._state_file is not None and self._state_file.exists():
            data = json.loads(self._state_file.read_text("utf-8"))
            self.cloud.load_json(data)
        if self._state_file is not None:
            self.cloud.on_change = self._dirty.set
            self._saver = asyncio.create_task(self._save_loop(), name="sim-state-saver")
        api = SinqroRoutes(self)
        app = web.Application(middlewares=[api.middleware], client_max_size=8 * 1024 * 1024)
        api.install(app)
        AdminRoutes(self).install(app)
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
        for client in list(self.clients):
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

    def catalog_patches(self, suffix: str = "") -> list[dict[str, Any]]:
        """Every catalog PATCH the cloud applied (path ending in ``suffix``), with its body."""
        return [p for p in self.cloud.catalog_patches if p["path"].endswith(suffix)]

    def menus(self) -> list[dict[str, Any]]:
        """Every accepted ``collectionRaw`` body."""
        return list(self.cloud.menus)

    def connected(self, selling_point_id: int | None = None) -> int:
        """How many websocket clients are connected (to one selling point, or all)."""
        return sum(
            1
            for c in self.clients
            if selling_point_id is None or c.selling_point_id == selling_point_id
        )

    def login_token(self, username: str, password: str) -> str:
        return self.cloud.login(username, password)

    # faults

    async def drop_websockets(self, *, abrupt: bool = False) -> int:
        """Close every websocket now (``abrupt``: cut the TCP connection without a close
        frame, like a network failure); returns how many were closed."""
        clients = list(self.clients)
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
        self.faults.set_refuse_all(mode)

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
        for client in [c for c in self.clients if c.user_token == token]:
            with contextlib.suppress(Exception):
                await client.ws.close(code=1008, message=b"token revoked")

    def restore_token(self, token: str | None = None) -> None:
        self.cloud.restore(token or self.user_token)

    def send_raw(self, text: str, selling_point_id: int | None = None) -> int:
        """Queue a raw text frame to connected clients; returns how many got it."""
        targets = [
            c
            for c in self.clients
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

    def fail_product(self, item_id: int, on: bool = True, status: int = 503) -> None:
        """Every call about product (or option category) ``item_id`` answers ``status``."""
        (self.faults.fail_products.add if on else self.faults.fail_products.discard)(item_id)
        self.faults.fail_status = status

    def product(self, product_id: int, selling_point_id: int | None = None) -> dict[str, Any]:
        """A product as ``GET .../products/{id}`` answers it (variants, option categories)."""
        return self.cloud.catalog(selling_point_id or self.selling_point_id).product(product_id)

    def option(self, option_id: int, selling_point_id: int | None = None) -> dict[str, Any]:
        """A product option, found in its category."""
        catalog = self.cloud.catalog(selling_point_id or self.selling_point_id)
        for category in catalog.categories.values():
            for option in category["productOptions"]:
                if option["id"] == option_id:
                    return dict(option)
        raise KeyError(option_id)

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
        for client in self.clients:
            if client.selling_point_id == sp_id:
                client.queue.put_nowait(text)


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
