"""Prometheus text exposition (format 0.0.4) without a client library."""

from __future__ import annotations

import math
from collections.abc import Iterable

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
