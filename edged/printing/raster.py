"""A laid-out ticket drawn as a picture, for printers and tickets that text mode cannot serve.

The ticket keeps its layout in character cells (what text mode prints); here each cell is
``dots // columns`` dots wide and every character is drawn with a font that has it: Noto
Sans Mono CJK first (Latin, Chinese, Japanese and Korean on one grid, a wide character in
two cells), then Noto Sans and its script families (Arabic, Hebrew, Thai, Devanagari...),
then DejaVu, which is everywhere. A character no installed font has is drawn as "?".

The result is a 1-bit Pillow image exactly as wide as the printer's head (384 or 576 dots);
the ESC/POS and Star encoders cut it into their raster commands.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edged.printing.model import Feed, Logo, Qr, Rule, Text, Ticket
from edged.printing.text import char_cells, clean

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

NOTO = Path("/usr/share/fonts/truetype/noto")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# Script families of Noto Sans tried after the CJK monospace face, in this order.
SCRIPTS = (
    "NotoSans",
    "NotoSansArabic",
    "NotoSansHebrew",
    "NotoSansThai",
    "NotoSansDevanagari",
    "NotoSansBengali",
    "NotoSansTamil",
    "NotoSansArmenian",
    "NotoSansGeorgian",
    "NotoSansEthiopic",
    "NotoSansKhmer",
    "NotoSansLao",
    "NotoSansSymbols",
    "NotoSansSymbols2",
)
CJK_FACE = "Noto Sans Mono CJK SC"
# A code point no font maps: what a missing glyph (.notdef) looks like in each font.
_NOTDEF_PROBE = "\U0010fffd"
# FreeType faces are not safe to use from two threads at once, and tickets render on
# threads of their own: one picture is drawn at a time (a capped ticket takes well under a
# second; text-mode tickets never wait for this).
_DRAWING = threading.Lock()
LINE_PITCH = 2.5  # line height in cell widths: 12 x 30 dots, like font A with its spacing
QR_MODULE = {384: 4, 576: 6}


@dataclass(frozen=True)
class FontFile:
    """One face of a font file (``index`` inside a .ttc collection)."""

    path: str
    index: int = 0
    mono: bool = False


@functools.cache
def _cjk_index(path: str) -> int | None:
    from PIL import ImageFont

    for index in range(12):
        try:
            font = ImageFont.truetype(path, 12, index=index)
        except OSError:
            return None
        if font.getname()[0] == CJK_FACE:
            return index
    return None


@functools.cache
def font_chain(bold: bool) -> tuple[FontFile, ...]:
    """Installed fonts, best first, for regular or bold text."""
    weight = "Bold" if bold else "Regular"
    chain: list[FontFile] = []
    cjk = NOTO_CJK / f"NotoSansCJK-{weight}.ttc"
    if cjk.is_file():
        index = _cjk_index(str(cjk))
        if index is not None:
            chain.append(FontFile(str(cjk), index, mono=True))
    for family in SCRIPTS:
        for candidate in (NOTO / f"{family}-{weight}.ttf", NOTO / f"{family}-Regular.ttf"):
            if candidate.is_file():
                chain.append(FontFile(str(candidate)))
                break
    mono = DEJAVU / ("DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf")
    if mono.is_file():
        chain.append(FontFile(str(mono), mono=True))
    sans = DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if sans.is_file():
        chain.append(FontFile(str(sans)))
    if not chain:
        log.warning("raster tickets: no Noto or DejaVu font installed; using Pillow's own")
    return tuple(chain)


@functools.cache
def _font(face: FontFile, cell: int) -> Any:
    """The face sized so that a half-width character is one cell wide."""
    from PIL import ImageFont

    probe = ImageFont.truetype(face.path, 100, index=face.index)
    if face.mono:
        size = max(6, round(cell * 100 / max(probe.getlength("M"), 1)))
    else:
        size = max(6, round(cell * 2 * 0.85))
    return ImageFont.truetype(face.path, size, index=face.index)


@functools.cache
def _notdef(face: FontFile, cell: int) -> bytes:
    return _glyph(_font(face, cell), _NOTDEF_PROBE)


def _glyph(font: Any, ch: str) -> bytes:
    mask = font.getmask(ch)
    return bytes(mask.size) + bytes(mask)


@functools.lru_cache(maxsize=4096)
def face_for(ch: str, bold: bool, cell: int) -> FontFile | None:
    """The first font in the chain that has a glyph for ``ch`` (None: none does)."""
    if ch.isspace():
        chain = font_chain(bold)
        return chain[0] if chain else None
    for face in font_chain(bold):
        if _glyph(_font(face, cell), ch) != _notdef(face, cell):
            return face
    return None


def _runs(text: str, bold: bool, cell: int) -> list[tuple[FontFile | None, str, int]]:
    """``text`` cut into runs drawn with one font each: ``(face, text, first cell)``."""
    runs: list[tuple[FontFile | None, str, int]] = []
    position = 0
    for ch in text:
        face = face_for(ch, bold, cell)
        if face is None:
            face, ch = face_for("?", bold, cell), "?"
        if runs and runs[-1][0] == face:
            runs[-1] = (face, runs[-1][1] + ch, runs[-1][2])
        else:
            runs.append((face, ch, position))
        position += char_cells(ch)
    return runs


class _Canvas:
    """The growing picture of one ticket, one block per line."""

    def __init__(self, dots: int, columns: int) -> None:
        self.dots = dots
        self.columns = columns
        self.cell = max(4, dots // max(columns, 1))
        self.margin = (dots - self.cell * columns) // 2
        self.pitch = round(self.cell * LINE_PITCH)
        self.blocks: list[PILImage.Image] = []

    def text(self, line: Text) -> None:
        from PIL import Image, ImageDraw

        scale = max(line.width, line.height)
        cell = self.cell * scale
        text = line.text
        used = sum(char_cells(ch) for ch in text)
        image = Image.new("L", (max(used, 1) * cell, self.pitch * scale), 255)
        draw = ImageDraw.Draw(image)
        ink = 0
        if line.invert:
            draw.rectangle((0, 0, image.width, image.height), fill=0)
            ink = 255
        baseline = round(self.pitch * scale * 0.78)
        for face, run, first in _runs(text, line.bold, cell):
            if face is None:
                font: Any = None
            else:
                font = _font(face, cell)
            draw.text((first * cell, baseline), run, font=font, fill=ink, anchor="ls")
        target = (max(used, 1) * self.cell * line.width, self.pitch * line.height)
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        self._place(image, line.align)

    def _place(self, image: PILImage.Image, align: str) -> None:
        from PIL import Image

        row = Image.new("L", (self.dots, image.height), 255)
        room = self.cell * self.columns
        offset = {"center": (room - image.width) // 2, "right": room - image.width}.get(align, 0)
        row.paste(image, (self.margin + max(0, offset), 0))
        self.blocks.append(row)

    def rule(self, rule: Rule) -> None:
        char = rule.char if rule.char in "-=*_." else "-"
        self.text(Text(char * self.columns))

    def feed(self, lines: int) -> None:
        from PIL import Image

        for _ in range(max(0, min(lines, 10))):
            self.blocks.append(Image.new("L", (self.dots, self.pitch), 255))

    def picture(self, image: PILImage.Image) -> None:
        """A 1-bit picture (QR, logo), centred, never wider than the head."""
        from PIL import Image

        if image.width > self.dots:
            height = max(1, round(image.height * self.dots / image.width))
            image = image.convert("L").resize((self.dots, height)).convert("1")
        row = Image.new("L", (self.dots, image.height), 255)
        row.paste(image.convert("L"), ((self.dots - image.width) // 2, 0))
        self.blocks.append(row)

    def image(self) -> PILImage.Image:
        from PIL import Image

        height = sum(block.height for block in self.blocks) or 1
        page = Image.new("L", (self.dots, height), 255)
        y = 0
        for block in self.blocks:
            page.paste(block, (0, y))
            y += block.height
        # Thermal dots are on or off: anything darker than half grey prints.
        return page.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)


def qr_image(data: str, module: int) -> PILImage.Image:
    """A QR code (error correction M) as a 1-bit picture."""
    import qrcode

    qr = qrcode.QRCode(border=2, box_size=module, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    qr.make(fit=True)
    img: PILImage.Image = qr.make_image(fill_color="black", back_color="white").get_image()
    return img.convert("1")


@functools.lru_cache(maxsize=8)
def _logo(path: str, mtime: float, dots: int) -> PILImage.Image:
    from PIL import Image

    with Image.open(path) as img:
        gray = img.convert("L")
    if gray.width > dots:
        gray = gray.resize((dots, max(1, round(gray.height * dots / gray.width))))
    return gray.convert("1")  # Floyd-Steinberg dithering


def logo_image(path: str, dots: int) -> PILImage.Image | None:
    """The logo at most ``dots`` wide, dithered; None (and a warning) when unusable."""
    try:
        return _logo(path, os.stat(path).st_mtime, dots)
    except (OSError, ValueError) as exc:
        log.warning("printing: logo %s not usable: %s", path, exc)
        return None


def render(ticket: Ticket, dots: int) -> PILImage.Image:
    """``ticket`` as a 1-bit picture ``dots`` wide (black = 0, as Pillow's mode "1")."""
    with _DRAWING:
        return _render(ticket, dots)


def _render(ticket: Ticket, dots: int) -> PILImage.Image:
    canvas = _Canvas(dots, ticket.columns)
    for element in ticket.elements:
        if isinstance(element, Text):
            canvas.text(element)
        elif isinstance(element, Rule):
            canvas.rule(element)
        elif isinstance(element, Feed):
            canvas.feed(element.lines)
        elif isinstance(element, Qr):
            data = clean(element.data, 512)
            if data:
                canvas.picture(qr_image(data, QR_MODULE.get(dots, 4)))
        elif isinstance(element, Logo):
            logo = logo_image(element.path, dots)
            if logo is not None:
                canvas.picture(logo)
    return canvas.image()
