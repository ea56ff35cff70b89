"""Every edged benchmark in one run: one markdown table, also written to benchmarks/results.md.

Run it with ``benchmarks/run`` (or ``make bench``); ``--quick`` shortens the idle-CPU window
to 10 s and takes fewer samples, for trying things out. benchmarks/README.md explains each
row: what exactly is measured, from where to where.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import bench_mqtt  # noqa: E402
import bench_panel  # noqa: E402
import bench_printing  # noqa: E402
from harness import SimulatorProcess  # noqa: E402
from loopfs import LoopFsUnavailable  # noqa: E402
from suite_common import (  # noqa: E402
    CATCH_UP_BEFORE,
    CATCH_UP_ORDERS,
    POLL_INTERVAL,
    RESULTS,
    RESULTS_PI,
    Row,
    Settings,
    fmt_kib,
    fmt_ms,
    fmt_s,
    git_commit,
    latency_row,
    machine_line,
    progress,
    realistic_orders,
    verdict,
)
from suite_daemon import (  # noqa: E402
    CARD_IDLE,
    CARD_PER_ORDER,
    CARD_PER_ORDER_AIM,
    bare_python_rss_kib,
    card_rows,
    daemon_numbers,
)
from suite_latency import (  # noqa: E402
    admin_round_trip,
    journal_and_plain_rates,
    notification_to_journal,
    send_frames,
    start_sender,
)
from suite_pi import pi_run  # noqa: E402

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
