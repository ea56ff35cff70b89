"""Config schema of the ``[mqtt]`` and ``[serial]`` tables (owned by the bridges package)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edged.configtools import opt


@dataclass(frozen=True)
class MqttConfig:
    """Bridge to POS terminals over an MQTT broker."""

    enabled: bool = False
    url: str = field(default="mqtt://localhost:1883", metadata=opt(doc="mqtt:// or mqtts://"))


@dataclass(frozen=True)
class SerialConfig:
    """Bridge to a POS terminal over a serial line."""

    enabled: bool = False
    port: str = field(default="/dev/ttyUSB0", metadata=opt(doc="Serial device"))
