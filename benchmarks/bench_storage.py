"""Bytes the box writes to its card: per new order, and while idle.

The state directory sits on a small ext4 file system on a loop device (``tests/support/loopfs.py``);
bytes are the sectors the device was asked to write (``/sys/block/loopN/stat``) after a
``syncfs``, so the file system's journal and metadata count too, as they would on an SD card.
The daemon is ``edged run`` in its own process with one virtual printer (its tickets are
written outside the card) and the MQTT bridge on a real Mosquitto; the Sinqro simulator is
a process of its own. Nothing reads the journal during a measurement (a reader would touch
SQLite's shared-memory file on the card): progress is seen from outside, through the
printer's ticket files, an MQTT subscriber and the simulator's request log.

Run alone: ``.venv/bin/python benchmarks/bench_storage.py [--orders N] [--idle SECONDS]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from card_rig import Rig, card_rig, settle  # noqa: E402


def order_way(rig: Rig, order_id: int) -> int:
    """Follow one new order until it is finished; returns its payload's size."""
    rig.until(lambda: rig.printed(order_id) >= 1, 60, "the ticket")
    rig.until(
        lambda: rig.subscriber.status(order_id) not in (None, "waiting_sp_validation"),
        60,
        "the accept",
    )
    rig.set_status(order_id, "finished")
    rig.until(lambda: rig.subscriber.status(order_id) == "finished", 60, "finished")
    orders = httpx.get(f"{rig.sim.root}/_sim/orders", timeout=10).json()
    return next(len(json.dumps(o)) for o in orders if o["id"] == order_id)


def bytes_per_order(work: Path, count: int) -> tuple[float, int]:
    """Bytes written per new order on its whole way (stored and auto-accepted, printed,
    published over MQTT, accepted at Sinqro, then finished), and its payload's size."""
    with card_rig(work, refresh=60.0) as rig:
        rig.keep_notify_read(2.0)
        before = rig.card.bytes_written()
        payload = 0
        for _ in range(count):
            (order_id,) = rig.create_orders(1)
            payload += order_way(rig, order_id)
        # A clean stop writes what waits and checkpoints the WAL into the database file:
        # so the copy every page makes sooner or later is counted too.
        if rig.daemon.stop() != 0:
            raise RuntimeError(f"edged did not stop cleanly; log:\n{rig.daemon.log_tail()}")
        written = rig.card.bytes_written() - before
    return written / count, payload // count


def idle_bytes(work: Path, seconds: float, open_orders: int = 20) -> tuple[int, int, float]:
    """Bytes written while ``open_orders`` stay open and nobody touches them, over
    ``seconds`` after the catch-up settled; the status refresh runs every 2 s.
    Returns (bytes, refresh cycles, seconds measured).

    The orders wait unanswered, so each opens an ``order_waiting`` alert once (120 s after
    it came, by default), kept in the journal so a restart does not repeat it: a change,
    written once. Here the alerts open after 5 s, during the settling, and the window
    measures the box that has nothing left to tell."""
    alerts = {"order_waiting_after": 5.0}
    with card_rig(
        work, refresh=2.0, auto_accept=False, open_orders=open_orders, alerts=alerts
    ) as rig:
        settle(rig, open_orders)
        rig.until(lambda: rig.incidents() >= open_orders, 60, f"{open_orders} open alerts")
        rig.syncs_pass(1)  # the alert state is on the card before the window
        before, syncs, start = rig.card.bytes_written(), rig.active_requests(), time.monotonic()
        rig.keep_notify_read(seconds)
        written = rig.card.bytes_written() - before
        cycles = rig.active_requests() - syncs
        took = time.monotonic() - start
    return written, cycles, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edged-card-") as tmp:
        per_order, payload = bytes_per_order(Path(tmp) / "orders", args.orders)
        print(f"per order: {per_order / 1024:.1f} KiB written, payload {payload / 1024:.1f} KiB")
        written, cycles, took = idle_bytes(Path(tmp) / "idle", args.idle)
        print(f"idle: {written} bytes in {took:.0f} s ({cycles} refresh cycles, 20 open orders)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
