"""The benchmarks cannot rot: ``benchmarks/run --quick`` runs to its end and fills every row.

Nothing here asserts on a timing (speed goals live in the benchmark's own table); the test
checks that the run completes, that the table has every row it promises and that each row
holds a measured value and a verdict. As root (CI) the card rows mount their loop device
and must be measured too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every row of the table, by the start of its measure column.
ROWS = (
    "notification → journal commit",
    "… of which in the daemon",
    "notification → journal vs 60 s polling",
    "notification → buzzer on",
    "… of which in the panel",
    "notification → first byte at TCP printer",
    "notification → MQTT message at subscriber",
    "new orders into the journal in bursts of 50",
    "… one after another",
    "journal size per 1,000 orders",
    "bytes written per new order",
    "bytes written per idle hour",
    "ticket render",
    "raster ticket at 576 dots",
    "catch-up of 200 active orders after start",
    "daemon RSS, peak / idle",
    "idle CPU over",
    "start-up to READY=1",
)
CARD_ROWS = ("bytes written per new order", "bytes written per idle hour")
VERDICTS = {"pass", "**miss**", "—"}


def table_rows(text: str) -> dict[str, list[str]]:
    """The markdown table's body rows, by their measure column."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith(("| measure ", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def find(rows: dict[str, list[str]], start: str) -> list[str]:
    matches = [cells for measure, cells in rows.items() if measure.startswith(start)]
    assert len(matches) == 1, f"expected one row starting {start!r}, got {list(rows)}"
    return matches[0]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_completes_and_fills_every_row(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
        check=False,
    )
    assert run.returncode == 0, f"benchmarks/run failed:\n{run.stderr[-4000:]}"
    text = output.read_text(encoding="utf-8")
    assert text.startswith("Machine: "), text[:200]
    assert re.search(r"^edged \S+, \d{4}-\d\d-\d\d, `benchmarks/run --quick`", text, re.M)
    rows = table_rows(text)
    assert len(rows) == len(ROWS), sorted(rows)
    as_root = os.geteuid() == 0
    for start in ROWS:
        measure, result, aim, verdict = find(rows, start)
        if start in CARD_ROWS and not as_root:
            # Without root there is no loop device: the row says so instead of a number.
            assert result.startswith("not measured"), (measure, result)
            continue
        assert re.search(r"\d", result), (measure, result)
        assert "nan" not in result.lower().split(), (measure, result)
        assert aim, measure
        # A verdict, or the polling row's comparison ("×8,311 faster ...").
        assert verdict in VERDICTS or re.match(r"×[\d,]+ faster", verdict), (measure, verdict)
    # What printed on stdout is the same table the file holds.
    assert text.strip() in run.stdout
