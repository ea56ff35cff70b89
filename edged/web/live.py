"""Live updates: the box's status for the page and a server-sent event stream (``/events``)
that tells open pages when the board or the status changed.

Bursts of journal events coalesce into one message per stream; Sinqro's refusals of queued
decisions travel as ``notice`` events, so a page never stays silent about a dropped choice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edged.i18n import Locale
from edged.journal import events as ev
from edged.journal.events import Event
from edged.web.http import harden, sse

if TYPE_CHECKING:
    from edged.web.server import WebServer

KEEPALIVE = 15.0
STATUS_KEYS = (
    "link",
    "link.detail",
    "link.since",
    "link.reconnects",
    "queued_commands",
    "waiting_orders",
)
STATUS_PREFIXES = ("printer.", "panel.", "bridge.")


class Client:
    """One open live-update stream; flags coalesce bursts of events into one message."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.status = True
        self.board = True
        self.notices: deque[dict[str, Any]] = deque(maxlen=20)


class Live:
    """The status the page shows and the streams that keep it current."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.clients: set[Client] = set()
        self.closing = False

    # -- status ----------------------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The status line's data: link, queue, printers, panel, bridges (nothing secret)."""
        services = self.server.services
        snapshot = services.state.snapshot()
        values = {
            k: v for k, v in snapshot.items() if k in STATUS_KEYS or k.startswith(STATUS_PREFIXES)
        }
        return {
            "state": values,
            "pairing": services.pairing().public(),
            "printers": services.state.printers(),
            "virtual_panel": self.server.board.virtual_panel() is not None,
        }

    def status_line(self, locale: Locale) -> dict[str, Any]:
        """The status as the page's first paint shows it (the script keeps it current)."""
        status = self.status_json()
        link = str(status["state"].get("link", "unknown"))
        printers = status["printers"]
        bad_printers = [
            name
            for name, health in printers.items()
            if not isinstance(health, dict) or health.get("state") != "online"
        ]
        return {"link": link, "online": link == "online", "bad_printers": sorted(bad_printers)}

    # -- listeners -------------------------------------------------------------------------

    def on_journal_events(self, new_events: list[Event]) -> None:
        self.server.board.forget_actions(new_events)
        notices = [
            {
                "kind": "failed",
                "order_id": e.order_id,
                "code": str(e.data.get("code", "")),
                "message": str(e.data.get("message", "")),
            }
            for e in new_events
            if e.kind == ev.COMMAND_FAILED
        ]
        status = any(e.kind.startswith(("print", "link")) for e in new_events)
        for client in self.clients:
            client.board = True
            client.status = client.status or status
            client.notices.extend(notices)
            client.wake.set()

    def on_state_change(self, key: str, value: Any) -> None:
        if key not in STATUS_KEYS and not key.startswith(STATUS_PREFIXES):
            return
        for client in self.clients:
            client.status = True
            client.wake.set()

    def close(self) -> None:
        self.closing = True
        for client in list(self.clients):
            client.wake.set()

    # -- the stream ------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``status`` (the status data), ``board`` (refetch), ``notice``."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        harden(response, request.path)
        await response.prepare(request)
        client = Client()
        client.wake.set()  # the current status and board at once
        self.clients.add(client)
        try:
            with contextlib.suppress(ConnectionResetError, ConnectionError):
                await self._stream(response, client)
        finally:
            self.clients.discard(client)
        return response

    async def _stream(self, response: web.StreamResponse, client: Client) -> None:
        await response.write(b"retry: 2000\n\n")
        while not self.closing:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    await client.wake.wait()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if self.closing:
                break
            # Let a burst of events settle into one message.
            await asyncio.sleep(0.05)
            client.wake.clear()
            if client.status:
                client.status = False
                await response.write(sse("status", self.status_json()))
            if client.board:
                client.board = False
                await response.write(sse("board", {}))
            while client.notices:
                await response.write(sse("notice", client.notices.popleft()))
