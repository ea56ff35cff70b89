"""Where the page can be reached: the box's LAN addresses and its mDNS name."""

from __future__ import annotations

import contextlib
import ipaddress
import socket


def local_addresses() -> list[str]:
    """Non-loopback IP addresses of this host, IPv4 first (blocking: call on a thread).

    The UDP "connect" sends nothing; it only asks the kernel which source address it would
    use for the default route.
    """
    found: list[str] = []
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            found.append(str(sock.getsockname()[0]))
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP):
            found.append(str(info[4][0]))
    out: list[str] = []
    for text in found:
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if addr.is_loopback or addr.is_unspecified or addr.is_link_local:
            continue
        if str(addr) not in out:
            out.append(str(addr))
    return sorted(out, key=lambda a: (":" in a, a))


def mdns_name(hostname: str | None = None) -> str | None:
    """``edged-<box id>.local`` when the host is named like the image names it, else None."""
    name = (hostname if hostname is not None else socket.gethostname()).split(".", 1)[0]
    if name.lower().startswith("edged-") and name.replace("-", "").isalnum():
        return f"{name.lower()}.local"
    return None


def url_host(address: str) -> str:
    """An address as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
