"""The box's outbound connection to its vendor's MQTT cluster (``[fleet]``).

Boxes sit behind restaurant NAT: nothing can scrape them, but each can keep one MQTT
connection out, to a local Mosquitto bridged to the central cluster or straight to
EMQX, HiveMQ or Mosquitto. Topics (``<prefix>`` is ``fleet.topic_prefix``):

==================================  ===================================================
``<prefix>/<box_id>/availability``  ``online`` / ``offline``, retained; ``offline`` is
                                    the last will, and is published on a clean stop
``<prefix>/<box_id>/info``          the telemetry document, retained, on change and
                                    every ``info_interval`` seconds
``<prefix>/<box_id>/alert``         alerts (QoS 1, not retained), see edged/fleet/alerts.py
``<prefix>/releaseManifest``        read, with ``fleet.updates``: the signed release
                                    manifest, retained (edged/fleet/updater.py)
==================================  ===================================================

The client id is the box id (``fleet.client_id`` overrides it), so a broker ACL of
``<prefix>/%c/#`` confines each box to its own tree. docs/fleet.md has the broker side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from edged import mqttstop
from edged.fleet import manifest
from edged.fleet.alerts import DeliveryError
from edged.fleet.settings import FleetConfig
from edged.fleet.telemetry import Telemetry
from edged.fleet.updater import Updater
from edged.mqttclient import Redial, make_client

log = logging.getLogger(__name__)

# Sysfs flags (throttling) have no change notification: look this often.
RECHECK = 30.0


async def _until_disconnected(
    client: aiomqtt.Client, topic: str, offer: Callable[[bytes], None] | None
) -> None:
    """Raise MqttError as soon as the connection drops; hand the release manifest's
    messages to ``offer``."""
    async for message in client.messages:
        if offer is not None and message.topic.matches(topic):
            payload = message.payload
            offer(payload if isinstance(payload, bytes) else str(payload or "").encode())


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class FleetLink:
    """Keeps the fleet connection and publishes availability, info and alerts."""

    name = "fleet"

    def __init__(
        self,
        config: FleetConfig,
        *,
        box_id: str,
        telemetry: Telemetry,
        wait_changed: Callable[[int, float], Awaitable[int]],
        updater: Updater | None = None,
    ) -> None:
        """``wait_changed(version, timeout)`` returns when the live state moved past
        ``version`` (BoxState.wait_changed): a change may be worth an info message.
        ``updater``: staged updates, fed from the release manifest's topic."""
        self.config = config
        self.box_id = box_id
        self.telemetry = telemetry
        self.wait_changed = wait_changed
        self.updater = updater
        self.release_topic = f"{config.topic_prefix}/{manifest.TOPIC}"
        self.base = f"{config.topic_prefix}/{box_id}"
        self.client_id = config.client_id or box_id
        self.connected = False
        self.infos = 0
        self.alerts = 0
        self.reconnects = 0
        self._client: aiomqtt.Client | None = None
        self._last_significant: dict[str, Any] | None = None
        self._last_info = 0.0

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/availability"

    @property
    def info_topic(self) -> str:
        return f"{self.base}/info"

    @property
    def alert_topic(self) -> str:
        return f"{self.base}/alert"

    def metrics(self) -> dict[str, int]:
        return {
            "connected": int(self.connected),
            "infos": self.infos,
            "alerts": self.alerts,
            "reconnects": self.reconnects,
        }

    # -- alerts (an AlertSink) ---------------------------------------------------------------

    async def deliver(self, alert: dict[str, Any]) -> None:
        """Publish one alert (QoS 1, acknowledged by the broker) or raise DeliveryError."""
        client = self._client
        if client is None:
            raise DeliveryError("fleet broker not connected")
        try:
            await mqttstop.publish(client, self.alert_topic, _dumps(alert), qos=1)
        except aiomqtt.MqttError as exc:
            raise DeliveryError(f"fleet broker: {exc}") from None
        self.alerts += 1

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected (and act on releases, with an updater) until cancelled."""
        if self.updater is None:
            await self._stay_connected()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self.updater.run(), name="fleet-updates")
            await self._stay_connected()

    async def _stay_connected(self) -> None:
        redial = Redial(self.config)
        will = aiomqtt.Will(self.availability_topic, b"offline", qos=1, retain=True)
        while True:
            node = redial.node
            try:
                client = make_client(self.config, self.client_id, will=will, node=node)
                async with mqttstop.connection(client):
                    log.info("fleet: connected to %s as %s", node.where, self.client_id)
                    redial.connected()
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                log.warning("fleet: %s: %s", node.where, exc)
            finally:
                self._client = None
                self.connected = False
            self.reconnects += 1
            await asyncio.sleep(redial.lost())

    async def _session(self, client: aiomqtt.Client) -> None:
        try:
            await mqttstop.publish(client, self.availability_topic, b"online", qos=1, retain=True)
            self._client = client
            self.connected = True
            self._last_significant = None  # a new session gets a fresh info at once
            offer = self.updater.offer if self.updater is not None else None
            if offer is not None:
                await client.subscribe(self.release_topic, qos=1)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._report(client), name="fleet-info")
                    watch = _until_disconnected(client, self.release_topic, offer)
                    group.create_task(watch, name="fleet-watch")
            except* aiomqtt.MqttError as errors:
                raise errors.exceptions[0] from None
        except asyncio.CancelledError:
            # A clean DISCONNECT discards the will: say offline ourselves.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await client.publish(self.availability_topic, b"offline", qos=1, retain=True)
            raise

    async def _report(self, client: aiomqtt.Client) -> None:
        """Info when something significant changed (at most every ``info_min_interval``)
        and every ``info_interval`` anyway."""
        cfg = self.config
        version = -1
        while True:
            significant = self.telemetry.significant()
            since = time.monotonic() - self._last_info
            changed = significant != self._last_significant
            if changed and self._last_significant is not None and since < cfg.info_min_interval:
                await asyncio.sleep(cfg.info_min_interval - since)
                continue
            if changed or since >= cfg.info_interval:
                info = await self.telemetry.info()
                await mqttstop.publish(client, self.info_topic, _dumps(info), qos=1, retain=True)
                self.infos += 1
                self._last_significant = significant
                self._last_info = time.monotonic()
                since = 0.0
            timeout = max(0.1, min(RECHECK, cfg.info_interval - since))
            version = await self.wait_changed(version, timeout)
