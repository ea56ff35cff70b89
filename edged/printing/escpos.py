"""Ticket → ESC/POS bytes: text with one forced code page, or the ticket as a picture.

The encoder writes a small, fixed command set (init, code page, align, bold, size, reverse,
QR, raster image, feed, cut) so that tests can decode the output exactly and flag anything
else. In raster mode the whole ticket is one picture in ``GS v 0`` bands. Text is cleaned
again here and, after encoding, any byte below 0x20 or 0x7F is replaced: whatever a caller
passes, text can never turn into a printer command (cash drawer kick, cut, code page
switch, real-time DLE requests).
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edged.printing.codepages import CodePage, Profile
from edged.printing.model import Feed, Logo, Qr, Rule, Text, Ticket
from edged.printing.text import clean, strip_controls

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
LF = b"\n"
INIT = ESC + b"@"
CANCEL_KANJI = FS + b"."  # cheap clones boot in a double-byte mode that eats accents
ALIGN = {"left": 0, "center": 1, "right": 2}
DEFAULT_DOTS = {58: 384, 80: 512}
BAND_ROWS = 128  # rows per GS v 0 command: small enough for any printer's buffer
# Punctuation that word processors and phones produce and old code pages lack.
_FALLBACK = {
    "‘": "'",
    "’": "'",
    "‚": ",",
    "“": '"',
    "”": '"',
    "„": '"',
    "–": "-",
    "—": "-",
    "−": "-",
    "•": "*",
    "…": "...",
    "\u00a0": " ",
}


@dataclass(frozen=True)
class EncoderSettings:
    """The printer facts the encoder needs."""

    code_page: CodePage
    profile: Profile
    paper_width: int = 80
    cut: bool = True
    render: Literal["text", "raster", "auto"] = "text"
    command_set: Literal["escpos", "star"] = "escpos"

    @property
    def dots(self) -> int:
        """Width for logos and QR codes in text mode (safe on any printer of that paper)."""
        default = DEFAULT_DOTS.get(self.paper_width, 384)
        return min(self.profile.dots, default) if self.profile.dots else default

    @property
    def raster_dots(self) -> int:
        """The printer's full head width for raster tickets: from the profile, else the
        safe width for the paper."""
        if self.profile.dots:
            return self.profile.dots if self.paper_width == 80 else min(self.profile.dots, 384)
        return DEFAULT_DOTS.get(self.paper_width, 384)


def _fallback_char(ch: str, codec: str) -> bytes:
    """Best printable stand-in for a character the code page lacks."""
    candidates = [_FALLBACK.get(ch, "")]
    decomposed = unicodedata.normalize("NFKD", ch)
    candidates.append("".join(c for c in decomposed if not unicodedata.combining(c)))
    for candidate in candidates:
        if candidate:
            try:
                return candidate.encode(codec)
            except UnicodeEncodeError:
                continue
    return b"?"


def encode_text(text: str, codec: str) -> bytes:
    """Printable bytes for ``text`` in ``codec``; never a control byte."""
    text = strip_controls(unicodedata.normalize("NFC", text))
    try:
        raw = text.encode(codec)
    except UnicodeEncodeError:
        raw = b"".join(
            _fallback_char(ch, codec) if not _encodes(ch, codec) else ch.encode(codec)
            for ch in text
        )
    if any(b < 0x20 or b == 0x7F for b in raw):
        raw = bytes(b if b >= 0x20 and b != 0x7F else 0x3F for b in raw)
    return raw


def printable(text: str, codec: str) -> bool:
    """True when ``text`` prints as written in ``codec`` (typographic punctuation with an
    exact plain stand-in counts as printable; a letter that would lose its accent or a
    character that would become "?" does not)."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii():
        return True
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return all(ch in _FALLBACK or _encodes(ch, codec) for ch in text)
    return True


