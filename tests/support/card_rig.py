"""A daemon whose state directory is a small ext4 file system of its own on a loop device,
with the Sinqro simulator, a Mosquitto broker and an MQTT subscriber beside it: to count
the bytes the box writes to its card (tests/journal/test_storage.py, benchmarks/bench_storage.py).

Nothing here reads the journal while bytes are counted (a reader would touch SQLite's
shared-memory file on the card): progress is seen from outside, through the printer's
ticket files, the subscriber and the simulator's request log.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from broker import MosquittoBroker
from harness import DaemonProcess, SimulatorProcess, sinqro_section
from loopfs import LoopFs
from ports import free_port

from edged.configtools import dump_toml
from edged.journal.writer import LAZY_FLUSH

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
        # The topic level after the prefix is the box id (edged/fleet/identity.py).
        self.client.subscribe("edged/+/events/#", qos=1)
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
    refresh: float
    daemon_web_port: int = 0

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

    def incidents(self) -> int:
        """Open alert incidents, as the page's ``/health`` tells them."""
        port = self.daemon_web_port
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        return len(response.json().get("incidents", []))

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
    alerts: dict[str, Any] | None = None,
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
        web_port = free_port()
        doc: dict[str, Any] = {
            "box": {"name": BOX, "state_dir": str(card.mountpoint / "state")},
            "sinqro": sinqro_section(
                sim.info(), status_refresh_interval=refresh, poll_interval=refresh
            ),
            "orders": {"auto_accept": auto_accept, "retry_max": 1.0},
            "printers": [{"name": "kitchen", "uri": f"virtual://{tickets}", "layout": "full"}],
            "panel": {"enabled": False},
            "web": {"host": "127.0.0.1", "port": web_port},
            "mqtt": {"enabled": mqtt, "url": broker.url},
        }
        if alerts is not None:
            doc["alerts"] = alerts
        config = work / "edged.toml"
        config.write_text(dump_toml(doc), encoding="utf-8")
        subscriber = Subscriber(broker.port)
        stack.callback(subscriber.close)
        daemon = DaemonProcess(config, log_path=work / "edged.log")
        rig = Rig(card, sim, daemon, subscriber, tickets, refresh, web_port)
        stack.callback(rig.daemon.close)
        if open_orders:
            rig.create_orders(open_orders)
        rig.daemon.start(wait_ready=60)
        yield rig
        rig.daemon.stop()  # a no-op when the caller stopped it


def settle(rig: Rig, orders: int) -> None:
    """Until the catch-up of ``orders`` is printed and published, and then enough sync
    cycles that the consumers' lazy cursors (written at most ``LAZY_FLUSH`` seconds after
    the last event) are on the card: the first cycles of an idle box."""
    rig.until(lambda: rig.printed() >= orders, 120, f"{orders} tickets")
    rig.until(lambda: len(rig.subscriber.new) >= orders, 120, f"{orders} MQTT order.new")
    rig.syncs_pass(math.ceil(LAZY_FLUSH / rig.refresh) + 1)
