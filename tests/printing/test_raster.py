"""Raster tickets: the GS v 0 encoder byte for byte, a CJK ticket through the real path
against a golden picture, and when ``auto`` draws a ticket instead of printing text.

Regenerate the golden picture with ``EDGED_REGEN_GOLDEN=1`` and look at it before
committing.
"""

from __future__ import annotations

import copy
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from escpos_decoder import decode, picture_rows, raster_rows
from PIL import Image, ImageChops

from edged.printing import codepages, raster
from edged.printing.escpos import BAND_ROWS, EncoderSettings, raster_bands
from edged.printing.output import needs_picture, ticket_bytes
from edged.printing.slips import text_ticket
from edged.printing.ticket import TicketOptions, order_ticket
from edged.sinqro.models import parse_order

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"
GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("EDGED_REGEN_GOLDEN") == "1"
# Share of pixels allowed to differ from the golden picture: font hinting may move an
# edge by a dot between FreeType builds; a missing glyph or a shifted line changes far more.
TOLERANCE = 0.004


def example(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text("utf-8"))[kind]
    return copy.deepcopy(data)


def settings(profile: str = "TM-T20III", render: str = "raster", paper: int = 80) -> Any:
    return EncoderSettings(
        codepages.resolve(profile),
        codepages.get_profile(profile),
        paper,
        True,
        render,  # type: ignore[arg-type]
    )


def picture(rows: list[bytes], width: int) -> Image.Image:
    """Rows of dots back into a Pillow picture (black = 0)."""
    image = Image.new("1", (width, len(rows)), 1)
    for y, row in enumerate(rows):
        for x in range(width):
            if row[x // 8] & (0x80 >> (x % 8)):
                image.putpixel((x, y), 0)
    return image


@pytest.mark.parametrize(("width", "height"), [(576, 300), (384, 129), (571, 5), (8, 1)])
def test_gs_v_0_bands_are_the_picture_row_for_row(width: int, height: int) -> None:
    rng = random.Random(width * height)
    image = Image.new("1", (width, height), 1)
    for y in range(height):
        for x in range(width):
            if rng.random() < 0.3:
                image.putpixel((x, y), 0)
    data = raster_bands(image)
    decoded = decode(data + b"\n")
    assert decoded.unexpected == []
    assert len(decoded.rasters) == -(-height // BAND_ROWS)
    for xb, rows, _ in decoded.rasters:
        assert xb == (width + 7) // 8 and 0 < rows <= BAND_ROWS
    assert raster_rows(decoded) == picture_rows(image)


def cjk_order() -> dict[str, Any]:
    raw = example("delivery")
    raw["consumer"]["name"] = "王小明"
    raw["consumer"]["lastname"] = ""
    raw["orderLines"][0]["label"] = "宫保鸡丁 (Kung Pao) 辣"
    raw["orderLines"][0]["comment"] = "不要花生, κουλούρι, شكرا, שלום"
    raw["orderLines"][1]["label"] = "味噌ラーメン"
    raw["comment"] = "ドアの前に置いてください。ありがとうございます！"
    return raw


def test_cjk_ticket_through_the_real_path_matches_the_golden_picture() -> None:
    ticket = order_ticket(parse_order(cjk_order()), TicketOptions(columns=48, language="en"))
    data = ticket_bytes(ticket, settings())
    decoded = decode(data)
    assert decoded.unexpected == []
    # All of it is a picture: no code page, no text, only the feed before the cut.
    assert decoded.code_pages == [] and not any(line.text for line in decoded.lines)
    assert decoded.cuts == 1
    rows = raster_rows(decoded)
    assert {len(r) for r in rows} == {72}  # 576 dots: the TM-T20III's head
    image = picture(rows, 576)
    path = GOLDEN / "cjk-raster.png"
    if REGEN:
        image.save(path, optimize=True)
    golden = Image.open(path).convert("1")
    assert golden.size == image.size
    diff = ImageChops.logical_xor(golden, image)
    changed = sum(1 for v in diff.tobytes() for bit in range(8) if v & (0x80 >> bit))
    assert changed <= TOLERANCE * image.width * image.height, changed


def test_every_glyph_of_the_cjk_ticket_is_drawn_from_a_font_that_has_it() -> None:
    text = "王小明宫保鸡丁辣不要花生κουλούριشكراשלוםドアの前に置いてください味噌ラーメン€ñ"
    missing = [ch for ch in text if raster.face_for(ch, False, 12) is None]
    assert missing == []
    assert "NotoSansCJK" in (raster.face_for("王", False, 12) or raster.FontFile("")).path
    assert "Arabic" in (raster.face_for("ش", False, 12) or raster.FontFile("")).path


def test_auto_draws_only_what_the_code_page_cannot_print() -> None:
    spanish = order_ticket(parse_order(example("collection")), TicketOptions(language="es"))
    assert not needs_picture(spanish, "cp858")
    text_mode = decode(ticket_bytes(spanish, settings(render="auto")))
    assert text_mode.images == 0 and text_mode.code_pages == [19]
    quotes = text_ticket(["“Sin cebolla” – gracias…"], TicketOptions())
    assert not needs_picture(quotes, "cp858")  # plain stand-ins lose nothing
    chinese = order_ticket(parse_order(cjk_order()), TicketOptions())
    assert needs_picture(chinese, "cp858")
    drawn = decode(ticket_bytes(chinese, settings(render="auto")))
    assert drawn.images and not any(line.text for line in drawn.lines)
    polish = text_ticket(["Zażółć gęślą jaźń"], TicketOptions())
    assert needs_picture(polish, "cp858")  # accents would be lost in CP858
    # Text mode stays text whatever it holds: "?" where the code page has no letter.
    forced = decode(ticket_bytes(chinese, settings(render="text")))
    assert forced.images == 0 and "Customer: ???" in forced.text


def test_58mm_raster_is_384_dots() -> None:
    ticket = order_ticket(parse_order(example("inside")), TicketOptions(columns=32))
    decoded = decode(ticket_bytes(ticket, settings("POS-5890", paper=58)))
    assert {xb for xb, _, _ in decoded.rasters} == {48}
