"""Config schema of the ``[sinqro]`` table: the link to the Sinqro cloud (owned by this package).

Tokens may come from the environment (``EDGED_SERVER_TOKEN``, ``EDGED_USER_TOKEN``) rather
than the file; see ``config/edged.example.toml`` for the documented keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edged.configtools import opt

PRODUCTION_API = "https://api.sinqro.com/pos-app/v1"
# The docs do not give the websocket address; see docs/sinqro-assumptions.md.
PRODUCTION_WEBSOCKET = "wss://api.sinqro.com/pos-app/v1/notifications"


@dataclass(frozen=True)
class SinqroConfig:
    """The link to the Sinqro cloud."""

    server_token: str = field(
        metadata=opt(env="EDGED_SERVER_TOKEN", secret=True, doc="x-api-server-access-token")
    )
    user_token: str = field(
        default="",
        metadata=opt(env="EDGED_USER_TOKEN", secret=True, doc="x-api-user-access-token"),
    )
    selling_point_id: int = field(default=0, metadata=opt(minimum=0, doc="0: not chosen yet"))
    base_url: str = PRODUCTION_API
    websocket_url: str = PRODUCTION_WEBSOCKET
    poll_interval: float = field(default=60.0, metadata=opt(minimum=1, maximum=3600))
    status_refresh_interval: float = field(default=60.0, metadata=opt(minimum=1, maximum=3600))
    request_timeout: float = field(default=10.0, metadata=opt(minimum=0.1, maximum=120))
    reconnect_min: float = field(default=1.0, metadata=opt(minimum=0.01, maximum=600))
    reconnect_max: float = field(default=60.0, metadata=opt(minimum=0.01, maximum=3600))
    ping_interval: float = field(default=20.0, metadata=opt(minimum=0.1, maximum=600))
    ping_timeout: float = field(default=20.0, metadata=opt(minimum=0.1, maximum=600))
    max_frame_bytes: int = field(default=1_048_576, metadata=opt(minimum=1024))
    gone_after: float = field(
        default=60.0,
        metadata=opt(
            minimum=0,
            maximum=86400,
            doc="An open order Sinqro answers ORDER_NOT_FOUND for twice, this many seconds"
            " apart, is closed locally as 'gone'",
        ),
    )

    def check(self) -> None:
        for key in ("base_url", "websocket_url"):
            value = getattr(self, key)
            scheme = ("http://", "https://") if key == "base_url" else ("ws://", "wss://")
            if not value.startswith(scheme):
                raise ValueError(f"{key}: must start with {' or '.join(scheme)}")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be below reconnect_min")
