"""The command line as scripts and people use it: real processes on real journal files.

A closed pipe ends it quietly, exit codes tell usage from refusal from "not there",
check-config lists every problem with its line, answers follow the box's language (or
``--language``), and a date reads the same on the board, the command line and the ticket.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edged.commandline.status import human
from edged.config import load_config
from edged.configtools import dump_toml
from edged.i18n import Locale
from edged.journal.store import Journal, Tx
from edged.printing.ticket import TicketOptions, order_ticket
from edged.sinqro.models import parse_order
from edged.web.board import order_json

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"
EDGED = str(Path(sys.executable).with_name("edged"))  # the venv's console script


def example(order_id: int, code: str, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(json.loads(EXAMPLES.read_text("utf-8"))["collection"])
    raw.update(
        id=order_id,
        marketOrderCode=code,
        status={"code": "waiting_sp_validation", "name": "Esperando validación"},
        isFinalStatus=False,
    )
    raw.update(changes)
    return raw


def make_box(
    tmp_path: Path,
    *,
    language: str = "en",
    timezone: str = "Europe/Madrid",
    orders: list[dict[str, Any]] | None = None,
) -> Path:
    """A box config and its journal holding ``orders`` (one example order by default)."""
    config = tmp_path / "edged.toml"
    config.write_text(
        dump_toml(
            {
                "box": {"state_dir": str(tmp_path), "language": language, "timezone": timezone},
                "sinqro": {"server_token": "t", "user_token": "u", "selling_point_id": 1},
                "web": {"enabled": False},
            }
        )
    )
    parsed = [parse_order(raw) for raw in (orders or [example(422429, "VLV3CW")])]

    async def store() -> None:
        journal = await Journal.open(tmp_path / "edged.sqlite3")
        try:

            def run(tx: Tx) -> None:
                for order in parsed:
                    tx.upsert_order(order)

            await journal.transaction(run)
        finally:
            await journal.close()

    asyncio.run(store())
    return config


def edged(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGED, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_orders_into_head_ends_quietly(tmp_path: Path) -> None:
    # Far more than a pipe holds (64 KiB), so edged is still writing when head leaves.
    config = make_box(tmp_path, orders=[example(500000 + i, f"C{i:05d}") for i in range(1500)])
    for listing in ("orders", "orders --json"):
        run = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {EDGED} {listing} -c {config} | head -1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
        assert run.stdout.count("\n") == 1


def test_check_config_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "edged.toml"
    bad.write_text(
        "[box]\n"
        'langauge = "es"\n'  # line 2: a typo in a key
        "\n"
        "[sinqro]\n"
        'server_token = "t"\n'
        "poll_interval = 0\n"  # line 6: out of range
        "\n"
        "[[printers]]\n"
        'name = "kitchen"\n'
        'uri = "virtual://k"\n'
        "[[printers]]\n"
        'name = "bar"\n'
        'uri = "virtual://b"\n'
        'layuot = "full"\n',  # line 14: a typo in the second printer
        encoding="utf-8",
    )
    run = edged("check-config", str(bad))
    assert run.returncode == 78, run.stderr
    lines = run.stderr.splitlines()
    assert lines[:3] == [
        f"{bad}:2: box.langauge: unknown key (known keys here: {lines[0].split('here: ')[1]}",
        f"{bad}:6: sinqro.poll_interval: must be at least 1, got 0.0",
        f"{bad}:14: printers[1].layuot: {lines[2].split('layuot: ')[1]}",
    ]
    assert "unknown key" in lines[2]
    assert lines[3] == "problems found: 3"
    assert "Traceback" not in run.stderr
    spanish = edged("check-config", "--language", "es", str(bad))
    assert spanish.stderr.splitlines()[-1] == "problemas encontrados: 3"


def test_exit_codes_tell_usage_refusal_absence_and_bad_config(tmp_path: Path) -> None:
    config = make_box(tmp_path)
    assert edged("set-status", "VLV3CW", "cooking", "-c", str(config)).returncode == 2
    usage = edged("set-status", "--help")
    assert usage.returncode == 0
    words = " ".join(usage.stdout.split())  # argparse wraps the epilog
    assert "preparation, ready" in words and "78 bad configuration" in words
    refused = edged("accept", "NOPE42", "--wait", "0", "-c", str(config))
    assert refused.returncode == 3 and "(UNKNOWN_ORDER)" in refused.stderr
    assert edged("reprint", "VLV3CW", "--printer", "nope", "-c", str(config)).returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "edged.toml").write_text(
        config.read_text().replace(str(tmp_path), str(empty)), encoding="utf-8"
    )
    absent = edged("orders", "-c", str(empty / "edged.toml"))
    assert absent.returncode == 69 and "no journal at" in absent.stderr
    (empty / "edged.sqlite3").write_text("not a database", encoding="utf-8")
    damaged = edged("orders", "-c", str(empty / "edged.toml"))
    assert damaged.returncode == 69 and "cannot open the journal" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert (empty / "edged.sqlite3").read_text(encoding="utf-8") == "not a database"
    (empty / "edged.toml").write_text("[sinqro]\nbogus = 1\n", encoding="utf-8")
    assert edged("orders", "-c", str(empty / "edged.toml")).returncode == 78
    # The daemon is not running (web off here): "unavailable", with the counts all the same.
    status = edged("status", "--json", "-c", str(config))
    assert status.returncode == 69
    assert json.loads(status.stdout)["journal"]["orders"] == 1


def test_answers_are_in_the_boxs_language_or_the_one_asked_for(tmp_path: Path) -> None:
    config = make_box(tmp_path, language="es")
    accepted = edged("accept", "vlv3cw", "--wait", "0", "-c", str(config))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("Aceptar el pedido VLV3CW: en cola")
    again = edged("accept", "VLV3CW", "--wait", "0", "-c", str(config))
    assert again.returncode == 3
    assert again.stderr.startswith("Rechazado: este pedido ya tiene una decisión")
    catalan = edged("accept", "VLV3CW", "--language", "ca", "--wait", "0", "-c", str(config))
    assert catalan.stderr.startswith("Rebutjat:")
    english = edged("status", "--language", "en", "-c", str(config))
    assert "waiting for you: 1" in english.stdout
    spanish = edged("status", "-c", str(config))
    assert "esperando su decisión: 1" in spanish.stdout
    assert "servicio: no responde" in spanish.stdout


def test_reprint_takes_the_order_code(tmp_path: Path) -> None:
    config = make_box(tmp_path)
    run = edged("reprint", "#vlv3cw", "-c", str(config))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Reprint of order VLV3CW requested"

    async def requests() -> list[tuple[str, int | None]]:
        journal = await Journal.open(tmp_path / "edged.sqlite3")
        try:
            return [(e.kind, e.order_id) for e in await journal.read_events(0)]
        finally:
            await journal.close()

    assert ("print.requested", 422429) in asyncio.run(requests())


def test_status_lists_incidents_one_a_line_in_the_selling_points_time() -> None:
    config = load_config_text("[sinqro]\nserver_token = 't'\n")
    health = {
        "version": "1.0",
        "link": "offline",
        "paired": True,
        "journal": "ok",
        "printers": {"kitchen": "paper_out"},
        "parts": {"web": "running", "mqtt": "failed"},
        "incidents": [
            {"incident": "a", "rule": "link_down", "title": "Sinqro unreachable", "since": 1.8e9},
            {"incident": "b", "rule": "printer", "title": "kitchen: out of paper", "since": 1.8e9},
        ],
    }
    lines = human(config, {"orders": 2}, health, Locale("en", "Europe/Madrid"))
    assert "  link to Sinqro: offline" in lines
    assert "  printers: kitchen out of paper" in lines
    assert "  parts not running: mqtt (failed)" in lines
    # 1.8e9 is 2027-01-15 08:00 UTC: 09:00 in Madrid, day first.
    assert lines[-3:] == [
        "  open incidents (2):",
        "    15/01/2027 09:00  Sinqro unreachable",
        "    15/01/2027 09:00  kitchen: out of paper",
    ]


def load_config_text(text: str) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "edged.toml"
        path.write_text(text + f"[box]\nstate_dir = '{folder}'\n", encoding="utf-8")
        return load_config(path)


@pytest.mark.parametrize(
    ("language", "timezone", "due"),
    [
        ("en", "Europe/London", "05/03/2026 12:30"),
        ("en", "America/New_York", "03/05/2026 07:30"),
        ("es", "Europe/Madrid", "05/03/2026 13:30"),
        ("ca", "Europe/Madrid", "05/03/2026 13:30"),
    ],
)
def test_a_date_reads_the_same_on_board_cli_and_ticket(
    tmp_path: Path, language: str, timezone: str, due: str
) -> None:
    # 5 March: a day and month that could be swapped, so the order shows.
    raw = example(
        422429,
        "VLV3CW",
        executionTime="2026-03-05T12:30:00+0000",
        # Ready when it is due: the board counts to the kitchen's time, here the same one.
        preparationTime="2026-03-05T12:30:00+0000",
        sellingPoint={"name": "SuperPizza", "timezone": timezone},
    )
    config = make_box(tmp_path, language=language, timezone=timezone, orders=[raw])

    async def stored() -> Any:
        journal = await Journal.open(tmp_path / "edged.sqlite3")
        try:
            return await journal.get_order(422429)
        finally:
            await journal.close()

    order = asyncio.run(stored())
    # The board: what /api sends the page, labels made by the server.
    card = order_json(order, Locale(language, timezone))
    assert f"{card['due_day']} {card['due_text']}" == due
    # The command line: the DUE column, and --json.
    listed = edged("orders", "-c", str(config))
    assert listed.returncode == 0, listed.stderr
    assert due in listed.stdout.splitlines()[1]
    assert json.loads(edged("orders", "--json", "-c", str(config)).stdout)[0]["due_text"] == due
    # The ticket: the "For" line, with the weekday before the same date and time.
    ticket = order_ticket(parse_order(order.payload), TicketOptions(language=language)).plain_text()
    [line] = [text for text in ticket.splitlines() if due in text]
    assert line.endswith(f" {due}")


def test_the_cli_entry_points_both_work(tmp_path: Path) -> None:
    module = subprocess.run(
        [sys.executable, "-m", "edged.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    script = edged("--version")
    assert module.returncode == script.returncode == 0
    assert module.stdout == script.stdout and module.stdout.startswith("edged ")


def test_every_option_has_help_and_every_command_lists_the_exit_codes() -> None:
    import argparse

    from edged.cli import build_parser

    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        assert "78 bad configuration" in (command.epilog or ""), name
        for action in command._actions:
            assert action.help, f"edged {name} {action.dest}: no help"
            if action.choices:  # the valid values are listed, not only checked
                assert "%(choices)s" in action.help or action.metavar is None, name
