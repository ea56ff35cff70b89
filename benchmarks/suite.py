"""Every edged benchmark in one run: one markdown table, also written to benchmarks/results.md.

Run it with ``benchmarks/run`` (or ``make bench``); ``--quick`` shortens the idle-CPU window
to 10 s and takes fewer samples, for trying things out. benchmarks/README.md explains each
row: what exactly is measured, from where to where.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import bench_mqtt  # noqa: E402
import bench_panel  # noqa: E402
import bench_pi  # noqa: E402
import bench_printing  # noqa: E402
import bench_storage  # noqa: E402
import httpx  # noqa: E402
from harness import DaemonProcess, SimulatorProcess, free_port  # noqa: E402
from loopfs import LoopFsUnavailable  # noqa: E402

from edged.app import App, Extras  # noqa: E402
from edged.config import load_config  # noqa: E402
from edged.demo import demo_config  # noqa: E402
from edged.flow.desk import OrderDesk  # noqa: E402
from edged.flow.settings import OrdersConfig  # noqa: E402
from edged.journal import events as ev  # noqa: E402
from edged.journal.events import Event  # noqa: E402
from edged.journal.store import Journal  # noqa: E402
from edged.simulator.cloud import default_selling_points  # noqa: E402
from edged.simulator.generate import build_order, notification_example  # noqa: E402
from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN  # noqa: E402
from edged.simulator.statuses import status_object  # noqa: E402
from edged.sinqro.models import ORDER_TYPES, Order, parse_order  # noqa: E402
from edged.state import BoxState  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.md"
RESULTS_PI = ROOT / "benchmarks" / "results-pi.md"
POLL_INTERVAL = 60.0  # the Sinqro documents' polling baseline for a POS without a websocket
CATCH_UP_ORDERS = 200
WARM_STARTS = 4
# Measured with benchmarks/bench_storage.py at commit 97d525b (before group commit, small
# pages and the compare-before-write): the baseline of the bytes-per-order aim.
BYTES_PER_ORDER_BEFORE = 278.3 * 1024
BYTES_PER_ORDER_AIM = 32 * 1024  # what an SD card can take for years at a busy counter
# Catch-up of 200 orders at commit 97d525b, from the first order stored to the last: the
# fastest of three runs side by side with this code (the same watcher, the same load).
CATCH_UP_BEFORE = 1.26


@dataclass(frozen=True)
class Settings:
    """How much of everything one run does."""

    journal_samples: int
    buzzer_samples: int
    printer_samples: int
    mqtt_samples: int
    render_rounds: int
    raster_rounds: int
    throughput_orders: int
    idle_seconds: float
    card_orders: int
    card_idle: float

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(60, 100, 30, 200, 60, 4, 500, 10.0, 10, 20.0)
        return cls(200, 300, 100, 500, 200, 20, 1000, 60.0, 30, 120.0)


@dataclass(frozen=True)
class Row:
    measure: str
    result: str
    aim: str
    verdict: str


# -- numbers --------------------------------------------------------------------------------


def pct(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least p % of samples at or below."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_kib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def latency_row(measure: str, samples: Sequence[float], aim_ms: float | None) -> Row:
    p50, p99 = statistics.median(samples), pct(samples, 99)
    result = f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)} (n={len(samples)})"
    if aim_ms is None:
        return Row(measure, result, "no aim", "—")
    return Row(measure, result, f"p99 < {aim_ms:g} ms", verdict(p99 * 1000 < aim_ms))


# -- the machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def filesystem_of(path: str) -> str:
    """The file system type of the mount holding ``path`` (longest matching mount point)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def machine_line(tmp: str) -> str:
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, temp dir on {filesystem_of(tmp)}, "
        f"{platform.system()} {platform.release()}"
    )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


# -- shared pieces ----------------------------------------------------------------------------


def realistic_orders(count: int, first_id: int, seed: int = 7) -> list[Order]:
    """Orders the simulator's generator builds (all five types), with our ids."""
    rng = random.Random(seed)
    sp = default_selling_points()[3961]
    return [
        parse_order(build_order(rng.choice(ORDER_TYPES), first_id + n, sp, rng=rng))
        for n in range(count)
    ]


LIFE = ("accepted", "finished")  # the status frames that follow each new order


