"""A staged update in two waves over a real Mosquitto: 20 simulated boxes, each with the real
fleet link, telemetry and release handling (its install step a test double that writes
update-edged's event line), the vendor's real ``edged fleet release`` and ``edged fleet
rollout status``, and the bundle over real HTTPS. One canary's health window fails; the
vendor's status sees the wave pass its threshold and halts the rollout, and the second wave
does not start when its time comes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from broker import MosquittoBroker
from mqtt_listener import Listener
from release_support import NOW, https_files, keys, make_bundle
from test_fleet import kernel
from waiting import eventually

from edged.fleet.identity import BoxIdentity
from edged.fleet.link import FleetLink
from edged.fleet.manifest import Wave, wave_of
from edged.fleet.settings import FleetConfig
from edged.fleet.telemetry import Telemetry
from edged.fleet.updater import Updater, UpdateRequest
from edged.state import BoxState

BOXES = [f"shop-{n:02d}" for n in range(20)]
CANARY = 25.0
WAVE_1 = NOW + timedelta(days=1)


class SimBox:
    """One box: the real link, telemetry and updater; a double for root's install."""

    def __init__(
        self,
        box_id: str,
        root: Path,
        broker: MosquittoBroker,
        trust: tuple[Path, Path],
        clock: list[float],
    ) -> None:
        """``trust``: the release signers file and the bundle server's CA."""
        signers, ca = trust
        self.box_id = box_id
        self.dir = root / box_id
        self.dir.mkdir(parents=True)
        self.fail = False
        self.installs: list[UpdateRequest] = []
        self.state = BoxState()
        self.state.set("link", "online")
        config = FleetConfig(
            enabled=True,
            url=broker.url,
            reconnect_min=0.05,
            reconnect_max=0.3,
            info_interval=3600.0,
            info_min_interval=0.05,
            updates=True,
            update_signers=str(signers),
            update_ca_file=str(ca),
            update_recheck=0.05,
        )

        async def no_orders(_since: float) -> int:
            return 0

        telemetry = Telemetry(
            identity=BoxIdentity(box_id, "serial", box_id, "Raspberry Pi 4 Model B Rev 1.5"),
            box_name=lambda: box_id,
            state=self.state.snapshot,
            selling_point=lambda: (3442, "Pizza Roma", "Europe/Madrid"),
            orders_since=no_orders,
            incidents=list,
            storage_path=self.dir,
            files=kernel(self.dir),
        )
        self.updater = Updater(
            config,
            box_id=box_id,
            running_version="9.0.0",
            state_dir=self.dir,
            events=telemetry.events,
            waiting_orders=lambda: int(self.state.get("waiting_orders", 0)),
            timezone=lambda: "Europe/Madrid",
            report=lambda status: self.state.set("fleet.rollout", status),
            handover=self.install,
            clock=lambda: clock[0],
        )
        self.link = FleetLink(
            config,
            box_id=box_id,
            telemetry=telemetry,
            wait_changed=self.state.wait_changed,
            updater=self.updater,
        )

    async def install(self, request: UpdateRequest) -> None:
        """What root's update-edged leaves behind: one event line, with release and wave."""
        self.installs.append(request)
        assert request.bundle.stat().st_size == request.manifest.size
        event: dict[str, Any] = {
            "id": f"{self.box_id}-{len(self.installs)}",
            "time": "2026-12-08T03:05:00Z",
            "release": request.manifest.version,
            "wave": request.wave,
            "journal_restored": False,
        }
        if self.fail:
            event |= {
                "kind": "rollback",
                "from": request.manifest.version,
                "to": "9.0.0",
                "reason": "its /health is not ok",
                "health": {"result": "fail", "reason": "its /health is not ok"},
            }
        else:
            event |= {
                "kind": "update",
                "from": "9.0.0",
                "to": request.manifest.version,
                "reason": "",
                "health": {"result": "pass", "reason": "4 checks of /health"},
            }
        with (self.dir / "box-events.jsonl").open("a") as fh:
            fh.write(json.dumps(event) + "\n")

    @property
    def rollout(self) -> dict[str, Any]:
        return self.state.get("fleet.rollout") or {}


@contextlib.asynccontextmanager
async def running(boxes: list[SimBox]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(b.link.run(), name=b.box_id) for b in boxes]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def vendor(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """``edged fleet ...`` as the vendor runs it, in a process of its own."""
    command = [sys.executable, "-m", "edged.cli", "fleet", *args, "--url", url]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )


def _info_release(listener: Listener, box_id: str) -> str:
    seen = listener.last(f"edged/{box_id}/info")
    if seen is None:
        return ""
    rollout = seen.json().get("rollout") or {}
    return str(rollout.get("state", ""))


