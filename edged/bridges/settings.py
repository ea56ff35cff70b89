"""Config schema of the ``[mqtt]`` and ``[serial]`` tables (owned by the bridges package).

See docs/bridge-protocol.md for what the bridges send and accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from edged.configtools import opt
from edged.mqttclient import TOPIC_PREFIX as _TOPIC_WORD
from edged.mqttclient import BrokerConfig


@dataclass(frozen=True)
class MqttConfig(BrokerConfig):
    """Bridge to POS terminals over an MQTT broker (the connection keys: BrokerConfig)."""

    # Any client id the broker takes (the bridge has no ACL pattern of its own).
    client_id_rule: ClassVar[re.Pattern[str] | None] = None

    enabled: bool = False
    client_id: str = field(default="", metadata=opt(doc="MQTT client id; empty: edged-<box id>"))
    box_id: str = field(
        default="", metadata=opt(doc="Topic segment naming this box; empty: the box id")
    )
    password: str = field(
        default="", metadata=opt(env="EDGED_MQTT_PASSWORD", secret=True, doc="Broker password")
    )
    protocol: Literal["5", "3.1.1"] = field(
        default="5", metadata=opt(doc="Protocol the bridge speaks to the broker")
    )
    keepalive: int = field(default=30, metadata=opt(minimum=5, maximum=3600))
    reconnect_min: float = field(default=0.5, metadata=opt(minimum=0.01, maximum=600))
    reconnect_max: float = field(default=30.0, metadata=opt(minimum=0.01, maximum=3600))
    full_payload: bool = field(
        default=False, metadata=opt(doc="order.new events carry the whole Sinqro order")
    )
    max_command_bytes: int = field(default=65_536, metadata=opt(minimum=1024))
    max_catalog_bytes: int = field(default=1_048_576, metadata=opt(minimum=1024))
    max_pending_commands: int = field(
        default=64,
        metadata=opt(
            minimum=1, maximum=10_000, doc="Commands waiting to be handled; more are answered BUSY"
        ),
    )
    homeassistant: bool = field(
        default=False, metadata=opt(doc="Publish Home Assistant MQTT discovery")
    )
    homeassistant_prefix: str = field(default="homeassistant")
    homeassistant_products: list[str] = field(
        default_factory=list,
        metadata=opt(doc="Products (id or external id) Home Assistant gets an on-sale switch for"),
    )

    def check(self) -> None:
        super().check()
        if not _TOPIC_WORD.match(self.homeassistant_prefix):
            raise ValueError("homeassistant_prefix: letters, digits, '_', '-', '.' and '/' only")
        if self.box_id and not _TOPIC_WORD.match(self.box_id):
            raise ValueError("box_id: letters, digits, '_', '-' and '.' only")
        if "/" in self.box_id:
            raise ValueError("box_id: one topic level, no '/'")
        if len(self.homeassistant_products) > 200:
            raise ValueError("homeassistant_products: at most 200 products")
        if any(not p.strip() or len(p) > 200 for p in self.homeassistant_products):
            raise ValueError("homeassistant_products: ids of 1 to 200 characters")
        if self.max_catalog_bytes < self.max_command_bytes:
            raise ValueError("max_catalog_bytes: must not be below max_command_bytes")


@dataclass(frozen=True)
class SerialConfig:
    """Bridge to a POS terminal over a serial line (framing: docs/bridge-protocol.md)."""

    enabled: bool = False
    port: str = field(default="/dev/ttyUSB0", metadata=opt(doc="Serial device (or a pyserial URL)"))
    baudrate: int = field(default=9600, metadata=opt(minimum=50, maximum=4_000_000))
    bytesize: Literal[7, 8] = 8
    parity: Literal["none", "even", "odd"] = "none"
    stopbits: Literal[1, 2] = 1
    rtscts: bool = field(default=False, metadata=opt(doc="Hardware flow control"))
    ack_timeout: float = field(
        default=1.0, metadata=opt(minimum=0.01, maximum=60, doc="Seconds to wait for an ACK")
    )
    max_retries: int = field(
        default=5, metadata=opt(minimum=0, maximum=100, doc="Retransmissions before giving up")
    )
    reconnect_min: float = field(default=0.5, metadata=opt(minimum=0.01, maximum=600))
    reconnect_max: float = field(default=30.0, metadata=opt(minimum=0.01, maximum=3600))
    max_frame_bytes: int = field(default=65_536, metadata=opt(minimum=256, maximum=16_777_216))
    max_command_bytes: int = field(default=32_768, metadata=opt(minimum=128))
    full_payload: bool = field(
        default=False, metadata=opt(doc="order.new events carry the whole Sinqro order")
    )

    def check(self) -> None:
        if not self.port:
            raise ValueError("port: a serial device is required")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be below reconnect_min")
        if self.max_command_bytes > self.max_frame_bytes:
            raise ValueError("max_command_bytes: must not exceed max_frame_bytes")
