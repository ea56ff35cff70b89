"""Small HTTP helpers every area of the page shares: JSON answers, early stops, redirects
and the hardening headers each response gets."""

from __future__ import annotations

import inspect
import json
from typing import Any

from aiohttp import web

from edged.decoding import parse_id

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# Largest request body (forms, JSON): a phone's setup form is a few kilobytes.
MAX_BODY = 64 * 1024


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first when it is awaitable (services may be sync or async)."""
    return await value if inspect.isawaitable(value) else value


def dumps(data: Any) -> str:
    """JSON with ``<``, ``>`` and ``&`` as escapes: no markup even if a browser sniffs."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


def refusal(code: str, message: str, status: int) -> web.Response:
    """The one shape of every refusal the page's scripts read: ``ok``, ``code``, ``message``."""
    return json_response({"ok": False, "code": code, "message": message}, status)


class Stop(Exception):
    """Ends a request early with a JSON error (the guard turns it into the response)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = refusal(code, message, status)


def redirect(location: str) -> web.Response:
    """303 See Other, as a plain response so cookies set on it are sent."""
    return web.Response(status=303, headers={"Location": location})


def harden(response: web.StreamResponse, path: str) -> None:
    """Security headers on every response; no caching but for static files."""
    if response.prepared:
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # "same-origin", not "no-referrer": with no-referrer Chromium sends "Origin: null".
    headers.setdefault("Referrer-Policy", "same-origin")
    if not path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


def wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith("/api/")
        or request.path == "/events"
        or "application/json" in request.headers.get("Accept", "")
    )


def path_order_id(request: web.Request) -> int:
    """The ``{order_id}`` of the path; beyond SQLite's 64-bit INTEGER no order can exist."""
    order_id = parse_id(request.match_info["order_id"])
    if order_id is None:
        raise Stop(404, "UNKNOWN_ORDER", "no such order")
    return order_id


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event, with an ``id:`` line when ``event_id`` is given."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {dumps(data)}\n\n".encode()
