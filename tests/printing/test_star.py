"""Star printers: StarPRNT text and Star Graphic mode against a decoder written from Star's
command specifications, and the automatic status (ASB) over a real socket."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from escpos_decoder import picture_rows
from printer_standin import TcpPrinter
from star_decoder import decode_star

from edged.printing import codepages, raster
from edged.printing.escpos import EncoderSettings
from edged.printing.output import ticket_bytes
from edged.printing.settings import PrinterConfig
from edged.printing.ticket import TicketOptions, order_ticket
from edged.printing.transports import make_transport
from edged.printing.transports.asb import asb_length, parse_asb
from edged.sinqro.models import parse_order

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"
HOSTILE = "Sin\x07\x1a\x1bp\x00\x19\x1b\x07\x1b*rD1\x00\x1bd\x00 fin"


def example(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text("utf-8"))[kind]
    return copy.deepcopy(data)


def star(profile: str, render: str = "text") -> EncoderSettings:
    return EncoderSettings(
        codepages.resolve(profile, "", "star"),
        codepages.get_profile(profile, "star"),
        80,
        True,
        render,  # type: ignore[arg-type]
        "star",
    )


def test_starprnt_text_ticket_decodes_with_its_styles() -> None:
    order = parse_order(example("delivery"))
    ticket = order_ticket(order, TicketOptions(columns=48, language="es"))
    data = ticket_bytes(ticket, star("TSP650II"), copies=2)
    d = decode_star(data)
    assert d.unexpected == [], d.unexpected
    assert d.drawer == []
    assert d.code_pages == [4]  # CP858 in Star's numbering
    assert d.inits == 1 and d.cuts == 2
    assert d.find("A DOMICILIO").width == 2
    code = d.find("#VLV3CW")
    assert code.big and code.bold and code.align == "center"
    assert d.find("3 x Pizza 4 estaciones").text.endswith("41,85€")
    assert d.find("+ Champiñones")
    assert d.find("RECOGIDA: 06:55").height == 2
    assert (
        d.qr
        == ["https://tracking.sinqro.com/es-es/delivery?t=023899da0799c34864fe3d8a939f3a58"] * 2
    )


def test_hostile_text_never_opens_the_drawer_or_cuts() -> None:
    raw = example("delivery")
    raw["comment"] = HOSTILE
    raw["consumer"]["name"] = HOSTILE
    raw["orderLines"][0]["label"] = HOSTILE
    ticket = order_ticket(parse_order(raw), TicketOptions(columns=48))
    for profile in ("TSP650II", "TSP143"):
        d = decode_star(ticket_bytes(ticket, star(profile)))
        assert d.unexpected == [], (profile, d.unexpected)
        assert d.drawer == []
        assert d.cuts == 1


def test_star_graphic_mode_rows_are_the_picture() -> None:
    ticket = order_ticket(parse_order(example("inside")), TicketOptions(columns=48))
    settings = star("TSP143")
    data = ticket_bytes(ticket, settings, copies=2)
    d = decode_star(data)
    assert d.unexpected == [] and d.drawer == []
    assert d.lines == []  # no text at all: the TSP100 family has no fonts
    assert len(d.pages) == 2 and d.cuts == 2  # each copy ends its document with a cut
    image = raster.render(ticket, 576)
    assert image.width == 576
    assert [row or bytes(72) for row in d.pages[0]] == picture_rows(image)
    assert b"" in d.pages[0]  # blank rows are moved over, not sent
    assert d.pages[1] == d.pages[0]


def test_star_graphic_mode_without_cut_only_feeds() -> None:
    ticket = order_ticket(parse_order(example("collection")), TicketOptions(columns=48))
    settings = EncoderSettings(
        codepages.resolve("TSP100", "", "star"),
        codepages.get_profile("TSP100", "star"),
        80,
        False,
        "text",
        "star",
    )
    d = decode_star(ticket_bytes(ticket, settings))
    assert d.unexpected == [] and len(d.pages) == 1 and d.cuts == 0


def test_starprnt_draws_a_ticket_its_code_page_cannot_print() -> None:
    raw = example("collection")
    raw["consumer"]["name"] = "李小龙"
    ticket = order_ticket(parse_order(raw), TicketOptions(columns=48))
    d = decode_star(ticket_bytes(ticket, star("TSP650II", "auto")))
    assert d.unexpected == [] and d.lines == [] and d.cuts == 1
    ((xb, rows, payload),) = d.images
    image = raster.render(ticket, 576)
    assert (xb, rows) == (72, image.height)
    assert [payload[r * xb : (r + 1) * xb] for r in range(rows)] == picture_rows(image)
    plain = order_ticket(parse_order(example("collection")), TicketOptions(columns=48))
    assert decode_star(ticket_bytes(plain, star("TSP650II", "auto"))).images == []


@pytest.mark.parametrize(
    ("asb", "state", "detail"),
    [
        ("238600000000000000", "online", ""),
        ("238600000004000000", "online", "paper low"),
        ("238628000000000000", "cover_open", "cover open"),
        ("238608000008000000", "paper_out", "paper roll empty"),
        ("238608200000000000", "offline", "non-recoverable error"),
        ("238608080000000000", "offline", "auto-cutter error"),
        ("238608000000000000", "offline", "printer reports offline"),
        ("ff", "unknown", None),
        ("", "unknown", None),
    ],
)
def test_asb_states(asb: str, state: str, detail: str | None) -> None:
    status = parse_asb(bytes.fromhex(asb))
    assert status.state == state
    if detail is not None:
        assert status.detail == detail


def test_asb_length_from_header() -> None:
    assert asb_length(0x23) == 9  # as a TSP143IIILAN sends it
    assert asb_length(0x0F) == 7
    assert asb_length(0x12) is None  # bit 0 clear: an ESC/POS status byte, not an ASB


@pytest.mark.parametrize(
    ("mode", "state"),
    [
        ("star-online", "online"),
        ("star-paper_out", "paper_out"),
        ("star-cover_open", "cover_open"),
        ("silent", "unknown"),
    ],
)
async def test_star_status_over_tcp(mode: str, state: str) -> None:
    async with TcpPrinter(mode) as printer:
        config = PrinterConfig(
            name="bar", uri=printer.uri, command_set="star", profile="TSP143", timeout=0.5
        )
        transport = make_transport(config, base_dir=Path("/nonexistent"), codec="cp858")
        assert (await asyncio.to_thread(transport.status)).state == state


async def test_star_ticket_over_tcp_is_sent_whole_after_the_status() -> None:
    ticket = order_ticket(parse_order(example("inside")), TicketOptions(columns=48))
    data = ticket_bytes(ticket, star("TSP143"))
    async with TcpPrinter("star-online") as printer:
        config = PrinterConfig(name="bar", uri=printer.uri, command_set="star", profile="TSP143")
        transport = make_transport(config, base_dir=Path("/nonexistent"), codec="cp858")
        meta_status = await asyncio.to_thread(transport.deliver, data, _meta())
        assert meta_status.state == "online"
        await asyncio.wait_for(printer.received.wait(), 10)
        assert printer.jobs == [data]
        assert decode_star(printer.jobs[0]).cuts == 1


def _meta() -> Any:
    from edged.printing.transports import JobMeta

    return JobMeta(1, "order", 422429)


def test_star_config_checks() -> None:
    from edged.configtools import ConfigError, build

    build(
        PrinterConfig,
        {"name": "bar", "uri": "tcp://h", "command_set": "star", "profile": "TSP143"},
        file="t.toml",
    )
    with pytest.raises(ConfigError, match="profile"):
        build(
            PrinterConfig,
            {"name": "bar", "uri": "tcp://h", "command_set": "star", "profile": "TM-T20III"},
            file="t.toml",
        )
    with pytest.raises(ConfigError, match="command_set"):
        build(
            PrinterConfig,
            {"name": "bar", "uri": "virtual://t", "command_set": "star", "profile": "TSP143"},
            file="t.toml",
        )
