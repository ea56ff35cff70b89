"""Notification-to-buzzer latency: ``OrderDesk.ingest`` until the buzzer pin goes on.

Real journal (SQLite in a temp directory, commit included), real gpiozero devices on
mock pins, the real clock. Each round ingests one new order, waits for the buzzer pin to
go active, then acknowledges the order and waits for silence (and 20 ms of idle, as orders
arrive seconds apart) before the next round. The second row of each buzzer starts the clock
when the journal publishes the commit, i.e. the panel's own share.
Prints p50/p99 as a markdown table. Usage: ``python benchmarks/bench_panel.py [N]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edged.flow.desk import OrderDesk
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal
from edged.panel.controller import Panel
from edged.panel.settings import PanelConfig
from edged.sinqro.models import parse_order
from edged.state import BoxState


class StampedPin(MockPWMPin):  # type: ignore[misc]
    """A mock pin that reports when its level changes (on the thread that changed it)."""

    on_change: Callable[[bool], None] | None = None

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed and self.on_change is not None:
            self.on_change(bool(value))
        return changed


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


async def bench(count: int, buzzer_type: str) -> tuple[list[float], list[float]]:
    """Per order: (ingest -> buzzer on, journal listener -> buzzer on), in seconds."""
    factory = MockFactory(pin_class=StampedPin)
    Device.pin_factory = factory
    config = PanelConfig(pin_factory="mock", buzzer_type=buzzer_type)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        journal = await Journal.open(Path(tmp) / "j.sqlite3")
        state = BoxState()
        state.set("link", "online")
        orders = OrdersConfig()
        desk = OrderDesk(journal, state, orders)
        committed: list[float] = []
        # Registered before the panel's, so it stamps the moment the commit is published.
        journal.add_listener(lambda events: committed.append(time.perf_counter()))
        panel = Panel(config, orders, desk, journal, state)
        task = asyncio.create_task(panel.run(), name="bench-panel")
        loop = asyncio.get_running_loop()
        buzzer: Any = factory.pin(config.buzzer_pin)
        level: asyncio.Future[float] | None = None
        want = True

        def on_change(on: bool) -> None:
            if level is not None and not level.done() and on == want:
                level.set_result(time.perf_counter())

        buzzer.on_change = on_change
        latencies: list[float] = []
        in_panel: list[float] = []
        try:
            await asyncio.sleep(0.1)
            for i in range(1, count + 1):
                want, level = True, loop.create_future()
                order = parse_order(
                    {"id": i, "type": "delivery", "status": {"code": "waiting_sp_validation"}}
                )
                committed.clear()
                start = time.perf_counter()
                await desk.ingest(order, "bench")
                async with asyncio.timeout(5):
                    rang = await level
                latencies.append(rang - start)
                in_panel.append(rang - committed[0])
                want, level = False, loop.create_future()
                if buzzer.state:
                    await desk.acknowledge(i, source="bench")
                    async with asyncio.timeout(5):
                        await level
                while state.get("panel.buzzer") != "quiet":
                    await state.wait_changed(state.version, timeout=5)
                # Orders arrive seconds apart, not back to back: let the previous round's
                # journal work (acknowledge, reconcile, counts) finish first.
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.wait({task})
            await journal.close()
            factory.reset()
            Device.pin_factory = None
    return latencies, in_panel


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print("| buzzer | orders | measured from | p50 (ms) | p99 (ms) | max (ms) |")
    print("|---|---:|---|---:|---:|---:|")
    for kind in ("active", "passive"):
        total, in_panel = asyncio.run(bench(count, kind))
        for what, values in (("ingest (SQLite commit included)", total), ("commit", in_panel)):
            ms = [x * 1000 for x in values]
            print(
                f"| {kind} | {len(ms)} | {what} | {statistics.median(ms):.2f} |"
                f" {percentile(ms, 99):.2f} | {max(ms):.2f} |"
            )


if __name__ == "__main__":
    main()
