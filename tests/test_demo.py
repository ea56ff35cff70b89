"""`edged demo` as a person runs it: a real process, its terminal lines read as they come."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

EDGED = str(Path(sys.executable).with_name("edged"))  # the venv's console script
LINE = re.compile(r"^\s+(\d\d:\d\d)\s+NEW\s+order (\d+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clock(zone: str) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).strftime("%H:%M")


def test_demo_terminal_shows_the_selling_points_time(tmp_path: Path) -> None:
    """The terminal's event lines are in the selling point's time zone (Europe/Madrid in
    the simulator), like the page and the tickets: the box learns that zone from Sinqro
    after the terminal view started, so the view must not fix it at start."""
    madrid = {_clock("Europe/Madrid")}
    process = subprocess.Popen(
        [EDGED, "demo", "--state-dir", str(tmp_path / "demo"),
         "--web-port", str(_free_port()), "--orders-every", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        match = None
        while match is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = LINE.match(line)
        assert match is not None, "no NEW line:\n" + "".join(seen[-40:])
        madrid.add(_clock("Europe/Madrid"))
        shown = match.group(1)
        # Madrid is one or two hours ahead of UTC all year round: a UTC clock cannot pass.
        assert shown in madrid, f"{shown} is not Madrid time ({sorted(madrid)})"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
