"""The Prometheus exposition edged writes by hand, read by the official parser."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edged.web.metrics import Histogram, process_metrics, render_metrics


def test_a_histogram_counts_cumulatively_and_parses() -> None:
    histogram = Histogram((0.5, 1.0, 5.0))
    for seconds in (0.1, 0.5, 0.7, 3.0, 12.0):
        histogram.observe(seconds)
    text = render_metrics(histogram.samples("edged_test_seconds", "Test"))
    (family,) = text_string_to_metric_families(text)
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    # le is "less than or equal": 0.5 falls in the 0.5 bucket.
    assert buckets == {"0.5": 2, "1": 3, "5": 4, "+Inf": 5}
    values = {s.name: s.value for s in family.samples if not s.name.endswith("_bucket")}
    assert values == {"edged_test_seconds_count": 5, "edged_test_seconds_sum": 16.3}


def test_process_metrics_need_proc(tmp_path: Path) -> None:
    """Where /proc is missing or hidden, the family is left out, never made up."""
    assert process_metrics(tmp_path) == []
    names = {m.name for m in process_metrics()}
    assert {"process_resident_memory_bytes", "process_start_time_seconds"} <= names
