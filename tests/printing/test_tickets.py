"""Tickets of the five documented orders, decoded back from the printer bytes.

Golden files in tests/printing/golden/ hold the decoded text with styles; regenerate them with
``EDGED_REGEN_GOLDEN=1 pytest tests/printing/test_tickets.py`` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from escpos_decoder import Decoded, decode

from edged.configtools import ConfigError, build
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode, encode_text
from edged.printing.settings import PrinterConfig, parse_uri
from edged.printing.slips import (
    cancel_slip,
    printer_test_ticket,
    status_slip,
    text_ticket,
    updated_slip,
)
from edged.printing.ticket import MAX_TICKET_LINES, TicketOptions, order_ticket
from edged.sinqro.models import Order, parse_order

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"
GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("EDGED_REGEN_GOLDEN") == "1"
KINDS = ("delivery", "collection", "reservation", "insitu", "inside")
HOSTILE = "Sin\x1bp\x00\x19\xfacebolla\x1dV\x00\x1bt\x00\x10\x14\x01\x00\x05\x9b\u202e\x7f fin"


def example(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text("utf-8"))[kind]
    return copy.deepcopy(data)


def settings(profile: str = "default", paper: int = 80) -> EncoderSettings:
    return EncoderSettings(codepages.resolve(profile), codepages.get_profile(profile), paper)


def render(order: Order, **opts: Any) -> Decoded:
    options = TicketOptions(**{"columns": 42, **opts})
    data = encode(order_ticket(order, options), settings())
    decoded = decode(data)
    assert decoded.unexpected == [], decoded.unexpected
    return decoded


def styled(decoded: Decoded) -> str:
    rows = []
    for line in decoded.lines:
        flags = (
            ("B" if line.bold else ".")
            + f"{line.width}{line.height}"
            + line.align[0]
            + ("I" if line.invert else ".")
        )
        rows.append(f"{flags}|{line.text}".rstrip())
    rows += [f"QR|{q}" for q in decoded.qr]
    rows.append(f"cuts={decoded.cuts} code_pages={decoded.code_pages}")
    return "\n".join(rows) + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, "utf-8")
    assert path.exists(), f"missing {path}; run with EDGED_REGEN_GOLDEN=1"
    assert text == path.read_text("utf-8")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_golden(kind: str, language: str) -> None:
    decoded = render(parse_order(example(kind)), language=language)
    check_golden(f"{kind}-{language}", styled(decoded))


@pytest.mark.parametrize("kind", KINDS)
def test_common_fields(kind: str) -> None:
    raw = example(kind)
    d = render(parse_order(raw), language="es")
    assert d.code_pages == [19]  # CP858 on the default (Epson) profile
    assert d.cuts == 1
    assert d.find("SuperMarketplace").bold
    code = d.find(f"#{raw['marketOrderCode']}")
    assert code.big and code.align == "center"
    # Execution time in the selling point's zone: 04:5x UTC is 06:5x in Madrid in July.
    local = datetime.strptime(raw["executionTime"], "%Y-%m-%dT%H:%M:%S%z")
    assert d.find(f"Para: vie 24/07/2020 {local.hour + 2:02d}:{local.minute:02d}").height == 2
    assert "Cliente: Client_" in d.text and "Lastname_" in d.text
    assert "Teléfono: +34600000000" in d.text
    assert "This is the order comment!" in d.text


def test_delivery_content() -> None:
    d = render(parse_order(example("delivery")), language="es")
    assert d.find("A DOMICILIO").width == 2
    assert "Carrer de la Tecnologia, 17" in d.text
    assert "08840 Viladecans" in d.text
    assert d.find("1 x Pizza de la huerta").text.endswith("11,50€")
    assert d.find("+ Cebolla")
    assert d.find("> Comment 1")
    assert d.find("3 x Pizza 4 estaciones").text.endswith("41,85€")
    assert d.find("+ Champiñones")
    assert d.find("Envío").text.endswith("1,00€")
    total = d.find("TOTAL")
    assert total.text.endswith("58,85€") and total.bold
    assert d.find("Efectivo (A COBRAR)").text.endswith("58,85€")
    assert d.find("A COBRAR: 58,85€").big
    assert d.qr == ["https://tracking.sinqro.com/es-es/delivery?t=023899da0799c34864fe3d8a939f3a58"]


def test_collection_and_accents() -> None:
    d = render(parse_order(example("collection")), language="en")
    assert d.find("TAKEAWAY").big
    assert "+ Jamón Serrano" in d.text
    assert d.find("3 x Refresco limón").text.endswith("6.00€")
    assert d.find("TOTAL").text.endswith("59.90€")
    assert d.qr == []


def test_reservation_has_diners_no_items() -> None:
    d = render(parse_order(example("reservation")), language="es")
    assert d.find("RESERVA").big
    assert d.find("Comensales: 4").height == 2
    assert "TOTAL" not in d.text
    assert "x " not in d.text


def test_insitu_and_inside_table() -> None:
    insitu = render(parse_order(example("insitu")), language="en")
    assert insitu.find("PRE-ORDER").big
    assert "Diners: 2" in insitu.text
    assert insitu.find("TOTAL").text.endswith("53.95€")
    inside = render(parse_order(example("inside")), language="es")
    assert inside.find("PEDIDO EN MESA").big
    assert inside.find("Mesa: Terraza · Mesa 10").bold
    assert "> Comment 2" in inside.text


def test_prepaid_and_asap() -> None:
    raw = example("delivery")
    raw["payments"][0]["prepaid"] = True
    raw["payments"][0]["paymentMethodName"] = "Tarjeta"
    raw["isAsap"] = True
    d = render(parse_order(raw), language="es")
    assert d.find("Tarjeta (PAGADO)")
    assert next(line for line in d.lines if line.text.strip() == "PAGADO").big
    assert "A COBRAR" not in d.text
    assert d.find("LO ANTES POSIBLE (vie 24/07/2020 07:05)").bold


def test_other_currency_pattern() -> None:
    raw = example("collection")
    raw["currency"] = {"isoCode": "GBP", "symbol": "£", "displayPattern": "£{{amount}}"}
    d = render(parse_order(raw))
    assert d.find("TOTAL").text.endswith("£59.90")


def test_kitchen_layout_no_prices_big_type() -> None:
    d = render(parse_order(example("delivery")), layout="kitchen")
    assert "€" not in d.text
    assert "TOTAL" not in d.text
    assert d.find("3 x Pizza 4 estaciones").height == 2
    assert d.qr == []


def test_banners_reprint_late_and_backup() -> None:
    d = render(parse_order(example("inside")), reprint=True, late=True, backup_for="kitchen")
    assert d.lines[0].text.strip() == "REPRINT" and d.lines[0].invert and d.lines[0].big
    assert d.lines[1].text.strip() == "LATE" and d.lines[1].invert
    assert "Instead of printer: kitchen" in d.text
    es = render(parse_order(example("inside")), reprint=True, late=True, language="es")
    assert es.lines[0].text.strip() == "REIMPRESIÓN"
    assert es.lines[1].text.strip() == "CON RETRASO"


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_wraps_to_paper(columns: int) -> None:
    raw = example("delivery")
    raw["comment"] = "Por favor, llamad al timbre del segundo piso y no al primero. " * 4
    raw["orderLines"][0]["label"] = "Pizza de la huerta con verduras de temporada y extra de queso"
    for layout in ("full", "kitchen"):
        d = render(parse_order(raw), columns=columns, layout=layout)
        for line in d.lines:
            assert len(line.text) <= columns // line.width, line


def test_hostile_text_never_becomes_a_command() -> None:
    raw = example("delivery")
    raw["comment"] = HOSTILE
    raw["consumer"]["name"] = HOSTILE
    raw["orderLines"][0]["label"] = HOSTILE
    raw["orderLines"][0]["comment"] = HOSTILE
    raw["orderLines"][0]["childrenOrderLines"][0]["label"] = HOSTILE
    raw["deliveryAddress"]["street"] = HOSTILE
    raw["marketOrderCode"] = "AB\x1bp\x00\x19\xfa"
    raw["currency"]["displayPattern"] = "{{ amount }}\x1bp\x00€"
    raw["deliveries"][0]["trackingUrl"] = "https://x.example/\x1bp\x00"
    data = encode(order_ticket(parse_order(raw), TicketOptions()), settings(), copies=2)
    # DLE starts the printers' real-time requests (DLE EOT, DLE ENQ, DLE DC4), which they act
    # on wherever they stand; 0x10 alone is also the double-height bit of ESC !.
    for bad in (b"\x1bp", b"\x1dV\x00", b"\x1bt\x00", b"\x9b", b"\x7f"):
        assert bad not in data, bad
    for realtime in (b"\x10\x04", b"\x10\x05", b"\x10\x14"):
        assert realtime not in data, realtime
    assert all(data[i - 2 : i] == b"\x1b!" for i, byte in enumerate(data) if byte == 0x10)
    assert data.count(b"\x1b@") == 1
    assert data.count(b"\x1bt") == 1
    decoded = decode(data)
    assert decoded.unexpected == []
    assert decoded.cuts == 2
    # Controls vanish, printable text stays: "\xfa" is the letter ú, "Vt" the letters.
    assert decoded.find("Customer: Sinpúcebolla Vt fin")
    assert decoded.qr == []  # a tracking link with control bytes is dropped, not printed


def test_encode_text_is_printable_whatever_it_gets() -> None:
    for codec in ("cp858", "cp1252", "cp437"):
        out = encode_text("".join(chr(c) for c in range(0, 0x250)) + "€“”—…🍕", codec)
        assert all(b >= 0x20 and b != 0x7F for b in out)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("default", "CP858"), ("TM-T20II", "CP858"), ("ZJ-5870", "CP1252"), ("POS-5890", "CP858")],
)
def test_code_page_prints_spanish_catalan_and_euro(profile: str, expected: str) -> None:
    page = codepages.resolve(profile)
    assert page.name == expected
    options = TicketOptions(columns=32)
    sample = "ñ á é í ó ú ü ç à è ò ï l·l €"
    data = encode(text_ticket([sample], options), settings(profile, 58))
    decoded = decode(data, {page.number: page.codec})
    assert decoded.unexpected == []
    assert decoded.code_pages == [page.number]
    assert decoded.lines[0].text == sample


def test_slips_and_test_page() -> None:
    raw = example("collection")
    raw["status"] = {"code": "cancelled_by_client", "name": "Cancelado", "isFinalStatus": True}
    raw["cancellationComment"] = "Ya no lo quiero"
    order = parse_order(raw)
    at = datetime(2020, 7, 24, 5, 10, tzinfo=UTC)
    slip = decode(
        encode(cancel_slip(order, order.status, TicketOptions(language="es"), at), settings())
    )
    assert slip.unexpected == []
    assert slip.lines[0].text.strip() == "CANCELADO" and slip.lines[0].invert
    assert "Cancelado por el cliente" in slip.text
    assert "Ya no lo quiero" in slip.text
    assert "A las: vie 24/07/2020 07:10" in slip.text
    for who, text in (
        ("cancelled_by_driver", "by the driver"),
        ("cancelled_by_team", "Sinqro team"),
        ("cancelled_by_sp", "by the restaurant"),
    ):
        assert text in cancel_slip(order, who, TicketOptions(), at).plain_text()
    ready = decode(encode(status_slip(order, "ready", TicketOptions(), at), settings()))
    assert ready.find("READY").big
    page = decode(
        encode(printer_test_ticket("kitchen", "Box", "CP858", TicketOptions(), at), settings())
    )
    assert page.unexpected == []
    assert "ñ á é í ó ú ü ç à è ò ï l·l €" in page.text
    assert page.qr


def test_printer_config_checks_uri() -> None:
    good = [
        "tcp://192.168.1.50",
        "tcp://printer.local:9101",
        "usb://04b8:0202",
        "serial:///dev/ttyUSB0?baudrate=19200&rtscts=1",
        "file:///dev/usb/lp0",
        "virtual://tickets",
        "virtual:///var/lib/edged/tickets",
    ]
    for uri in good:
        build(PrinterConfig, {"name": "p", "uri": uri}, file="t.toml")
    assert parse_uri("tcp://h").port == 9100
    assert parse_uri("serial:///dev/ttyS0?baudrate=9600").option("baudrate") == "9600"
    bad = [
        "http://x",
        "tcp://",
        "tcp://h:notaport",
        "usb://4b8:202",
        "serial://ttyUSB0",
        "serial:///dev/ttyUSB0?speed=9600",
        "serial:///dev/ttyUSB0?baudrate=fast",
        "file://relative",
        "virtual://",
        "tcp://h\x1b:9100",
    ]
    for uri in bad:
        with pytest.raises(ConfigError) as err:
            build(PrinterConfig, {"name": "p", "uri": uri}, file="t.toml")
        assert "uri" in str(err.value)
    with pytest.raises(ConfigError, match="profile"):
        build(PrinterConfig, {"name": "p", "uri": "tcp://h", "profile": "nope"}, file="t.toml")
    with pytest.raises(ConfigError, match="code_page"):
        build(
            PrinterConfig,
            {"name": "p", "uri": "tcp://h", "profile": "ZJ-5870", "code_page": "CP858"},
            file="t.toml",
        )
    with pytest.raises(ConfigError, match="status_slips"):
        build(PrinterConfig, {"name": "p", "uri": "tcp://h", "status_slips": ["x"]}, file="t.toml")
    cfg = build(PrinterConfig, {"name": "p", "uri": "tcp://h"}, file="t.toml")
    assert replace(cfg, paper_width=58).paper_width == 58


def test_currency_falls_back_to_the_selling_point_then_the_configured_sign() -> None:
    raw = example("collection")
    del raw["currency"]
    assert render(parse_order(raw), currency="€").find("TOTAL").text.endswith("59.90€")
    raw["sellingPoint"]["currency"] = {"isoCode": "GBP", "symbol": "£", "displayPattern": ""}
    assert render(parse_order(raw), currency="€").find("TOTAL").text.endswith("59.90 £")
    del raw["sellingPoint"]["currency"]
    assert render(parse_order(raw)).find("TOTAL").text.endswith("59.90")


def test_diners_only_where_people_eat_in() -> None:
    delivery = example("delivery")
    delivery["dinersNumber"] = 1
    assert "Diners" not in render(parse_order(delivery)).text
    for kind in ("reservation", "insitu", "inside"):
        raw = example(kind)
        raw["dinersNumber"] = 3
        assert render(parse_order(raw)).find("Diners: 3").height == 2


def test_kitchen_time_courier_and_driver() -> None:
    raw = example("delivery")
    raw["deliveries"][0]["deliveryAccountName"] = "Glovo"
    raw["deliveries"][0]["deliveryAccountPhone"] = "600000001"
    raw["deliveries"][0]["driver"] = {"name": "John", "lastname": "Doe", "phone": "+34600000009"}
    d = render(parse_order(raw), language="es")
    pickup = d.find("RECOGIDA: 06:55")
    assert pickup.width == 2 and pickup.height == 2 and pickup.bold
    assert d.find("Reparto: Glovo 600000001").bold
    assert "Repartidor: John Doe +34600000009" in d.text
    # A takeaway ready when it is collected says nothing more.
    assert "LISTO A LAS" not in render(parse_order(example("collection")), language="es").text
    raw = example("collection")
    raw["preparationTime"] = "2020-07-24T04:40:00+0000"
    assert render(parse_order(raw)).find("READY BY: 06:40").big


def test_cancel_slip_repeats_items_and_table_not_the_reason() -> None:
    raw = example("inside")
    raw["status"] = {"code": "cancelled_by_sp", "name": "Cancelled", "isFinalStatus": True}
    raw["cancellationComment"] = "Cancelled by the restaurant."
    at = datetime(2020, 7, 24, 5, 10, tzinfo=UTC)
    slip = decode(
        encode(cancel_slip(parse_order(raw), "cancelled_by_sp", TicketOptions(), at), settings())
    )
    assert slip.unexpected == []
    assert slip.text.count("Cancelled by the restaurant") == 1 and "Reason" not in slip.text
    assert slip.find("Table: Terraza · Mesa 10").big
    assert any(" x " in line.text and line.height == 2 for line in slip.lines)
    raw["cancellationComment"] = "No queda masa"
    es = cancel_slip(parse_order(raw), "cancelled_by_sp", TicketOptions(language="es"), at)
    assert "Motivo:" in es.plain_text() and "No queda masa" in es.plain_text()
    # Catalan, l·l included, prints in the printer's own characters (no "?").
    ca = decode(
        encode(
            cancel_slip(parse_order(raw), "cancelled_by_sp", TicketOptions(language="ca"), at),
            settings(),
        )
    )
    assert ca.unexpected == []
    assert ca.lines[0].text.strip() == "CANCEL·LADA"
    assert "Cancel·lada pel restaurant" in ca.text and "Motiu:" in ca.text


def test_updated_slip_in_every_language() -> None:
    raw = example("delivery")
    raw["executionTime"] = "2020-07-24T05:35:53+0000"
    order = parse_order(raw)
    at = datetime(2020, 7, 24, 5, 10, tzinfo=UTC)
    en = decode(
        encode(updated_slip(order, "2020-07-24T05:05:53+0000", TicketOptions(), at), settings())
    )
    assert en.unexpected == []
    assert en.lines[0].text.strip() == "UPDATED" and en.lines[0].invert
    assert en.find("New time: 07:35").big
    assert "Was: Fri 24/07/2020 07:05" in en.text
    es = updated_slip(order, "2020-07-24T05:05:53+0000", TicketOptions(language="es"), at)
    assert "ACTUALIZADO" in es.plain_text() and "Nueva hora: 07:35" in es.plain_text()
    ca = updated_slip(order, "2020-07-24T05:05:53+0000", TicketOptions(language="ca"), at)
    assert "ACTUALITZADA" in ca.plain_text() and "Hora nova: 07:35" in ca.plain_text()


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "more lines, see the page"),
        ("es", "líneas más, véase la página"),
        ("ca", "línies més, vegeu la pàgina"),
    ],
)
def test_total_cap_on_ticket_lines(language: str, words: str) -> None:
    raw = example("collection")
    line = {"label": "Menu", "quantity": 1, "totalAmount": 1.0, "comment": "sin sal"}
    raw["orderLines"] = [line] * 300
    raw["orderLines"][0] = {**line, "childrenOrderLines": [{"label": "x", "quantity": 2}] * 100}
    ticket = order_ticket(parse_order(raw), TicketOptions(language=language))
    lines = ticket.plain_text().splitlines()
    assert len(lines) < MAX_TICKET_LINES
    [more] = [text for text in lines if words in text]
    assert int(more.split()[0]) > 0
    assert "TOTAL" in ticket.plain_text()  # the totals still print after the cap
