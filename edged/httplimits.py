"""Limits for an aiohttp server that faces strangers: the box's page and ``edged relay``.

* :class:`ConnectionGuard` caps open connections and closes one that has not sent a whole
  request head within ``header_timeout`` seconds (slowloris). At the cap, a new connection
  pushes out the oldest one still waiting for its head; if every connection is busy, the
  new one is closed at once. File descriptors stay free for the rest of the process. Idle
  keep-alive connections are closed by aiohttp itself (its ``keepalive_timeout``).
* :class:`GuardedSite` is ``web.TCPSite`` with its connections going through one.
* :class:`AcceptStormFilter` keeps asyncio's ``accept()`` errors (out of file descriptors)
  to one log line a minute with a count and no traceback, instead of megabytes a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# A request head ends with an empty line; llhttp also takes bare LFs.
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
LOG_EVERY = 60.0  # seconds between two warnings of one kind
# Bytes of an unfinished head kept before aiohttp judges it (its own limit is below this).
MAX_HEAD = 64 * 1024


class Throttled:
    """Counts events and says so at most once per :data:`LOG_EVERY` seconds."""

    def __init__(self, message: str, clock: Callable[[], float]) -> None:
        self.message = message
        self.clock = clock
        self.count = 0
        self._said_at: float | None = None
        self._unsaid = 0

    def hit(self) -> None:
        self.count += 1
        self._unsaid += 1
        now = self.clock()
        if self._said_at is None or now - self._said_at >= LOG_EVERY:
            log.warning(self.message, self._unsaid)
            self._said_at = now
            self._unsaid = 0


class ConnectionGuard:
    """A protocol factory around aiohttp's: see the module docstring.

    Pass it to ``loop.create_server`` (:class:`GuardedSite` does). ``open`` is the number of
    connections now; ``evicted``, ``refused`` and ``timed_out`` count since start.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        max_connections: int,
        header_timeout: float,
        name: str = "web",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``name`` starts its log lines (``web``, ``relay``)."""
        self.factory = factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: set[_GuardedProtocol] = set()
        # Connections still waiting for their first request head, oldest first.
        self._waiting: dict[_GuardedProtocol, None] = {}
        self._evicted = Throttled(f"{name}: %d connection(s) without a request pushed out", clock)
        self._refused = Throttled(f"{name}: %d connection(s) refused: all connections busy", clock)
        self._timed_out = Throttled(f"{name}: %d connection(s) sent no request in time", clock)

    @property
    def open(self) -> int:
        return len(self._open)

    @property
    def evicted(self) -> int:
        return self._evicted.count

    @property
    def refused(self) -> int:
        return self._refused.count

    @property
    def timed_out(self) -> int:
        return self._timed_out.count

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._open) >= self.max_connections:
            if not self._waiting:
                self._refused.hit()
                return _Refused()
            oldest = next(iter(self._waiting))
            self._evicted.hit()
            oldest.drop()
        return _GuardedProtocol(self)

    def _made(self, conn: _GuardedProtocol) -> None:
        self._open.add(conn)
        self._waiting[conn] = None

    def _head(self, conn: _GuardedProtocol) -> None:
        self._waiting.pop(conn, None)

    def _lost(self, conn: _GuardedProtocol) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)


class _Refused(asyncio.Protocol):
    """Closes the connection as soon as it is made (RST: the descriptor is freed now)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()
        else:
            transport.close()


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline for the first request head.

    aiohttp's protocol (a task per connection) is made only once the head is complete:
    until then the bytes wait here, so a flood of connections that never send a request
    costs little more than their sockets."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head = bytearray()
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard._made(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.guard.header_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        start = max(0, len(self._head) - 3)
        self._head += data
        window = bytes(self._head[start:])
        # An endless head is aiohttp's to refuse (431), past its own limits.
        if any(end in window for end in _HEAD_ENDS) or len(self._head) > MAX_HEAD:
            self._cancel_timer()
            self.guard._head(self)
            self._hand_over()

    def _hand_over(self) -> None:
        inner = self.guard.factory()
        assert isinstance(inner, asyncio.Protocol) and self.transport is not None
        self.inner = inner
        inner.connection_made(self.transport)
        if self._paused:
            inner.pause_writing()
        head, self._head = bytes(self._head), bytearray()
        inner.data_received(head)

    def eof_received(self) -> bool | None:
        if self.inner is None:
            return None  # no request came: close
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.guard._lost(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        self._paused = False
        if self.inner is not None:
            self.inner.resume_writing()

    def drop(self) -> None:
        """Close now (pushed out at the cap, or too slow)."""
        self._cancel_timer()
        self.guard._head(self)  # no longer a candidate to push out
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()
        else:
            transport.close()

    def _too_slow(self) -> None:
        self._timer = None
        self.guard._timed_out.hit()
        self.drop()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections go through a :class:`ConnectionGuard`; ``guard``
    is set once started."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        header_timeout: float,
        name: str = "web",
        listen_queue: int | None = None,
        **kwargs: Any,
    ) -> None:
        """``listen_queue``: the kernel's queue of connections not yet accepted, when it
        should be longer than ``backlog`` (how many asyncio accepts per loop turn)."""
        super().__init__(runner, host, port, **kwargs)
        self._listen_queue = listen_queue
        self._max_connections = max_connections
        self._header_timeout = header_timeout
        self._name = name
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        # BaseSite.start registers the site with the runner; TCPSite.start would listen.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(
            server,
            max_connections=self._max_connections,
            header_timeout=self._header_timeout,
            name=self._name,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        if self._listen_queue is not None:
            # asyncio takes one number for both. A long queue lets a burst of connections
            # wait instead of dropping a real client's handshake (retried only a second
            # later); few accepts per turn keep a burst from pushing out, at the cap, a
            # connection whose request is already waiting to be read.
            for sock in self._server.sockets:
                with socket.socket(fileno=os.dup(sock.fileno())) as same:
                    same.listen(self._listen_queue)

    @property
    def port(self) -> int:
        """The bound port (the configured one may be 0)."""
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port


class AcceptStormFilter(logging.Filter):
    """Lets one asyncio ``accept()`` resource error through per minute, with a count."""

    MARK = "socket.accept() out of system resource"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.suppressed = 0
        self._passed_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.MARK):
            return True
        now = self.clock()
        if self._passed_at is not None and now - self._passed_at < LOG_EVERY:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} more in the last minute)"
        record.exc_info = None  # the same OSError each time: the message says it
        record.exc_text = None
        self.suppressed = 0
        self._passed_at = now
        return True


_ACCEPT_FILTER = AcceptStormFilter()


def quiet_accept_storms() -> None:
    """Install :class:`AcceptStormFilter` on asyncio's logger (once per process)."""
    logger = logging.getLogger("asyncio")
    if _ACCEPT_FILTER not in logger.filters:
        logger.addFilter(_ACCEPT_FILTER)
