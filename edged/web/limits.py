"""What keeps the web page from being turned against the rest of the box.

A browser on the shop's network is not the only thing that can reach port 8080. Three
guards sit between the listening socket and aiohttp:

* :class:`ConnectionGuard` caps open connections and closes one that has not sent a whole
  request head within ``header_timeout`` seconds (slowloris). At the cap, a new connection
  pushes out the oldest one still waiting for its head; if every connection is busy, the
  new one is closed at once. File descriptors stay free for printers, the journal and the
  Sinqro link: the page may starve, printing never does. Idle keep-alive connections are
  closed by aiohttp itself after ``keepalive_timeout`` (:func:`runner_options`).
* :class:`HostGuard` answers only requests whose ``Host`` names this box (its mDNS and host
  names, ``localhost``, ``web.allowed_hosts``, or the very address the client connected to),
  so a page elsewhere cannot reach it through DNS rebinding.
* :class:`AcceptStormFilter` keeps asyncio's ``accept()`` errors (out of file descriptors)
  to one log line a minute with a count, instead of megabytes a second.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from edged.web.settings import WebConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A request head ends with an empty line; llhttp also takes bare LFs.
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
LOG_EVERY = 60.0  # seconds between two warnings of one kind
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


def runner_options(config: WebConfig) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: aiohttp's own limits."""
    return {"keepalive_timeout": config.keepalive_timeout}


class _Throttled:
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: set[_GuardedProtocol] = set()
        # Connections still waiting for their first request head, oldest first.
        self._waiting: dict[_GuardedProtocol, None] = {}
        self._evicted = _Throttled("web: %d connection(s) without a request pushed out", clock)
        self._refused = _Throttled("web: %d connection(s) refused: all connections busy", clock)
        self._timed_out = _Throttled("web: %d connection(s) sent no request in time", clock)

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
        inner = self.factory()
        assert isinstance(inner, asyncio.Protocol)
        return _GuardedProtocol(self, inner)

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
    """aiohttp's protocol for one connection, with a deadline for the first request head."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._head_seen = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard._made(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.guard.header_timeout, self._too_slow)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._head_seen:
            window = self._tail + data
            if any(end in window for end in _HEAD_ENDS):
                self._head_seen = True
                self._cancel_timer()
                self.guard._head(self)
            else:
                self._tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.guard._lost(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
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
    """``web.TCPSite`` whose connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, config: WebConfig, **kwargs: Any) -> None:
        super().__init__(runner, config.host, config.port, **kwargs)
        self._config = config
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        # BaseSite.start registers the site with the runner; TCPSite.start would listen.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(
            server,
            max_connections=self._config.max_connections,
            header_timeout=self._config.header_timeout,
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


class HostGuard:
    """The DNS-rebinding guard: a middleware answering 421 to a ``Host`` that is not this
    box. ``/health`` is exempt (it tells nothing, and monitors use many names)."""

    EXEMPT = frozenset({"/health"})

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {_normal(n) for n in names if n}
        self.refused = 0
        self._said = _Throttled("web: %d request(s) for another host name refused", time.monotonic)

    @classmethod
    def for_box(cls, config: WebConfig, mdns: str | None) -> HostGuard:
        hostname = socket.gethostname()
        names = ["localhost", hostname, f"{hostname.split('.', 1)[0]}.local"]
        if mdns:
            names.append(mdns)
        return cls([*names, *config.allowed_hosts])

    def allowed(self, host_header: str | None, local_address: str | None) -> bool:
        """Does ``Host`` name this box? ``local_address`` is the address the client
        connected to (an IP in ``Host`` must be that one)."""
        if not host_header:
            return False
        host = _host_part(host_header)
        if host is None:
            return False
        if host in self.names:
            return True
        address = _ip(host)
        if address is None:
            return False
        local = _ip(local_address or "")
        return address.is_loopback or (local is not None and address == local)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self.EXEMPT:
            return await handler(request)
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = str(sockname[0]) if isinstance(sockname, tuple) and sockname else None
        if self.allowed(request.headers.get("Host"), local):
            return await handler(request)
        self.refused += 1
        self._said.hit()
        return web.Response(
            status=421,
            text="This box does not answer to that name. Use its address or its .local "
            "name, or add the name to web.allowed_hosts.\n",
        )


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _host_part(header: str) -> str | None:
    """The host of a ``Host`` header (``[::1]:8080`` -> ``::1``), lower case; None when
    malformed."""
    text = header.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end].split("%", 1)[0], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, _, port = text.partition(":")
    if port and not _PORT.fullmatch(port):
        return None
    return _normal(host) or None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
