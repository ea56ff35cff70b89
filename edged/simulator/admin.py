"""The simulator's admin endpoints under ``/_sim/``, without auth (docs/simulator.md).

They drive what tests and the demo usually drive through the
:class:`~edged.simulator.server.Simulator` methods: create orders and change their status
as a client or driver would, read what reached the "cloud" (requests, actions, menus), flip
fault switches, drop or feed websockets, revoke tokens, start the order generator.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from edged.simulator.cloud import Cloud
from edged.simulator.errors import CloudError
from edged.simulator.faults import Faults
from edged.simulator.wire import ADMIN_PREFIX, error_response, json_response, path_int


class SimControls(Protocol):
    """The simulator's controls the admin endpoints drive (what
    :class:`~edged.simulator.server.Simulator` offers tests and the demo)."""

    cloud: Cloud
    faults: Faults
    requests: list[dict[str, Any]]
    selling_point_id: int

    @property
    def base_url(self) -> str: ...

    @property
    def websocket_url(self) -> str: ...

    def connected(self, selling_point_id: int | None = None) -> int: ...

    def create_order(
        self, type: str | None = None, *, selling_point_id: int | None = None
    ) -> dict[str, Any]: ...

    def set_status(
        self, order_id: int, code: str, comment: str | None = None
    ) -> dict[str, Any]: ...

    def orders(self) -> list[dict[str, Any]]: ...

    def posted_actions(self) -> list[dict[str, Any]]: ...

    def menus(self) -> list[dict[str, Any]]: ...

    def clear_faults(self) -> None: ...

    async def drop_websockets(self, *, abrupt: bool = False) -> int: ...

    def send_raw(self, text: str, selling_point_id: int | None = None) -> int: ...

    async def revoke_token(self, token: str | None = None) -> None: ...

    def restore_token(self, token: str | None = None) -> None: ...

    def start_generator(self, every: float) -> None: ...

    def stop_generator(self) -> None: ...


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (``{}`` without a body); 400 when it is not one."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


class AdminRoutes:
    """The ``/_sim/`` endpoints of ``sim``."""

    def __init__(self, sim: SimControls) -> None:
        self.sim = sim

    def install(self, app: web.Application) -> None:
        """Add the admin routes to ``app``."""
        r = app.router
        a = ADMIN_PREFIX
        r.add_get(a + "/state", self._state)
        r.add_get(a + "/orders", self._orders)
        r.add_post(a + "/orders", self._create)
        r.add_post(a + "/orders/{id}/status", self._status)
        r.add_get(a + "/actions", self._actions)
        r.add_get(a + "/menus", self._menus)
        r.add_get(a + "/requests", self._requests)
        r.add_get(a + "/faults", self._faults)
        r.add_post(a + "/faults", self._set_faults)
        r.add_delete(a + "/faults", self._clear_faults)
        r.add_post(a + "/websockets/drop", self._drop)
        r.add_post(a + "/websockets/send", self._send)
        r.add_post(a + "/tokens/revoke", self._revoke)
        r.add_post(a + "/tokens/restore", self._restore)
        r.add_post(a + "/generator", self._generator)

    async def _state(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "baseUrl": self.sim.base_url,
                "websocketUrl": self.sim.websocket_url,
                "sellingPointId": self.sim.selling_point_id,
                "orders": len(self.sim.cloud.orders),
                "websockets": self.sim.connected(),
                "faults": self.sim.faults.to_json(),
            }
        )

    async def _orders(self, request: web.Request) -> web.Response:
        return json_response(self.sim.orders())

    async def _create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        count = int(body.get("count", 1))
        sp = body.get("sellingPointId")
        try:
            created = [
                self.sim.create_order(body.get("type"), selling_point_id=int(sp) if sp else None)
                for _ in range(max(1, min(count, 500)))
            ]
        except CloudError as exc:
            return error_response(exc)
        return json_response(created, 201)

    async def _status(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            order = self.sim.set_status(
                path_int(request, "id"), str(body.get("code")), body.get("comment")
            )
        except CloudError as exc:
            return error_response(exc)
        return json_response(order)

    async def _actions(self, request: web.Request) -> web.Response:
        return json_response(self.sim.posted_actions())

    async def _menus(self, request: web.Request) -> web.Response:
        return json_response(self.sim.menus())

    async def _requests(self, request: web.Request) -> web.Response:
        return json_response(self.sim.requests)

    async def _faults(self, request: web.Request) -> web.Response:
        return json_response(self.sim.faults.to_json())

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            self.sim.faults.update(body)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return json_response(self.sim.faults.to_json())

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.sim.clear_faults()
        return json_response(self.sim.faults.to_json())

    async def _drop(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return json_response(
            {"dropped": await self.sim.drop_websockets(abrupt=bool(body.get("abrupt")))}
        )

    async def _send(self, request: web.Request) -> web.Response:
        body = await _body(request)
        text = body.get("text")
        if not isinstance(text, str):
            raise web.HTTPBadRequest(text="text must be a string")
        sp = body.get("sellingPointId")
        return json_response({"sent": self.sim.send_raw(text, int(sp) if sp else None)})

    async def _revoke(self, request: web.Request) -> web.Response:
        body = await _body(request)
        await self.sim.revoke_token(body.get("token") or None)
        return json_response({"revoked": True})

    async def _restore(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.sim.restore_token(body.get("token") or None)
        return json_response({"restored": True})

    async def _generator(self, request: web.Request) -> web.Response:
        body = await _body(request)
        every = body.get("every")
        if every:
            self.sim.start_generator(float(every))
        else:
            self.sim.stop_generator()
        return json_response({"every": every or None})
