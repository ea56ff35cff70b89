"""benchmarks/suite.py --pi: the daemon rows inside a small board's CPU and memory caps."""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import bench_pi  # noqa: E402
import httpx  # noqa: E402
from harness import DaemonProcess, SimulatorProcess  # noqa: E402
from suite_common import (  # noqa: E402
    CATCH_UP_ORDERS,
    WARM_STARTS,
    Row,
    Settings,
    fmt_s,
    latency_row,
    progress,
    verdict,
    write_demo_config,
)
from suite_daemon import CatchUpWatcher, pump  # noqa: E402

from edged.config import load_config  # noqa: E402

# -- a small board's budget (--pi) ------------------------------------------------------------

PI_PRINT_LIMIT = 300.0  # seconds the capped daemon gets to print the catch-up's tickets


@dataclass
class CappedDaemon:
    ready: list[float]
    catch_up: float
    stored: int
    printed: int
    tickets: int
    printed_after: float
    peak_bytes: int
    oom_kills: int
    throttled: float


def count_prints(path: Path) -> tuple[int, int]:
    """(order tickets printed, order tickets planned) in the daemon's journal."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        done, planned = conn.execute(
            "SELECT COUNT(*) FILTER (WHERE state = 'done'), COUNT(*) FROM print_jobs"
            " WHERE kind = 'order'"
        ).fetchone()
    finally:
        conn.close()
    return int(done), int(planned)


def capped_daemon(work: Path, group: bench_pi.CappedGroup) -> CappedDaemon:
    """``edged run`` (demo config) inside ``group``: start and catch-up of 200 waiting
    orders, their tickets, then four restarts on the full journal."""
    with SimulatorProcess(log_path=work / "simulator-pi.log") as sim:
        httpx.post(
            f"{sim.root}/_sim/orders", json={"count": CATCH_UP_ORDERS}, timeout=30
        ).raise_for_status()
        config_path = write_demo_config(work / "pi", sim)
        journal_path = Path(load_config(config_path).journal_path)
        printers = len(load_config(config_path).printers)
        with DaemonProcess(
            config_path, log_path=work / "daemon-pi.log", preexec_fn=group.join
        ) as daemon:
            watcher = CatchUpWatcher(journal_path, CATCH_UP_ORDERS)
            watcher.start()
            daemon.start(wait_ready=60)
            while watcher.is_alive():
                pump(daemon, 0.01)
            if watcher.done_at is None:
                raise RuntimeError(f"capped catch-up did not finish; log:\n{daemon.log_tail()}")
            assert daemon.ready_after is not None
            ready = [daemon.ready_after]
            catch_up = watcher.done_at - daemon.started_at
            printed, planned = 0, 0
            while time.monotonic() - daemon.started_at < PI_PRINT_LIMIT:
                printed, planned = count_prints(journal_path)
                if printed >= CATCH_UP_ORDERS * printers:
                    break
                pump(daemon, 0.5)
            printed_after = time.monotonic() - daemon.started_at
            conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
            try:
                (stored,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
            finally:
                conn.close()
            if daemon.stop() != 0:
                raise RuntimeError(f"capped edged did not stop cleanly:\n{daemon.log_tail()}")
            for _ in range(WARM_STARTS):
                daemon.start(wait_ready=60)
                assert daemon.ready_after is not None
                ready.append(daemon.ready_after)
                daemon.stop()
    return CappedDaemon(
        ready=ready,
        catch_up=catch_up,
        stored=int(stored),
        printed=printed,
        tickets=max(planned, CATCH_UP_ORDERS * printers),
        printed_after=printed_after,
        peak_bytes=group.peak_bytes(),
        oom_kills=group.oom_kills(),
        throttled=group.throttled_seconds(),
    )


def pi_run(settings: Settings, work: Path) -> tuple[list[Row], list[str]]:
    """The daemon rows under a small board's caps (benchmarks/bench_pi.py)."""
    rows: list[Row] = []
    notes: list[str] = []
    tag = f"edged-bench-pi-{os.getpid()}"
    buzzer_group = bench_pi.CappedGroup.create(tag + "-buzzer")
    try:
        rows.append(
            Row("caps (one cgroup per measured process)", buzzer_group.describe(), "—", "—")
        )
        progress(f"notification → buzzer, capped ({buzzer_group.describe()})")
        buzzer, in_panel = bench_pi.buzzer_in_group(buzzer_group, settings.buzzer_samples)
        buzzer_ooms = buzzer_group.oom_kills()
    finally:
        buzzer_group.remove()
    rows.append(latency_row("notification → buzzer on (active buzzer), capped", buzzer, 50))
    rows.append(latency_row("… of which in the panel (commit published → pin on)", in_panel, None))
    daemon_group = bench_pi.CappedGroup.create(tag + "-daemon")
    try:
        progress("edged run, capped: start, catch-up of 200 orders, tickets, restarts")
        d = capped_daemon(work, daemon_group)
    finally:
        daemon_group.remove()
    rows.append(
        Row(
            f"start-up to READY=1, capped ({len(d.ready)} starts)",
            f"median {fmt_s(statistics.median(d.ready))}, max {fmt_s(max(d.ready))} "
            f"(first start, empty journal: {fmt_s(d.ready[0])})",
            "max < 5 s",
            verdict(max(d.ready) < 5.0),
        )
    )
    rows.append(
        Row(
            f"catch-up of {CATCH_UP_ORDERS} active orders after start, capped",
            f"{fmt_s(d.catch_up)} from process start to the last order stored",
            "< 10 s",
            verdict(d.catch_up < 10.0),
        )
    )
    missed = (CATCH_UP_ORDERS - d.stored) + (settings.buzzer_samples - len(buzzer))
    rows.append(
        Row(
            "orders missed, capped",
            f"{missed} (journal {d.stored}/{CATCH_UP_ORDERS}; buzzer rang "
            f"{len(buzzer)}/{settings.buzzer_samples})",
            "0",
            verdict(missed == 0),
        )
    )
    ooms = d.oom_kills + buzzer_ooms
    rows.append(
        Row(
            "daemon memory peak (cgroup, page cache included) / OOM kills, capped",
            f"{d.peak_bytes / 2**20:.1f} MiB / {ooms}",
            f"no OOM under {bench_pi.MEMORY_MAX // 2**20} MiB",
            verdict(ooms == 0),
        )
    )
    rows.append(
        Row(
            "catch-up tickets printed, capped (two virtual printers, text + PNG)",
            f"{d.printed}/{d.tickets} within {fmt_s(d.printed_after)} of the start",
            "no aim",
            "—",
        )
    )
    notes.append(
        f"Under the caps the daemon's CPU was held back (throttled) for {d.throttled:.1f} s in "
        "all; the virtual printers' PNG drawing is most of it (a real printer gets ESC/POS "
        "bytes, no picture)."
    )
    return rows, notes
