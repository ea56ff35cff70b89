"""What keeps the web page from being turned against the rest of the box.

A browser on the shop's network is not the only thing that can reach port 8080. Three
guards sit between the listening socket and aiohttp:

* :class:`~edged.httplimits.ConnectionGuard` (through :class:`GuardedSite`) caps open
  connections and closes one that has not sent a whole request head within
  ``header_timeout`` seconds (slowloris). File descriptors stay free for printers, the
  journal and the Sinqro link: the page may starve, printing never does. Idle keep-alive
  connections are closed by aiohttp itself after ``keepalive_timeout``
  (:func:`runner_options`).
* :class:`HostGuard` answers only requests whose ``Host`` names this box (its mDNS and host
  names, ``localhost``, ``web.allowed_hosts``, or the very address the client connected to),
  so a page elsewhere cannot reach it through DNS rebinding.
* :class:`~edged.httplimits.AcceptStormFilter` keeps asyncio's ``accept()`` errors (out of
  file descriptors) to one log line a minute with a count, instead of megabytes a second.

The first and the last are shared with ``edged relay`` and live in :mod:`edged.httplimits`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from edged import httplimits
from edged.httplimits import (
    AcceptStormFilter,
    ConnectionGuard,
    Throttled,
    quiet_accept_storms,
)
from edged.web.settings import WebConfig

__all__ = [
    "AcceptStormFilter",
    "ConnectionGuard",
    "GuardedSite",
    "HostGuard",
    "quiet_accept_storms",
    "runner_options",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


def runner_options(config: WebConfig) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: aiohttp's own limits."""
    return {"keepalive_timeout": config.keepalive_timeout}


class GuardedSite(httplimits.GuardedSite):
    """The page's :class:`~edged.httplimits.GuardedSite`, limits from ``[web]``."""

    def __init__(self, runner: web.BaseRunner, config: WebConfig, **kwargs: Any) -> None:
        super().__init__(
            runner,
            config.host,
            config.port,
            max_connections=config.max_connections,
            header_timeout=config.header_timeout,
            name="web",
            **kwargs,
        )


class HostGuard:
    """The DNS-rebinding guard: a middleware answering 421 to a ``Host`` that is not this
    box. ``/health`` is exempt (it tells nothing, and monitors use many names)."""

    EXEMPT = frozenset({"/health"})

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {_normal(n) for n in names if n}
        self.refused = 0
        self._said = Throttled("web: %d request(s) for another host name refused", time.monotonic)

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