def _encodes(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def qr_native(data: str, module: int = 6) -> bytes:
    """GS ( k: model 2, module size, error correction M, store, print."""
    payload = data.encode("ascii", "replace")[:700]
    store = len(payload) + 3
    return b"".join(
        (
            GS + b"(k\x04\x001A2\x00",
            GS + b"(k\x03\x001C" + bytes([module]),
            GS + b"(k\x03\x001E1",
            GS + b"(k" + bytes([store & 0xFF, store >> 8]) + b"1P0" + payload,
            GS + b"(k\x03\x001Q0",
        )
    )


def raster(bits: list[list[bool]]) -> bytes:
    """GS v 0 raster image(s) from rows of pixels (True = black), in bands of 128 rows."""
    if not bits:
        return b""
    width = len(bits[0])
    row_bytes = (width + 7) // 8
    out = bytearray()
    for start in range(0, len(bits), 128):
        band = bits[start : start + 128]
        out += GS + b"v0\x00" + bytes([row_bytes & 0xFF, row_bytes >> 8])
        out += bytes([len(band) & 0xFF, len(band) >> 8])
        for row in band:
            for byte_index in range(row_bytes):
                value = 0
                for bit in range(8):
                    x = byte_index * 8 + bit
                    if x < width and row[x]:
                        value |= 0x80 >> bit
                out.append(value)
    return bytes(out)


def raster_bands(image: PILImage.Image) -> bytes:
    """A 1-bit picture as ``GS v 0`` commands of :data:`BAND_ROWS` rows each.

    Pillow packs mode "1" rows most significant bit first, padded to whole bytes, exactly
    as ``GS v 0`` wants them; the "1;I" packer inverts, so a black pixel is a 1 bit.
    """
    packed = image.convert("1").tobytes("raw", "1;I")
    stride = (image.width + 7) // 8
    out = bytearray()
    for top in range(0, image.height, BAND_ROWS):
        rows = min(BAND_ROWS, image.height - top)
        out += GS + b"v0\x00" + bytes([stride & 0xFF, stride >> 8, rows & 0xFF, rows >> 8])
        out += packed[top * stride : (top + rows) * stride]
    return bytes(out)


def encode_picture(image: PILImage.Image, settings: EncoderSettings, copies: int = 1) -> bytes:
    """A ticket drawn as a picture (raster mode): the picture, a feed, the cut."""
    body = raster_bands(image) + ESC + b"d\x04"
    if settings.cut and settings.profile.cut:
        body += GS + b"V\x01"
    return INIT + body * max(1, copies)


def qr_raster(data: str, max_dots: int) -> bytes:
    """A QR code as a raster image, for printers without native QR."""
    import qrcode

    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    qr.make(fit=True)
    matrix: list[list[bool]] = qr.get_matrix()
    scale = max(1, min(6, max_dots // max(len(matrix), 1)))
    rows = []
    for row in matrix:
        scaled = [cell for cell in row for _ in range(scale)]
        rows.extend([scaled] * scale)
    return raster(rows)


@functools.lru_cache(maxsize=8)
def _logo_bytes(path: str, mtime: float, max_dots: int) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        gray = img.convert("L")
        if gray.width > max_dots:
            height = max(1, round(gray.height * max_dots / gray.width))
            gray = gray.resize((max_dots, height))
        mono = gray.convert("1")  # Floyd-Steinberg dithering
        width, height = mono.size
        pixels = mono.load()
        assert pixels is not None
        rows = [[pixels[x, y] == 0 for x in range(width)] for y in range(height)]
    return raster(rows)


def logo_bytes(path: str, max_dots: int) -> bytes:
    """The logo as raster bytes; empty (and a warning) when the file is unusable."""
    try:
        return _logo_bytes(path, os.stat(path).st_mtime, max_dots)
    except (OSError, ValueError) as exc:
        log.warning("printing: logo %s not usable: %s", path, exc)
        return b""


class _Style:
    """Emit style commands only when they change."""

    def __init__(self) -> None:
        self.align = -1
        self.bold = -1
        self.size = -1
        self.invert = -1

    def apply(self, align: int, bold: int, size: int, invert: int) -> bytes:
        out = b""
        if align != self.align:
            out += ESC + b"a" + bytes([align])
            self.align = align
        if bold != self.bold:
            out += ESC + b"E" + bytes([bold])
            self.bold = bold
        if size != self.size:
            out += GS + b"!" + bytes([size])
            self.size = size
        if invert != self.invert:
            out += GS + b"B" + bytes([invert])
            self.invert = invert
        return out


def encode(ticket: Ticket, settings: EncoderSettings, copies: int = 1) -> bytes:
    """The bytes that print ``ticket`` ``copies`` times."""
    codec = settings.code_page.codec
    body = bytearray()
    style = _Style()
    for element in ticket.elements:
        if isinstance(element, Text):
            width = 2 if element.width >= 2 else 1
            height = 2 if element.height >= 2 else 1
            size = ((width - 1) << 4) | (height - 1)
            text = element.text
            if element.invert:
                # Pad reversed banners so the black band reads as a band, not a blob.
                room = ticket.columns // width
                text = f" {text} "[:room]
            body += style.apply(ALIGN[element.align], int(element.bold), size, int(element.invert))
            body += encode_text(text, codec) + LF
        elif isinstance(element, Rule):
            body += style.apply(0, 0, 0, 0)
            char = element.char if element.char in "-=*_." else "-"
            body += char.encode("ascii") * ticket.columns + LF
        elif isinstance(element, Qr):
            data = clean(element.data, 512)
            if not data:
                continue
            body += style.apply(1, 0, 0, 0)
            if settings.profile.qr_native:
                body += qr_native(data, 6 if settings.paper_width == 80 else 4)
            else:
                body += qr_raster(data, settings.dots)
            body += LF
        elif isinstance(element, Logo):
            image = logo_bytes(element.path, settings.dots)
            if image:
                body += style.apply(1, 0, 0, 0) + image + LF
        elif isinstance(element, Feed):
            body += style.apply(0, 0, 0, 0) + LF * max(0, min(element.lines, 10))
    body += style.apply(0, 0, 0, 0)
    body += ESC + b"d\x04"
    if settings.cut and settings.profile.cut:
        body += GS + b"V\x01"
    head = INIT + CANCEL_KANJI + ESC + b"t" + bytes([settings.code_page.number])
    return head + bytes(body) * max(1, copies)
