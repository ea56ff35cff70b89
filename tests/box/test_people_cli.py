"""What restaurant people read outside the page: the command line by order code with local
times, the setup ticket (address as text and QR, code in large type) and the printer
search's parsing of avahi's answers."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edged import cli
from edged.configtools import dump_toml
from edged.journal.store import Journal
from edged.printing import discover
from edged.printing.model import Qr, Text
from edged.printing.slips import text_ticket
from edged.printing.ticket import TicketOptions
from edged.sinqro.models import parse_order

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"


def write_box(tmp_path: Path, language: str) -> tuple[Path, dict[str, object]]:
    raw = json.loads(EXAMPLES.read_text("utf-8"))["collection"]
    raw["status"] = {"code": "waiting_sp_validation", "name": "Esperando validación"}
    raw["isFinalStatus"] = False
    config = tmp_path / "edged.toml"
    config.write_text(
        dump_toml(
            {
                "box": {
                    "state_dir": str(tmp_path),
                    "language": language,
                    "timezone": "Europe/Madrid",
                },
                "sinqro": {"server_token": "t", "user_token": "u", "selling_point_id": 1},
            }
        )
    )

    async def store() -> None:
        journal = await Journal.open(tmp_path / "edged.sqlite3")
        try:
            await journal.upsert_order(parse_order(raw))
        finally:
            await journal.close()

    asyncio.run(store())
    return config, raw


@pytest.mark.parametrize(
    ("language", "header", "kind", "status"),
    [
        (
            "es",
            ["ID", "CÓDIGO", "TIPO", "ESTADO", "PREVISTO", "RECIBIDO"],
            "Para recoger",
            "Esperando su decisión",
        ),
        (
            "ca",
            ["ID", "CODI", "TIPUS", "ESTAT", "PREVISTA", "REBUDA"],
            "Per emportar",
            "Espera la vostra decisió",
        ),
    ],
)
def test_orders_has_a_header_and_the_selling_points_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    language: str,
    header: list[str],
    kind: str,
    status: str,
) -> None:
    config, raw = write_box(tmp_path, language)
    assert cli.main(["orders", "-c", str(config)]) == 0
    first, row = capsys.readouterr().out.splitlines()
    assert first.split() == header
    assert raw["marketOrderCode"] in row and kind in row
    assert status in row

    async def seen() -> float:
        journal = await Journal.open(tmp_path / "edged.sqlite3")
        try:
            order = await journal.get_order(int(raw["id"]))
            assert order is not None
            return order.first_seen
        finally:
            await journal.close()

    local = datetime.fromtimestamp(asyncio.run(seen()), ZoneInfo("Europe/Madrid"))
    assert row.endswith(local.strftime("%d/%m/%Y %H:%M"))


def test_accept_takes_an_order_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, raw = write_box(tmp_path, "en")
    code = str(raw["marketOrderCode"]).lower()  # any case
    assert cli.main(["accept", code, "--wait", "0", "-c", str(config)]) == 0
    assert f"Accepting order {raw['marketOrderCode']}: queued" in capsys.readouterr().out
    # A second decision while the first waits in the outbox is refused, with its code.
    assert (
        cli.main(["accept", str(raw["id"]), "--delay", "15", "--wait", "0", "-c", str(config)]) == 3
    )
    assert "DECISION_QUEUED" in capsys.readouterr().err
    assert cli.main(["accept", "NOPE42", "--wait", "0", "-c", str(config)]) == 3
    assert "no order with id or code NOPE42" in capsys.readouterr().err


def test_setup_ticket_prints_the_address_as_qr_and_the_code_large() -> None:
    lines = ["Pizzeria", "SETUP", "", "http://edged-1a2b.local:8080/", "", "ABCD-EFGH"]
    ticket = text_ticket(lines, TicketOptions(columns=42), qr=lines[3], big=[5])
    texts = [e for e in ticket.elements if isinstance(e, Text)]
    [code] = [t for t in texts if "ABCD-EFGH" in t.text]
    assert code.width == 2 and code.height == 2
    assert [e.data for e in ticket.elements if isinstance(e, Qr)] == [lines[3]]


AVAHI = """\
+;eth0;IPv4;EPSON TM-T20III;_pdl-datastream._tcp;local
=;eth0;IPv4;EPSON\\032TM-T20III;_pdl-datastream._tcp;local;tm.local;192.168.1.50;9100;"ty=x"
=;eth0;IPv4;EPSON\\032TM-T20III;_printer._tcp;local;tm.local;192.168.1.50;515;
=;eth0;IPv4;Star\\032TSP143;_printer._tcp;local;star.local;192.168.1.60;515;
=;eth0;IPv6;Star\\032TSP143;_printer._tcp;local;star.local;fe80::1;515;
garbage line
"""


def test_network_printers_from_avahi_output() -> None:
    found = discover.parse_avahi(AVAHI)
    assert [(f.name, f.address) for f in found] == [
        ("epson-tm-t20iii", "tcp://192.168.1.50:9100"),
        ("star-tsp143", "tcp://192.168.1.60:9100"),
    ]


def avahi_escape(name: str) -> str:
    """A label as ``avahi-browse --parsable`` writes it: every byte outside
    ``[A-Za-z0-9_-]`` of its UTF-8 as ``\\DDD`` in decimal."""
    keep = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    return "".join(chr(b) if b in keep else f"\\{b:03d}" for b in name.encode())


@pytest.mark.parametrize(
    ("advertised", "suggested"),
    [
        ("Cocina Señor", "cocina-señor"),  # Spanish
        ("Impressora Cuina L·L", "impressora-cuina-l-l"),  # Catalan: the middle dot
        ("Κουζίνα Εκτυπωτής", "κουζίνα-εκτυπωτής"),  # Greek
        ("厨房打印机 2", "厨房打印机-2"),  # Chinese
        ("Bar.Terraza\\1", "bar-terraza-1"),  # a dot and a backslash in the name
    ],
)
def test_network_printer_names_are_decoded_as_utf8(advertised: str, suggested: str) -> None:
    line = (
        f"=;eth0;IPv4;{avahi_escape(advertised)};_pdl-datastream._tcp;local;p.local;10.0.0.9;9100;"
    )
    (found,) = discover.parse_avahi(line)
    assert found.name == suggested
    assert found.address == "tcp://10.0.0.9:9100"


def test_the_printer_search_says_when_avahi_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    printers, problem = asyncio.run(discover.network_printers())
    assert printers == [] and problem == "avahi-browse is not installed"


def test_local_printers_are_listed_from_dev(tmp_path: Path) -> None:
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "lp0").touch()
    (tmp_path / "ttyUSB0").touch()
    found = discover.local_devices(str(tmp_path))
    assert [(f.via, f.address) for f in found] == [
        ("usb", f"file://{tmp_path}/usb/lp0"),
        ("serial", f"serial://{tmp_path}/ttyUSB0?baudrate=19200"),
    ]


def test_both_buttons_held_prove_only_the_browser_that_asked_within_its_minute() -> None:
    from edged.web.access import PRESS_WINDOW, PressProof

    now = [1000.0]
    proof = PressProof(clock=lambda: now[0])
    assert not proof.press()  # no window open: the press is an order decision
    proof.start("browser-a")
    assert proof.state("browser-a")[0] == "waiting"
    assert proof.start("browser-b") is None, "another browser cannot take the window over"
    assert proof.busy_for() == PRESS_WINDOW
    assert proof.state("browser-b") == ("idle", 0.0, None)
    now[0] += PRESS_WINDOW + 1
    assert not proof.press()  # too late
    proof.start("browser-a")
    now[0] += 5
    # A press that went to an order meanwhile is told to the page, and proves nothing.
    proof.went_elsewhere("accepted", "OP4ES5")
    assert proof.state("browser-a")[2] == {"result": "accepted", "code": "OP4ES5"}
    assert proof.state("browser-a")[0] == "waiting"
    assert proof.press()
    assert not proof.press()  # one press proves once
    assert proof.state("browser-a") == ("proven", 0.0, None)
    assert not proof.use("browser-b")
    assert proof.use("browser-a")
    assert not proof.use("browser-a")  # spent with the password it set
