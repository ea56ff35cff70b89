"""The box's side of the relay: its selling point's notifications from the fleet broker.

With ``fleet.sinqro_notifications = "beside"`` or ``"instead"``, the Sinqro link runs this
source next to (or in place of) the websocket. It holds a persistent MQTT session (QoS 1
notifications published while the box is away wait at the broker) on the topic
``<prefix>/sellingPoints/<id>/notifications`` and hands every message to the link, which
parses it like a websocket frame and reconciles over REST each time the subscription is
(re)established. A message here did not come from Sinqro's own connection (anyone with the
relay's secret, or a broker client the ACL lets through, can publish one), so the link takes
it as a hint only: it fetches the order from Sinqro and stores Sinqro's answer
(:mod:`edged.flow.hints`). The broker side is fenced by ``config/mosquitto-fleet.acl``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aiomqtt

from edged import mqttstop
from edged.fleet.settings import FleetConfig
from edged.mqttclient import Redial, make_client, suback_refused
from edged.relay.settings import notifications_topic

log = logging.getLogger(__name__)

# Seconds the broker keeps the box's session (and queued notifications) while it is away.
SESSION_EXPIRY = 86_400


class PushSink(Protocol):
    """What a push source tells the Sinqro link (NotificationLink implements it)."""

    def source_up(self, name: str) -> None: ...

    def source_down(self, name: str, reason: str) -> None: ...

    async def source_frame(
        self, name: str, message: str | bytes, selling_point_id: int
    ) -> None: ...


class RelaySubscription:
    """A push source for :class:`~edged.flow.intake.NotificationLink`."""

    name = "relay"

    def __init__(self, config: FleetConfig, *, box_id: str) -> None:
        self.config = config
        # Its own connection: the fleet link's client id is the box id; two connections
        # with one id would take each other over.
        self.client_id = f"{config.client_id or box_id}-orders"
        self.messages = 0
        self.reconnects = 0

    async def run(self, selling_point_id: int, sink: PushSink) -> None:
        """Stay subscribed to ``selling_point_id``'s topic until cancelled."""
        topic = notifications_topic(self.config.topic_prefix, selling_point_id)
        redial = Redial(self.config)
        # The first connection starts a new session: one left from an earlier pairing would
        # still hold another selling point's subscription. What was published meanwhile is
        # fetched by the reconcile that follows. Reconnects resume the session.
        fresh = True
        while True:
            reason = "relay subscription closed"
            node = redial.node
            try:
                if fresh and self.config.protocol == "3.1.1":
                    # 3.1.1 cannot start a kept session afresh: one clean session ends the
                    # old one, then the kept session starts empty.
                    clean = make_client(self.config, self.client_id, node=node)
                    async with mqttstop.connection(clean):
                        pass
                    fresh = False
                client = make_client(
                    self.config,
                    self.client_id,
                    session_expiry=SESSION_EXPIRY,
                    fresh=fresh,
                    node=node,
                )
                async with mqttstop.connection(client):
                    fresh = False
                    granted = await client.subscribe(topic, qos=1)
                    if suback_refused(granted):
                        # Not subscribed: saying so (and reconciling once) would leave the
                        # box deaf to the relay; reconnect with backoff and ask again.
                        raise aiomqtt.MqttError(f"the broker refused the subscription ({granted})")
                    log.info("relay: subscribed to %s on %s", topic, node.where)
                    redial.connected()
                    sink.source_up(self.name)
                    async for message in client.messages:
                        if message.topic.value != topic:
                            continue
                        self.messages += 1
                        await sink.source_frame(
                            self.name, _bytes(message.payload), selling_point_id
                        )
            except aiomqtt.MqttError as exc:
                reason = f"relay broker {node.where}: {exc}"
            sink.source_down(self.name, reason)
            self.reconnects += 1
            await asyncio.sleep(redial.lost())


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
