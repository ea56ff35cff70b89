"""Config schema of the ``[fleet]`` and ``[alerts]`` tables (owned by the fleet package).

docs/fleet.md explains what the box publishes and the broker-side recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from edged.configtools import opt
from edged.mqttclient import BrokerConfig


@dataclass(frozen=True)
class FleetConfig(BrokerConfig):
    """The optional connection to the vendor's MQTT cluster: telemetry and alerts."""

    enabled: bool = False
    password: str = field(
        default="", metadata=opt(env="EDGED_FLEET_PASSWORD", secret=True, doc="Broker password")
    )
    client_id: str = field(default="", metadata=opt(doc="MQTT client id; empty: the box id"))
    info_interval: float = field(
        default=300.0,
        metadata=opt(minimum=30, maximum=86400, doc="Seconds between info refreshes"),
    )
    info_min_interval: float = field(
        default=10.0,
        metadata=opt(minimum=0.1, maximum=3600, doc="Changes closer than this share one info"),
    )
    sinqro_notifications: Literal["off", "beside", "instead"] = field(
        default="off",
        metadata=opt(
            doc="Orders from <prefix>/sellingPoints/<id>/notifications (edged relay): "
            "beside or instead of the Sinqro websocket"
        ),
    )

    updates: bool = field(
        default=False,
        metadata=opt(
            doc="Staged updates: act on the signed release manifest of "
            "<prefix>/releaseManifest (docs/fleet.md)"
        ),
    )
    update_signers: str = field(
        default="/etc/edged/update-signers",
        metadata=opt(doc="allowed_signers file of the release keys (the bundles' own)"),
    )
    update_ca_file: str = field(
        default="",
        metadata=opt(doc="PEM CA bundle for the bundle's https:// server; empty: system CAs"),
    )
    update_max_bytes: int = field(
        default=268_435_456,
        metadata=opt(minimum=1_048_576, maximum=536_870_912, doc="Largest bundle fetched"),
    )
    update_recheck: float = field(
        default=30.0,
        metadata=opt(minimum=0.01, maximum=3600, doc="Seconds between looks at wave and window"),
    )

    def check(self) -> None:
        super().check()
        if self.updates and not self.enabled:
            raise ValueError("updates: needs the fleet connection (enabled = true)")
        if self.sinqro_notifications != "off" and not self.enabled:
            raise ValueError("sinqro_notifications: needs the fleet connection (enabled = true)")
        if self.info_min_interval > self.info_interval:
            raise ValueError("info_min_interval: must not exceed info_interval")


@dataclass(frozen=True)
class WebhookConfig:
    """One HTTP endpoint that receives alerts as JSON POSTs."""

    url: str = field(
        metadata=opt(secret=True, doc="https:// endpoint (kept secret: it may hold a token)")
    )
    format: Literal["edged", "ntfy", "telegram"] = field(
        default="edged", metadata=opt(doc="Body shape: edged JSON, an ntfy or a Telegram message")
    )
    topic: str = field(default="", metadata=opt(doc="ntfy topic (format = ntfy)"))
    chat_id: str = field(default="", metadata=opt(doc="Telegram chat id (format = telegram)"))
    token: str = field(
        default="", metadata=opt(secret=True, doc="Sent as 'Authorization: Bearer <token>'")
    )
    timeout: float = field(
        default=10.0,
        metadata=opt(minimum=0.5, maximum=120, doc="Seconds for the whole request, at most"),
    )
    burst: int = field(
        default=3, metadata=opt(minimum=1, maximum=100, doc="Messages sent at once at most")
    )
    every: float = field(
        default=60.0,
        metadata=opt(
            minimum=0,
            maximum=86400,
            doc="Then one message per this many seconds, grouping what waits (0: no limit)",
        ),
    )

    def check(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url: expected an http:// or https:// address")
        if self.format == "ntfy" and not self.topic:
            raise ValueError("topic: an ntfy webhook needs its topic")
        if self.format == "telegram" and not self.chat_id:
            raise ValueError("chat_id: a Telegram webhook needs the chat id")


@dataclass(frozen=True)
class AlertsConfig:
    """Incidents worth telling someone outside the restaurant; 0 switches a rule off."""

    order_waiting_after: float = field(
        default=120.0,
        metadata=opt(minimum=0, maximum=86400, doc="An order unanswered this long (s)"),
    )
    link_down_after: float = field(
        default=300.0,
        metadata=opt(minimum=0, maximum=86400, doc="No Sinqro link (offline, refused) this long"),
    )
    printer_down_after: float = field(
        default=120.0,
        metadata=opt(minimum=0, maximum=86400, doc="A printer off, out of paper or open"),
    )
    decision_stuck_after: float = field(
        default=120.0,
        metadata=opt(minimum=0, maximum=86400, doc="A decision not delivered to Sinqro this long"),
    )
    decision_refused: bool = field(
        default=True, metadata=opt(doc="Sinqro refused a decision (until the order moves on)")
    )
    retry_min: float = field(default=5.0, metadata=opt(minimum=0.1, maximum=3600))
    retry_max: float = field(default=300.0, metadata=opt(minimum=0.1, maximum=86400))
    give_up_after: float = field(
        default=86400.0,
        metadata=opt(minimum=1, maximum=604800, doc="Drop an undeliverable alert after (s)"),
    )
    webhooks: list[WebhookConfig] = field(default_factory=list)

    def check(self) -> None:
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max: must not be below retry_min")
