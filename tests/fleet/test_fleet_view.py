"""``edged fleet ls`` / ``show``: the real command against a real Mosquitto holding the
retained info and availability of a few boxes (and one box's garbage)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from broker import MosquittoBroker
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]

BOXES: dict[str, dict[str, Any]] = {
    "10000000aaaa0001": {
        "name": "Pizza Roma",
        "version": "0.4.0",
        "link": "online",
        "printers": {"kitchen": "online", "counter": "paper_out"},
        "incidents": ["printer_down:counter"],
        "at": "2026-12-07T11:02:13+00:00",
    },
    "10000000aaaa0002": {
        "name": "Sushi Bar",
        "version": "0.4.0",
        "link": "polling",
        "printers": {"kitchen": "online"},
        "incidents": [],
        "at": "2026-12-07T11:03:00+00:00",
    },
    "10000000aaaa0003": {
        "name": "Tapas",
        "version": "0.3.9",
        "link": "online",
        "printers": {},
        "incidents": [],
        "at": "2026-12-07T10:00:00+00:00",
    },
}
AVAILABILITY = {"10000000aaaa0001": b"online", "10000000aaaa0002": b"online"}
AVAILABILITY["10000000aaaa0003"] = b"offline"


@pytest.fixture
def fleet_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        asyncio.run(publish_fleet(broker))
        yield broker
    finally:
        broker.kill()


async def publish_fleet(broker: MosquittoBroker) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="boxes") as client:
        for box_id, info in BOXES.items():
            body = json.dumps({"v": 1, "box_id": box_id, **info}).encode()
            await client.publish(f"edged/{box_id}/info", body, qos=1, retain=True)
            await client.publish(
                f"edged/{box_id}/availability", AVAILABILITY[box_id], qos=1, retain=True
            )
        # A claim that is no info document: left out, and counted.
        await client.publish("edged/10000000bad00001/info", b"{not json", qos=1, retain=True)


def fleet(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged.cli", "fleet", *args, "--url", url, "--wait", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_ls_lists_every_box_with_its_state(fleet_broker: MosquittoBroker) -> None:
    done = fleet("ls", "--json", url=fleet_broker.url)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["unreadable"] == 1
    rows = {row["box_id"]: row for row in listed["boxes"]}
    assert list(rows) == sorted(BOXES)
    first = rows["10000000aaaa0001"]
    assert first == {
        "box_id": "10000000aaaa0001",
        "name": "Pizza Roma",
        "version": "0.4.0",
        "availability": "online",
        "link": "online",
        "printers": {"kitchen": "online", "counter": "paper_out"},
        "incidents": ["printer_down:counter"],
        "at": "2026-12-07T11:02:13+00:00",
    }
    assert rows["10000000aaaa0003"]["availability"] == "offline"


def test_ls_filters(fleet_broker: MosquittoBroker) -> None:
    def ids(*flags: str) -> list[str]:
        done = fleet("ls", "--json", *flags, url=fleet_broker.url)
        assert done.returncode == 0, done.stderr
        return [row["box_id"] for row in json.loads(done.stdout)["boxes"]]

    assert ids("--availability", "offline") == ["10000000aaaa0003"]
    assert ids("--link", "polling") == ["10000000aaaa0002"]
    assert ids("--with-incidents") == ["10000000aaaa0001"]


def test_ls_for_people_in_spanish(fleet_broker: MosquittoBroker) -> None:
    done = fleet("ls", "--language", "es", url=fleet_broker.url)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[0] == "caja"
    assert len(lines) == 3
    assert "Pizza Roma" in lines[0] and "counter sin papel" in lines[0]
    assert "sin conexión" in lines[2]
    assert "mensajes ilegibles omitidos: 1" in done.stderr


def test_show_one_box_and_refuse_an_unknown_one(fleet_broker: MosquittoBroker) -> None:
    done = fleet("show", "10000000aaaa0002", "--json", url=fleet_broker.url)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["availability"] == "online"
    assert shown["info"]["name"] == "Sushi Bar" and shown["info"]["v"] == 1
    unknown = fleet("show", "10000000ffff0000", url=fleet_broker.url)
    assert unknown.returncode == 3 and "10000000ffff0000" in unknown.stderr
    assert fleet("show", "+", url=fleet_broker.url).returncode == 3


def test_a_dead_node_is_skipped_and_no_node_is_unavailable(
    fleet_broker: MosquittoBroker,
) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "edged.cli", "fleet", "ls", "--json", "--wait", "0.5"),
            *("--url", dead, "--url", fleet_broker.url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["boxes"]) == 3
    nothing = fleet("ls", url=dead)
    assert nothing.returncode == 69 and "no broker node answered" in nothing.stderr
    bad = fleet("ls", url="http://example.com")
    assert bad.returncode == 78 and "url" in bad.stderr
