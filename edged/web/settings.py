"""Config schema of the ``[web]`` table (owned by the web package)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edged.configtools import opt


@dataclass(frozen=True)
class WebConfig:
    """The local web page."""

    enabled: bool = True
    host: str = field(default="0.0.0.0", metadata=opt(doc="Address to listen on"))
    port: int = field(default=8080, metadata=opt(minimum=1, maximum=65535))
