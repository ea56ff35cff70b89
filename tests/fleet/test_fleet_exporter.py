"""``edged fleet exporter``: the real command against a real Mosquitto holding a few boxes'
retained info (and one box's garbage); its /metrics read by Prometheus' own checker and
parser, followed live as boxes report, and refused (503) while no broker node holds it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from broker import MosquittoBroker
from ports import free_port
from prometheus_client.parser import text_string_to_metric_families
from test_fleet_view import BOXES, publish_fleet
from waiting import eventually_blocking

from edged.fleet.exporter import render

ROOT = Path(__file__).resolve().parents[2]
ROMA = "10000000aaaa0001"
SUSHI = "10000000aaaa0002"


@pytest.fixture
def fleet_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        asyncio.run(publish_fleet(broker))
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def exporter(fleet_broker: MosquittoBroker) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "edged.cli", "fleet", "exporter"),
            *("--url", fleet_broker.url, "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        # SIGTERM is a clean stop, not a crash.
        assert process.returncode == 0, err.decode()


def scrape_until(url: str, ready: Callable[[httpx.Response], bool]) -> httpx.Response:
    """Scrape until ``ready`` holds (the exporter starting, a report arriving)."""

    def scrape() -> httpx.Response | None:
        response = httpx.get(url, timeout=5)
        return response if ready(response) else None

    answer: httpx.Response = eventually_blocking(
        scrape, within=30, what=f"{url} in the expected state", ignoring=(httpx.TransportError,)
    )
    return answer


def series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: dict[Any, float], metric: str, /, **labels: str) -> float:
    return found[metric, frozenset(labels.items())]


def promtool(text: str) -> None:
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_series_set_per_box_checked_by_promtool(
    fleet_broker: MosquittoBroker, exporter: str
) -> None:
    response = scrape_until(
        exporter, lambda r: r.status_code == 200 and all(box in r.text for box in BOXES)
    )
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    promtool(response.text)
    found = series(response.text)
    assert value(found, "edged_fleet_broker_connected") == 1
    assert value(found, "edged_fleet_boxes") == 3
    assert value(found, "edged_fleet_unreadable_messages_total") == 1
    assert value(found, "edged_box_up", box_id=ROMA) == 1
    assert value(found, "edged_box_up", box_id="10000000aaaa0003") == 0
    assert (
        value(
            found,
            "edged_box_info",
            box_id=ROMA,
            name="Pizza Roma",
            version="0.4.0",
            board="",
            selling_point="",
        )
        == 1
    )
    assert value(found, "edged_box_link_state", box_id=SUSHI, state="polling") == 1
    assert value(found, "edged_box_link_state", box_id=SUSHI, state="online") == 0
    assert (
        value(found, "edged_box_printer_state", box_id=ROMA, printer="counter", state="paper_out")
        == 1
    )
    assert (
        value(found, "edged_box_printer_state", box_id=ROMA, printer="counter", state="online") == 0
    )
    assert value(found, "edged_box_printers", box_id=ROMA) == 2
    assert value(found, "edged_box_open_incidents", box_id=ROMA) == 1
    assert value(found, "edged_box_last_report_timestamp_seconds", box_id=ROMA) == (
        datetime.fromisoformat(BOXES[ROMA]["at"]).timestamp()
    )
    # The test boxes report no temperature: the series is absent, never a made-up 0.
    assert not any(name == "edged_box_soc_temperature_celsius" for name, _ in found)


def test_a_new_report_shows_at_the_next_scrape_and_a_dead_broker_is_503(
    fleet_broker: MosquittoBroker, exporter: str
) -> None:
    scrape_until(exporter, lambda r: r.status_code == 200 and "10000000aaaa0003" in r.text)
    report = {
        "v": 1,
        "box_id": SUSHI,
        "name": "Sushi Bar",
        "version": "0.5.0",
        "link": "online",
        "printers": {"kitchen": "cover_open"},
        "waiting_orders": 2,
        "storage_free": 1_000_000,
        "storage_total": 8_000_000,
        "soc_temperature": 71.5,
        "throttling": {"under_voltage": True, "throttled": False, "bogus": "yes"},
        "uptime": "a claim of the wrong type",
        "updates": {
            "last_update": {"at": 1796641000, "from": "0.4.0", "to": "0.5.0"},
            "health": {"ok": False, "at": 1796641100},
        },
        "at": "2026-12-07T11:05:00+00:00",
    }

    async def publish() -> None:
        async with aiomqtt.Client(fleet_broker.host, fleet_broker.port) as client:
            body = json.dumps(report).encode()
            await client.publish(f"edged/{SUSHI}/info", body, qos=1, retain=True)
            # A retained message cleared: that box is forgotten.
            await client.publish("edged/10000000aaaa0003/info", b"", qos=1, retain=True)
            await client.publish("edged/10000000aaaa0003/availability", b"", qos=1, retain=True)

    asyncio.run(publish())
    response = scrape_until(
        exporter, lambda r: "0.5.0" in r.text and "10000000aaaa0003" not in r.text
    )
    promtool(response.text)
    found = series(response.text)
    assert value(found, "edged_fleet_boxes") == 2
    assert value(found, "edged_box_link_state", box_id=SUSHI, state="online") == 1
    assert (
        value(found, "edged_box_printer_state", box_id=SUSHI, printer="kitchen", state="cover_open")
        == 1
    )
    assert value(found, "edged_box_waiting_orders", box_id=SUSHI) == 2
    assert value(found, "edged_box_storage_free_bytes", box_id=SUSHI) == 1_000_000
    assert value(found, "edged_box_storage_size_bytes", box_id=SUSHI) == 8_000_000
    assert value(found, "edged_box_soc_temperature_celsius", box_id=SUSHI) == 71.5
    assert value(found, "edged_box_throttled", box_id=SUSHI, flag="under_voltage") == 1
    assert value(found, "edged_box_throttled", box_id=SUSHI, flag="throttled") == 0
    assert ("edged_box_throttled", frozenset({("box_id", SUSHI), ("flag", "bogus")})) not in found
    assert not any(name == "edged_box_uptime_seconds" for name, _ in found)
    assert value(found, "edged_box_health_window_ok", box_id=SUSHI) == 0
    assert value(found, "edged_box_last_update_timestamp_seconds", box_id=SUSHI) == 1796641000

    fleet_broker.kill()
    down = scrape_until(exporter, lambda r: r.status_code == 503)
    assert "no broker node" in down.text
    healthz = httpx.get(exporter.replace("/metrics", "/healthz"), timeout=5)
    assert healthz.status_code == 503 and healthz.json()["connected"] is False


def test_label_values_are_escaped() -> None:
    from edged.fleet.exporter import Sample

    text = render([Sample("edged_box_info", 1, "x", (("name", 'a "b"\\\nc'),))])
    promtool(text)
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels["name"] == 'a "b"\\\nc'


FULL_BOX = "10000000aaaa0004"
FULL_INFO = {
    "v": 1,
    "box_id": FULL_BOX,
    "name": "Bar Centro",
    "version": "0.5.0",
    "board": "Raspberry Pi 5 Model B Rev 1.0",
    "selling_point": {"id": 3442, "name": "Bar Centro"},
    "link": "online",
    "printers": {"kitchen": "online"},
    "orders_today": 12,
    "waiting_orders": 1,
    "queued_commands": 0,
    "storage_free": 2_000_000,
    "storage_total": 8_000_000,
    "soc_temperature": 55.2,
    "throttling": {"under_voltage": False, "throttled": False},
    "incidents": [],
    "updates": {"health": {"ok": True, "at": 1796641100}},
    "at": "2026-12-07T11:05:00+00:00",
}


def test_every_dashboard_query_answers_on_a_real_prometheus(
    fleet_broker: MosquittoBroker, exporter: str, tmp_path: Path
) -> None:
    async def publish() -> None:
        async with aiomqtt.Client(fleet_broker.host, fleet_broker.port) as client:
            body = json.dumps(FULL_INFO).encode()
            await client.publish(f"edged/{FULL_BOX}/info", body, qos=1, retain=True)
            await client.publish(f"edged/{FULL_BOX}/availability", b"online", qos=1, retain=True)

    asyncio.run(publish())
    scrape_until(exporter, lambda r: FULL_BOX in r.text)
    port = free_port()
    target = exporter.removeprefix("http://").removesuffix("/metrics")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: fleet, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expr: str) -> list[Any]:
        answer = httpx.get(api, params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        result: list[Any] = answer["data"]["result"]
        return result

    try:
        eventually_blocking(
            lambda: [r["value"][1] for r in query("edged_fleet_boxes")] == ["4"],
            within=60,
            what="Prometheus scraping the exporter",
            ignoring=(httpx.TransportError, json.JSONDecodeError, KeyError),
        )
        dashboard = json.loads((ROOT / "docs" / "grafana-fleet.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert exprs
        for expr in exprs:
            assert query(expr), f"no series for the dashboard's {expr!r}"
    finally:
        server.terminate()
        server.wait(timeout=30)
