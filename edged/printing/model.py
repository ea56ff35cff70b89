"""The ticket model: what one print job shows, laid out in character cells.

A :class:`Ticket` is a list of elements (styled text lines already wrapped to the paper,
rules, a QR code, a logo). Text encoders (ESC/POS, StarPRNT) print the lines with the
printer's own font; the raster renderer draws the same lines as a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Align = Literal["left", "center", "right"]


@dataclass(frozen=True)
class Text:
    """One printed line; ``text`` fits ``columns // width`` characters."""

    text: str
    align: Align = "left"
    bold: bool = False
    width: int = 1  # 1 or 2 (double width)
    height: int = 1  # 1 or 2 (double height)
    invert: bool = False


@dataclass(frozen=True)
class Rule:
    """A full-width line of ``char``."""

    char: str = "-"


@dataclass(frozen=True)
class Qr:
    """A QR code (printed natively or as a picture, whatever the printer can do)."""

    data: str


@dataclass(frozen=True)
class Logo:
    """An image file printed centred."""

    path: str


@dataclass(frozen=True)
class Feed:
    """Blank lines."""

    lines: int = 1


Element = Text | Rule | Qr | Logo | Feed


@dataclass(frozen=True)
class Ticket:
    """What one job prints, before encoding."""

    kind: str  # order | reprint | cancel | status | test | text
    order_id: int | None
    columns: int
    elements: tuple[Element, ...]

    def plain_text(self) -> str:
        """The text lines (for logs, tests and the virtual printer's .txt fallback)."""
        out = []
        for e in self.elements:
            if isinstance(e, Text):
                out.append(e.text)
            elif isinstance(e, Rule):
                out.append(e.char * self.columns)
            elif isinstance(e, Qr):
                out.append(f"[QR {e.data}]")
            elif isinstance(e, Feed):
                out.extend([""] * e.lines)
        return "\n".join(out)
