"""Many simulated boxes in one process, for ``benchmarks/fleet`` (suite_fleet.py).

Each box is what a real box runs toward its vendor: a :class:`~edged.fleet.link.FleetLink`
(availability, info from a real :class:`~edged.fleet.telemetry.Telemetry`, alerts), an
:class:`~edged.fleet.alerts.AlertMonitor` on its own :class:`~edged.state.BoxState`, and a
:class:`~edged.relay.subscriber.RelaySubscription` (its selling point's notifications,
persistent session), each with the box's own id and broker credentials. What is left out
is the journal and the REST fetch a hint triggers: the subscription's frames go to a
notification handler that parses them with the box's parser
(:func:`~edged.sinqro.models.parse_notification`) and notes when each order arrived. The
alert monitor gets a journal stand-in that holds only its ``kv`` record (no orders wait).

Every box starts with its Sinqro link ``offline``: the monitor opens ``link_down`` and the
fleet link delivers it; once the box's relay subscription is up the link reads ``online``
and the incident is resolved. So each box sends two alerts, and the vendor's subscriber
can count them.

Protocol with the parent, one JSON object a line: it reads the spec on stdin's first line
(``boxes``: ``[{"id", "password", "selling_point", "urls"}]`` and settings), writes
``{"status": ...}`` lines every 0.2 s, and on ``stop`` its arrivals and memory
(``{"done": ...}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edged.fleet.alerts import AlertMonitor
from edged.fleet.identity import BoxIdentity
from edged.fleet.link import FleetLink
from edged.fleet.settings import AlertsConfig, FleetConfig
from edged.fleet.telemetry import KernelFiles, Telemetry
from edged.journal.events import Event
from edged.journal.store import Command, StoredOrder
from edged.relay.subscriber import RelaySubscription
from edged.sinqro.models import parse_notification
from edged.state import BoxState

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


class KvOnly:
    """The alert monitor's journal, without orders: its ``kv`` record, in memory."""

    def __init__(self) -> None:
        self.kv: dict[str, str] = {}

    def add_listener(self, fn: Callable[[list[Event]], None]) -> None:
        pass

    def remove_listener(self, fn: Callable[[list[Event]], None]) -> None:
        pass

    async def waiting_times(self) -> list[tuple[int, str, str, float]]:
        return []

    async def pending_commands(self) -> list[Command]:
        return []

    async def get_order(self, order_id: int) -> StoredOrder | None:
        return None

    async def kv_get(self, key: str) -> str | None:
        return self.kv.get(key)

    async def kv_set(self, key: str, value: str | None) -> None:
        if value is None:
            self.kv.pop(key, None)
        else:
            self.kv[key] = value

    async def orders_seen_since(self, since: float) -> int:
        return 0


