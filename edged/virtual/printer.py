"""The virtual printer's paper: ESC/POS bytes read back as lines and a picture.

It takes the very bytes a real printer would get and interprets the commands the encoder
uses (text, alignment, bold, double size, reverse, QR, raster images, cut). The null
printer transport (:mod:`edged.printing.transports.virtual`) writes what comes out of
here; this module knows nothing of transports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSansMono.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSansMono-Bold.ttf"
FONT_SIZE = 20
MARGIN = 16


@dataclass
class PaperLine:
    """One printed line with its style."""

    text: str = ""
    align: int = 0
    bold: bool = False
    width: int = 1
    height: int = 1
    invert: bool = False


@dataclass
class Paper:
    """What came out of the printer: lines, QR codes and images in order."""

    items: list[PaperLine | tuple[str, Any]] = field(default_factory=list)
    cuts: int = 0

    def text(self) -> str:
        out = []
        for item in self.items:
            if isinstance(item, PaperLine):
                out.append(item.text)
            elif item[0] == "qr":
                out.append(f"[QR {item[1]}]")
            else:
                out.append("[image]")
        return "\n".join(out)


def interpret(data: bytes, codec: str) -> Paper:
    """Lenient interpretation of ESC/POS bytes (unknown commands are skipped)."""
    paper = Paper()
    state = PaperLine()
    buf = bytearray()
    qr_data = ""
    i = 0
    n = len(data)

    def flush() -> None:
        nonlocal buf
        paper.items.append(
            PaperLine(
                buf.decode(codec, "replace"),
                state.align,
                state.bold,
                state.width,
                state.height,
                state.invert,
            )
        )
        buf = bytearray()

    while i < n:
        b = data[i]
        if b == 0x0A:
            flush()
            i += 1
        elif b == 0x1B and i + 1 < n:
            cmd = data[i + 1]
            arg = data[i + 2] if i + 2 < n else 0
            if cmd == ord("@"):
                state = PaperLine()
                i += 2
            elif cmd == ord("a"):
                state.align = arg if arg < 3 else arg - 48
                i += 3
            elif cmd == ord("E"):
                state.bold = bool(arg & 1)
                i += 3
            elif cmd == ord("!"):
                # Print mode: emphasized, double height, double width (python-escpos' sizes).
                state.bold = bool(arg & 0x08)
                state.height = 2 if arg & 0x10 else 1
                state.width = 2 if arg & 0x20 else 1
                i += 3
            elif cmd == ord("t"):
                i += 3
            elif cmd == ord("d"):
                for _ in range(arg):
                    flush()
                i += 3
            elif cmd == ord("p"):
                i += 5
            else:
                i += 3
        elif b == 0x1D and i + 1 < n:
            cmd = data[i + 1]
            arg = data[i + 2] if i + 2 < n else 0
            if cmd == ord("!"):
                state.width = ((arg >> 4) & 0x7) + 1
                state.height = (arg & 0x7) + 1
                i += 3
            elif cmd == ord("B"):
                state.invert = bool(arg & 1)
                i += 3
            elif cmd == ord("V"):
                paper.cuts += 1
                i += 4 if arg in (65, 66) else 3
            elif cmd == ord("(") and i + 4 < n:
                size = data[i + 3] | data[i + 4] << 8
                body = data[i + 5 : i + 5 + size]
                if body[:3] == b"1P0":
                    qr_data = body[3:].decode("ascii", "replace")
                elif body[:3] == b"1Q0" and qr_data:
                    paper.items.append(("qr", qr_data))
                i += 5 + size
            elif cmd == ord("v") and i + 7 < n:
                xb = data[i + 4] | data[i + 5] << 8
                rows = data[i + 6] | data[i + 7] << 8
                raw = data[i + 8 : i + 8 + xb * rows]
                paper.items.append(("image", (xb, rows, bytes(raw))))
                i += 8 + xb * rows
            else:
                i += 3
        elif b == 0x1C and i + 1 < n:
            i += 2  # FS . / FS &
        elif b == 0x10 and i + 2 < n:
            i += 3  # DLE EOT n: a status query, nothing printed
        elif b < 0x20:
            i += 1
        else:
            buf.append(b)
            i += 1
    if buf:
        flush()
    return paper


def _fonts() -> tuple[Any, Any]:
    from PIL import ImageFont

    if FONT.is_file():
        bold = FONT_BOLD if FONT_BOLD.is_file() else FONT
        return (
            ImageFont.truetype(str(FONT), FONT_SIZE),
            ImageFont.truetype(str(bold), FONT_SIZE),
        )
    default = ImageFont.load_default()
    return default, default


def render_png(paper: Paper, columns: int, path: Path) -> None:
    """Draw the paper: monospaced, double sizes really double, reverse as white on black."""
    from PIL import Image, ImageDraw

    regular, bold = _fonts()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, _, right, _ = probe.textbbox((0, 0), "M" * 10, font=regular)
    cell_w = max(6, round((right - left) / 10))
    cell_h = max(10, round(FONT_SIZE * 1.25))
    # A raster ticket is as wide as the printer's head: show it dot for dot, not shrunk.
    widest = max(
        (it[1][0] * 8 for it in paper.items if not isinstance(it, PaperLine) and it[0] == "image"),
        default=0,
    )
    page_w = max(columns * cell_w, widest) + 2 * MARGIN
    blocks: list[Image.Image] = []
    for item in paper.items:
        if isinstance(item, PaperLine):
            w = cell_w * len(item.text) or 1
            line = Image.new("L", (w, cell_h), 0 if item.invert else 255)
            draw = ImageDraw.Draw(line)
            font = bold if item.bold else regular
            draw.text((0, 1), item.text, font=font, fill=255 if item.invert else 0)
            if item.width > 1 or item.height > 1:
                line = line.resize((w * item.width, cell_h * item.height), Image.Resampling.NEAREST)
            row = Image.new("L", (page_w - 2 * MARGIN, line.height), 255)
            x = {0: 0, 1: (row.width - line.width) // 2, 2: row.width - line.width}.get(
                item.align, 0
            )
            row.paste(line, (max(0, x), 0))
            blocks.append(row)
        elif item[0] == "qr":
            import qrcode

            qr = qrcode.QRCode(border=2, box_size=6)
            qr.add_data(item[1])
            qr.make(fit=True)
            img = qr.make_image(fill_color="black", back_color="white").get_image().convert("L")
            blocks.append(_centered(img, page_w - 2 * MARGIN))
        else:
            xb, rows, raw = item[1]
            img = Image.frombytes("1", (xb * 8, rows), raw).convert("L")
            img = Image.eval(img, lambda v: 255 - v)  # raster: 1 = black
            blocks.append(_centered(img, page_w - 2 * MARGIN))
    height = sum(b.height for b in blocks) + 2 * MARGIN
    page = Image.new("L", (page_w, max(height, 2 * MARGIN + cell_h)), 255)
    y = MARGIN
    for block in blocks:
        page.paste(block, (MARGIN, y))
        y += block.height
    page.save(path, format="PNG", optimize=True)


def _centered(img: Any, width: int) -> Any:
    from PIL import Image

    if img.width > width:
        img = img.resize((width, max(1, img.height * width // img.width)))
    row = Image.new("L", (width, img.height), 255)
    row.paste(img, ((width - img.width) // 2, 0))
    return row
