"""The release manifest as a box reads it: signed with the bundles' scheme and checked with
the real ssh-keygen (a tampered text refused, an unknown key ignored), every field checked,
a wave from the box id, and the box's decisions (downgrade, window, waiting order, halt),
with the bundle fetched over real HTTPS, size-capped and its sha256 checked."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from release_support import NOW, document, https_files, keys, make_bundle, message
from waiting import eventually

from edged.fleet.box_events import BoxEvents
from edged.fleet.manifest import (
    ManifestError,
    Wave,
    bucket,
    open_envelope,
    parse,
    read,
    wave_of,
)
from edged.fleet.settings import FleetConfig
from edged.fleet.updater import Updater, UpdateRequest


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release")
    key, signers, other, _ = keys(root)
    bundle = make_bundle(root / "out", "9.1.0", key)
    return {"key": key, "signers": signers, "other": other, "bundle": bundle, "root": root}


def test_a_signed_manifest_reads_back(material: dict[str, Path]) -> None:
    doc = document(material["bundle"], "https://updates.example.com/b")
    manifest, text, signer = read(message(doc, material["key"]), material["signers"])
    assert signer == "edged-release"
    assert manifest.version == "9.1.0"
    assert manifest.size == material["bundle"].stat().st_size
    assert [w.percent for w in manifest.waves] == [50, 100]
    assert manifest.never_while_order_waits and not manifest.allow_downgrade
    assert json.loads(text)["bundle"]["signature"].startswith("-----BEGIN SSH SIGNATURE")


def test_a_tampered_manifest_is_refused(material: dict[str, Path]) -> None:
    doc = document(material["bundle"], "https://updates.example.com/b")
    outer = json.loads(message(doc, material["key"]))
    outer["manifest"] = outer["manifest"].replace("https://updates.example.com/b", "https://evil/b")
    with pytest.raises(ManifestError) as refused:
        read(json.dumps(outer).encode(), material["signers"])
    assert refused.value.code == "bad_signature"


def test_a_manifest_from_an_unknown_key_is_ignored(material: dict[str, Path]) -> None:
    doc = document(material["bundle"], "https://updates.example.com/b")
    with pytest.raises(ManifestError) as ignored:
        read(message(doc, material["other"]), material["signers"])
    assert ignored.value.code == "unknown_signer"


def test_not_an_envelope_and_no_signers(material: dict[str, Path], tmp_path: Path) -> None:
    for payload in (b"garbage", b"[]", b'{"manifest": 1}', b"x" * 70_000):
        with pytest.raises(ManifestError) as bad:
            open_envelope(payload)
        assert bad.value.code == "unreadable"
    doc = document(material["bundle"], "https://updates.example.com/b")
    (tmp_path / "empty").write_text("")
    with pytest.raises(ManifestError) as none:
        read(message(doc, material["key"]), tmp_path / "empty")
    assert none.value.code == "no_signers"


def _text(material: dict[str, Path], **changes: Any) -> str:
    doc = document(material["bundle"], "https://updates.example.com/b")
    for dotted, value in changes.items():
        target = doc
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kind": "something"}, "kind"),
        ({"version": "../9"}, "version"),
        ({"bundle__url": "http://plain/b"}, "bundle.url"),
        ({"bundle__sha256": "ABC"}, "bundle.sha256"),
        ({"bundle__size": 10**12}, "bundle.size"),
        ({"allow_downgrade": "yes"}, "allow_downgrade"),
        ({"rollout__start": "2026-12-08T03:00:00"}, "rollout.start"),
        ({"rollout__canary_percent": 101}, "rollout.canary_percent"),
        ({"rollout__waves": [{"percent": 80, "start": "2026-12-09T00:00:00Z"}]}, "100 percent"),
        ({"rollout__waves": [{"percent": 10, "start": "2026-12-09T00:00:00Z"}]}, "go back"),
        ({"rollout__window": {"from": "25:00", "to": "05:00"}}, "window.from"),
        ({"rollout__max_failure_rate": 2}, "max_failure_rate"),
    ],
)
def test_every_field_is_checked(
    material: dict[str, Path], change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ManifestError) as bad:
        parse(_text(material, **change))
    assert bad.value.code == "invalid" and problem in str(bad.value)


def test_unknown_keys_are_ignored_and_listed(material: dict[str, Path]) -> None:
    manifest = parse(_text(material, colour="blue", rollout__speed="fast"))
    assert manifest.version == "9.1.0"
    assert set(manifest.unknown_keys) == {"colour", "rollout.speed"}


def test_waves_come_from_the_box_id() -> None:
    waves = (Wave(10, NOW), Wave(50, NOW), Wave(100, NOW))
    ids = [f"10000000{n:08x}" for n in range(2000)]
    assert [wave_of(i, waves) for i in ids] == [wave_of(i, waves) for i in ids]
    counts = Counter(wave_of(i, waves) for i in ids)
    # A hash spreads them about as the percentages say (10 %, 40 %, 50 %).
    assert 120 < counts[0] < 280 and 650 < counts[1] < 950 and 850 < counts[2] < 1150
    assert all(0 <= bucket(i) < 100 for i in ids)


def test_the_window_is_in_the_selling_points_zone(material: dict[str, Path]) -> None:
    manifest = parse(_text(material, rollout__window={"from": "23:30", "to": "05:00"}))
    assert manifest.window == (time(23, 30), time(5, 0))
    madrid, tokyo = ZoneInfo("Europe/Madrid"), ZoneInfo("Asia/Tokyo")
    assert manifest.in_window(NOW, madrid)  # 04:00 in Madrid
    assert not manifest.in_window(NOW, tokyo)  # 12:00 in Tokyo
    assert manifest.in_window(datetime(2026, 12, 7, 22, 45, tzinfo=UTC), madrid)  # 23:45
    assert not manifest.in_window(datetime(2026, 12, 8, 4, 0, tzinfo=UTC), madrid)  # 05:00


# -- the box's decisions -----------------------------------------------------------------


class Box:
    """One Updater with a clock, a waiting-order count and a recording hand-over."""

    def __init__(self, tmp_path: Path, signers: Path, *, running: str, ca: Path | None = None):
        tmp_path.mkdir(parents=True, exist_ok=True)  # the state directory
        self.now = NOW.timestamp()
        self.waiting = 0
        self.reports: list[dict[str, Any] | None] = []
        self.handed: list[UpdateRequest] = []
        config = FleetConfig(
            enabled=True,
            updates=True,
            update_signers=str(signers),
            update_ca_file=str(ca or ""),
            update_recheck=0.02,
        )

        async def handover(request: UpdateRequest) -> None:
            self.handed.append(request)

        self.updater = Updater(
            config,
            box_id="10000000feedf00d",
            running_version=running,
            state_dir=tmp_path,
            events=BoxEvents(tmp_path / "box-events.jsonl"),
            waiting_orders=lambda: self.waiting,
            timezone=lambda: "Europe/Madrid",
            report=self.reports.append,
            handover=handover,
            clock=lambda: self.now,
        )

    @property
    def state(self) -> dict[str, Any]:
        return self.updater.status or {}


async def _until(box: Box, state: str, reason: str | None = None) -> dict[str, Any]:
    def reached() -> bool:
        s = box.state
        return s.get("state") == state and (reason is None or s.get("reason") == reason)

    await eventually(reached, what=f"rollout state {state} {reason or ''}")
    return box.state


async def test_a_downgrade_is_refused_without_the_flag(
    material: dict[str, Path], tmp_path: Path
) -> None:
    box = Box(tmp_path, material["signers"], running="9.2.0")

    task = asyncio.create_task(box.updater.run())
    try:
        doc = document(material["bundle"], "https://updates.example.com/b")
        box.updater.offer(message(doc, material["key"]))
        state = await _until(box, "refused")
        assert "older" in state["reason"] and "allow_downgrade" in state["reason"]
        # The same release, signed with the flag: the box goes on to wait for its wave.
        flagged = document(
            material["bundle"], "https://updates.example.com/b", allow_downgrade=True
        )
        flagged["rollout"]["canary_percent"] = 0  # every box in the later wave
        box.updater.offer(message(flagged, material["key"]))
        await _until(box, "waiting", "wave_start")
        assert box.handed == []
    finally:
        task.cancel()


async def test_a_bad_message_keeps_the_good_manifest_and_is_reported(
    material: dict[str, Path], tmp_path: Path
) -> None:

    box = Box(tmp_path, material["signers"], running="9.0.0")
    task = asyncio.create_task(box.updater.run())
    try:
        good = document(material["bundle"], "https://updates.example.com/b")
        good["rollout"]["canary_percent"] = 0
        box.updater.offer(message(good, material["key"]))
        await _until(box, "waiting", "wave_start")
        box.updater.offer(message(good, material["other"]))
        state = await eventually(lambda: box.state.get("last_message"), what="the report")
        assert state == {
            "state": "ignored",
            "code": "unknown_signer",
            "reason": "the manifest is not signed by a trusted key",
        }
        assert box.state["release"] == "9.1.0" and box.state["state"] == "waiting"
        tampered = json.loads(message(good, material["key"]))
        tampered["manifest"] = tampered["manifest"].replace(
            '"allow_downgrade":false', '"allow_downgrade":true'
        )
        box.updater.offer(json.dumps(tampered).encode())
        await eventually(
            lambda: (box.state.get("last_message") or {}).get("code") == "bad_signature",
            what="the tampered manifest refused",
        )
        assert box.updater.manifest is not None and not box.updater.manifest.allow_downgrade
    finally:
        task.cancel()


async def test_wave_window_and_waiting_orders_then_an_https_fetch(
    material: dict[str, Path], tmp_path: Path
) -> None:

    body = material["bundle"].read_bytes()
    with https_files(tmp_path, {"/b": body, "/short": body[:-1]}) as (base, ca, hits):
        box = Box(tmp_path, material["signers"], running="9.0.0", ca=ca)
        doc = document(
            material["bundle"],
            f"{base}/b",
            canary_percent=0,
            waves=[(100, NOW + timedelta(hours=1))],
            window=(time(3, 0), time(6, 0)),
        )
        task = asyncio.create_task(box.updater.run())
        try:
            box.updater.offer(message(doc, material["key"]))
            assert (await _until(box, "waiting", "wave_start"))["wave"] == 1
            box.now += 3 * 3600  # 07:00 in Madrid: the wave started, the window is over
            box.updater.poke()
            await _until(box, "waiting", "window")
            box.now += 21 * 3600  # 04:00 the next night
            box.waiting = 1
            box.updater.poke()
            await _until(box, "waiting", "order_waiting")
            assert hits == [] and box.handed == []
            box.waiting = 0
            box.updater.poke()
            await _until(box, "installing")
            assert hits == ["/b"]
            [request] = box.handed
            assert request.wave == 1 and request.bundle.read_bytes() == body
            assert request.message == box.updater.message
        finally:
            task.cancel()


async def test_a_bundle_that_is_not_the_manifests_is_not_handed_over(
    material: dict[str, Path], tmp_path: Path
) -> None:

    body = material["bundle"].read_bytes()
    files = {"/short": body[:-1], "/long": body + b"x", "/other": body[:-1] + b"?"}
    with https_files(tmp_path, files) as (base, ca, _hits):
        for path, why in (("/short", "bytes"), ("/long", "over"), ("/other", "sha256")):
            box = Box(tmp_path / path[1:], material["signers"], running="9.0.0", ca=ca)
            doc = document(material["bundle"], f"{base}{path}", canary_percent=100)
            task = asyncio.create_task(box.updater.run())
            try:
                box.updater.offer(message(doc, material["key"]))
                state = await _until(box, "fetch_failed")
                assert why in state["reason"], state
                assert box.handed == []
                assert not list((tmp_path / path[1:] / "update").iterdir())
            finally:
                task.cancel()


async def test_an_untrusted_https_server_is_not_fetched_from(
    material: dict[str, Path], tmp_path: Path
) -> None:

    with https_files(tmp_path, {"/b": material["bundle"].read_bytes()}) as (base, _ca, _h):
        box = Box(tmp_path, material["signers"], running="9.0.0")  # system CAs only
        doc = document(material["bundle"], f"{base}/b", canary_percent=100)
        task = asyncio.create_task(box.updater.run())
        try:
            box.updater.offer(message(doc, material["key"]))
            state = await _until(box, "fetch_failed")
            assert "ConnectError" in state["reason"] and box.handed == []
        finally:
            task.cancel()
