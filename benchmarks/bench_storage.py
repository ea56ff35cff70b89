"""Bytes the box writes to its card: per new order, and while idle.

The state directory sits on a small ext4 file system on a loop device (``tests/loopfs.py``);
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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from broker import MosquittoBroker  # noqa: E402
from loopfs import LoopFs  # noqa: E402

from edged.configtools import dump_toml  # noqa: E402
from edged.harness import DaemonProcess, SimulatorProcess, free_port, sinqro_section  # noqa: E402

BOX = "card-box"


class Subscriber:
    """An MQTT client that records the order events the box publishes."""

    def __init__(self, port: int) -> None:
        self.statuses: dict[int, str] = {}
        self.new: set[int] = set()
        self.events = 0
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-pos")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"edged/{BOX}/events/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        with self._lock:
            self.events += 1
            order_id = body.get("order_id")
            if not isinstance(order_id, int):
                return
            if body.get("kind") == "order.new":
                self.new.add(order_id)
            data = body.get("data")
            status = data.get("status") if isinstance(data, dict) else None
            if body.get("kind") in ("order.new", "order.status") and status:
                self.statuses[order_id] = str(status)

    def status(self, order_id: int) -> str | None:
        with self._lock:
            return self.statuses.get(order_id)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Rig:
    """A daemon whose state directory is on its own loop-mounted ext4."""

    card: LoopFs
    sim: SimulatorProcess
    daemon: DaemonProcess
    subscriber: Subscriber
    tickets: Path

    def printed(self, order_id: int | None = None) -> int:
        """Order tickets printed (for one order, or for all)."""
        which = "*" if order_id is None else str(order_id)
        return len(list(self.tickets.glob(f"*-{which}-order.txt")))

    def active_requests(self) -> int:
        """How many active-orders syncs (reconcile, refresh, poll) the daemon has made."""
        response = httpx.get(f"{self.sim.root}/_sim/requests", timeout=10)
        response.raise_for_status()
        return sum(1 for r in response.json() if str(r.get("path", "")).endswith("/active"))

    def create_orders(self, count: int) -> list[int]:
        response = httpx.post(f"{self.sim.root}/_sim/orders", json={"count": count}, timeout=30)
        response.raise_for_status()
        return [int(order["id"]) for order in response.json()]

    def set_status(self, order_id: int, code: str) -> None:
        httpx.post(
            f"{self.sim.root}/_sim/orders/{order_id}/status", json={"code": code}, timeout=10
        ).raise_for_status()

    def keep_notify_read(self, seconds: float) -> None:
        """Wait, reading the daemon's sd_notify socket as systemd would."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.daemon.wait_for("READY=1", 5.0)
            time.sleep(0.02)

    def until(self, check: Callable[[], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; log:\n{self.daemon.log_tail()}")
            if self.daemon.proc is not None and self.daemon.proc.poll() is not None:
                raise RuntimeError(f"edged exited; log:\n{self.daemon.log_tail()}")
            time.sleep(0.02)

    def syncs_pass(self, count: int, within: float = 120.0) -> None:
        """Until ``count`` more active-orders syncs have completed."""
        target = self.active_requests() + count + 1
        self.until(lambda: self.active_requests() >= target, within, f"{count} refresh cycles")


@contextmanager
def card_rig(
    work: Path,
    *,
    refresh: float = 2.0,
    auto_accept: bool = True,
    mqtt: bool = True,
    open_orders: int = 0,
) -> Iterator[Rig]:
    """Card, simulator (with ``open_orders`` waiting), broker, subscriber and a ready daemon."""
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        card = stack.enter_context(LoopFs(work / "card.img", mountpoint=work / "card"))
        sim = stack.enter_context(SimulatorProcess(log_path=work / "sim.log"))
        broker = MosquittoBroker(work / "broker", persistence=False)
        broker.start()
        stack.callback(broker.stop)
        tickets = work / "tickets"
        tickets.mkdir(exist_ok=True)
        doc: dict[str, Any] = {
            "box": {"name": BOX, "state_dir": str(card.mountpoint / "state")},
            "sinqro": sinqro_section(
                sim.info(), status_refresh_interval=refresh, poll_interval=refresh
            ),
            "orders": {"auto_accept": auto_accept, "retry_max": 1.0},
            "printers": [{"name": "kitchen", "uri": f"virtual://{tickets}", "layout": "full"}],
            "panel": {"enabled": False},
            "web": {"host": "127.0.0.1", "port": free_port()},
            "mqtt": {"enabled": mqtt, "url": broker.url},
        }
        config = work / "edged.toml"
        config.write_text(dump_toml(doc), encoding="utf-8")
        subscriber = Subscriber(broker.port)
        stack.callback(subscriber.close)
        daemon = DaemonProcess(config, log_path=work / "edged.log")
        rig = Rig(card, sim, daemon, subscriber, tickets)
        stack.callback(rig.daemon.close)
        if open_orders:
            rig.create_orders(open_orders)
        rig.daemon.start(wait_ready=60)
        yield rig
        rig.daemon.stop()  # a no-op when the caller stopped it


def settle(rig: Rig, orders: int) -> None:
    """Until the catch-up of ``orders`` is printed and published, then two sync cycles."""
    rig.until(lambda: rig.printed() >= orders, 120, f"{orders} tickets")
    rig.until(lambda: len(rig.subscriber.new) >= orders, 120, f"{orders} MQTT order.new")
    rig.syncs_pass(2)


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
    Returns (bytes, refresh cycles, seconds measured)."""
    with card_rig(work, refresh=2.0, auto_accept=False, open_orders=open_orders) as rig:
        settle(rig, open_orders)
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
