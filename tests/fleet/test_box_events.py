"""The box's update record in its fleet ``info``: update-edged's event lines read as a claim
(bounded, checked, a FIFO or a flood never stalls or swamps the daemon), and a rollback
written while the link runs published at once on a real Mosquitto."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bridge_helpers import make_desk
from broker import MosquittoBroker
from mqtt_listener import Listener
from test_fleet import BOX, fleet_running, kernel, telemetry
from waiting import eventually

from edged.fleet.box_events import TAIL_BYTES, BoxEvents
from edged.fleet.link import FleetLink
from edged.fleet.settings import FleetConfig
from edged.journal.store import Journal


def line(kind: str, old: str, new: str, when: str, **extra: Any) -> str:
    """One event as image/update-edged writes it (image/README.md)."""
    event = {
        "id": "0b7f7c2e-5d1f-4c55-9b43-4b1f0f2d9a10",
        "time": when,
        "kind": kind,
        "from": old,
        "to": new,
        "reason": extra.pop("reason", ""),
        "journal_restored": extra.pop("journal_restored", False),
        **extra,
    }
    return json.dumps(event) + "\n"


PASSED = {"result": "pass", "reason": "4 checks of /health, watchdog fed 9 times"}
FAILED = {"result": "fail", "reason": "its /health is not ok"}


def test_the_last_update_rollback_refusal_and_health_window(tmp_path: Path) -> None:
    path = tmp_path / "box-events.jsonl"
    path.write_text(
        line("update", "0.3.0", "0.4.0", "2026-11-30T03:00:00Z", health=PASSED)
        + line(
            "update_refused",
            "0.4.0",
            "edged-0.5.0.bundle",
            "2026-12-01T03:00:00Z",
            reason="bad signature",
        )
        + line(
            "rollback",
            "0.5.0",
            "0.4.0",
            "2026-12-02T03:05:00Z",
            reason=FAILED["reason"],
            journal_restored=True,
            health=FAILED,
        )
    )
    updates = BoxEvents(path).updates()
    assert updates == {
        "last_update": {"at": 1796007600, "from": "0.3.0", "to": "0.4.0"},
        "last_rollback": {
            "at": 1796180700,
            "from": "0.5.0",
            "to": "0.4.0",
            "reason": "its /health is not ok",
            "journal_restored": True,
        },
        "last_refused": {
            "at": 1796094000,
            "from": "0.4.0",
            "to": "edged-0.5.0.bundle",
            "reason": "bad signature",
        },
        # The health window that failed was 0.5.0's, the version rolled back from.
        "health": {
            "result": "fail",
            "ok": False,
            "reason": "its /health is not ok",
            "version": "0.5.0",
            "at": 1796180700,
        },
    }


def test_no_file_no_updates_and_an_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "box-events.jsonl"
    events = BoxEvents(path)
    assert events.updates() is None
    path.write_text(line("update", "0.3.0", "0.4.0", "2026-11-30T03:00:00Z", health=PASSED))
    first = events.updates()
    assert first is not None and first["health"]["ok"] is True
    assert events.updates() is first  # same reading: nothing parsed again
    with path.open("a") as f:
        f.write(line("update", "0.4.0", "0.4.1", "2026-12-03T03:00:00Z", health=PASSED))
    again = events.updates()
    assert again is not first and again is not None
    assert again["last_update"]["to"] == "0.4.1"


def test_lines_that_are_no_event_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "box-events.jsonl"
    path.write_text(
        "{not json\n"
        + json.dumps([1, 2])
        + "\n"
        + line("reboot", "a", "b", "2026-12-01T03:00:00Z")
        + line("update", "0.3.0", "0.4.0", "yesterday")
        + json.dumps(
            {
                "kind": "update",
                "time": "2026-12-01T03:00:00Z",
                "from": 7,
                "to": ["x"],
                "health": {"result": "maybe"},
            }
        )
        + "\n"
        + line(
            "update",
            "0.3.0",
            "0.4.0" * 100,
            "2026-12-01T04:00:00Z",
            health={"result": "skipped", "reason": 5},
        )
        + "x" * 10_000
        + "\n"
    )
    updates = BoxEvents(path).updates()
    assert updates is not None
    # The wrong-typed fields read as empty; the long version is cut.
    last = updates["last_update"]
    assert last["from"] == "0.3.0" and len(last["to"]) == 200
    assert updates["health"] == {
        "result": "skipped",
        "ok": None,
        "reason": "",
        "version": last["to"],
        "at": last["at"],
    }
    assert updates["last_rollback"] is None and updates["last_refused"] is None


def test_a_huge_file_is_read_only_at_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "box-events.jsonl"
    with path.open("w") as f:
        f.write(line("rollback", "0.1.0", "0.0.9", "2026-01-01T00:00:00Z", reason="old"))
        for _ in range(2_000):
            f.write("junk " * 200 + "\n")
        f.write(line("update", "0.3.0", "0.4.0", "2026-12-01T03:00:00Z"))
    assert path.stat().st_size > 20 * TAIL_BYTES
    updates = BoxEvents(path).updates()
    assert updates is not None
    assert updates["last_update"]["to"] == "0.4.0"
    assert updates["last_rollback"] is None  # beyond the tail: not read


def test_a_fifo_or_a_device_is_no_record(tmp_path: Path) -> None:
    fifo = tmp_path / "box-events.jsonl"
    os.mkfifo(fifo)
    # Opening a FIFO with no writer would block a plain open(): this returns at once.
    assert BoxEvents(fifo).updates() is None
    device = tmp_path / "device"
    device.symlink_to("/dev/zero")
    assert BoxEvents(device).updates() is None


async def test_a_rollback_is_published_in_info_at_once(tmp_path: Path, journal: Journal) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    _, state = make_desk(journal)
    state.set("link", "online")
    config = FleetConfig(
        enabled=True,
        url=broker.url,
        reconnect_min=0.05,
        reconnect_max=0.3,
        info_interval=3600.0,
        info_min_interval=0.1,
    )
    box = telemetry(tmp_path, journal, state, files=kernel(tmp_path, throttled=None))
    link = FleetLink(config, box_id=BOX, telemetry=box, wait_changed=state.wait_changed)
    topic = f"edged/{BOX}/info"
    events = tmp_path / "box-events.jsonl"
    try:
        async with (
            Listener(broker.host, broker.port, (topic,)) as central,
            fleet_running(link),
        ):
            await eventually(lambda: len(central.on(topic)) == 1, what="the first info")
            assert central.on(topic)[0].json()["updates"] is None
            events.write_text(
                line(
                    "rollback",
                    "0.5.0",
                    "0.4.0",
                    "2026-12-02T03:05:00Z",
                    reason=FAILED["reason"],
                    health=FAILED,
                )
            )
            # Nothing else changed: the record alone is worth a message (the link
            # looks again when the box's state changes or at its next recheck).
            state.set("panel.led", "off")
            await eventually(lambda: len(central.on(topic)) == 2, what="the info with the rollback")
            updates = central.on(topic)[-1].json()["updates"]
            assert updates["last_rollback"]["to"] == "0.4.0"
            assert updates["health"]["ok"] is False
    finally:
        broker.kill()
