"""The vendor's side of staged updates (``edged fleet release``, ``edged fleet rollout``):
build and sign a release manifest for a bundle made by ``image/make-bundle``, publish it
retained on ``<prefix>/releaseManifest``, count a rollout per wave from every box's retained
``info``, and halt it.

Halting re-signs the same manifest with ``halted`` set and publishes it in its place: a box
reads it like any manifest (signature first), and no box installs a halted release, so the
waves not yet started never start and the boxes of a started wave that have not installed
yet stay on their version. Boxes that did install keep it (``update-edged --rollback`` or a
newer release moves them). The vendor's tool decides because only it sees every box's
result (a box may read no other box's info) and holds the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import aiomqtt

from edged import mqttstop
from edged.fleet.manifest import KIND, TOPIC, Manifest, envelope, manifest_text, sign, wave_of
from edged.fleet.view import BoxView
from edged.mqttclient import BrokerConfig, Redial, make_client


def bundle_version(bundle: Path) -> str:
    """The edged version inside a bundle (its one ``edged-VERSION-*.whl``)."""
    with tarfile.open(bundle) as tar:
        names = [Path(n).name for n in tar.getnames()]
    wheels = [n for n in names if n.startswith("edged-") and n.endswith(".whl")]
    if len(wheels) != 1:
        raise ValueError(f"{bundle} is not an edged bundle (one edged wheel)")
    return wheels[0].split("-")[1]


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def release_document(
    *,
    bundle: Path,
    bundle_url: str,
    signature: Path,
    start: datetime,
    canary_percent: float,
    waves: list[tuple[float, datetime]],
    window: tuple[time, time] | None = None,
    never_while_order_waits: bool = True,
    max_failure_rate: float = 0.1,
    allow_downgrade: bool = False,
    published: datetime | None = None,
) -> dict[str, Any]:
    """The manifest document for ``bundle`` (and its ``.sig``), not signed yet."""
    sha256, size = sha256_of(bundle)
    rollout: dict[str, Any] = {
        "start": _iso(start),
        "canary_percent": canary_percent,
        "waves": [{"percent": p, "start": _iso(at)} for p, at in waves]
        or [{"percent": 100, "start": _iso(start)}],
        "never_while_order_waits": never_while_order_waits,
        "max_failure_rate": max_failure_rate,
    }
    if window is not None:
        rollout["window"] = {"from": window[0].strftime("%H:%M"), "to": window[1].strftime("%H:%M")}
    return {
        "kind": KIND,
        "v": 1,
        "version": bundle_version(bundle),
        "published": _iso(published or datetime.now(UTC)),
        "bundle": {
            "url": bundle_url,
            "sha256": sha256,
            "size": size,
            "signature": signature.read_text(encoding="utf-8"),
        },
        "allow_downgrade": allow_downgrade,
        "rollout": rollout,
    }


def signed(document: dict[str, Any], key: Path) -> bytes:
    """The retained message: the document's text and its signature with ``key``."""
    return envelope(document, sign(manifest_text(document), key))


def halted(document: dict[str, Any], wave: int, reason: str) -> dict[str, Any]:
    """The same manifest, halted after ``wave``."""
    return {**document, "halted": {"at": _iso(datetime.now(UTC)), "reason": reason, "wave": wave}}


async def publish(config: BrokerConfig, payload: bytes, *, client_id: str = "") -> None:
    """Publish ``payload`` retained (QoS 1, acknowledged) on the manifest topic, trying each
    node in turn; MqttError when none takes it."""
    redial = Redial(config)
    failure: aiomqtt.MqttError | None = None
    identifier = client_id or f"edged-fleet-release-{int(datetime.now().timestamp() * 1000)}"
    for _ in redial.nodes:
        node = redial.node
        try:
            async with make_client(config, identifier[:128], node=node) as client:
                topic = f"{config.topic_prefix}/{TOPIC}"
                await mqttstop.publish(client, topic, payload, qos=1, retain=True)
                return
        except aiomqtt.MqttError as exc:
            failure = exc
            redial.lost()
            await asyncio.sleep(0)
    assert failure is not None
    raise failure


@dataclass
class WaveCount:
    """One wave's boxes by what they reported for the release."""

    wave: int
    percent: float
    start: str
    boxes: int = 0
    installed: int = 0
    failed: int = 0
    refused: int = 0
    pending: int = 0
    failed_boxes: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        done = self.installed + self.failed
        return self.failed / done if done else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "percent": self.percent,
            "start": self.start,
            "boxes": self.boxes,
            "installed": self.installed,
            "failed": self.failed,
            "refused": self.refused,
            "pending": self.pending,
            "failure_rate": round(self.failure_rate, 4),
            "failed_boxes": self.failed_boxes,
        }


def outcome(box: BoxView, version: str) -> str:
    """``installed``, ``failed`` (health window failed, rolled back), ``refused`` or
    ``pending``: what the box's info says of release ``version``."""
    updates = box.info.get("updates")
    updates = updates if isinstance(updates, dict) else {}
    for slot, word in (
        ("last_rollback", "failed"),
        ("last_update", "installed"),
        ("last_refused", "refused"),
    ):
        event = updates.get(slot)
        if isinstance(event, dict) and event.get("release") == version:
            return word
    return "pending"


def count(boxes: dict[str, BoxView], manifest: Manifest) -> list[WaveCount]:
    """Per wave: how many boxes, and what each reported (the wave from the box id, as the
    box computes it)."""
    waves = [WaveCount(n, w.percent, _iso(w.start)) for n, w in enumerate(manifest.waves)]
    for box_id, box in sorted(boxes.items()):
        if not box.info:
            continue
        wave = waves[wave_of(box_id, manifest.waves)]
        wave.boxes += 1
        word = outcome(box, manifest.version)
        setattr(wave, word, getattr(wave, word) + 1)
        if word == "failed":
            wave.failed_boxes.append(box_id)
    return waves


def over_threshold(waves: list[WaveCount], manifest: Manifest) -> WaveCount | None:
    """The first wave whose failure rate passed the manifest's threshold, or None."""
    for wave in waves:
        if wave.failed and wave.failure_rate > manifest.max_failure_rate:
            return wave
    return None
