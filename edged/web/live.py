"""Live updates: a server-sent event stream (``/events``) that tells open pages when the
board or the status (:mod:`edged.web.status`) changed.

Bursts of journal events coalesce into one message per stream; Sinqro's refusals of queued
decisions travel as ``notice`` events, so a page never stays silent about a dropped choice.

Every message carries an SSE ``id:`` of ``<journal epoch>.<last seq>``. A page that lost
its stream (the daemon restarted, the network dropped) opens a new one with that id
(``Last-Event-ID`` or ``?last=``): the stream starts with the status and a ``board``
message (the page refetches the whole board), and, when the id is from this journal and
the gap is small, first replays the ``notice`` events the page missed. A new journal (a
new epoch) or a long gap gets the full board only, marked ``reset``. A ``ping`` every
:data:`KEEPALIVE` seconds lets the page tell a dead stream from a quiet one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from aiohttp import web

from edged.journal import events as ev
from edged.journal.events import Event
from edged.web.http import harden, sse
from edged.web.site import Site

KEEPALIVE = 10.0  # a ping: the page takes 25 s of silence for a dead stream
# Missed journal events a reconnecting page gets its notices from; beyond this, only the
# full board (its cards show every decision's outcome anyway).
REPLAY_MAX = 1024


class Client:
    """One open live-update stream; flags coalesce bursts of events into one message."""

    def __init__(self, session_key: str = "") -> None:
        self.session_key = session_key
        self.ended = False  # its sign-in ended: the stream closes, the page signs in again
        self.wake = asyncio.Event()
        self.status = True
        self.board = True
        self.notices: deque[dict[str, Any]] = deque(maxlen=20)
        # The page's id was from another journal or too old: it drops what it holds.
        self.reset = False


class Live:
    """The streams that keep open pages current."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.clients: set[Client] = set()
        self.closing = False

    def stream_id(self) -> str:
        """Where the journal is now, as the SSE ``id``: ``<epoch>.<seq>``."""
        journal = self.site.services.journal
        return f"{journal.epoch}.{journal.last_seq}"

    async def missed_notices(self, last: str | None) -> tuple[bool, list[dict[str, Any]]]:
        """The notices a page whose last id was ``last`` missed, and whether it may keep
        what it holds (``False``: another journal, an unreadable id or a long gap)."""
        journal = self.site.services.journal
        if not last:
            return True, []  # a first stream: the page holds nothing yet
        epoch, _, seq_text = last.rpartition(".")
        if not epoch or epoch != journal.epoch or not seq_text.isdigit():
            return False, []
        seq = int(seq_text)
        if seq > journal.last_seq or journal.last_seq - seq > REPLAY_MAX:
            return False, []
        missed: list[Event] = []
        while seq < journal.last_seq:
            batch = await journal.read_events(seq, limit=256)
            if not batch:
                break
            missed += batch
            seq = batch[-1].seq
        return True, _notices(missed)

    # -- listeners -------------------------------------------------------------------------

    def on_journal_events(self, new_events: list[Event]) -> None:
        """Wake every stream: the board changed (and the status, for print and link events)."""
        notices = _notices(new_events)
        status = any(e.kind.startswith(("print", "link")) for e in new_events)
        for client in self.clients:
            client.board = True
            client.status = client.status or status
            client.notices.extend(notices)
            client.wake.set()

    def on_state_change(self, key: str, value: Any) -> None:
        """Wake every stream when the status shows ``key``."""
        if not self.site.status.changed(key, value):
            return
        for client in self.clients:
            client.status = True
            client.wake.set()

    def end_sessions(self, keys: set[str] | None) -> None:
        """Close the streams of the sessions ``keys`` (``None``: every one), e.g. a device
        signed out from the page: its board must not go on showing orders."""
        for client in self.clients:
            if keys is None or client.session_key in keys:
                client.ended = True
                client.wake.set()

    def close(self) -> None:
        self.closing = True
        for client in list(self.clients):
            client.wake.set()

    # -- the stream ------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``status`` (the status data), ``board`` (refetch),
        ``notice``, ``ping``; resumed from ``Last-Event-ID`` / ``?last=`` (module doc)."""
        last = request.headers.get("Last-Event-ID") or request.query.get("last")
        kept, missed = await self.missed_notices(last[:200] if last else None)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        harden(response, request.path)
        await response.prepare(request)
        session = self.site.guard.session(request)
        client = Client(session.key if session is not None else "")
        client.notices.extend(missed)
        client.reset = not kept
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
                await response.write(sse("ping", {}, self.stream_id()))
                continue
            if self.closing or client.ended:
                break
            # Let a burst of events settle into one message.
            await asyncio.sleep(0.05)
            client.wake.clear()
            # Read before the writes: an event landing meanwhile wakes the stream again.
            at = self.stream_id()
            while client.notices:
                await response.write(sse("notice", client.notices.popleft(), at))
            if client.status:
                client.status = False
                await response.write(sse("status", self.site.status.status_json(), at))
            if client.board:
                client.board = False
                await response.write(sse("board", {"reset": client.reset}, at))
                client.reset = False


def _notices(events: list[Event]) -> list[dict[str, Any]]:
    """Sinqro's refusals among ``events``, as the page's ``notice`` data."""
    out = []
    for e in events:
        data = ev.payload(e)
        if isinstance(data, ev.CommandFailed):
            out.append(
                {
                    "kind": "failed",
                    "order_id": e.order_id,
                    "code": data.code,
                    "message": data.message,
                }
            )
    return out
