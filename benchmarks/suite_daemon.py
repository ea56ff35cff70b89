"""benchmarks/suite.py's rows of the daemon as a process (catch-up, RSS, CPU, start-up) and
of the card (bytes per order, idle writes).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import bench_storage  # noqa: E402
import httpx  # noqa: E402
from harness import DaemonProcess, SimulatorProcess  # noqa: E402
from suite_common import (  # noqa: E402
    BYTES_PER_ORDER_AIM,
    BYTES_PER_ORDER_BEFORE,
    CATCH_UP_ORDERS,
    WARM_STARTS,
    Row,
    Settings,
    progress,
    verdict,
    write_demo_config,
)

from edged.config import load_config  # noqa: E402

# -- the daemon as a process ------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def bare_python_rss_kib() -> int:
    """VmRSS of a bare interpreter (the same one) that has imported asyncio."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "for line in open('/proc/self/status'):\n"
            "    if line.startswith('VmRSS:'): sys.stdout.write(line.split()[1])\n",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout)


def pump(daemon: DaemonProcess, seconds: float) -> None:
    """Wait while reading the daemon's sd_notify messages, as systemd does.

    The daemon sends STATUS= lines with a blocking send on its event loop: a notify socket
    nobody reads fills up and stalls it. ``wait_for`` of a message already received is the
    harness's public way to read what is pending.
    """
    deadline = time.monotonic() + seconds
    while True:
        daemon.wait_for("READY=1", 5.0)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.01, left))


