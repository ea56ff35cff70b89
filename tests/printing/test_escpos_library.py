"""The ESC/POS bytes come from python-escpos: the reference tickets, printed through the TCP
transport on a printer stand-in and through the virtual printer, read the same, accents and
the euro sign right; and the one command edged adds to python-escpos's output is shown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from escpos.printer import Dummy
from escpos_decoder import decode
from printer_standin import TcpPrinter

from edged.printing import codepages
from edged.printing.escpos import CANCEL_KANJI, EncoderSettings, encode
from edged.printing.settings import PrinterConfig
from edged.printing.ticket import TicketOptions, order_ticket
from edged.printing.transports import JobMeta, make_transport
from edged.sinqro.models import parse_order

EXAMPLES = Path(__file__).resolve().parents[2] / "edged" / "simulator" / "data" / "examples.json"


def reference_ticket(kind: str, language: str) -> bytes:
    raw = json.loads(EXAMPLES.read_text("utf-8"))[kind]
    raw["comment"] = "Sin cebolla, ñoquis al pesto; l·lesca amb tomàquet. Total 12,50 €"
    settings = EncoderSettings(codepages.resolve("TM-T20III"), codepages.get_profile("TM-T20III"))
    ticket = order_ticket(parse_order(raw), TicketOptions(columns=48, language=language))
    return encode(ticket, settings)


@pytest.mark.parametrize(("kind", "language"), [("delivery", "es"), ("inside", "ca")])
async def test_stand_in_and_virtual_printer_read_the_same(
    tmp_path: Path, kind: str, language: str
) -> None:
    data = reference_ticket(kind, language)
    async with TcpPrinter("online") as printer:
        tcp = make_transport(
            PrinterConfig(name="tcp", uri=printer.uri, timeout=2.0),
            base_dir=tmp_path,
            codec="cp858",
        )
        await asyncio.to_thread(tcp.deliver, data, JobMeta(1, "order", 1))
        await asyncio.wait_for(printer.received.wait(), 10)
    (received,) = printer.jobs
    assert received == data
    decoded = decode(received)
    assert decoded.unexpected == []  # nothing but the commands python-escpos writes for us

    virtual = make_transport(
        PrinterConfig(name="v", uri="virtual://paper", timeout=2.0),
        base_dir=tmp_path,
        codec="cp858",
        columns=48,
    )
    await asyncio.to_thread(virtual.deliver, data, JobMeta(1, "order", 1))
    (text,) = (tmp_path / "paper").glob("*.txt")
    paper = [line.strip() for line in text.read_text("utf-8").splitlines() if line.strip()]
    printed = [line.text.strip() for line in decoded.lines if line.text.strip()]
    codes = [line for line in paper if line.startswith("[QR ")]
    assert codes == [f"[QR {q}]" for q in decoded.qr]
    assert printed == [line for line in paper if line not in codes]
    comment = " ".join(printed)  # the comment wraps at 48 columns
    assert "ñoquis" in comment and "l·lesca amb tomàquet" in comment and "12,50 €" in comment


def test_the_one_thing_edged_adds_to_python_escpos() -> None:
    """python-escpos starts a ticket with init and the code page; cheap clones boot in a
    double-byte (Kanji) mode in which the accented bytes of CP858 are eaten in pairs, so edged
    sends FS . (cancel Kanji) between the two. Everything else is python-escpos's output."""
    settings = EncoderSettings(codepages.resolve("default"), codepages.get_profile("default"))
    ours = encode(order_ticket(parse_order(json.loads(EXAMPLES.read_text())["collection"]),
                               TicketOptions()), settings)  # fmt: skip
    plain = Dummy()
    plain.hw("INIT")
    plain.charcode("CP858")
    library = bytes(plain.output)
    assert CANCEL_KANJI not in library
    assert library == b"\x1b@\x1bt\x13"
    assert ours.startswith(b"\x1b@" + CANCEL_KANJI + b"\x1bt\x13")
