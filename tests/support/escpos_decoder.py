"""A strict ESC/POS decoder for tests: bytes back to styled text lines.

It knows exactly the commands the encoder (python-escpos, as edged drives it) may write and
records anything else in
``unexpected``, so a test can say "nothing in these bytes could open the drawer, cut the
paper or switch the code page" by asserting ``decoded.unexpected == []``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ESC t numbers → Python codecs, for the code pages the encoder picks.
CODE_PAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858", 40: "iso8859_15", 53: "cp858"}


@dataclass
class Line:
    text: str
    bold: bool = False
    width: int = 1
    height: int = 1
    align: str = "left"
    invert: bool = False

    @property
    def big(self) -> bool:
        return self.width > 1 or self.height > 1


@dataclass
class Decoded:
    lines: list[Line] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    images: int = 0
    rasters: list[tuple[int, int, bytes]] = field(default_factory=list)  # GS v 0: xb, rows, data
    cuts: int = 0
    inits: int = 0
    code_pages: list[int] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def find(self, needle: str) -> Line:
        for line in self.lines:
            if needle in line.text:
                return line
        raise AssertionError(f"{needle!r} not printed; got:\n{self.text}")


def decode(data: bytes, code_pages: dict[int, str] | None = None) -> Decoded:
    """Decode ``data``; unknown or dangerous sequences land in ``unexpected``."""
    pages = code_pages or CODE_PAGES
    out = Decoded()
    codec = "cp437"
    bold, width, height, align, invert = False, 1, 1, "left", False
    buf = bytearray()
    qr_store = ""
    i, n = 0, len(data)

    def flush() -> None:
        nonlocal buf
        out.lines.append(Line(buf.decode(codec), bold, width, height, align, invert))
        buf = bytearray()

    def need(count: int) -> bool:
        if i + count > n:
            out.unexpected.append(f"truncated command at {i}")
            return False
        return True

    while i < n:
        b = data[i]
        if b >= 0x20 and b != 0x7F:
            buf.append(b)
            i += 1
            continue
        if b == 0x0A:
            flush()
            i += 1
            continue
        if buf:
            # A command in the middle of a line: the encoder never does that.
            out.unexpected.append(f"command 0x{b:02x} inside text at {i}")
        if b == 0x1B:
            if not need(2):
                break
            cmd = chr(data[i + 1])
            if cmd == "@":
                out.inits += 1
                bold, width, height, align, invert = False, 1, 1, "left", False
                i += 2
                continue
            if not need(3):
                break
            arg = data[i + 2]
            if cmd == "t":
                out.code_pages.append(arg)
                if arg not in pages:
                    out.unexpected.append(f"ESC t {arg}: unknown code page")
                else:
                    codec = pages[arg]
                if len(out.code_pages) > 1:
                    out.unexpected.append("code page switched again")
            elif cmd == "a" and arg in (0, 1, 2):
                align = ("left", "center", "right")[arg]
            elif cmd == "E" and arg in (0, 1):
                bold = bool(arg)
            elif cmd == "!" and arg & ~0x38 == 0:
                # Print mode (python-escpos' sizes): emphasized, double height, double width.
                bold = bool(arg & 0x08)
                height, width = (2 if arg & 0x10 else 1), (2 if arg & 0x20 else 1)
            elif cmd == "d" and arg <= 10:
                for _ in range(arg):
                    flush()
            else:
                out.unexpected.append(f"ESC {cmd!r} {arg}")
            i += 3
        elif b == 0x1D:
            if not need(3):
                break
            cmd = chr(data[i + 1])
            arg = data[i + 2]
            if cmd == "!" and (arg >> 4) <= 1 and (arg & 0x0F) <= 1:
                width, height = (arg >> 4) + 1, (arg & 0x0F) + 1
                i += 3
            elif cmd == "B" and arg in (0, 1):
                invert = bool(arg)
                i += 3
            elif cmd == "V" and arg in (0, 1):
                out.cuts += 1
                i += 3
            elif cmd == "(" and data[i + 2 : i + 3] == b"k":
                if not need(5):
                    break
                size = data[i + 3] | data[i + 4] << 8
                body = data[i + 5 : i + 5 + size]
                fn = body[:2]
                if fn == b"1P" and body[2:3] == b"0":
                    qr_store = body[3:].decode("ascii")
                    if any(c < 0x20 or c == 0x7F for c in body[3:]):
                        out.unexpected.append("control byte in QR data")
                elif fn == b"1Q" and body[2:3] == b"0":
                    out.qr.append(qr_store)
                elif fn in (b"1A", b"1C", b"1E"):
                    pass
                else:
                    out.unexpected.append(f"GS ( k function {fn!r}")
                i += 5 + size
            elif cmd == "v" and arg == 0x30:
                if not need(8):
                    break
                if data[i + 3] != 0:
                    out.unexpected.append(f"GS v 0 mode {data[i + 3]}")
                xb = data[i + 4] | data[i + 5] << 8
                rows = data[i + 6] | data[i + 7] << 8
                if not need(8 + xb * rows):
                    break
                out.images += 1
                out.rasters.append((xb, rows, bytes(data[i + 8 : i + 8 + xb * rows])))
                i += 8 + xb * rows
            else:
                out.unexpected.append(f"GS {cmd!r} {arg}")
                i += 3
        elif b == 0x1C:
            if not need(2):
                break
            if data[i + 1] != ord("."):
                out.unexpected.append(f"FS 0x{data[i + 1]:02x}")
            i += 2
        else:
            out.unexpected.append(f"control byte 0x{b:02x} at {i}")
            i += 1
    if buf:
        out.unexpected.append("text after the last line feed")
        flush()
    return out


def raster_rows(decoded: Decoded) -> list[bytes]:
    """The dot rows of all ``GS v 0`` bands, top to bottom (1 bit = a black dot)."""
    rows: list[bytes] = []
    for xb, count, data in decoded.rasters:
        rows.extend(data[r * xb : (r + 1) * xb] for r in range(count))
    return rows


def picture_rows(image: Any) -> list[bytes]:
    """Each row of a mode "1" picture as bits, MSB first, 1 = black, read pixel by pixel:
    the reference the printers' raster commands are compared with (ESC/POS and Star)."""
    stride = (image.width + 7) // 8
    rows = []
    for y in range(image.height):
        row = bytearray(stride)
        for x in range(image.width):
            if image.getpixel((x, y)) == 0:
                row[x // 8] |= 0x80 >> (x % 8)
        rows.append(bytes(row))
    return rows
