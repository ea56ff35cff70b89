"""Ticket → ESC/POS bytes, built by python-escpos: text with one forced code page, or the
ticket as a picture.

python-escpos's in-memory printer (:mod:`edged.printing.pyescpos`) writes the commands: init,
the code page (``ESC t``), align, bold, size (``ESC !``), reverse, QR (native ``GS ( k``, or a
picture where the profile has none), pictures (``GS v 0`` in bands), feed and cut. edged adds
one thing python-escpos does not send: ``FS .`` after init, because cheap clones boot in a
double-byte (Kanji) mode that eats every accented letter.

Text is cleaned here before python-escpos sees it: control characters are stripped and
characters the code page lacks are replaced by a printable stand-in, so whatever a caller
passes, text can never turn into a printer command (cash drawer kick, cut, code page switch,
real-time DLE requests).
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edged.printing import pyescpos
from edged.printing.codepages import CodePage, Profile
from edged.printing.model import Feed, Logo, Qr, Rule, Text, Ticket
from edged.printing.text import clean, strip_controls

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

FS = b"\x1c"
CANCEL_KANJI = FS + b"."  # cheap clones boot in a double-byte mode that eats accents
DEFAULT_DOTS = {58: 384, 80: 512}
BAND_ROWS = 128  # rows per GS v 0 command: small enough for any printer's buffer
FEED_LINES = 4  # after the last line, when the printer does not cut
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


def _stand_in(ch: str, codec: str) -> str:
    """Best printable stand-in for a character the code page lacks."""
    candidates = [_FALLBACK.get(ch, "")]
    decomposed = unicodedata.normalize("NFKD", ch)
    candidates.append("".join(c for c in decomposed if not unicodedata.combining(c)))
    for candidate in candidates:
        if candidate and all(_encodes(c, codec) for c in candidate):
            return candidate
    return "?"


def safe_text(text: str, codec: str) -> str:
    """``text`` as the printer can print it in ``codec``: no control character, and every
    character the code page lacks replaced by a stand-in (``’`` ``'``, ``ő`` ``o``, else ``?``)."""
    text = strip_controls(unicodedata.normalize("NFC", text))
    if _encodes(text, codec):
        return text
    return "".join(ch if _encodes(ch, codec) else _stand_in(ch, codec) for ch in text)


def encode_text(text: str, codec: str) -> bytes:
    """Printable bytes for ``text`` in ``codec``; never a control byte (Star's text mode)."""
    raw = safe_text(text, codec).encode(codec, "replace")
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
    if _encodes(text, codec):
        return True
    return all(ch in _FALLBACK or _encodes(ch, codec) for ch in text)


def _encodes(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _printer(settings: EncoderSettings, dots: int) -> Any:
    return pyescpos.printer(settings.profile.name, dots)


def _finish(p: Any, settings: EncoderSettings) -> None:
    """The end of a ticket: the cut (python-escpos feeds the paper past the blade first),
    or a feed where the printer has no cutter or the config says not to cut."""
    if settings.cut and settings.profile.cut:
        p.cut(mode="PART")
    else:
        p.print_and_feed(FEED_LINES)


def raster_bands(image: PILImage.Image, profile: str = "default") -> bytes:
    """A 1-bit picture as ``GS v 0`` commands of :data:`BAND_ROWS` rows each."""
    p = pyescpos.printer(profile, image.width)
    p.image(image, impl="bitImageRaster", fragment_height=BAND_ROWS)
    return bytes(p.output)


def encode_picture(image: PILImage.Image, settings: EncoderSettings, copies: int = 1) -> bytes:
    """A ticket drawn as a picture (raster mode): init, the picture, the cut."""
    p = _printer(settings, max(settings.raster_dots, image.width))
    p.hw("INIT")
    start = len(p.output)
    p.image(image, impl="bitImageRaster", fragment_height=BAND_ROWS)
    _finish(p, settings)
    out = bytes(p.output)
    return out[:start] + out[start:] * max(1, copies)


@functools.lru_cache(maxsize=8)
def _logo(path: str, mtime: float, max_dots: int) -> PILImage.Image:
    from PIL import Image

    with Image.open(path) as img:
        gray = img.convert("L")
    if gray.width > max_dots:
        height = max(1, round(gray.height * max_dots / gray.width))
        gray = gray.resize((max_dots, height))
    return gray  # python-escpos dithers it to black and white


def logo_image(path: str, max_dots: int) -> PILImage.Image | None:
    """The logo scaled to the printer; None (and a warning) when the file is unusable."""
    try:
        return _logo(path, os.stat(path).st_mtime, max_dots)
    except (OSError, ValueError) as exc:
        log.warning("printing: logo %s not usable: %s", path, exc)
        return None


class _Style:
    """Send style commands only when they change, through python-escpos's ``set``."""

    def __init__(self, p: Any) -> None:
        self.p = p
        self.align = ""
        self.bold: bool | None = None
        self.size: tuple[int, int] = (0, 0)
        self.invert: bool | None = None

    def apply(self, align: str, bold: bool, size: tuple[int, int], invert: bool) -> None:
        changes: dict[str, Any] = {}
        if size != self.size:
            width, height = size
            # ESC ! sets the size and clears bold: bold is sent again after it.
            changes.update(normal_textsize=True, double_width=width > 1, double_height=height > 1)
            self.size, self.bold = size, None
        if bold != self.bold:
            changes["bold"] = self.bold = bold
        if align != self.align:
            changes["align"] = self.align = align
        if invert != self.invert:
            changes["invert"] = self.invert = invert
        if changes:
            self.p.set(**changes)


def encode(ticket: Ticket, settings: EncoderSettings, copies: int = 1) -> bytes:
    """The bytes that print ``ticket`` ``copies`` times."""
    from escpos.constants import QR_ECLEVEL_M

    codec = settings.code_page.codec
    p = _printer(settings, settings.dots)
    p.hw("INIT")
    p._raw(CANCEL_KANJI)
    p.charcode(settings.code_page.name)  # sent now: ESC t with the profile's number
    start = len(p.output)
    style = _Style(p)
    style.size = (1, 1)  # the printer's state after init
    for element in ticket.elements:
        if isinstance(element, Text):
            width = 2 if element.width >= 2 else 1
            height = 2 if element.height >= 2 else 1
            text = element.text
            if element.invert:
                # Pad reversed banners so the black band reads as a band, not a blob.
                room = ticket.columns // width
                text = f" {text} "[:room]
            style.apply(element.align, element.bold, (width, height), element.invert)
            p.text(safe_text(text, codec) + "\n")
        elif isinstance(element, Rule):
            style.apply("left", False, (1, 1), False)
            char = element.char if element.char in "-=*_." else "-"
            p.text(char * ticket.columns + "\n")
        elif isinstance(element, Qr):
            data = clean(element.data, 512)
            if not data:
                continue
            style.apply("center", False, (1, 1), False)
            module = 6 if settings.paper_width == 80 else 4
            p.qr(
                data,
                ec=QR_ECLEVEL_M,
                size=module,
                native=settings.profile.qr_native,
                image_arguments={"impl": "bitImageRaster", "fragment_height": BAND_ROWS},
            )
            p.text("\n")
        elif isinstance(element, Logo):
            image = logo_image(element.path, settings.dots)
            if image is not None:
                style.apply("center", False, (1, 1), False)
                p.image(image, impl="bitImageRaster", fragment_height=BAND_ROWS)
                p.text("\n")
        elif isinstance(element, Feed):
            style.apply("left", False, (1, 1), False)
            p.ln(max(0, min(element.lines, 10)))
    style.apply("left", False, (1, 1), False)
    _finish(p, settings)
    out = bytes(p.output)
    return out[:start] + out[start:] * max(1, copies)
