"""MQTT bridge: order events out to POS terminals, their commands in, through a broker.

Topic tree (``<base>`` is ``<topic_prefix>/<box id>``, e.g. ``edged/shop-1``; the full
reference with payloads is docs/bridge-protocol.md):

=================================  ==========================================================
``<base>/status``                  ``online`` / ``offline``, retained; ``offline`` is also
                                   the last will, and is published on a clean stop
``<base>/events/<kind>``           journal events as JSON, QoS 1, ``id`` = journal seq
``<base>/cmd/<name>``              commands in (QoS 1; retained messages are ignored)
``<base>/response/<id>``           responses for terminals without MQTT 5 (and for MQTT 5
                                   requests that carry no ResponseTopic)
``<base>/errors``                  responses to commands too broken to name an id
``<base>/state/<key>``             live box state, retained (waiting_orders, link, ...)
=================================  ==========================================================

Delivery comes from the durable journal cursor ``bridge.mqtt``, moved only after the broker
acknowledged (PUBACK) every message of a batch: after a broker outage or a restart the
terminals get every event they have not seen, in order, possibly some twice (drop by id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged import mqttstop
from edged.bridges.commands import BUSY, command_name, request_id_of
from edged.bridges.homeassistant import (
    CatalogProducts,
    DeviceInfo,
    HomeAssistant,
    JournalActions,
)
from edged.bridges.link import Link, keep_linked
from edged.bridges.protocol import (
    CommandHandler,
    FinalResponse,
    Response,
    dumps,
    encode_event,
)
from edged.bridges.settings import MqttConfig
from edged.bridges.topics import STATE_KEYS, correlation_id, topic_id
from edged.flow.desk import OrderDesk
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.follower import Follower
from edged.journal.store import Journal, JournalError
from edged.mqttclient import Node, Redial, make_client
from edged.state import BoxState, Key

log = logging.getLogger(__name__)

CURSOR = "bridge.mqtt"
BATCH = 64
CURSOR_IDLE = 0.2  # seconds of quiet before the cursor is written
CURSOR_EVERY = 1.0  # and at least this often while busy
SESSION_EXPIRY = 3600  # seconds the broker keeps commands for us while we are away
ANSWERS_QUEUE = 1024  # BUSY answers waiting for the connection; the listener waits beyond


class _Incoming(NamedTuple):
    """A command as it came off the connection."""

    payload: bytes
    name: str
    request_id: str | None
    reply_to: str | None
    correlation: bytes | None


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


class MqttBridge:
    """Bridge between the journal/OrderDesk and an MQTT broker. Run :meth:`run` as a task."""

    def __init__(
        self,
        config: MqttConfig,
        journal: Journal,
        desk: OrderDesk,
        state: BoxState,
        *,
        box_id: str,
        device: DeviceInfo | None = None,
        printers: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """``box_id`` names the box's topic tree (``mqtt.box_id`` overrides it); with
        ``mqtt.homeassistant``, ``device`` describes the box and ``printers`` lists the
        configured printer names (default: those the spooler reported)."""
        self.config = config
        self.journal = journal
        self.state = state
        # An explicit mqtt.box_id is the installer's choice (checked topic-safe by the
        # config); a box id or name is made safe without ever merging two names.
        self.box_id = config.box_id or topic_id(box_id)
        self.base = f"{config.topic_prefix}/{self.box_id}"
        self.handler = CommandHandler(
            journal,
            desk,
            bridge="mqtt",
            max_command_bytes=config.max_command_bytes,
            max_catalog_bytes=config.max_catalog_bytes,
        )
        self._v5 = config.protocol == "5"
        # Position: acknowledged by the broker; saved: written to the journal.
        # Lazy cursor: terminals drop ids they have seen, so a crash may only repeat a few.
        self._follower = Follower(journal, CURSOR, batch=BATCH, lazy=True)
        self._saved_at = 0.0
        self._state_dirty: set[Key] = set()
        self._state_wake = asyncio.Event()
        self.homeassistant: HomeAssistant | None = None
        if config.homeassistant:
            self.homeassistant = HomeAssistant(
                prefix=config.homeassistant_prefix,
                base=self.base,
                device=device or DeviceInfo(box_id=self.box_id, name=self.box_id),
                printers=printers or (lambda: sorted(state.printers())),
                state_topic=self.state_topic,
                actions=JournalActions(journal, desk),
                products=CatalogProducts(desk),
                exposed=config.homeassistant_products,
            )
        # Commands received and not yet handled survive a reconnect (the worker answers
        # them on the next connection); BUSY answers wait here for the connection.
        self._intake: asyncio.Queue[_Incoming] = asyncio.Queue(config.max_pending_commands)
        self._answers: asyncio.Queue[tuple[str, bytes, Properties | None]] = asyncio.Queue(
            ANSWERS_QUEUE
        )
        self.published = 0
        self._redial = Redial(config)
        self.link = Link("mqtt", self._redial.node.where, state)
        self.busy = 0

    # -- topics ----------------------------------------------------------------------------

    @property
    def status_topic(self) -> str:
        return f"{self.base}/status"

    def event_topic(self, kind: str) -> str:
        return f"{self.base}/events/{kind}"

    def response_topic(self, request_id: str | None) -> str:
        return f"{self.base}/response/{request_id}" if request_id else f"{self.base}/errors"

    def state_topic(self, key: str) -> str | None:
        if key in STATE_KEYS:
            return f"{self.base}/state/{STATE_KEYS[key]}"
        if key.startswith("printer."):
            return f"{self.base}/state/printer/{topic_id(key[8:])}"
        if key.startswith("part."):  # a part of the box and its state (edged.parts)
            return f"{self.base}/state/part/{topic_id(key[5:])}"
        return None

    # -- wiring ----------------------------------------------------------------------------

    def _on_state(self, key: Key, value: Any) -> None:
        if self.state_topic(key) is not None:
            self._state_dirty.add(key)
            self._state_wake.set()

    def _client(self, node: Node | None = None) -> aiomqtt.Client:
        return make_client(
            self.config,
            self.config.client_id or f"edged-{self.box_id}",
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            # A persistent session: commands sent while we were away wait at the broker.
            session_expiry=SESSION_EXPIRY,
            # Unbounded here: the listener empties it at once into the bounded intake or a
            # BUSY answer. aiomqtt drops messages from a full queue without a word.
            max_queued_incoming=0,
            node=node,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected and keep terminals in sync, until cancelled."""
        self.state.watch(self._on_state)
        try:
            await keep_linked(
                self.link,
                self._connection,
                follower=self._follower,
                prune=self.handler.prune,
                link_errors=(aiomqtt.MqttError,),
                pace=self._redial,
                starting="connecting",
            )
        finally:
            self.state.unwatch(self._on_state)

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    async def _connection(self) -> None:
        node = self._redial.node
        self.link.where = node.where
        async with mqttstop.connection(self._client(node)) as client:
            log.info("mqtt bridge: connected to %s as %s", node.where, self.base)
            self.link.reached = True
            await self._session(client)

    async def _session(self, client: aiomqtt.Client) -> None:
        try:
            await self._connected(client)
        except asyncio.CancelledError:
            # Clean stop: say so, since a clean DISCONNECT discards the last will.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await mqttstop.publish(
                        client, self.status_topic, b"offline", qos=1, retain=True
                    )
            raise

    async def _connected(self, client: aiomqtt.Client) -> None:
        await mqttstop.publish(client, self.status_topic, b"online", qos=1, retain=True)
        topic = f"{self.base}/cmd/+"
        if self._v5:
            # retainHandling=2: the broker does not even offer us retained commands.
            await client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
        else:
            await client.subscribe(topic, qos=1)
        self._state_dirty.update(k for k in self.state.current_keys() if self.state_topic(k))
        if self.homeassistant is not None:
            for ha_topic in self.homeassistant.subscriptions():
                await client.subscribe(ha_topic, qos=1)
            await self.homeassistant.publish_all(self._publisher(client))
            self._state_dirty.update(("waiting_orders", "link", "panel.led", "panel.buzzer"))
        self._state_wake.set()
        self.link.online()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client), name="mqtt-events")
                group.create_task(self._listen(client), name="mqtt-commands")
                group.create_task(self._work(client), name="mqtt-command-worker")
                group.create_task(self._send_answers(client), name="mqtt-answers")
                group.create_task(self._mirror_state(client), name="mqtt-state")
        except* aiomqtt.MqttError as errors:
            raise errors.exceptions[0] from None
        except* JournalError as errors:
            raise errors.exceptions[0] from None

    # -- events out ------------------------------------------------------------------------

    @property
    def saved_cursor(self) -> int:
        """The cursor as written to the journal."""
        return self._follower.saved

    async def _pump(self, client: aiomqtt.Client) -> None:
        try:
            while True:
                # Once quiet, the cursor is written (the CLI's commits wake us too).
                events = await self._follower.next_batch(
                    quiet_after=CURSOR_IDLE, on_quiet=self._save_cursor
                )
                await self._publish_events(client, events)
                self._follower.advance(events[-1].seq)
                if time.monotonic() - self._saved_at > CURSOR_EVERY:
                    await self._save_cursor()
        finally:
            with contextlib.suppress(JournalError):
                await self._save_cursor()

    async def _save_cursor(self) -> None:
        # The cursor is written when quiet or every CURSOR_EVERY seconds, not per message:
        # an fsync per publish would sit in front of the next order's own write. A crash in
        # between only means a few events are published again (terminals drop known ids).
        await self._follower.save()
        self._saved_at = time.monotonic()

    async def _publish_events(self, client: aiomqtt.Client, events: list[Event]) -> None:
        sends: list[tuple[str, bytes, Properties | None]] = []
        for event in events:
            message = await encode_event(event, self.journal, full_payload=self.config.full_payload)
            if message is not None:
                sends.append((self.event_topic(event.kind), dumps(message), None))
            for final in await self.handler.finals([event]):
                sends.append(self._response_message(final))
        if self.homeassistant is not None and any(e.kind == ev.CATALOG_CHANGED for e in events):
            await self.homeassistant.catalog_changed(self._publisher(client))
        if not sends:
            return
        # All in flight at once (paho sends them in this order); the cursor moves only
        # when every one is acknowledged.
        async with asyncio.TaskGroup() as group:
            for topic, payload, props in sends:
                group.create_task(
                    mqttstop.publish(client, topic, payload, qos=1, properties=props),
                    name="mqtt-publish",
                )
        self.published += len(sends)

    def _response_message(self, final: FinalResponse) -> tuple[str, bytes, Properties | None]:
        return self._reply(final.response, final.reply_to, final.correlation)

    def _reply(
        self, response: Response, reply_to: str | None, correlation: bytes | None
    ) -> tuple[str, bytes, Properties | None]:
        props: Properties | None = None
        if self._v5 and correlation:
            props = _properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        topic = reply_to or self.response_topic(response.request_id)
        return topic, dumps(response.to_dict()), props

    # -- commands in -----------------------------------------------------------------------

    def _safe_reply_topic(self, topic: Any) -> str | None:
        """A requester's ResponseTopic, unless it could spoof or flood our own tree."""
        if not isinstance(topic, str) or not topic or len(topic) > 256:
            return None
        if "+" in topic or "#" in topic or "\x00" in topic:
            return None
        if topic.startswith(self.base + "/") and not topic.startswith(self.base + "/response/"):
            return None
        return topic

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Take every command off the connection at once: into the bounded intake, or,
        when that is full, answered ``BUSY`` at once. None is dropped unanswered."""
        prefix = f"{self.base}/cmd/"
        async for message in client.messages:
            topic = message.topic.value
            if self.homeassistant is not None and self.homeassistant.owns(topic):
                await self._homeassistant_message(client, message)
                continue
            if not topic.startswith(prefix):
                continue
            if message.retain:
                # A retained command would be replayed on every reconnect: never apply one.
                log.warning("mqtt bridge: ignoring retained command on %s", topic[:200])
                continue
            payload = message.payload
            if not isinstance(payload, (bytes, bytearray)):
                payload = str(payload).encode()
            props = message.properties
            correlation: bytes | None = None
            reply_to: str | None = None
            if props is not None:
                raw = getattr(props, "CorrelationData", None)
                correlation = bytes(raw) if raw else None
                reply_to = self._safe_reply_topic(getattr(props, "ResponseTopic", None))
            incoming = _Incoming(
                bytes(payload),
                topic[len(prefix) :],
                correlation_id(correlation),
                reply_to,
                correlation,
            )
            try:
                self._intake.put_nowait(incoming)
            except asyncio.QueueFull:
                await self._answers.put(self._busy(incoming))

    def _busy(self, incoming: _Incoming) -> tuple[str, bytes, Properties | None]:
        self.busy += 1
        if self.busy == 1 or self.busy % 100 == 0:
            log.warning(
                "mqtt bridge: %d commands waiting; answered BUSY (%d so far)",
                self._intake.qsize(),
                self.busy,
            )
        request_id = request_id_of(
            incoming.payload,
            fallback=incoming.request_id,
            max_bytes=max(self.config.max_command_bytes, self.config.max_catalog_bytes),
        )
        response = Response.error(
            request_id,
            command_name(incoming.name),
            BUSY,
            "too many commands at once; nothing was changed, send it again shortly",
        )
        return self._reply(response, incoming.reply_to, incoming.correlation)

    async def _work(self, client: aiomqtt.Client) -> None:
        """Handle the intake one command at a time (commands of one bridge are ordered).

        The answer goes to the broker before the next command is taken, so a ``queued``
        answer always leaves before the final one the event pump sends later.
        """
        while True:
            item = await self._intake.get()
            response = await self.handler.handle_safely(
                item.payload,
                name=item.name,
                request_id=item.request_id,
                reply_to=item.reply_to,
                correlation=item.correlation,
            )
            topic, body, props = self._reply(response, item.reply_to, item.correlation)
            await mqttstop.publish(client, topic, body, qos=1, properties=props)

    async def _send_answers(self, client: aiomqtt.Client) -> None:
        """BUSY answers, in the order the commands came."""
        while True:
            topic, body, props = await self._answers.get()
            await mqttstop.publish(client, topic, body, qos=1, properties=props)

    # -- state out (and Home Assistant discovery) ------------------------------------------

    async def _mirror_state(self, client: aiomqtt.Client) -> None:
        while True:
            await self._state_wake.wait()
            self._state_wake.clear()
            keys, self._state_dirty = sorted(self._state_dirty), set()
            for key in keys:
                topic = self.state_topic(key)
                if topic is None:
                    continue
                value = self.state.get(key)
                if value is None:
                    continue  # not known yet (no panel, no printer report)
                payload = value if isinstance(value, str) else dumps(value)
                await mqttstop.publish(client, topic, payload, qos=1, retain=True)

    # -- Home Assistant (edged/bridges/homeassistant.py) -------------------------------------

    def _publisher(
        self, client: aiomqtt.Client
    ) -> Callable[[str, bytes, bool], Coroutine[Any, Any, None]]:
        async def publish(topic: str, payload: bytes, retain: bool) -> None:
            await mqttstop.publish(client, topic, payload, qos=1, retain=retain)

        return publish

    async def _homeassistant_message(
        self, client: aiomqtt.Client, message: aiomqtt.Message
    ) -> None:
        assert self.homeassistant is not None
        payload = message.payload
        if not isinstance(payload, (bytes, bytearray)):
            payload = b"" if payload is None else str(payload).encode()
        came_online = await self.homeassistant.on_message(
            message.topic.value,
            bytes(payload),
            retain=bool(message.retain),
            publish=self._publisher(client),
        )
        if came_online:
            self._state_dirty.update(k for k in self.state.current_keys() if self.state_topic(k))
            self._state_wake.set()
