"""A strict decoder of Star printer bytes, written from Star's published command
specifications (Star Graphic Mode and StarPRNT / Star Line Mode command specifications),
not from the encoder.

It knows the commands a Star printer may legitimately get from the box and records
anything else in ``unexpected``; drawer commands (``BEL``, ``SUB``, ``ESC BEL``,
``ESC * r D``) are recorded in ``drawer`` so a test can prove they never appear.

Star Graphic mode (raster only printers, TSP100 family):

* ``ESC * r A`` enter raster mode; ``ESC * r B`` quit; ``ESC * r C`` clear the image;
* ``ESC * r P n NUL`` page length, ``ESC * r E n NUL`` EOT mode, ``ESC * r F n NUL`` FF
  mode, ``ESC * r Y n NUL`` move n dot rows, ``ESC * r D n NUL`` drawer: ``n`` in ASCII
  decimal; EOT / FF modes 0, 1, 2, 3, 8, 9, 12, 13 (8, 9: full cut; 12, 13: partial cut);
* ``b n1 n2 d1...dk`` one row of ``n1 + 256 * n2`` bytes, most significant bit leftmost;
* ``ESC FF NUL`` (end of page, FF mode) and ``ESC FF EOT`` (end of document, EOT mode).

StarPRNT: ``ESC @``, ``ESC GS t n`` code page, ``ESC GS a n`` alignment, ``ESC E`` /
``ESC F`` emphasis, ``ESC i n1 n2`` height and width expansion, ``ESC 4`` / ``ESC 5``
reverse, ``LF``, ``ESC d n`` cut (0/48 full, 1/49 partial, 2/50 feed and full, 3/51 feed
and partial), ``ESC GS y S 0|1|2 n``, ``ESC GS y D 1 m nL nH d``, ``ESC GS y P`` QR code,
``ESC GS S m xL xH yL yH n d`` raster image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from escpos_decoder import Line as StarLine  # a printed line reads the same in both languages

ALIGNS = ("left", "center", "right")
CUT_MODES = {8, 9, 12, 13}
EOT_MODES = {0, 1, 2, 3, 8, 9, 12, 13}
# ESC GS t n: StarPRNT code page numbers of the pages the box may select.
STAR_PAGES = {1: "cp437", 4: "cp858", 32: "cp1252"}


@dataclass
class StarDecoded:
    lines: list[StarLine] = field(default_factory=list)
    # Star Graphic mode: one list of rows per page ended by ESC FF EOT / ESC FF NUL
    # (b"" for a row skipped with ESC * r Y).
    pages: list[list[bytes]] = field(default_factory=list)
    # StarPRNT raster images: (bytes per row, rows, data).
    images: list[tuple[int, int, bytes]] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    cuts: int = 0
    inits: int = 0
    code_pages: list[int] = field(default_factory=list)
    drawer: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def find(self, needle: str) -> StarLine:
        for line in self.lines:
            if needle in line.text:
                return line
        raise AssertionError(f"{needle!r} not printed; got:\n{self.text}")


def _number(data: bytes, i: int) -> tuple[int | None, int]:
    """An ASCII decimal parameter ending in NUL, from ``i``: (value, index after NUL)."""
    end = data.find(b"\x00", i)
    if end < 0 or end == i or not data[i:end].isdigit():
        return None, len(data)
    return int(data[i:end]), end + 1


def decode_star(data: bytes) -> StarDecoded:
    out = StarDecoded()
    codec = "cp437"
    bold, width, height, align, invert = False, 1, 1, "left", False
    raster = False
    eot_mode = 13  # the specification's initial value
    ff_mode = 13
    page: list[bytes] = []
    qr_store = ""
    buf = bytearray()
    i, n = 0, len(data)

    def flush() -> None:
        nonlocal buf
        out.lines.append(StarLine(buf.decode(codec), bold, width, height, align, invert))
        buf = bytearray()

    def end_page(mode: int) -> None:
        nonlocal page
        out.pages.append(page)
        page = []
        if mode in CUT_MODES:
            out.cuts += 1

    while i < n:
        b = data[i]
        if raster:
            if b == ord("b") and i + 2 < n:
                length = data[i + 1] | data[i + 2] << 8
                if i + 3 + length > n:
                    out.unexpected.append(f"raster row cut short at {i}")
                    break
                page.append(bytes(data[i + 3 : i + 3 + length]))
                i += 3 + length
                continue
            if b != 0x1B:
                out.unexpected.append(f"byte 0x{b:02x} in raster mode at {i}")
                i += 1
                continue
        elif b >= 0x20 and b != 0x7F:
            buf.append(b)
            i += 1
            continue
        elif b == 0x0A:
            flush()
            i += 1
            continue
        elif b in (0x07, 0x1A):
            out.drawer.append(f"{'BEL' if b == 0x07 else 'SUB'} at {i}")
            i += 1
            continue
        if b != 0x1B:
            out.unexpected.append(f"control byte 0x{b:02x} at {i}")
            i += 1
            continue
        if buf:
            out.unexpected.append(f"command inside text at {i}")
        if i + 1 >= n:
            out.unexpected.append(f"truncated ESC at {i}")
            break
        cmd = data[i + 1]
        if cmd == ord("@"):
            out.inits += 1
            bold, width, height, align, invert = False, 1, 1, "left", False
            i += 2
        elif data[i + 1 : i + 3] == b"*r" and i + 3 < n:
            sub = chr(data[i + 3])
            if sub == "A":
                raster = True
                eot_mode = ff_mode = 13
                i += 4
            elif sub == "B":
                if page:
                    end_page(eot_mode)
                raster = False
                i += 4
            elif sub == "C":
                page = []
                i += 4
            elif sub in "PEFYD":
                value, i = _number(data, i + 4)
                if value is None:
                    out.unexpected.append(f"ESC * r {sub} without a number")
                elif sub == "E":
                    eot_mode = value
                    if value not in EOT_MODES:
                        out.unexpected.append(f"ESC * r E {value}")
                elif sub == "F":
                    ff_mode = value
                    if value not in EOT_MODES:
                        out.unexpected.append(f"ESC * r F {value}")
                elif sub == "Y":
                    page.extend([b""] * value)  # rows moved over: nothing printed
                elif sub == "D" and value:
                    out.drawer.append(f"ESC * r D {value}")
                elif sub == "P" and value != 0:
                    out.unexpected.append(f"page length {value}")
            else:
                out.unexpected.append(f"ESC * r {sub!r}")
                i += 4
        elif cmd == 0x0C and i + 2 < n and data[i + 2] in (0x00, 0x04):
            if not raster:
                out.unexpected.append("ESC FF outside raster mode")
            end_page(ff_mode if data[i + 2] == 0 else eot_mode)
            i += 3
        elif cmd == 0x07:
            out.drawer.append("ESC BEL")
            i += 4
        elif raster:
            out.unexpected.append(f"ESC 0x{cmd:02x} in raster mode")
            i += 2
        elif cmd == ord("E"):
            bold = True
            i += 2
        elif cmd == ord("F"):
            bold = False
            i += 2
        elif cmd == ord("4"):
            invert = True
            i += 2
        elif cmd == ord("5"):
            invert = False
            i += 2
        elif cmd == ord("i") and i + 3 < n:
            h, w = data[i + 2], data[i + 3]
            if h > 5 or w > 5:
                out.unexpected.append(f"ESC i {h} {w}")
            height, width = h + 1, w + 1
            i += 4
        elif cmd == ord("d") and i + 2 < n:
            mode = data[i + 2]
            if mode in (0, 1, 2, 3, 48, 49, 50, 51):
                out.cuts += 1
            else:
                out.unexpected.append(f"ESC d {mode}")
            i += 3
        elif cmd == 0x1D and i + 2 < n:
            sub = chr(data[i + 2])
            if sub == "t" and i + 3 < n:
                page_no = data[i + 3]
                out.code_pages.append(page_no)
                if page_no in STAR_PAGES:
                    codec = STAR_PAGES[page_no]
                else:
                    out.unexpected.append(f"ESC GS t {page_no}")
                i += 4
            elif sub == "a" and i + 3 < n and data[i + 3] in (0, 1, 2):
                align = ALIGNS[data[i + 3]]
                i += 4
            elif sub == "y" and i + 3 < n:
                kind = chr(data[i + 3])
                if kind == "S" and i + 5 < n and data[i + 4] in (0x30, 0x31, 0x32):
                    i += 6
                elif kind == "D" and i + 7 < n and data[i + 4] == 0x31:
                    size = data[i + 6] | data[i + 7] << 8
                    payload = data[i + 8 : i + 8 + size]
                    if any(c < 0x20 or c == 0x7F for c in payload):
                        out.unexpected.append("control byte in QR data")
                    qr_store = payload.decode("ascii", "replace")
                    i += 8 + size
                elif kind == "P":
                    out.qr.append(qr_store)
                    i += 4
                else:
                    out.unexpected.append(f"ESC GS y {kind!r}")
                    i += 4
            elif sub == "S" and i + 9 < n:
                xb = data[i + 4] | data[i + 5] << 8
                rows = data[i + 6] | data[i + 7] << 8
                if data[i + 3] != 1 or data[i + 8] != 0:
                    out.unexpected.append("ESC GS S with a mode other than 1 / tone 0")
                out.images.append((xb, rows, bytes(data[i + 9 : i + 9 + xb * rows])))
                i += 9 + xb * rows
            else:
                out.unexpected.append(f"ESC GS {sub!r}")
                i += 3
        else:
            out.unexpected.append(f"ESC 0x{cmd:02x} at {i}")
            i += 2
    if raster:
        out.unexpected.append("still in raster mode at the end")
    if buf:
        out.unexpected.append("text after the last line feed")
        flush()
    return out
