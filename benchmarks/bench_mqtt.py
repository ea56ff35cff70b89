"""Notification-to-MQTT latency: ``OrderDesk.ingest`` until a subscriber holds the event.

Runs a real Mosquitto on a free port, a real journal in a temp directory, the MQTT bridge
and a subscriber (the POS), then ingests orders one at a time and prints p50/p99 as a
markdown table. Usage: ``python benchmarks/bench_mqtt.py [N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from bridge_helpers import make_desk, make_order
from broker import MosquittoBroker

from edged.bridges.mqtt import MqttBridge
from edged.bridges.settings import MqttConfig
from edged.journal.store import Journal


async def bench(count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker", persistence=False)
        broker.start()
        journal = await Journal.open(Path(tmp) / "j.sqlite3")
        desk, state = make_desk(journal)
        bridge = MqttBridge(
            MqttConfig(enabled=True, url=broker.url), journal, desk, state, box_id="bench"
        )
        task = asyncio.create_task(bridge.run(), name="bench-bridge")
        arrived: dict[int, float] = {}
        got = asyncio.Event()
        try:
            async with aiomqtt.Client(broker.host, broker.port, identifier="bench-pos") as pos:
                await pos.subscribe("edged/bench/events/order.new", qos=1)

                async def listen() -> None:
                    async for message in pos.messages:
                        assert isinstance(message.payload, bytes)
                        arrived[json.loads(message.payload)["order_id"]] = time.perf_counter()
                        got.set()

                listener = asyncio.create_task(listen(), name="bench-listen")
                while state.get("bridge.mqtt") != "online":
                    await state.wait_changed(state.version, timeout=1.0)
                latencies = []
                for i in range(1, count + 1):
                    got.clear()
                    start = time.perf_counter()
                    await desk.ingest(make_order(i), "bench")
                    async with asyncio.timeout(10):
                        while i not in arrived:
                            await got.wait()
                            got.clear()
                    latencies.append((arrived[i] - start) * 1000)
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                return latencies
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await journal.close()
            broker.stop()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    latencies = sorted(asyncio.run(bench(count)))
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print("| metric (ingest -> subscriber) | value |")
    print("|---|---|")
    print(f"| orders | {count} |")
    print(f"| p50 | {p50:.2f} ms |")
    print(f"| p99 | {p99:.2f} ms |")
    print(f"| max | {latencies[-1]:.2f} ms |")


if __name__ == "__main__":
    main()
