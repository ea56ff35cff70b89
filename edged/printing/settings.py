"""Config schema of the ``[[printers]]`` tables (owned by the printing package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edged.configtools import opt

ORDER_TYPES = ("delivery", "collection", "reservation", "insitu", "inside")


@dataclass(frozen=True)
class PrinterConfig:
    """One ESC/POS printer."""

    name: str = field(metadata=opt(doc="Short unique name, used by reprint and the web page"))
    uri: str = field(
        metadata=opt(
            doc="tcp://host:9100, usb://VID:PID, serial:///dev/ttyUSB0?baudrate=19200, "
            "file:///dev/usb/lp0 or virtual://DIR"
        )
    )
    paper_width: Literal[58, 80] = field(default=80, metadata=opt(doc="Paper width in mm"))
    layout: Literal["full", "kitchen"] = field(
        default="full", metadata=opt(doc="full ticket, or kitchen (no prices, big type)")
    )
    copies: int = field(default=1, metadata=opt(minimum=1, maximum=5))
    order_types: list[str] = field(default_factory=lambda: list(ORDER_TYPES))

    def check(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("name: use letters, digits, '-' or '_'")
        for t in self.order_types:
            if t not in ORDER_TYPES:
                raise ValueError(f"order_types: unknown order type {t!r}")