class Box:
    """One simulated box; also its subscription's notification handler (a PushSink)."""

    def __init__(self, spec: dict[str, Any], settings: dict[str, Any], storage: Path) -> None:
        self.id: str = spec["id"]
        self.selling_point: int = spec["selling_point"]
        urls: list[str] = spec["urls"]
        self.config = FleetConfig(
            enabled=True,
            url=urls[0],
            failover_urls=urls[1:],
            username=self.id,
            password=spec["password"],
            protocol=settings.get("protocol", "3.1.1"),
            reconnect_min=settings.get("reconnect_min", 1.0),
            reconnect_max=settings.get("reconnect_max", 30.0),
            publish_timeout=settings.get("publish_timeout", 10.0),
            sinqro_notifications="instead",
        )
        self.state = BoxState()
        self.state.set("link", "offline")
        journal = KvOnly()
        self.telemetry = Telemetry(
            identity=BoxIdentity(self.id, "config", self.id, "simulated"),
            box_name=lambda: f"Box {self.id}",
            state=self.state.snapshot,
            selling_point=lambda: (self.selling_point, f"SP {self.selling_point}", "UTC"),
            orders_since=journal.orders_seen_since,
            incidents=lambda: sorted(self.monitor.open),
            storage_path=storage,
            files=KernelFiles(uptime="/proc/uptime", thermal="", throttled=(), hwmon=""),
        )
        self.link = FleetLink(
            self.config,
            box_id=self.id,
            telemetry=self.telemetry,
            wait_changed=self.state.wait_changed,
        )
        self.monitor = AlertMonitor(
            AlertsConfig(
                order_waiting_after=0,
                link_down_after=settings.get("link_down_after", 0.5),
                printer_down_after=0,
                decision_stuck_after=0,
                retry_min=0.5,
                retry_max=5.0,
            ),
            journal=journal,
            state=self.state,
            sinks=[self.link],
            box_id=self.id,
            box_name=f"Box {self.id}",
            language="en",
            selling_point=lambda: (self.selling_point, f"SP {self.selling_point}", "UTC"),
        )
        self.subscription = RelaySubscription(self.config, box_id=self.id)
        self.subscribed = False
        # order id -> CLOCK_MONOTONIC of each arrival (a repeat is a second entry)
        self.arrivals: dict[int, list[float]] = {}
        self.unreadable = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run(), name=f"{self.id}-fleet")
            group.create_task(self.monitor.run(), name=f"{self.id}-alerts")
            # The relay subscription once the link-down alert is open, so every box
            # tells its vendor the same two things (open, then resolved).
            while not self.monitor.open:
                await self.state.wait_changed(self.state.version, 1.0)
            group.create_task(
                self.subscription.run(self.selling_point, self), name=f"{self.id}-orders"
            )

    # -- PushSink ----------------------------------------------------------------------------

    def source_up(self, name: str) -> None:
        self.subscribed = True
        self.state.set("link", "online")

    def source_down(self, name: str, reason: str) -> None:
        self.subscribed = False

    async def source_frame(self, name: str, message: str | bytes, selling_point_id: int) -> None:
        now = time.monotonic()
        try:
            note = parse_notification(message, max_bytes=1 << 20)
        except ValueError:
            self.unreadable += 1
            return
        self.arrivals.setdefault(note.order.id, []).append(now)


def status(boxes: list[Box]) -> dict[str, Any]:
    return {
        "fleet": sum(b.link.connected for b in boxes),
        "orders": sum(b.subscribed for b in boxes),
        "reconnects": sum(b.link.reconnects + b.subscription.reconnects for b in boxes),
        "alerts": sum(b.link.alerts for b in boxes),
        "received": sum(b.subscription.messages for b in boxes),
    }


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    settings: dict[str, Any] = spec["settings"]
    storage = Path(spec["storage"])
    base = rss()
    boxes = [Box(b, settings, storage) for b in spec["boxes"]]
    tasks: list[asyncio.Task[None]] = []
    # Boxes start a few at a time (a fleet does not boot in the same millisecond).
    step = max(1, int(settings.get("start_batch", 25)))

    async def start() -> None:
        for n in range(0, len(boxes), step):
            for box in boxes[n : n + step]:
                tasks.append(asyncio.create_task(box.run(), name=box.id))
            await asyncio.sleep(settings.get("start_pause", 0.1))

    async def report() -> None:
        while True:
            emit({"status": status(boxes), "rss": rss(), "base": base})
            await asyncio.sleep(0.2)

    starter = asyncio.create_task(start(), name="start")
    reporter = asyncio.create_task(report(), name="report")
    await reader.readline()  # "stop"
    full = rss()
    reporter.cancel()
    starter.cancel()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    emit(
        {
            "done": {
                "arrivals": {
                    str(b.selling_point): {str(k): v for k, v in b.arrivals.items()} for b in boxes
                },
                "unreadable": sum(b.unreadable for b in boxes),
                "rss_base": base,
                "rss_full": full,
                "boxes": len(boxes),
            }
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
