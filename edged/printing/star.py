"""Star printers in their own command set, beside ESC/POS.

Two dialects, after Star's published command specifications:

* **Star Graphic mode** for the TSP100 family (TSP143...), which has no fonts at all:
  ``ESC * r A`` enters raster mode, ``ESC * r P 0 NUL`` makes the page continuous,
  ``ESC * r E n NUL`` chooses what ends a document (13: feed and partial cut; 1: feed
  only), each dot row is ``b n1 n2 data``, blank rows are skipped with ``ESC * r Y n NUL``,
  ``ESC FF EOT`` ends the document and ``ESC * r B`` leaves raster mode. Numbers inside
  ``ESC * r`` commands are ASCII decimal digits.
* **StarPRNT** text for the others: ``ESC @``, code page ``ESC GS t n``, alignment
  ``ESC GS a n``, bold ``ESC E`` / ``ESC F``, size ``ESC i height width``, reverse
  ``ESC 4`` / ``ESC 5``, QR ``ESC GS y ...``, raster ``ESC GS S 1 xL xH yL yH 0 data``,
  cut ``ESC d 3`` (feed to the cutter, partial cut).

Health is the automatic status (ASB) a Star printer sends when asked with ``ESC ACK SOH``
(:mod:`edged.printing.transports.asb`). The cash drawer (``BEL``/``SUB`` in StarPRNT,
``ESC * r D n NUL`` in raster mode) is never driven: text from outside is stripped of
every control byte before it gets here, so it cannot open the drawer either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edged.printing.escpos import encode_text
from edged.printing.model import Feed, Logo, Qr, Rule, Text, Ticket
from edged.printing.text import clean

if TYPE_CHECKING:
    from PIL import Image as PILImage

ESC = b"\x1b"
GS = b"\x1d"
LF = b"\n"
ALIGN = {"left": 0, "center": 1, "right": 2}
# Star Graphic mode
RASTER_ENTER = ESC + b"*rA"
RASTER_CONTINUOUS = ESC + b"*rP0\x00"
RASTER_END_CUT = ESC + b"*rE13\x00"  # end of document: feed to the cutter, partial cut
RASTER_END_FEED = ESC + b"*rE1\x00"  # end of document: feed only
RASTER_DOCUMENT_END = ESC + b"\x0c\x04"  # ESC FF EOT
RASTER_QUIT = ESC + b"*rB"
STARPRNT_CUT = ESC + b"d\x03"
STARPRNT_IMAGE_ROWS = 2400  # rows per ESC GS S command


# -- Star Graphic mode -----------------------------------------------------------------------


def raster_rows(image: PILImage.Image) -> list[bytes]:
    """Dot rows of a 1-bit picture, most significant bit leftmost, 1 = black."""
    packed = image.convert("1").tobytes("raw", "1;I")
    stride = (image.width + 7) // 8
    return [packed[i : i + stride] for i in range(0, len(packed), stride)]


def graphic_document(image: PILImage.Image, *, cut: bool, copies: int = 1) -> bytes:
    """A whole ticket in Star Graphic mode (TSP100 family), ``copies`` times."""
    rows = raster_rows(image)
    page = bytearray()
    blank = 0
    for row in rows:
        if not any(row):
            blank += 1
            continue
        if blank:
            page += ESC + b"*rY" + str(blank).encode("ascii") + b"\x00"
            blank = 0
        page += b"b" + bytes([len(row) & 0xFF, len(row) >> 8]) + row
    if blank:
        page += ESC + b"*rY" + str(blank).encode("ascii") + b"\x00"
    head = ESC + b"@" + RASTER_ENTER + RASTER_CONTINUOUS
    head += RASTER_END_CUT if cut else RASTER_END_FEED
    return head + (bytes(page) + RASTER_DOCUMENT_END) * max(1, copies) + RASTER_QUIT


# -- StarPRNT --------------------------------------------------------------------------------


def starprnt_image(image: PILImage.Image) -> bytes:
    """``ESC GS S 1 xL xH yL yH 0 data`` commands for a 1-bit picture."""
    rows = raster_rows(image)
    stride = len(rows[0]) if rows else 0
    out = bytearray()
    for start in range(0, len(rows), STARPRNT_IMAGE_ROWS):
        band = rows[start : start + STARPRNT_IMAGE_ROWS]
        out += ESC + GS + b"S\x01" + bytes([stride & 0xFF, stride >> 8])
        out += bytes([len(band) & 0xFF, len(band) >> 8]) + b"\x00"
        out += b"".join(band)
    return bytes(out)


def starprnt_qr(data: str, cell: int) -> bytes:
    payload = data.encode("ascii", "replace")[:700]
    return b"".join(
        (
            ESC + GS + b"yS0\x02",  # model 2
            ESC + GS + b"yS1\x01",  # error correction M
            ESC + GS + b"yS2" + bytes([cell]),
            ESC + GS + b"yD1\x00" + bytes([len(payload) & 0xFF, len(payload) >> 8]) + payload,
            ESC + GS + b"yP",
        )
    )


class _Style:
    """Emit StarPRNT style commands only when they change."""

    def __init__(self) -> None:
        self.state: tuple[int, int, int, int, int] | None = None

    def apply(self, align: int, bold: int, height: int, width: int, invert: int) -> bytes:
        old = self.state or (-1, -1, -1, -1, -1)
        out = b""
        if align != old[0]:
            out += ESC + GS + b"a" + bytes([align])
        if bold != old[1]:
            out += ESC + (b"E" if bold else b"F")
        if (height, width) != (old[2], old[3]):
            out += ESC + b"i" + bytes([height, width])
        if invert != old[4]:
            out += ESC + (b"4" if invert else b"5")
        self.state = (align, bold, height, width, invert)
        return out


def starprnt_text(
    ticket: Ticket,
    *,
    code_page: int,
    codec: str,
    dots: int,
    cut: bool,
    copies: int = 1,
) -> bytes:
    """A ticket in StarPRNT text mode, ``copies`` times."""
    from edged.printing import raster

    body = bytearray()
    style = _Style()
    for element in ticket.elements:
        if isinstance(element, Text):
            height = 1 if element.height >= 2 else 0
            width = 1 if element.width >= 2 else 0
            text = element.text
            if element.invert:
                text = f" {text} "[: ticket.columns // (width + 1)]
            bold, invert = int(element.bold), int(element.invert)
            body += style.apply(ALIGN[element.align], bold, height, width, invert)
            body += encode_text(text, codec) + LF
        elif isinstance(element, Rule):
            body += style.apply(0, 0, 0, 0, 0)
            char = element.char if element.char in "-=*_." else "-"
            body += char.encode("ascii") * ticket.columns + LF
        elif isinstance(element, Qr):
            data = clean(element.data, 512)
            if data:
                body += style.apply(1, 0, 0, 0, 0) + starprnt_qr(data, 6 if dots >= 576 else 4)
                body += LF
        elif isinstance(element, Logo):
            logo = raster.logo_image(element.path, dots)
            if logo is not None:
                body += style.apply(1, 0, 0, 0, 0) + starprnt_image(logo) + LF
        elif isinstance(element, Feed):
            body += style.apply(0, 0, 0, 0, 0) + LF * max(0, min(element.lines, 10))
    body += style.apply(0, 0, 0, 0, 0)
    body += STARPRNT_CUT if cut else LF * 4
    head = ESC + b"@" + ESC + GS + b"t" + bytes([code_page])
    return head + bytes(body) * max(1, copies)


def starprnt_raster(image: PILImage.Image, *, cut: bool, copies: int = 1) -> bytes:
    """A ticket drawn as a picture, sent in StarPRNT's raster command."""
    body = starprnt_image(image) + (STARPRNT_CUT if cut else LF * 4)
    return ESC + b"@" + body * max(1, copies)
