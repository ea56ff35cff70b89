"""Config schema of the ``[panel]`` table (owned by the panel package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edged.configtools import opt


@dataclass(frozen=True)
class PanelConfig:
    """Buzzer, LED and the ACCEPT / CANCEL buttons."""

    enabled: bool = True
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = field(
        default="auto", metadata=opt(doc="gpiozero pin factory; mock for the demo and tests")
    )
