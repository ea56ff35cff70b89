"""Prometheus text exposition (format 0.0.4) without a client library: the box's samples,
the standard ``process_*`` family read from ``/proc`` and histograms."""

from __future__ import annotations

import bisect
import math
import os
import resource
from collections.abc import Iterable
from pathlib import Path

from edged.web.services import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def render_metrics(samples: Iterable[Metric]) -> str:
    """Samples grouped by name, each group with one HELP and TYPE line."""
    groups: dict[str, list[Metric]] = {}
    for sample in samples:
        groups.setdefault(sample.name, []).append(sample)
    out: list[str] = []
    for name, group in groups.items():
        first = group[0]
        if first.help:
            out.append(f"# HELP {name} {first.help.replace(chr(10), ' ')}")
        out.append(f"# TYPE {name} {first.kind}")
        for sample in group:
            labels = ""
            if sample.labels:
                inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in sample.labels.items())
                labels = "{" + inner + "}"
            out.append(f"{name}{sample.suffix}{labels} {_number(sample.value)}")
    return "\n".join(out) + "\n"


# Seconds from a board button to Sinqro's answer: a tap answered at once, a slow link, the
# wait limit. Histograms (unlike a summary) add up over a fleet.
DECISION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative bucket counts, a sum and a count, as Prometheus histograms keep them."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self, name: str, help: str) -> list[Metric]:
        out: list[Metric] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            le = "+Inf" if math.isinf(bound) else _number(bound)
            out.append(Metric(name, running, help, "histogram", {"le": le}, "_bucket"))
        out.append(Metric(name, self.sum, help, "histogram", suffix="_sum"))
        out.append(Metric(name, self.count, help, "histogram", suffix="_count"))
        return out


def process_metrics(proc: Path = Path("/proc")) -> list[Metric]:
    """The standard ``process_*`` samples (as the official client libraries name them) for
    this process: memory against the unit's MemoryMax, CPU, descriptors, start time."""
    out: list[Metric] = []
    try:
        stat = (proc / "self" / "stat").read_text()
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        boot = next(
            float(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, StopIteration):
        return out  # not Linux, or /proc hidden: the box's own samples still go out
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    out += [
        Metric(
            "process_cpu_seconds_total",
            (utime + stime) / ticks,
            "Total user and system CPU time spent in seconds.",
            "counter",
        ),
        Metric("process_virtual_memory_bytes", int(fields[20]), "Virtual memory size in bytes."),
        Metric(
            "process_resident_memory_bytes",
            int(fields[21]) * page,
            "Resident memory size in bytes.",
        ),
        Metric(
            "process_start_time_seconds",
            boot + start / ticks,
            "Start time of the process since unix epoch in seconds.",
        ),
    ]
    try:
        open_fds = len(os.listdir(proc / "self" / "fd"))
    except OSError:
        return out
    out.append(Metric("process_open_fds", open_fds, "Number of open file descriptors."))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out.append(Metric("process_max_fds", soft, "Maximum number of open file descriptors."))
    return out
