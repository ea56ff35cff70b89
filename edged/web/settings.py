"""Config schema of the ``[web]`` table (owned by the web package)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edged.configtools import opt


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
