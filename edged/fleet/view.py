"""The vendor's view of the fleet: every box's retained ``info`` and ``availability``, read
from the broker (``edged fleet ls`` / ``show``).

What a box published is a claim, read with a bound: a payload that is not a JSON object, or
larger than :data:`MAX_INFO_BYTES`, is counted as unreadable and left out, and a field of
the wrong type reads as unknown. Nothing is written to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiomqtt

from edged.decoding import PayloadError, decode_json
from edged.fleet.manifest import TOPIC
from edged.mqttclient import BrokerConfig, Redial, make_client, suback_refused

log = logging.getLogger(__name__)

MAX_INFO_BYTES = 65_536


@dataclass
class BoxView:
    """One box as the broker holds it."""

    box_id: str
    availability: str = ""  # online, offline, or "" (never said)
    info: dict[str, Any] = field(default_factory=dict)

    def text(self, key: str) -> str:
        value = self.info.get(key)
        return value if isinstance(value, str) else ""

    @property
    def printers(self) -> dict[str, str]:
        raw = self.info.get("printers")
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, str)}

    @property
    def incidents(self) -> list[str]:
        raw = self.info.get("incidents")
        return [i for i in raw if isinstance(i, str)] if isinstance(raw, list) else []

    @property
    def seen_at(self) -> float | None:
        """When the box wrote its info (its ``at``), as a Unix time."""
        try:
            return datetime.fromisoformat(self.text("at")).timestamp()
        except ValueError:
            return None

    def summary(self) -> dict[str, Any]:
        """The ``--json`` row of ``edged fleet ls``."""
        return {
            "box_id": self.box_id,
            "name": self.text("name"),
            "version": self.text("version"),
            "availability": self.availability or None,
            "link": self.text("link") or None,
            "printers": self.printers,
            "incidents": self.incidents,
            "at": self.text("at") or None,
        }


@dataclass
class FleetView:
    """What one read of the broker found."""

    boxes: dict[str, BoxView] = field(default_factory=dict)
    unreadable: int = 0
    release: bytes | None = None  # the retained release manifest, when asked for

    def take(self, topic: str, payload: bytes, prefix: str) -> None:
        """One retained message of ``<prefix>/<box>/info`` or ``.../availability`` (or the
        release manifest's)."""
        if topic == f"{prefix}/{TOPIC}":
            self.release = payload or None
            return
        rest = topic[len(prefix) + 1 :] if topic.startswith(prefix + "/") else ""
        box_id, _, leaf = rest.partition("/")
        if not box_id or leaf not in ("info", "availability"):
            return
        if leaf == "availability":
            word = payload.decode("utf-8", "replace").strip()
            if word not in ("online", "offline"):
                self.unreadable += 1
                return
            self.boxes.setdefault(box_id, BoxView(box_id)).availability = word
            return
        try:
            info = decode_json(payload, max_bytes=MAX_INFO_BYTES, what="info")
        except PayloadError as exc:
            log.warning("fleet: %s: %s", topic, exc)
            self.unreadable += 1
            return
        if not isinstance(info, dict):
            self.unreadable += 1
            return
        self.boxes.setdefault(box_id, BoxView(box_id)).info = info


async def read_fleet(
    config: BrokerConfig,
    *,
    box_id: str = "+",
    quiet: float = 1.0,
    limit: float = 10.0,
    client_id: str = "",
    release: bool = False,
) -> FleetView:
    """Subscribe to the retained ``info`` and ``availability`` of ``box_id`` (``+``: every
    box), and with ``release`` the release manifest, and collect until ``quiet`` seconds
    pass without a new one (at most ``limit``).

    Each node of the config is tried in turn; raises :class:`aiomqtt.MqttError` when none
    takes the connection."""
    prefix = config.topic_prefix
    view = FleetView()
    redial = Redial(config)
    identifier = client_id or f"edged-fleet-view-{int(time.time() * 1000) % 10**9}"
    failure: aiomqtt.MqttError | None = None
    for _ in redial.nodes:
        node = redial.node
        try:
            async with make_client(config, identifier, node=node) as client:
                topics = [f"{prefix}/{box_id}/{leaf}" for leaf in ("info", "availability")]
                for topic in topics + ([f"{prefix}/{TOPIC}"] if release else []):
                    granted = await client.subscribe(topic, qos=1)
                    # A refused subscription (0x80 and up) would read as an empty fleet.
                    if suback_refused(granted):
                        raise aiomqtt.MqttError(f"subscription to {topic} refused")
                await _collect(client, view, prefix, quiet, limit)
                return view
        except aiomqtt.MqttError as exc:
            log.warning("fleet: %s: %s", node.where, exc)
            failure = exc
            redial.lost()
    assert failure is not None
    raise failure


async def _collect(
    client: aiomqtt.Client, view: FleetView, prefix: str, quiet: float, limit: float
) -> None:
    deadline = time.monotonic() + limit
    messages = aiter(client.messages)
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(quiet, left)):
                message = await anext(messages)
                # Retained (the stored state) or live (a box publishing now): both true.
                payload = message.payload if isinstance(message.payload, bytes) else b""
                view.take(message.topic.value, payload, prefix)
                continue
        return