def order_frames(count: int, first_id: int, selling_point: int) -> list[tuple[int, list[str]]]:
    """Per order: its ``new_order`` frame, then one ``order_status_changed`` frame per status
    of :data:`LIFE`, as the simulator sends them (the documented envelope around a generated
    order). Built ahead so building them is not measured."""
    rng = random.Random(11)
    sp = default_selling_points()[selling_point]
    frames = []
    for n in range(count):
        order = build_order(rng.choice(ORDER_TYPES), first_id + n, sp, rng=rng)
        texts = []
        for event, status in (("new_order", None), *(("order_status_changed", c) for c in LIFE)):
            if status is not None:
                order = {**order, "status": status_object(status)}
            envelope = notification_example()
            envelope.update(event=event, data=order, sellingPointId=selling_point)
            texts.append(json.dumps(envelope, ensure_ascii=False))
        frames.append((first_id + n, texts))
    return frames


def write_demo_config(state_dir: Path, sim: SimulatorProcess) -> Path:
    """The config ``edged demo`` writes (two virtual printers, mock panel, web page on),
    pointed at a simulator running in its own process."""
    info = sim.info()
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "edged.toml"
    path.write_text(
        demo_config(
            state_dir,
            base_url=str(info["baseUrl"]),
            websocket_url=str(info["websocketUrl"]),
            server_token=DEFAULT_SERVER_TOKEN,
            user_token=DEFAULT_USER_TOKEN,
            selling_point_id=int(str(info["sellingPointId"])),
            web_port=free_port(),
        ),
        encoding="utf-8",
    )
    return path


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# -- notification to journal ------------------------------------------------------------------


def send_frames(root: str) -> int:
    """``--send-frames ROOT``: the frame sender, a process of its own. For each line on stdin
    (one frame's text) it reads CLOCK_MONOTONIC, then asks the simulator to send the frame
    (``POST /_sim/websockets/send``) and prints the reading and how many clients got it."""
    with httpx.Client(timeout=10) as http:
        for line in sys.stdin:
            text = line.rstrip("\n")
            start = time.monotonic()
            response = http.post(f"{root}/_sim/websockets/send", json={"text": text})
            response.raise_for_status()
            print(f"{start!r} {response.json().get('sent')}", flush=True)
    return 0


def start_sender(sim: SimulatorProcess) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--send-frames", sim.root],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def notification_to_journal(
    sim: SimulatorProcess, sender: subprocess.Popen[str], work: Path, count: int
) -> tuple[list[float], list[float]]:
    """Per order: from the sender process's clock reading just before it asks the simulator
    (a third process) to send a ``new_order`` frame on its websocket, to the moment the
    daemon's journal publishes the commit of that order (a listener on the real App's
    journal, in this process; both clocks are CLOCK_MONOTONIC). Also the daemon's share:
    from the moment its link takes the frame to the same commit."""
    config = load_config(write_demo_config(work / "n2j", sim))
    committed: dict[int, float] = {}
    frame_at: dict[int, float] = {}
    last_frame = [0.0]
    printed: dict[int, int] = {}
    status: dict[int, str] = {}
    changed = asyncio.Event()
    last_event = [time.monotonic()]

    def on_events(events: list[Event]) -> None:
        now = time.monotonic()
        last_event[0] = now
        for event in events:
            if event.order_id is None:
                continue
            if event.kind == ev.ORDER_NEW:
                committed.setdefault(event.order_id, now)
                frame_at.setdefault(event.order_id, last_frame[0])
            elif event.kind == ev.ORDER_STATUS:
                status[event.order_id] = str(event.data.get("status"))
            elif event.kind in (ev.PRINT_DONE, ev.PRINT_FAILED):
                printed[event.order_id] = printed.get(event.order_id, 0) + 1
        changed.set()

    async def hook(app: App) -> None:
        app.journal.add_listener(on_events)
        # Stamp each websocket frame as the link takes it (frames are handled one by one).
        on_frame = app.link._on_frame

        async def stamped(message: str | bytes, sp: int, **kwargs: Any) -> None:
            # Pass on whatever else the link gives (source=...): a wrapper that drops
            # arguments turns every frame into a TypeError.
            last_frame[0] = time.monotonic()
            await on_frame(message, sp, **kwargs)

        app.link._on_frame = stamped  # type: ignore[method-assign]
        await asyncio.Event().wait()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                changed.clear()
                await changed.wait()

    async def quiet() -> None:
        """Until the journal had 50 ms without a commit."""
        for _ in range(100):
            idle = time.monotonic() - last_event[0]
            if idle >= 0.05:
                return
            await asyncio.sleep(0.05 - idle)

    printers = len(config.printers)
    app = App(config, extras=Extras(tasks=[("bench-listener", hook)]))
    runner = asyncio.create_task(app.run(), name="bench-app")
    samples: list[float] = []
    in_daemon: list[float] = []
    assert sender.stdin is not None and sender.stdout is not None
    try:
        async with asyncio.timeout(30):
            await app.ready.wait()
            while app.state.get("link") != "online":
                await app.state.wait_changed(app.state.version, timeout=1.0)
        await asyncio.sleep(1.0)  # the connect-time reconcile
        # One more order than samples: the first opens the sender's HTTP connection.
        frames = order_frames(count + 1, 900_001, int(str(sim.info()["sellingPointId"])))
        stdin, stdout = sender.stdin, sender.stdout

        def send(text: str) -> None:
            stdin.write(text + "\n")
            stdin.flush()

        def sent_at() -> float:
            """The sender's clock reading for the frame; read once the daemon is done with
            it, so the pipe is not serviced while the daemon works."""
            start_text, clients = stdout.readline().split()
            if clients != "1":
                raise RuntimeError(f"the simulator sent a frame to {clients} clients, not 1")
            return float(start_text)

        for n, (order_id, (new, *changes)) in enumerate(frames):
            send(new)
            await until(lambda order_id=order_id: order_id in committed)
            # Orders arrive seconds apart: the next one does not meet this one's tickets.
            await until(lambda order_id=order_id: printed.get(order_id, 0) >= printers)
            await quiet()
            start = sent_at()
            if n:
                samples.append(committed[order_id] - start)
                in_daemon.append(committed[order_id] - frame_at[order_id])
            # Staff accept it and it is collected: one order waits at a time, as at a counter.
            for code, text in zip(LIFE, changes, strict=True):
                send(text)
                await until(lambda order_id=order_id, code=code: status.get(order_id) == code)
                sent_at()
            await quiet()
    finally:
        app.request_stop()
        await asyncio.wait({runner})
    return samples, in_daemon


