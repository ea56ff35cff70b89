"""What each part of the daemon costs to import: time, resident memory, Python allocations.

Each part is imported in a fresh interpreter that has already imported what every daemon
imports (``edged.app``, the core), so a row is what switching that part on adds. Time is
wall time of the imports (``time.perf_counter``), memory the growth of ``VmRSS`` and the
peak of ``tracemalloc`` (Python objects only; C libraries' own memory is in RSS, not
there). The core row is measured against a bare interpreter with asyncio. Bytecode comes
from a temp ``PYTHONPYCACHEPREFIX`` compiled first, as a box's venv has it.

Run: ``.venv/bin/python benchmarks/bench_imports.py`` (prints a markdown table; time and
RSS are medians of three runs per part).
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# part -> (what switches it on, the modules its builder imports)
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "core (journal, desk, link, outbox, supervisor)": ("always", ("edged.app",)),
    "web page": ("[web] (the demo: on)", ("edged.web.server", "edged.web.services")),
    "spooler, text tickets": ("a printer", ("edged.printing.spooler", "edged.printing.transports")),
    "raster tickets, virtual printer PNG": (
        "a raster printer, a picture, a virtual printer",
        ("PIL.Image", "PIL.ImageDraw", "PIL.ImageFont"),
    ),
    "QR codes": ("a QR on a ticket or a page", ("qrcode", "qrcode.image.svg")),
    "panel (buzzer, LED, buttons)": ("[panel]", ("edged.panel.controller",)),
    "MQTT bridge": ("[mqtt] enabled", ("edged.bridges.mqtt", "edged.bridges.homeassistant")),
    "serial bridge": ("[serial] enabled", ("edged.bridges.serial",)),
    "fleet link and alerts": ("[fleet] enabled", ("edged.fleet.link", "edged.fleet.alerts")),
}

PROBE = """
import sys, time, tracemalloc, json, importlib
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
import asyncio
for name in sys.argv[2].split(',') if sys.argv[2] else []:
    importlib.import_module(name)
before = rss()
traced = sys.argv[3] == 'traced'
if traced:
    tracemalloc.start()
start = time.perf_counter()
for name in sys.argv[1].split(','):
    importlib.import_module(name)
took = time.perf_counter() - start
_, peak = tracemalloc.get_traced_memory() if traced else (0, 0)
print(json.dumps({'ms': took * 1000, 'rss_kib': rss() - before, 'traced_kib': peak / 1024}))
"""


def probe(modules: tuple[str, ...], base: tuple[str, ...], mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), ",".join(base), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def measure(modules: tuple[str, ...], base: tuple[str, ...]) -> dict[str, float]:
    """Median time and RSS of three plain runs; allocations from one traced run (tracing
    slows imports down, so it is kept out of the timed runs)."""
    runs = [probe(modules, base, "plain") for _ in range(3)]
    traced = probe(modules, base, "traced")
    return {
        "ms": statistics.median(r["ms"] for r in runs),
        "rss_kib": statistics.median(r["rss_kib"] for r in runs),
        "traced_kib": traced["traced_kib"],
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="edged-imports-") as tmp:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = tmp
        sys.pycache_prefix = tmp
        compileall.compile_dir(str(ROOT / "edged"), quiet=1)
        print("| part | switched on by | import time | RSS added | Python allocations |")
        print("|---|---|---:|---:|---:|")
        for part, (when, modules) in PARTS.items():
            base = () if modules == ("edged.app",) else ("edged.app",)
            m = measure(modules, base)
            print(
                f"| {part} | {when} | {m['ms']:.0f} ms | {m['rss_kib'] / 1024:.1f} MiB |"
                f" {m['traced_kib'] / 1024:.1f} MiB |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