class CatchUpWatcher(threading.Thread):
    """Polls the daemon's journal file (every 2 ms, its own read-only connection) until it
    holds ``want`` orders; ``done_at`` is the monotonic time it first saw them."""

    def __init__(self, path: Path, want: int, limit: float = 120.0) -> None:
        super().__init__(name="catch-up-watcher", daemon=True)
        self.path = path
        self.want = want
        self.limit = limit
        self.first_at: float | None = None  # when the first order was seen
        self.done_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        conn: sqlite3.Connection | None = None
        try:
            while time.monotonic() < deadline:
                try:
                    if conn is None and self.path.exists():
                        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
                    if conn is not None:
                        (count,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
                        if count and self.first_at is None:
                            self.first_at = time.monotonic()
                        if count >= self.want:
                            self.done_at = time.monotonic()
                            return
                except sqlite3.Error:
                    pass  # not created or not migrated yet
                time.sleep(0.002)
        finally:
            if conn is not None:
                conn.close()


def wait_printed(daemon: DaemonProcess, path: Path, limit: float) -> float:
    """Until no print job is queued or sending and no event was added for 1 s; returns
    the seconds from the daemon's start to its last event."""
    start = time.monotonic()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        last: tuple[int, int] | None = None
        stable_since = time.monotonic()
        while time.monotonic() - start < limit:
            pending, events = conn.execute(
                "SELECT (SELECT COUNT(*) FROM print_jobs WHERE state IN ('queued','sending')),"
                " (SELECT COALESCE(MAX(seq), 0) FROM events)"
            ).fetchone()
            if (pending, events) != last:
                last, stable_since = (pending, events), time.monotonic()
            elif pending == 0 and time.monotonic() - stable_since >= 1.0:
                return stable_since - daemon.started_at
            pump(daemon, 0.05)
    finally:
        conn.close()
    raise TimeoutError("the daemon did not finish printing")


def count_open(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM orders WHERE is_final = 0").fetchone()
    finally:
        conn.close()
    return int(count)


@dataclass
class DaemonNumbers:
    catch_up_from_start: float
    catch_up_after_ready: float
    catch_up_span: float  # from the first order stored to the last
    printed_after: float
    ready: list[float]
    peak_rss_kib: int
    idle_rss_kib: int
    warm_peak_rss_kib: int  # the highest peak of the restarts (no setup code to hash)
    idle_cpu_percent: float
    idle_seconds: float


def daemon_numbers(work: Path, idle_seconds: float) -> DaemonNumbers:
    """``edged run`` as a child process with the demo's config, against a simulator process
    that already holds 200 active orders: catch-up, READY, RSS and idle CPU."""
    with SimulatorProcess(log_path=work / "simulator.log") as sim:
        response = httpx.post(
            f"{sim.root}/_sim/orders", json={"count": CATCH_UP_ORDERS}, timeout=30
        )
        response.raise_for_status()
        order_ids = [int(order["id"]) for order in response.json()]
        config_path = write_demo_config(work / "daemon", sim)
        journal_path = Path(load_config(config_path).journal_path)
        with DaemonProcess(config_path, log_path=work / "daemon.log") as daemon:
            watcher = CatchUpWatcher(journal_path, CATCH_UP_ORDERS)
            watcher.start()
            daemon.start(wait_ready=30)
            while watcher.is_alive():
                pump(daemon, 0.01)
            if watcher.done_at is None:
                raise RuntimeError(f"catch-up did not finish; log:\n{daemon.log_tail()}")
            assert daemon.ready_after is not None
            ready = [daemon.ready_after]
            catch_up = watcher.done_at - daemon.started_at
            span = watcher.done_at - (watcher.first_at or watcher.done_at)
            printed = wait_printed(daemon, journal_path, 120.0)
            progress(f"caught up in {catch_up:.2f} s; idle window of {idle_seconds:g} s")
            # Idle means nothing waits: the orders are collected (Sinqro pushes the status).
            with httpx.Client(timeout=10) as http:
                for order_id in order_ids:
                    http.post(
                        f"{sim.root}/_sim/orders/{order_id}/status", json={"code": "finished"}
                    ).raise_for_status()
                    pump(daemon, 0.0)
            wait_printed(daemon, journal_path, 60.0)
            open_orders = count_open(journal_path)
            if open_orders:
                raise RuntimeError(f"{open_orders} orders still open before the idle window")
            pump(daemon, 2.0)
            cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
            pump(daemon, idle_seconds)
            cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
            idle_rss = proc_status_kib(daemon.pid, "VmRSS")
            peak_rss = daemon.peak_rss_kib()
            if daemon.stop() != 0:
                raise RuntimeError(f"edged did not stop cleanly; log:\n{daemon.log_tail()}")
            warm_peak = 0
            for _ in range(WARM_STARTS):  # the journal now holds 200 orders
                daemon.start(wait_ready=30)
                assert daemon.ready_after is not None
                ready.append(daemon.ready_after)
                pump(daemon, 2.0)  # its reconcile of the 200 finished orders
                warm_peak = max(warm_peak, daemon.peak_rss_kib())
                daemon.stop()
    return DaemonNumbers(
        catch_up_from_start=catch_up,
        catch_up_after_ready=catch_up - ready[0],
        catch_up_span=span,
        printed_after=printed,
        ready=ready,
        peak_rss_kib=peak_rss,
        idle_rss_kib=idle_rss,
        warm_peak_rss_kib=warm_peak,
        idle_cpu_percent=100 * (cpu1 - cpu0) / (t1 - t0),
        idle_seconds=t1 - t0,
    )


# -- the card ---------------------------------------------------------------------------------

CARD_PER_ORDER = "bytes written per new order (one printer, MQTT on), at the block device"
CARD_PER_ORDER_AIM = f"≤ {BYTES_PER_ORDER_AIM / 1024:.0f} KiB"
CARD_IDLE = "bytes written per idle hour, 20 open orders, at the block device"


def card_rows(settings: Settings, work: Path) -> list[Row]:
    """Bytes at the card's block device: per order on its whole way, and while idle."""
    per_order, payload = bench_storage.bytes_per_order(work / "card-orders", settings.card_orders)
    written, cycles, took = bench_storage.idle_bytes(work / "card-idle", settings.card_idle)
    per_hour = written / max(cycles, 1) * 3600 / 60  # a status refresh every 60 s
    return [
        Row(
            CARD_PER_ORDER,
            f"{per_order / 1024:,.1f} KiB per order (its payload: {payload / 1024:.1f} KiB; "
            f"n={settings.card_orders})",
            f"{CARD_PER_ORDER_AIM} (before: {BYTES_PER_ORDER_BEFORE / 1024:.0f} KiB at "
            "97d525b, 67 KiB at 771d2fb)",
            verdict(per_order <= BYTES_PER_ORDER_AIM),
        ),
        Row(
            CARD_IDLE,
            f"{per_hour:,.0f} B/h ({written:,} B over {cycles} status refreshes in {took:.0f} s)",
            "0 B",
            verdict(written == 0),
        ),
    ]
