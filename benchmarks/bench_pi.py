"""The daemon rows inside the CPU and memory of a small board: ``benchmarks/run --pi``.

A cgroup of its own holds each process measured (``edged run``, and the buzzer bench's
process), never the simulator or the benchmark itself, with:

* CPU: 20 % of one core (``cpu.max 20000 100000``; v1: ``cpu.cfs_quota_us`` 20000 per
  100000 µs period). A Raspberry Pi 3's Cortex-A53 core does about a fifth of what one
  core of the x86 server the table is usually made on does for this Python code, and the
  box shares its cores with the system;
* memory: 384 MiB (``memory.max 384M``; v1: ``memory.limit_in_bytes``), the ``MemoryMax``
  of edged's systemd unit, swap off for the group. Past it the kernel's OOM killer acts;
  the row counts OOM kills from ``memory.events`` (v1: ``memory.oom_control``).

cgroup v2 is used where its ``cpu`` and ``memory`` controllers can be enabled; otherwise
the v1 hierarchies (a hybrid host). The process joins its cgroup between ``fork`` and
``exec`` (``preexec_fn``), so its whole life runs capped. Needs root.

Run alone: ``.venv/bin/python benchmarks/bench_pi.py --buzzer N`` is the buzzer bench's
child (prints its samples as JSON); everything else runs from ``suite.py --pi``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CPU_QUOTA_US = 20_000
CPU_PERIOD_US = 100_000
MEMORY_MAX = 384 * 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupUnavailable(RuntimeError):
    """No capped cgroup could be made here (not root, no cpu/memory controller)."""


def _own_path(controller: str) -> str:
    """This process's cgroup path for a v1 controller, or for v2 (``controller=""``)."""
    for line in Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise CgroupUnavailable(f"this process is in no {controller or 'v2'} cgroup")


@dataclass
class CappedGroup:
    """One cgroup (v2) or a pair (v1 cpu + memory) with the board's caps."""

    dirs: list[Path]
    version: int

    @classmethod
    def create(cls, name: str) -> CappedGroup:
        if os.geteuid() != 0:
            raise CgroupUnavailable("capping a cgroup needs root")
        errors = []
        for make in (cls._v2, cls._v1):
            try:
                return make(name)
            except (OSError, CgroupUnavailable) as exc:
                errors.append(str(exc))
        raise CgroupUnavailable("; ".join(errors))

    @classmethod
    def _v2(cls, name: str) -> CappedGroup:
        # At the top of the (namespace's) hierarchy, where systemd puts its own units: the
        # root may hold processes and still enable controllers for its children.
        root = CGROUP_ROOT
        if not (root / "cgroup.controllers").exists():
            raise CgroupUnavailable("no cgroup v2 at /sys/fs/cgroup")
        parent = root
        available = (parent / "cgroup.controllers").read_text(encoding="ascii").split()
        if not {"cpu", "memory"} <= set(available):
            raise CgroupUnavailable(f"cgroup v2 controllers here: {available}")
        enabled = (parent / "cgroup.subtree_control").read_text(encoding="ascii").split()
        if not {"cpu", "memory"} <= set(enabled):
            (parent / "cgroup.subtree_control").write_text("+cpu +memory", encoding="ascii")
        group = parent / name
        group.mkdir()
        (group / "cpu.max").write_text(f"{CPU_QUOTA_US} {CPU_PERIOD_US}", encoding="ascii")
        (group / "memory.max").write_text(str(MEMORY_MAX), encoding="ascii")
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0", encoding="ascii")
        return cls([group], 2)

    @classmethod
    def _v1(cls, name: str) -> CappedGroup:
        cpu = CGROUP_ROOT / "cpu" / _own_path("cpu").lstrip("/") / name
        memory = CGROUP_ROOT / "memory" / _own_path("memory").lstrip("/") / name
        cpu.mkdir()
        try:
            memory.mkdir()
        except OSError:
            cpu.rmdir()
            raise
        (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US), encoding="ascii")
        (cpu / "cpu.cfs_quota_us").write_text(str(CPU_QUOTA_US), encoding="ascii")
        (memory / "memory.limit_in_bytes").write_text(str(MEMORY_MAX), encoding="ascii")
        with contextlib.suppress(OSError):  # no swap accounting: nothing to switch off
            (memory / "memory.memsw.limit_in_bytes").write_text(str(MEMORY_MAX), encoding="ascii")
        return cls([cpu, memory], 1)

    def describe(self) -> str:
        mib = MEMORY_MAX // (1024 * 1024)
        share = 100 * CPU_QUOTA_US // CPU_PERIOD_US
        if self.version == 2:
            return (
                f"cgroup v2, cpu.max {CPU_QUOTA_US} {CPU_PERIOD_US} ({share} % of one core), "
                f"memory.max {mib}M, memory.swap.max 0"
            )
        return (
            f"cgroup v1, cpu.cfs_quota_us {CPU_QUOTA_US} per cpu.cfs_period_us {CPU_PERIOD_US} "
            f"({share} % of one core), memory.limit_in_bytes {mib}M"
        )

    def join(self) -> None:
        """Move the calling process in (a ``preexec_fn``: between fork and exec)."""
        for group in self.dirs:
            (group / "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")

    def _memory_dir(self) -> Path:
        return self.dirs[-1]

    def peak_bytes(self) -> int:
        """The most memory the group's processes held at once (since the last reset)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return int((self._memory_dir() / name).read_text(encoding="ascii").split()[0])

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self._memory_dir() / name).read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def throttled_seconds(self) -> float:
        """CPU time the caps held the group back (``cpu.stat``)."""
        text = (self.dirs[0] / "cpu.stat").read_text(encoding="ascii")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_usec":
                return int(value) / 1e6
            if key == "throttled_time":  # v1, in ns
                return int(value) / 1e9
        return 0.0

    def remove(self) -> None:
        for group in self.dirs:
            with contextlib.suppress(OSError):
                group.rmdir()


def buzzer_in_group(group: CappedGroup, count: int) -> tuple[list[float], list[float]]:
    """The buzzer bench (``bench_panel.bench``) in a child process inside ``group``."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--buzzer", str(count)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        preexec_fn=group.join,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the capped buzzer bench failed:\n{out.stderr[-3000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return [float(x) for x in data["from_ingest"]], [float(x) for x in data["from_commit"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buzzer", type=int, required=True, help="rounds of the buzzer bench")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_panel

    latencies, in_panel = asyncio.run(bench_panel.bench(args.buzzer, "active"))
    print(json.dumps({"from_ingest": latencies, "from_commit": in_panel}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
