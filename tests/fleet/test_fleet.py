"""Fleet telemetry: the info document, its publishing rules, and real daemons on real brokers
(a local Mosquitto bridged to a central one; two boxes with the default identity rules)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from bridge_helpers import make_desk, make_order
from broker import MosquittoBroker
from harness import DaemonProcess, SimulatorProcess, app_config, sinqro_section
from mqtt_listener import Listener
from ports import free_port
from test_faults import running_app
from waiting import eventually

from edged.configtools import dump_toml
from edged.fleet.identity import BoxIdentity
from edged.fleet.link import FleetLink
from edged.fleet.settings import FleetConfig
from edged.fleet.telemetry import KernelFiles, Telemetry, local_midnight, throttling
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.state import BoxState

BOX = "10000000feedf00d"


def kernel(tmp_path: Path, *, throttled: str | None = "0x50005") -> KernelFiles:
    root = tmp_path / "sys"
    root.mkdir(exist_ok=True)
    (root / "uptime").write_text("12345.67 40000.00\n")
    (root / "temp").write_text("48312\n")
    firmware = root / "firmware"
    firmware.mkdir(exist_ok=True)
    if throttled is not None:
        (firmware / "get_throttled").write_text(throttled + "\n")
    return KernelFiles(
        uptime=str(root / "uptime"),
        thermal=str(root / "temp"),
        throttled=(str(firmware / "get_throttled"),),
        hwmon=str(root / "hwmon*"),
    )


def telemetry(tmp_path: Path, journal: Journal, state: BoxState, **kw: Any) -> Telemetry:
    return Telemetry(
        identity=BoxIdentity(BOX, "serial", BOX, "Raspberry Pi 4 Model B Rev 1.5"),
        box_name=lambda: "Pizza Roma",
        state=state.snapshot,
        selling_point=lambda: (3442, "My restaurant", "Europe/Madrid"),
        orders_since=journal.orders_seen_since,
        incidents=lambda: ["printer_down:kitchen"],
        storage_path=tmp_path,
        files=kw.pop("files", kernel(tmp_path)),
        **kw,
    )


async def test_the_info_document(tmp_path: Path, journal: Journal) -> None:
    desk, state = make_desk(journal)
    state.set("link", "online")
    state.set("printer.kitchen", {"state": "paper_out", "detail": "no paper"})
    await desk.ingest(make_order(1), "test")
    await desk.ingest(make_order(2), "test")
    info = await telemetry(tmp_path, journal, state).info()
    assert info["box_id"] == BOX and info["name"] == "Pizza Roma"
    assert info["board"] == "Raspberry Pi 4 Model B Rev 1.5"
    assert info["hostname"] == f"edged-{BOX}"
    assert info["selling_point"] == {"id": 3442, "name": "My restaurant"}
    assert info["link"] == "online"
    assert info["printers"] == {"kitchen": "paper_out"}
    assert info["orders_today"] == 2 and info["waiting_orders"] == 2
    assert info["system_uptime"] == 12345.7 and info["uptime"] >= 0
    assert info["soc_temperature"] == 48.3
    assert isinstance(info["storage_free"], int) and info["storage_free"] > 0
    assert isinstance(info["storage_total"], int) and info["storage_total"] >= info["storage_free"]
    assert info["incidents"] == ["printer_down:kitchen"]
    # 0x50005: under-voltage and throttled now, both also "occurred".
    assert info["throttling"] == {
        "under_voltage": True,
        "freq_capped": False,
        "throttled": True,
        "soft_temp_limit": False,
        "under_voltage_occurred": True,
        "freq_capped_occurred": False,
        "throttled_occurred": True,
        "soft_temp_limit_occurred": False,
    }
    json.dumps(info)  # all JSON


def test_kernel_files_missing_or_odd(tmp_path: Path) -> None:
    files = kernel(tmp_path, throttled=None)
    assert throttling(files) is None
    hwmon = tmp_path / "sys" / "hwmon3"
    hwmon.mkdir()
    (hwmon / "name").write_text("rpi_volt\n")
    (hwmon / "in0_lcrit_alarm").write_text("1\n")
    assert throttling(files) == {"under_voltage": True}
    (tmp_path / "sys" / "firmware" / "get_throttled").write_text("garbage\n")
    assert throttling(files) == {"under_voltage": True}


def test_today_starts_at_the_selling_points_midnight() -> None:
    noon = datetime(2025, 3, 30, 12, 0, tzinfo=ZoneInfo("Europe/Madrid")).timestamp()
    midnight = datetime.fromtimestamp(local_midnight("Europe/Madrid", noon), UTC)
    assert midnight == datetime(2025, 3, 29, 23, 0, tzinfo=UTC)  # CET before the DST jump
    assert local_midnight("Not/AZone", noon) == local_midnight("", noon)  # the box's zone


@contextlib.asynccontextmanager
async def fleet_running(link: FleetLink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run(), name="test-fleet")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_info_on_change_not_on_counters_and_offline_on_stop(
    tmp_path: Path, journal: Journal
) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    desk, state = make_desk(journal)
    state.set("link", "online")
    config = FleetConfig(
        enabled=True,
        url=broker.url,
        reconnect_min=0.05,
        reconnect_max=0.3,
        info_interval=3600.0,
        info_min_interval=0.1,
    )
    link = FleetLink(
        config,
        box_id=BOX,
        telemetry=telemetry(tmp_path, journal, state, files=kernel(tmp_path, throttled=None)),
        wait_changed=state.wait_changed,
    )
    base = f"edged/{BOX}"
    try:
        async with Listener(broker.host, broker.port, (f"{base}/#",)) as central:
            async with fleet_running(link):
                await eventually(
                    lambda: len(central.on(f"{base}/info")) == 1, what="the first info", within=20.0
                )
                assert central.last(f"{base}/availability").payload == b"online"  # type: ignore[union-attr]
                # Counters ride along with the periodic refresh: no message of their own.
                await desk.ingest(make_order(1), "test")
                state.set("panel.buzzer", "new_order")
                # A state change is worth one.
                state.set("printer.kitchen", {"state": "offline", "detail": ""})
                await eventually(
                    lambda: len(central.on(f"{base}/info")) == 2, what="a second info", within=20.0
                )
                info = central.on(f"{base}/info")[-1].json()
                assert info["printers"] == {"kitchen": "offline"}
                assert info["waiting_orders"] == 1  # fresh counters when it is sent
                assert link.infos == 2
            await eventually(
                lambda: central.last(f"{base}/availability").payload == b"offline",
                what="offline on a clean stop",
                within=20.0,
            )
        # Retained: whoever subscribes later sees the last info and the availability.
        async with Listener(broker.host, broker.port, (f"{base}/#",), client_id="late") as late:
            await eventually(
                lambda: late.last(f"{base}/info") is not None, what="retained info", within=20.0
            )
            assert late.last(f"{base}/info").retain  # type: ignore[union-attr]
            await eventually(
                lambda: late.last(f"{base}/availability") is not None,
                what="availability",
                within=20.0,
            )
            assert late.last(f"{base}/availability").payload == b"offline"  # type: ignore[union-attr]
    finally:
        broker.kill()


# -- real daemons on real brokers --------------------------------------------------------------


def box_config(
    tmp_path: Path, name: str, sim: SimulatorProcess, serial: str | None, **sections: Any
) -> Path:
    """A box whose board reports ``serial`` (None: no serial file, a machine id instead)."""
    home = tmp_path / name
    home.mkdir()
    board = home / "board"
    board.mkdir()
    if serial is not None:
        (board / "serial-number").write_bytes(serial.encode() + b"\x00")
    (board / "machine-id").write_text(hashlib.md5(name.encode()).hexdigest() + "\n")
    doc: dict[str, Any] = {
        "box": {
            "name": "edged",  # the default human name, on every box
            "state_dir": str(home / "state"),
            "serial_file": str(board / "serial-number"),
            "machine_id_file": str(board / "machine-id"),
        },
        "sinqro": sinqro_section(sim.info()),
        "panel": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    doc.update(sections)
    path = home / "edged.toml"
    path.write_text(dump_toml(doc), encoding="utf-8")
    return path


async def test_a_box_reports_through_a_bridged_cluster_and_its_will_arrives(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    central = MosquittoBroker(tmp_path / "central")
    local = MosquittoBroker(
        tmp_path / "local",
        extra=[
            "connection central",
            f"address 127.0.0.1:{central.port}",
            "topic edged/# out 1",
            "cleansession true",
            "restart_timeout 1",
        ],
    )
    central.start()
    local.start()
    dead_printer = free_port()  # nothing listens there: the printer is off
    web_port = free_port()
    config = box_config(
        tmp_path,
        "box",
        cloud,
        BOX,
        fleet={"enabled": True, "url": local.url, "reconnect_min": 0.1, "info_interval": 60.0},
        alerts={"printer_down_after": 1.0},
        printers=[
            {
                "name": "kitchen",
                "uri": f"tcp://127.0.0.1:{dead_printer}",
                "timeout": 1.0,
                "health_interval": 0.5,
            }
        ],
        web={"host": "127.0.0.1", "port": web_port},
    )
    try:
        async with Listener(central.host, central.port, ("edged/#",), client_id="hq") as hq:
            with DaemonProcess(config) as daemon:
                await asyncio.to_thread(daemon.start)
                await eventually(
                    lambda: hq.last(f"edged/{BOX}/info") is not None, what="info at HQ", within=60
                )
                info = hq.last(f"edged/{BOX}/info").json()  # type: ignore[union-attr]
                assert info["box_id"] == BOX and info["name"] == "edged"
                assert info["selling_point"]["id"] == cloud.info()["sellingPointId"]
                await eventually(
                    lambda: (
                        (m := hq.last(f"edged/{BOX}/availability")) is not None
                        and m.payload == b"online"
                    ),
                    what="online at HQ",
                    within=20.0,
                )
                await eventually(
                    lambda: hq.last(f"edged/{BOX}/info").json()["link"] == "online",
                    what="the link online in the info",
                    within=60,
                )
                # The printer is off: one alert at HQ, the incident in the info and /health.
                await eventually(
                    lambda: hq.last(f"edged/{BOX}/alert") is not None, what="an alert", within=60
                )
                alert = hq.last(f"edged/{BOX}/alert").json()  # type: ignore[union-attr]
                assert (alert["incident"], alert["state"]) == ("printer_down:kitchen", "open")
                await eventually(
                    lambda: (
                        hq.last(f"edged/{BOX}/info").json()["incidents"]  # type: ignore[union-attr]
                        == ["printer_down:kitchen"]
                    ),
                    what="the incident in the info",
                    within=60,
                )
                async with httpx.AsyncClient() as http:
                    health = (await http.get(f"http://127.0.0.1:{web_port}/health")).json()
                assert health["box_id"] == BOX
                assert [i["incident"] for i in health["incidents"]] == ["printer_down:kitchen"]
                assert len(hq.on(f"edged/{BOX}/alert")) == 1
                daemon.kill()
                await eventually(
                    lambda: hq.last(f"edged/{BOX}/availability").payload == b"offline",
                    what="the last will at HQ",
                    within=60,
                )
    finally:
        local.kill()
        central.kill()


OBSERVE = 30.0  # seconds two boxes share a broker without kicking each other off


async def test_two_boxes_with_the_default_config_do_not_collide(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    sections = {
        "mqtt": {"enabled": True, "url": broker.url, "homeassistant": True},
        "fleet": {"enabled": True, "url": broker.url},
    }
    # One Raspberry Pi with its serial number, one board with only a machine id.
    first = box_config(tmp_path, "a", cloud, "10000000aaaa0001", **sections)
    second = box_config(tmp_path, "b", cloud, None, **sections)
    try:
        async with Listener(broker.host, broker.port, ("edged/+/status",)) as watch:
            with DaemonProcess(first) as box_a, DaemonProcess(second) as box_b:
                await asyncio.to_thread(box_a.start)
                await asyncio.to_thread(box_b.start)
                await eventually(
                    lambda: len(watch.topics_seen()) == 2, what="two status topics", within=60
                )
                ids = sorted(t.split("/")[1] for t in watch.topics_seen())
                assert "10000000aaaa0001" in ids and ids[0] != ids[1]
                assert all(re.fullmatch(r"[a-z0-9]{16}", i) for i in ids)
                before = broker.log.read_text()
                await asyncio.sleep(OBSERVE)
                during = broker.log.read_text()[len(before) :]
                # Each box: one bridge and one fleet connection, never taken over or lost.
                assert "already connected" not in during, during
                assert "New client connected" not in during, during
                assert all(m.payload == b"online" for m in watch.messages)
                for box in (box_a, box_b):
                    assert box.proc is not None and box.proc.poll() is None
    finally:
        broker.kill()


async def test_the_fleet_link_switched_on_and_moved_live(tmp_path: Path, sim: Simulator) -> None:
    """A [fleet] section added to the config and reloaded (SIGHUP, `systemctl reload edged`)
    starts the fleet link without a restart of the daemon; a new broker URL moves it; the
    other parts are not touched. (The web page's settings may not set [fleet]: a vendor's
    section, kept in the root-owned files.)"""
    first, second = MosquittoBroker(tmp_path / "b1"), MosquittoBroker(tmp_path / "b2")
    first.start()
    second.start()
    config = app_config(
        tmp_path, sim, box={"name": "live", "id": BOX, "state_dir": str(tmp_path / "st")}
    )
    try:
        async with (
            running_app(config) as app,
            Listener(first.host, first.port, (f"edged/{BOX}/#",)) as one,
            Listener(second.host, second.port, (f"edged/{BOX}/#",), client_id="two") as two,
        ):
            assert app.fleet is None
            dropin = Path(str(config) + ".d") / "60-fleet.toml"
            dropin.parent.mkdir(exist_ok=True)
            fleet = {"enabled": True, "url": first.url, "reconnect_min": 0.05}
            dropin.write_text(dump_toml({"fleet": fleet}), encoding="utf-8")
            result = await app.reload()
            assert result.parts == {
                "sinqro-link": "applied",
                "fleet": "applied",
                "alerts": "applied",
            }
            await eventually(
                lambda: one.last(f"edged/{BOX}/info") is not None,
                what="info on the first",
                within=20.0,
            )
            dropin.write_text(dump_toml({"fleet": {**fleet, "url": second.url}}), encoding="utf-8")
            result = await app.reload()
            assert result.parts["fleet"] == "applied"
            await eventually(
                lambda: two.last(f"edged/{BOX}/info") is not None,
                what="info on the second",
                within=20.0,
            )
            # The link left the first broker cleanly.
            await eventually(
                lambda: one.last(f"edged/{BOX}/availability").payload == b"offline",
                what="offline on the first",
                within=20.0,
            )
            assert app.part_health()["fleet"]["state"] == "running"
    finally:
        first.kill()
        second.kill()