async def test_a_failing_canary_halts_the_rollout_before_the_second_wave(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    key, signers, _other, _ = keys(tmp_path / "keys")
    bundle = make_bundle(tmp_path / "out", "9.1.0", key)
    waves = (Wave(CANARY, NOW), Wave(100, WAVE_1))
    first = [b for b in BOXES if wave_of(b, waves) == 0]
    second = [b for b in BOXES if wave_of(b, waves) == 1]
    assert 2 <= len(first) <= 9 and second  # the ids split; 1 failure passes 10 %
    clock = [NOW.timestamp()]
    with https_files(tmp_path, {"/edged.bundle": bundle.read_bytes()}) as (base, ca, hits):
        boxes = [SimBox(b, tmp_path / "boxes", broker, (signers, ca), clock) for b in BOXES]
        by_id = {b.box_id: b for b in boxes}
        by_id[first[0]].fail = True
        topics = ("edged/+/info",)
        async with Listener(broker.host, broker.port, topics) as listener, running(boxes):
            await eventually(
                lambda: all(listener.last(f"edged/{b}/info") for b in BOXES),
                within=30,
                what="every box's first info",
            )
            published = await vendor(
                "release",
                *("--key", str(key), "--bundle", str(bundle)),
                *("--bundle-url", f"{base}/edged.bundle"),
                *("--start", (NOW - timedelta(hours=1)).isoformat()),
                *("--canary", str(CANARY), "--wave", f"100@{WAVE_1.isoformat()}"),
                *("--max-failure-rate", "0.1", "--window", "02:00-06:00"),
                url=broker.url,
            )
            assert published.returncode == 0, published.stderr
            # The canaries install (one fails its health window); the others wait.
            await eventually(
                lambda: (
                    all(_info_release(listener, b) in ("installed", "failed") for b in first)
                    and all(_info_release(listener, b) == "waiting" for b in second)
                ),
                within=60,
                what="the canaries' results and the second wave waiting, in info",
            )
            assert _info_release(listener, first[0]) == "failed"
            assert hits.count("/edged.bundle") == len(first)
            seen = listener.last(f"edged/{first[1]}/info")
            assert seen is not None
            last_update = seen.json()["updates"]["last_update"]
            assert last_update["release"] == "9.1.0" and last_update["wave"] == 0

            # The vendor's status: wave 0 passed the threshold; without --halt it says so.
            status = await vendor("rollout", "status", "--json", "--wait", "0.5", url=broker.url)
            assert status.returncode == 1, status.stderr
            report = json.loads(status.stdout)
            assert report["state"] == "running" and report["over_threshold"] == 0
            assert report["waves"][0] | {"failed_boxes": None} == {
                "wave": 0,
                "percent": CANARY,
                "start": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                "boxes": len(first),
                "installed": len(first) - 1,
                "failed": 1,
                "refused": 0,
                "pending": 0,
                "failure_rate": round(1 / len(first), 4),
                "failed_boxes": None,
            }
            assert report["waves"][0]["failed_boxes"] == [first[0]]
            assert report["waves"][1]["pending"] == len(second)
            halted = await vendor(
                "rollout", "status", "--json", "--wait", "0.5", "--halt", "--key", str(key),
                url=broker.url,
            )  # fmt: skip
            assert halted.returncode == 0, halted.stderr
            assert json.loads(halted.stdout)["state"] == "halted"
            await eventually(
                lambda: all(by_id[b].rollout.get("state") == "halted" for b in second),
                within=30,
                what="the second wave to read the halted manifest",
            )

            # The second wave's time comes (inside the window): nobody starts.
            clock[0] = WAVE_1.timestamp() + 60
            marks = {b: by_id[b].updater.decisions for b in second}
            for b in second:
                by_id[b].updater.poke()
            await eventually(
                lambda: all(by_id[b].updater.decisions > marks[b] + 1 for b in second),
                what="the second wave to decide again after its start",
            )
            assert all(by_id[b].installs == [] for b in second)
            assert all(by_id[b].rollout["state"] == "halted" for b in second)
            assert hits.count("/edged.bundle") == len(first)
            await eventually(
                lambda: all(_info_release(listener, b) == "halted" for b in second),
                what="the halt in every second-wave box's info",
            )
            final = await vendor("rollout", "status", "--json", "--wait", "0.5", url=broker.url)
            assert final.returncode == 0, final.stderr
            after = json.loads(final.stdout)
            assert after["state"] == "halted" and after["halted"]["wave"] == 0
            assert after["waves"][1]["installed"] == 0
            assert after["waves"][1]["pending"] == len(second)
            # For people: in their language, one line per wave.
            words = await vendor(
                "rollout", "status", "--language", "es", "--wait", "0.5", url=broker.url
            )
            assert words.returncode == 0, words.stderr
            lines = words.stdout.splitlines()
            assert lines[0] == "Versión 9.1.0: detenido"
            assert lines[1].split() == [
                "oleada",
                "cajas",
                "instaladas",
                "fallidas",
                "rechazadas",
                "pendientes",
                "tasa",
                "de",
                "fallos",
            ]
            assert lines[2].split()[:4] == ["0", str(len(first)), str(len(first) - 1), "1"]
            assert "La oleada 0 ha superado el umbral de fallos (10%)." in lines
