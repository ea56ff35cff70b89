"""What the simulator's HTTP pieces share, below all of them: the admin path prefix, JSON
and error answers, path parameters, a websocket client, and :class:`CloudState`, the narrow
state the Sinqro routes serve (the cloud, its fault switches, the request log, the
connected websockets).

:mod:`edged.simulator.routes` and :mod:`edged.simulator.admin` import from here, and
:mod:`edged.simulator.server` imports them: nothing here imports a route or the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from edged.simulator.cloud import Cloud
from edged.simulator.errors import CloudError
from edged.simulator.faults import Faults
from edged.sinqro import endpoints

ADMIN_PREFIX = "/_sim"
WS_PATH = endpoints.API_PREFIX + endpoints.WEBSOCKET_PATH
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(eq=False)
class WsClient:
    """One connected websocket client; notifications for it wait in ``queue``."""

    ws: web.WebSocketResponse
    selling_point_id: int
    user_token: str
    transport: asyncio.Transport | None = None
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class CloudState(Protocol):
    """What the Sinqro routes read and change: the simulated cloud, the fault switches
    (replaced as a whole when cleared, so read on every request), the log of API requests
    and the connected websocket clients."""

    cloud: Cloud
    faults: Faults
    requests: list[dict[str, Any]]
    clients: set[WsClient]


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON answer, non-ASCII kept as is."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def error_response(exc: CloudError) -> web.Response:
    """The ErrorResponse of ``exc`` with its HTTP status."""
    return json_response(exc.body(), exc.http)


def path_int(request: web.Request, key: str) -> int:
    """The path parameter ``key`` as a number; 404 when it is not one."""
    try:
        return int(request.match_info[key])
    except ValueError:
        raise web.HTTPNotFound() from None
