"""Printing benchmark: ticket render time, and notification-to-first-byte at a printer.

* render: order payload → ticket model → ESC/POS bytes, for the five example orders;
* raster: the same five orders at 576 dots (TM-T20III) as text and as a picture (GS v 0):
  time from order to bytes, and bytes sent per ticket;
* first byte: an order stored in the journal (as the notification path does) until its
  ticket's first byte reaches a TCP printer stand-in, through the real spooler.

Prints a small markdown table. Usage: ``python benchmarks/bench_printing.py [--orders N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from printer_standin import TcpPrinter  # noqa: E402

from edged.config import BoxConfig  # noqa: E402
from edged.journal.store import Journal  # noqa: E402
from edged.printing import codepages  # noqa: E402
from edged.printing.escpos import EncoderSettings, encode  # noqa: E402
from edged.printing.output import ticket_bytes  # noqa: E402
from edged.printing.settings import PrinterConfig  # noqa: E402
from edged.printing.spooler import Spooler  # noqa: E402
from edged.printing.ticket import TicketOptions, order_ticket  # noqa: E402
from edged.printing.transports import make_transport  # noqa: E402
from edged.sinqro.models import parse_order  # noqa: E402
from edged.state import BoxState  # noqa: E402

EXAMPLES: dict[str, Any] = json.loads(
    (ROOT / "edged/simulator/data/examples.json").read_text("utf-8")
)
KINDS = ("delivery", "collection", "reservation", "insitu", "inside")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_render(rounds: int) -> list[float]:
    settings = EncoderSettings(codepages.resolve("default"), codepages.get_profile("default"))
    options = TicketOptions(columns=42, language="es")
    orders = [parse_order(EXAMPLES[k]) for k in KINDS]
    samples = []
    for _ in range(rounds):
        for order in orders:
            start = time.perf_counter()
            encode(order_ticket(order, options), settings)
            samples.append(time.perf_counter() - start)
    return samples


@dataclass
class RasterNumbers:
    """Order → bytes at 576 dots, as text and as a picture."""

    text_seconds: list[float]
    text_bytes: float  # mean per ticket
    raster_seconds: list[float]
    raster_bytes: float
    first_raster: float  # the very first picture, fonts loaded from disk


def bench_raster(rounds: int) -> RasterNumbers:
    orders = [parse_order(EXAMPLES[k]) for k in KINDS]
    options = TicketOptions(columns=48, language="es")

    def settings(render: str) -> EncoderSettings:
        return EncoderSettings(
            codepages.resolve("TM-T20III"),
            codepages.get_profile("TM-T20III"),
            80,
            True,
            render,  # type: ignore[arg-type]
        )

    text, picture = settings("text"), settings("raster")
    start = time.perf_counter()
    ticket_bytes(order_ticket(orders[0], options), picture)
    first = time.perf_counter() - start
    numbers = RasterNumbers([], 0.0, [], 0.0, first)
    sizes: dict[str, list[int]] = {"text": [], "raster": []}
    for _ in range(rounds):
        for order in orders:
            for name, chosen, samples in (
                ("text", text, numbers.text_seconds),
                ("raster", picture, numbers.raster_seconds),
            ):
                start = time.perf_counter()
                data = ticket_bytes(order_ticket(order, options), chosen)
                samples.append(time.perf_counter() - start)
                sizes[name].append(len(data))
    numbers.text_bytes = statistics.mean(sizes["text"])
    numbers.raster_bytes = statistics.mean(sizes["raster"])
    return numbers


async def bench_first_byte(count: int) -> list[float]:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        async with TcpPrinter("online") as printer:
            journal = await Journal.open(Path(tmp) / "bench.sqlite3")
            config = PrinterConfig(name="bench", uri=printer.uri, health_interval=0)
            spooler = Spooler(
                [config], journal, BoxState(), BoxConfig(state_dir=tmp), transports=make_transport
            )
            task = asyncio.create_task(spooler.run(), name="bench-spooler")
            try:
                for n in range(count):
                    raw = copy.deepcopy(EXAMPLES[KINDS[n % len(KINDS)]])
                    raw["id"] = 100_000 + n
                    when = datetime.now(UTC) + timedelta(hours=1)
                    raw["executionTime"] = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
                    before = len(printer.first_byte_at)
                    printer.first_byte.clear()
                    printer.received.clear()
                    start = time.perf_counter()
                    await journal.upsert_order(parse_order(raw))
                    await asyncio.wait_for(printer.first_byte.wait(), 10)
                    samples.append(printer.first_byte_at[before] - start)
                    # Let the connection finish so the next sample starts clean.
                    await asyncio.wait_for(printer.received.wait(), 10)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await journal.close()
    return samples


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50, help="orders sent to the printer")
    parser.add_argument("--rounds", type=int, default=200, help="render rounds of 5 orders")
    parser.add_argument("--raster-rounds", type=int, default=20, help="raster rounds of 5")
    args = parser.parse_args()
    render = bench_render(args.rounds)
    pictures = bench_raster(args.raster_rounds)
    first_byte = asyncio.run(bench_first_byte(args.orders))
    print("| printing | p50 | p99 | samples |")
    print("|---|---|---|---|")
    for name, samples in (
        ("ticket render (order → bytes)", render),
        ("notification → first byte at TCP printer", first_byte),
    ):
        print(
            f"| {name} | {ms(statistics.median(samples))} | {ms(percentile(samples, 99))} "
            f"| {len(samples)} |"
        )
    print()
    print(raster_summary(pictures))
    return 0


def raster_summary(n: RasterNumbers) -> str:
    """One line: raster against text at 576 dots, time and bytes per ticket."""
    return (
        f"raster p50 {ms(statistics.median(n.raster_seconds))}, "
        f"p99 {ms(percentile(n.raster_seconds, 99))}, {n.raster_bytes / 1024:,.1f} KiB/ticket; "
        f"text p50 {ms(statistics.median(n.text_seconds))}, "
        f"{n.text_bytes / 1024:,.1f} KiB/ticket (n={len(n.raster_seconds)}; "
        f"first picture {ms(n.first_raster)} with font loading)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
