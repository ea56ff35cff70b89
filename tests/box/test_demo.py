"""`edged demo` as a person runs it: a real process, its terminal lines read as they come;
and the terminal's lines themselves (event sentences, log lines above the status line)."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ports import free_port

from edged.demo import describe
from edged.i18n import Locale
from edged.i18n.words import status_word
from edged.journal import events as ev
from edged.virtual.panel import LineStream, Terminal

EDGED = str(Path(sys.executable).with_name("edged"))  # the venv's console script
LINE = re.compile(r"^\s+(\d\d:\d\d)\s+NEW\s+order ([A-Z0-9]+): ")


def _clock(zone: str) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).strftime("%H:%M")


def test_demo_terminal_shows_the_selling_points_time(tmp_path: Path) -> None:
    """The terminal's event lines are in the selling point's time zone (Europe/Madrid in
    the simulator), like the page and the tickets: the box learns that zone from Sinqro
    after the terminal view started, so the view must not fix it at start. Orders are
    named by code; the banner names the simulator and a command that runs as shown."""
    madrid = {_clock("Europe/Madrid")}
    # A language saved on the page earlier: the one asked for on the command line wins.
    (tmp_path / "demo").mkdir()
    saved = tmp_path / "demo" / "settings.toml"
    saved.write_text('[box]\nlanguage = "es"\n', encoding="utf-8")
    process = subprocess.Popen(
        [EDGED, "demo", "--state-dir", "demo", "--language", "en",
         "--web-port", str(free_port()), "--orders-every", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        match = None
        banner: dict[str, str] = {}
        while (match is None or "try" not in banner) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = match or LINE.match(line)
            name, colon, value = line.strip().partition(":")
            if colon and name in ("simulator", "try"):
                banner[name] = value.strip()
        assert match is not None, "no NEW line:\n" + "".join(seen[-40:])
        madrid.add(_clock("Europe/Madrid"))
        shown = match.group(1)
        # Madrid is one or two hours ahead of UTC all year round: a UTC clock cannot pass.
        assert shown in madrid, f"{shown} is not Madrid time ({sorted(madrid)})"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/?\S*", banner["simulator"]), banner
        assert banner["try"].endswith(" orders -c demo/edged.toml"), banner
        tried = subprocess.run(
            ["bash", "-c", banner["try"]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert tried.returncode == 0, tried.stderr
        assert match.group(2) in tried.stdout  # the order the terminal named, by its code
        assert tomllib.loads(saved.read_text(encoding="utf-8"))["box"]["language"] == "en"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("language", "accepted", "refused"),
    [
        ("en", "SENT     order VLV3CW accepted, from the command line",
         "REFUSED  order VLV3CW not cancelled: ORDER_FINAL"),
        ("es", "ENVIADO  pedido VLV3CW aceptado, desde la línea de comandos",
         "RECHAZADO pedido VLV3CW no cancelado: ORDER_FINAL"),
        ("ca", "ENVIAT   comanda VLV3CW acceptada, des de la línia d'ordres",
         "REBUTJAT comanda VLV3CW no cancel·lada: ORDER_FINAL"),
    ],
)  # fmt: skip
def test_decisions_read_as_sentences(language: str, accepted: str, refused: str) -> None:
    locale = Locale(language)
    done = {"kind": "accept", "source": "cli", "status": "accepted"}
    assert describe(ev.COMMAND_DONE, "VLV3CW", done, locale) == accepted
    failed = {"kind": "cancel", "source": "web", "code": "ORDER_FINAL"}
    assert describe(ev.COMMAND_FAILED, "VLV3CW", failed, locale) == refused
    moved = {"kind": "status", "source": "panel", "status": "ready"}
    line = describe(ev.COMMAND_DONE, "VLV3CW", moved, locale)
    assert "VLV3CW" in line and status_word("ready", locale) in line
    assert "ready" not in line and "panel" not in line  # words, not codes


def test_lines_and_log_records_print_above_the_status_line() -> None:
    out = io.StringIO()
    terminal = Terminal(out, live=True)
    terminal.show("LED ● order waiting")
    terminal.line("  14:05  NEW      order VLV3CW: Takeaway")
    logger = logging.getLogger("test-demo-terminal")
    handler = logging.StreamHandler(LineStream(terminal))
    logger.addHandler(handler)
    try:
        logger.warning("printer kitchen: offline")
    finally:
        logger.removeHandler(handler)
    terminal.show("LED ○ online")
    # What a terminal ends up showing: each \r\x1b[2K erases the line it is on.
    screen: list[str] = []
    for row in out.getvalue().split("\n"):
        screen.append(row.rpartition(Terminal.CLEAR)[2])
    assert screen == [
        "  14:05  NEW      order VLV3CW: Takeaway",
        "printer kitchen: offline",
        "LED ○ online",
    ]


def test_the_demo_moves_terminal_log_records_above_the_status_line_and_back() -> None:
    from edged.demo import _logs_above

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    out = io.StringIO()
    terminal = Terminal(out, live=True)
    terminal.show("LED ○ online")
    try:
        with _logs_above(terminal):
            logging.getLogger("edged.test").warning("printer kitchen: offline")
        assert handler.stream is sys.stderr  # as logging was set up, afterwards
    finally:
        root.handlers[:] = saved
    rows = [row.rpartition(Terminal.CLEAR)[2] for row in out.getvalue().split("\n")]
    assert rows == ["printer kitchen: offline", "LED ○ online"]
