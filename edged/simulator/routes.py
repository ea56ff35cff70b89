"""The Sinqro API as the simulator serves it: REST handlers, the websocket, and the
middleware that applies the fault switches to every API request.

REST is served under the production path prefix (``/pos-app/v1``) with the paths of
:mod:`edged.sinqro.endpoints`; the websocket at ``/pos-app/v1/notifications?sellingPointId=N``.
Both auth headers are checked on every call and on the websocket upgrade. What each call
does to the orders is :class:`~edged.simulator.cloud.Cloud`'s; how it can go wrong on
purpose is :class:`~edged.simulator.faults.Faults`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from edged.simulator.catalog_routes import CatalogRoutes
from edged.simulator.errors import CloudError, error_body
from edged.simulator.wire import (
    ADMIN_PREFIX,
    WS_PATH,
    CloudState,
    Handler,
    WsClient,
    error_response,
    json_response,
    path_int,
)
from edged.sinqro import endpoints

log = logging.getLogger(__name__)


class SinqroRoutes:
    """The Sinqro API over ``state`` (the cloud and its switches, not the whole simulator):
    add :meth:`middleware` to the application, then :meth:`install` the routes."""

    def __init__(self, state: CloudState) -> None:
        self.state = state

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every API request (not ``/_sim/``) is logged in ``state.requests`` and answered
        the way the fault switches say; a :class:`CloudError` becomes its ErrorResponse."""
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        self.state.requests.append({"method": request.method, "path": request.path})
        faults = self.state.faults
        if faults.refuse_all == "close":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if faults.refuse_all == "503":
            return json_response(error_body("UNAVAILABLE", "Service unavailable", 503), 503)
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.fails_order_call(request.method, request.path):
            status = faults.fail_status
            return json_response(
                error_body("INTERNAL_ERROR", "Simulated order failure", status), status
            )
        if faults.fail_always or faults.fail_count > 0:
            faults.fail_count = max(0, faults.fail_count - 1)
            status = faults.fail_status
            return json_response(error_body("INTERNAL_ERROR", "Simulated failure", status), status)
        if faults.garble_count > 0 and request.path != WS_PATH:
            faults.garble_count -= 1
            if faults.garble_body:
                return web.Response(
                    status=200, text=faults.garble_body, content_type="application/json"
                )
            return web.Response(status=200, text="<html>gateway says hi</html>")
        try:
            response = await handler(request)
        except CloudError as exc:
            return error_response(exc)
        if faults.late_answer and request.path != WS_PATH:
            # Applied already: a client that gives up now cannot know it landed.
            await asyncio.sleep(faults.late_answer)
        return response

    def _auth(self, request: web.Request) -> str:
        return self.state.cloud.authenticate(
            request.headers.get(endpoints.SERVER_TOKEN_HEADER),
            request.headers.get(endpoints.USER_TOKEN_HEADER),
        )

    def install(self, app: web.Application) -> None:
        """Add the REST routes and the websocket route to ``app``."""
        p = endpoints.API_PREFIX
        r = app.router
        r.add_post(p + endpoints.LOGIN, self._login)
        r.add_post(p + endpoints.LOGOUT, self._logout)
        r.add_get(p + endpoints.SELLING_POINTS, self._selling_points)
        r.add_get(p + "/sellingPoints/{sp}/orders/active", self._active)
        r.add_get(p + "/sellingPoints/{sp}/orders", self._orders)
        r.add_post(p + "/sellingPoints/{sp}/orders/{id}/status", self._post_status)
        r.add_patch(p + "/sellingPoints/{sp}/menus/collectionRaw", self._patch_menus)
        CatalogRoutes(self.state, self._auth).install(app)
        r.add_get(p + "/orders/{id}", self._get_order)
        r.add_get(p + "/orders/{id}/actions", self._get_actions)
        r.add_post(p + "/orders/{id}/actions", self._post_action)
        r.add_get(p + endpoints.WEBSOCKET_PATH, self._websocket)

    async def _login(self, request: web.Request) -> web.Response:
        self.state.cloud.check_server(request.headers.get(endpoints.SERVER_TOKEN_HEADER))
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
        return json_response(
            {"token": self.state.cloud.login(username, password), "username": username}
        )

    async def _logout(self, request: web.Request) -> web.Response:
        self._auth(request)
        self.state.cloud.logout(request.headers[endpoints.USER_TOKEN_HEADER])
        return web.Response(status=204)

    async def _selling_points(self, request: web.Request) -> web.Response:
        return json_response(self.state.cloud.user_selling_points(self._auth(request)))

    async def _active(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        return json_response(self.state.cloud.active_orders(user, path_int(request, "sp")))

    async def _orders(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        q = request.query
        return json_response(
            self.state.cloud.filter_orders(
                user,
                path_int(request, "sp"),
                start_date=q.get("startDate"),
                end_date=q.get("endDate"),
                order_type=q.get("orderType"),
                global_status=q.get("globalStatusCode"),
            )
        )

    async def _get_order(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        return json_response(self.state.cloud.get_order(user, path_int(request, "id")))

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
        actions = self.state.cloud.actions(user, path_int(request, "id"), delay)
        if self.state.faults.null_action_delays:
            actions = [{**action, "delayMinutes": None} for action in actions]
        return json_response(actions)

    async def _post_action(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        form = await request.post()
        token, comment = form.get("token"), form.get("cancellationComment")
        return json_response(
            self.state.cloud.post_action(
                user,
                path_int(request, "id"),
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
        order = self.state.cloud.post_status(
            user, path_int(request, "sp"), path_int(request, "id"), body
        )
        return json_response(order)

    async def _patch_menus(self, request: web.Request) -> web.Response:
        user = self._auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise CloudError("BAD_REQUEST", "body must be JSON") from None
        return json_response(self.state.cloud.patch_menus(user, path_int(request, "sp"), body), 201)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.state.faults.refuse_websockets:
            return json_response(error_body("UNAVAILABLE", "Websocket refused", 503), 503)
        user = self._auth(request)
        raw_sp = request.query.get(endpoints.WEBSOCKET_SELLING_POINT_PARAM, "")
        if not raw_sp.isdigit():
            raise CloudError("SELLING_POINT_ID_REQUIRED")
        sp_id = int(raw_sp)
        self.state.cloud.check_selling_point(user, sp_id)
        # Pings are answered by hand so a half-open link can be simulated.
        ws = web.WebSocketResponse(
            timeout=2.0, autoping=False, heartbeat=None, max_msg_size=1024 * 1024
        )
        await ws.prepare(request)
        client = WsClient(
            ws, sp_id, request.headers.get(endpoints.USER_TOKEN_HEADER, ""), request.transport
        )
        self.state.clients.add(client)
        writer = asyncio.create_task(self._writer(client), name="sim-ws-writer")
        log.info("sim: websocket client for selling point %d connected", sp_id)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING and not self.state.faults.stall:
                    await ws.pong(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.state.clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            log.info("sim: websocket client for selling point %d gone", sp_id)
        return ws

    async def _writer(self, client: WsClient) -> None:
        while True:
            text = await client.queue.get()
            if self.state.faults.stall or self.state.faults.mute:
                continue  # the cloud "sent" it into a dead link
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
