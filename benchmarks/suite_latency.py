"""benchmarks/suite.py's rows of an order's latency into the journal and of the journal's
throughput and size (benchmarks/README.md: Rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import httpx  # noqa: E402
from harness import SimulatorProcess  # noqa: E402
from suite_common import LIFE, order_frames, write_demo_config  # noqa: E402

from edged.app import App, Extras  # noqa: E402
from edged.config import load_config  # noqa: E402
from edged.flow.desk import OrderDesk  # noqa: E402
from edged.flow.settings import OrdersConfig  # noqa: E402
from edged.journal import events as ev  # noqa: E402
from edged.journal.events import Event  # noqa: E402
from edged.journal.store import Journal  # noqa: E402
from edged.sinqro.models import Order, parse_order  # noqa: E402
from edged.state import BoxState  # noqa: E402

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
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--send-frames", sim.root],
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