def admin_round_trip(sim: SimulatorProcess, count: int = 50) -> float:
    """Median round trip of a no-op admin request: the trigger's own share, for context."""
    times = []
    with httpx.Client(timeout=10) as http:
        for _ in range(count):
            start = time.monotonic()
            http.get(f"{sim.root}/_sim/faults").raise_for_status()
            times.append(time.monotonic() - start)
    return statistics.median(times)


# -- journal throughput and size --------------------------------------------------------------


CHUNK = 50


@dataclass
class Rates:
    """Orders per second into the journal (in a burst, and one by one) and into plain
    SQLite; the journal's bytes after a checkpoint, full and empty."""

    burst: float
    one_by_one: float
    plain: float
    size: int
    empty: int


async def journal_and_plain_rates(work: Path, orders: list[Order]) -> Rates:
    """New orders through ``OrderDesk.ingest`` (what the link calls: the order's
    transaction, then the counts): in bursts of 50 arriving together, as a reconnect's
    catch-up or a busy minute brings them (the journal's group commit lets them share
    fsyncs), and one after another, each awaited before the next. The baseline: one INSERT
    and COMMIT per order into a plain table, same pragmas, same payload text, same
    directory. All alternate in chunks of 50 orders so they meet the same disk."""
    path = work / "rate.sqlite3"
    journal = await Journal.open(path)
    await journal.close()  # checkpoints
    empty = file_bytes(path)
    journal = await Journal.open(path)
    desk = OrderDesk(journal, BoxState(), OrdersConfig())
    plain = sqlite3.connect(work / "plain.sqlite3", isolation_level=None)
    plain.execute("PRAGMA journal_mode = WAL")
    plain.execute("PRAGMA synchronous = FULL")
    plain.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    rows = [(order.id, order.to_json()) for order in orders]
    single = [
        parse_order({**order.raw, "id": order.id + 10_000_000})
        for order in orders[: len(orders) // 2]
    ]
    in_burst = in_single = in_plain = 0.0
    try:
        for first in range(0, len(orders), CHUNK):
            start = time.perf_counter()
            await asyncio.gather(
                *(desk.ingest(order, "bench") for order in orders[first : first + CHUNK])
            )
            in_burst += time.perf_counter() - start
            if first < len(single):
                start = time.perf_counter()
                for order in single[first : first + CHUNK]:
                    await desk.ingest(order, "bench")
                in_single += time.perf_counter() - start
            start = time.perf_counter()
            for row in rows[first : first + CHUNK]:
                plain.execute("BEGIN IMMEDIATE")
                plain.execute("INSERT INTO orders (id, payload) VALUES (?, ?)", row)
                plain.execute("COMMIT")
            in_plain += time.perf_counter() - start
    finally:
        plain.close()
        await journal.close()  # PRAGMA wal_checkpoint(TRUNCATE)
    return Rates(
        burst=len(orders) / in_burst,
        one_by_one=len(single) / in_single,
        plain=len(orders) / in_plain,
        size=file_bytes(path),
        empty=empty,
    )


def file_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += Path(str(path) + suffix).stat().st_size
    return total


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


# -- the run ----------------------------------------------------------------------------------


def run(settings: Settings, work: Path) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []

    progress("notification → journal (simulator process → daemon App)")
    with SimulatorProcess(log_path=work / "simulator-n2j.log") as sim:
        sender = start_sender(sim)
        try:
            n2j, n2j_daemon = asyncio.run(
                notification_to_journal(sim, sender, work, settings.journal_samples)
            )
        finally:
            assert sender.stdin is not None
            sender.stdin.close()
            sender.wait(10)
        trigger = admin_round_trip(sim)
    rows.append(latency_row("notification → journal commit", n2j, 5))
    rows.append(latency_row("… of which in the daemon (frame taken → commit)", n2j_daemon, None))
    mean = statistics.fmean(n2j)
    rows.append(
        Row(
            "notification → journal vs 60 s polling",
            f"mean {fmt_ms(mean)}",
            "polling every 60 s: mean 30 s, worst 60 s",
            f"×{POLL_INTERVAL / 2 / mean:,.0f} faster (mean vs mean)",
        )
    )
    notes.append(
        f"The notification → journal samples include the benchmark's trigger, an admin HTTP "
        f"request to the simulator (median no-op admin round trip: {fmt_ms(trigger)})."
    )

    progress("notification → buzzer")
    buzzer, in_panel = asyncio.run(bench_panel.bench(settings.buzzer_samples, "active"))
    rows.append(latency_row("notification → buzzer on (active buzzer)", buzzer, 1))
    rows.append(latency_row("… of which in the panel (commit published → pin on)", in_panel, None))

    progress("notification → first byte at a TCP printer")
    first_byte = asyncio.run(bench_printing.bench_first_byte(settings.printer_samples))
    rows.append(latency_row("notification → first byte at TCP printer", first_byte, 20))

    progress("notification → MQTT subscriber")
    mqtt = [x / 1000 for x in asyncio.run(bench_mqtt.bench(settings.mqtt_samples))]
    rows.append(latency_row("notification → MQTT message at subscriber", mqtt, 15))

    progress("sustained new orders into the journal, and plain SQLite")
    orders = realistic_orders(settings.throughput_orders, 700_001)
    r = asyncio.run(journal_and_plain_rates(work, orders))
    rows.append(
        Row(
            "new orders into the journal in bursts of 50 (synchronous=FULL)",
            f"{r.burst:,.0f} orders/s; plain SQLite insert+commit per order {r.plain:,.0f}/s "
            f"(×{r.burst / r.plain:.2f})",
            "≥ 0.5 × plain SQLite",
            verdict(r.burst >= r.plain / 2),
        )
    )
    rows.append(
        Row(
            "… one after another (each awaited: its own commit and fsync)",
            f"{r.one_by_one:,.0f} orders/s (×{r.one_by_one / r.plain:.2f} plain)",
            "no aim",
            "—",
        )
    )
    stored = len(orders) + len(orders) // 2
    per_thousand = (r.size - r.empty) / stored * 1000
    rows.append(
        Row(
            "journal size per 1,000 orders (file + WAL after checkpoint)",
            f"{per_thousand / 1024:,.0f} KiB (empty journal {r.empty / 1024:,.0f} KiB)",
            "no aim",
            "—",
        )
    )

    progress("bytes written to the card: per order and while idle (loop-mounted ext4)")
    try:
        rows += card_rows(settings, work)
    except LoopFsUnavailable as exc:
        # Not root (or no loop driver): the rows say why instead of a number.
        reason = f"not measured: {exc}"
        rows.append(Row(CARD_PER_ORDER, reason, CARD_PER_ORDER_AIM, "—"))
        rows.append(Row(CARD_IDLE, reason, "0 B", "—"))

    progress("ticket render")
    render = bench_printing.bench_render(settings.render_rounds)
    rows.append(latency_row("ticket render (order → ESC/POS bytes)", render, None))

    progress("raster tickets at 576 dots")
    pictures = bench_printing.bench_raster(settings.raster_rounds)
    rows.append(
        Row(
            "raster ticket at 576 dots vs text (order → bytes, bytes per ticket)",
            bench_printing.raster_summary(pictures),
            "no aim",
            "—",
        )
    )

    progress("daemon process: catch-up, READY, RSS, idle CPU")
    d = daemon_numbers(work, settings.idle_seconds)
    rows.append(
        Row(
            f"catch-up of {CATCH_UP_ORDERS} active orders after start",
            f"{fmt_s(d.catch_up_span)} from the first order stored to the last; "
            f"{fmt_s(d.catch_up_from_start)} from process start "
            f"(×{POLL_INTERVAL / 2 / d.catch_up_from_start:,.0f} faster than a 60 s poll's mean)",
            f"first → last ≤ half of {CATCH_UP_BEFORE:.2f} s (97d525b, before group commit)",
            verdict(d.catch_up_span <= CATCH_UP_BEFORE / 2),
        )
    )
    bare = bare_python_rss_kib()
    rows.append(
        Row(
            "daemon RSS, peak / idle (demo config)",
            f"{fmt_kib(d.peak_rss_kib)} / {fmt_kib(d.idle_rss_kib)}; bare python + asyncio "
            f"{fmt_kib(bare)} (peak ×{d.peak_rss_kib / bare:.1f}); restarts' peak "
            f"{fmt_kib(d.warm_peak_rss_kib)} (×{d.warm_peak_rss_kib / bare:.1f})",
            "peak ≤ 3 × bare python",
            verdict(d.peak_rss_kib <= 3 * bare),
        )
    )
    rows.append(
        Row(
            f"idle CPU over {d.idle_seconds:.0f} s",
            f"{d.idle_cpu_percent:.2f} % of one core",
            "no aim",
            "—",
        )
    )
    median_ready = statistics.median(d.ready)
    rows.append(
        Row(
            f"start-up to READY=1 ({len(d.ready)} starts)",
            f"median {fmt_s(median_ready)}, max {fmt_s(max(d.ready))} "
            f"(first start, empty journal: {fmt_s(d.ready[0])})",
            "median < 1 s",
            verdict(median_ready < 1.0),
        )
    )
    notes.append(
        f"After the catch-up the daemon printed all {CATCH_UP_ORDERS} orders on both virtual "
        f"printers (text + PNG) within {fmt_s(d.printed_after)} of its start."
    )
    return rows, notes


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


def render_table(rows: list[Row]) -> list[str]:
    lines = ["| measure | result | aim / baseline | verdict |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.result} | {r.aim} | {r.verdict} |" for r in rows]
    return lines


def compiled_once(prefix: Path) -> None:
    """Bytecode for edged, as a box has it (pip compiles at install), in a temp prefix.

    With PYTHONDONTWRITEBYTECODE set (as on a developer's shell) every ``edged run`` here
    would compile all its modules from source at each start, which no box does. The prefix
    keeps the checkout clean; every process the run starts inherits it.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(prefix)
    compileall.compile_dir(str(ROOT / "edged"), quiet=1)
    for tree in ("tests", "tests/support", "benchmarks"):
        compileall.compile_dir(str(ROOT / tree), quiet=1, maxlevels=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="10 s idle window and fewer samples (for trying)"
    )
    parser.add_argument(
        "--pi",
        action="store_true",
        help="the daemon rows inside a small board's CPU and memory caps (cgroup; root)",
    )
    parser.add_argument("--send-frames", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"markdown file to write (default: {RESULTS}, with --pi {RESULTS_PI})",
    )
    args = parser.parse_args(argv)
    if args.send_frames:
        return send_frames(args.send_frames)
    settings = Settings.make(args.quick)
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edged-bench-") as tmp:
        compiled_once(Path(tmp) / "pycache")
        header = machine_line(tmp)
        print(header, file=sys.stderr)
        rows, notes = (pi_run if args.pi else run)(settings, Path(tmp))
    took = time.monotonic() - began
    load_after = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    flags = "".join(f" --{name}" for name in ("quick", "pi") if getattr(args, name))
    lines = [
        f"{header}.",
        f"edged {git_commit()}, {stamp}, `benchmarks/run{flags}`"
        f" ({took:.0f} s); 1-minute load average {load_before:.2f} before, {load_after:.2f} after"
        " (other work on the machine shows here).",
        "",
        *render_table(rows),
        "",
        *(f"- {note}" for note in notes),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    output = args.output or (RESULTS_PI if args.pi else RESULTS)
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
