"""Config schema of the ``[web]`` table (owned by the web package)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edged.configtools import opt

# A DNS name, an IPv4 address or an IPv6 address (without brackets).
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}", re.ASCII)


@dataclass(frozen=True)
class WebConfig:
    """The local web page."""

    enabled: bool = True
    host: str = field(default="0.0.0.0", metadata=opt(doc="Address to listen on"))
    port: int = field(default=8080, metadata=opt(minimum=0, maximum=65535, doc="0: any free port"))
    tls_cert: str = field(
        default="", metadata=opt(doc="PEM certificate; with tls_key the page is served over HTTPS")
    )
    tls_key: str = field(default="", metadata=opt(doc="PEM private key for tls_cert"))
    session_idle_minutes: int = field(
        default=720, metadata=opt(minimum=5, maximum=43200, doc="Sign-in ends after this idle")
    )
    session_max_hours: int = field(
        default=168, metadata=opt(minimum=1, maximum=8760, doc="Sign-in ends after this anyway")
    )
    allowed_hosts: list[str] = field(
        default_factory=list,
        metadata=opt(
            doc="Extra host names the page answers to (a DNS name or a forwarded address)"
        ),
    )
    max_connections: int = field(
        default=128,
        metadata=opt(minimum=4, maximum=4096, doc="Open connections at most; idle ones make way"),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=opt(minimum=1, maximum=300, doc="Seconds a new connection has to send a request"),
    )
    keepalive_timeout: float = field(
        default=15.0,
        metadata=opt(minimum=1, maximum=600, doc="Seconds an idle connection stays open"),
    )
    metrics_public: bool = field(
        default=False, metadata=opt(doc="Serve /metrics without signing in (trusted LAN only)")
    )
    metrics_token: str = field(
        default="",
        metadata=opt(
            env="EDGED_METRICS_TOKEN",
            secret=True,
            doc="Bearer token a Prometheus scraper may send for /metrics",
        ),
    )

    def check(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_key: tls_cert and tls_key go together")
        for name in self.allowed_hosts:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"allowed_hosts: {name[:60]!r} is not a host name or address")
