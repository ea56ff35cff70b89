"""What the parts of benchmarks/suite.py share: settings, rows and their numbers, the
machine line, generated orders and the demo config.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from harness import SimulatorProcess  # noqa: E402
from ports import free_port  # noqa: E402

from edged.demo import demo_config  # noqa: E402
from edged.simulator.cloud import default_selling_points  # noqa: E402
from edged.simulator.generate import build_order, notification_example  # noqa: E402
from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN  # noqa: E402
from edged.simulator.statuses import status_object  # noqa: E402
from edged.sinqro.models import ORDER_TYPES, Order, parse_order  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.md"
RESULTS_PI = ROOT / "benchmarks" / "results-pi.md"
POLL_INTERVAL = 60.0  # the Sinqro documents' polling baseline for a POS without a websocket
CATCH_UP_ORDERS = 200
WARM_STARTS = 4
# Measured with benchmarks/bench_storage.py at commit 97d525b (before group commit, small
# pages and the compare-before-write): the baseline of the bytes-per-order aim.
BYTES_PER_ORDER_BEFORE = 278.3 * 1024
BYTES_PER_ORDER_AIM = 32 * 1024  # what an SD card can take for years at a busy counter
# Catch-up of 200 orders at commit 97d525b, from the first order stored to the last: the
# fastest of three runs side by side with this code (the same watcher, the same load).
CATCH_UP_BEFORE = 1.26


@dataclass(frozen=True)
class Settings:
    """How much of everything one run does."""

    journal_samples: int
    buzzer_samples: int
    printer_samples: int
    mqtt_samples: int
    render_rounds: int
    raster_rounds: int
    throughput_orders: int
    idle_seconds: float
    card_orders: int
    card_idle: float

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(60, 100, 30, 200, 60, 4, 500, 10.0, 10, 20.0)
        return cls(200, 300, 100, 500, 200, 20, 1000, 60.0, 30, 120.0)


@dataclass(frozen=True)
class Row:
    measure: str
    result: str
    aim: str
    verdict: str


# -- numbers --------------------------------------------------------------------------------


def pct(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least p % of samples at or below."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_kib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def latency_row(measure: str, samples: Sequence[float], aim_ms: float | None) -> Row:
    p50, p99 = statistics.median(samples), pct(samples, 99)
    result = f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)} (n={len(samples)})"
    if aim_ms is None:
        return Row(measure, result, "no aim", "—")
    return Row(measure, result, f"p99 < {aim_ms:g} ms", verdict(p99 * 1000 < aim_ms))


# -- the machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def filesystem_of(path: str) -> str:
    """The file system type of the mount holding ``path`` (longest matching mount point)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def machine_line(tmp: str) -> str:
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, temp dir on {filesystem_of(tmp)}, "
        f"{platform.system()} {platform.release()}"
    )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


# -- shared pieces ----------------------------------------------------------------------------


def realistic_orders(count: int, first_id: int, seed: int = 7) -> list[Order]:
    """Orders the simulator's generator builds (all five types), with our ids."""
    rng = random.Random(seed)
    sp = default_selling_points()[3961]
    return [
        parse_order(build_order(rng.choice(ORDER_TYPES), first_id + n, sp, rng=rng))
        for n in range(count)
    ]


LIFE = ("accepted", "finished")  # the status frames that follow each new order


def order_frames(count: int, first_id: int, selling_point: int) -> list[tuple[int, list[str]]]:
    """Per order: its ``new_order`` frame, then one ``order_status_changed`` frame per status
    of :data:`LIFE`, as the simulator sends them (the documented envelope around a generated
    order). Built ahead so building them is not measured."""
    rng = random.Random(11)
    sp = default_selling_points()[selling_point]
    frames = []
    for n in range(count):
        order = build_order(rng.choice(ORDER_TYPES), first_id + n, sp, rng=rng)
        texts = []
        for event, status in (("new_order", None), *(("order_status_changed", c) for c in LIFE)):
            if status is not None:
                order = {**order, "status": status_object(status)}
            envelope = notification_example()
            envelope.update(event=event, data=order, sellingPointId=selling_point)
            texts.append(json.dumps(envelope, ensure_ascii=False))
        frames.append((first_id + n, texts))
    return frames


def write_demo_config(state_dir: Path, sim: SimulatorProcess) -> Path:
    """The config ``edged demo`` writes (two virtual printers, mock panel, web page on),
    pointed at a simulator running in its own process."""
    info = sim.info()
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "edged.toml"
    path.write_text(
        demo_config(
            state_dir,
            base_url=str(info["baseUrl"]),
            websocket_url=str(info["websocketUrl"]),
            server_token=DEFAULT_SERVER_TOKEN,
            user_token=DEFAULT_USER_TOKEN,
            selling_point_id=int(str(info["sellingPointId"])),
            web_port=free_port(),
        ),
        encoding="utf-8",
    )
    return path


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)
