"""The MQTT test client: subscribes, records what arrives, publishes on request.

:class:`Listener` plays any client (the vendor's subscriber, Home Assistant, a watcher);
:class:`Pos` is the same client playing a POS terminal on a box's command topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from waiting import eventually


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None = None  # MQTT 5 correlation data, when the sender set it

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """Connects to ``host:port``, subscribes to ``topics`` (QoS 1), keeps every message.

    Reconnects on its own, so a test can stop and start the broker under it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: tuple[str, ...],
        *,
        client_id: str = "listener",
        v5: bool = True,
        persistent: bool = False,
    ) -> None:
        """``v5=False``: MQTT 3.1.1 (a broker that speaks nothing newer). ``persistent``: a
        session the broker keeps across reconnects (an hour's expiry under MQTT 5)."""
        self.host = host
        self.port = port
        self.topics = topics
        self.client_id = client_id
        self.v5 = v5
        self.persistent = persistent
        self.protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
        self.messages: list[Seen] = []
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run(), name=f"listener-{self.client_id}")
        await asyncio.wait_for(self.connected.wait(), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _connect(self) -> aiomqtt.Client:
        props = None
        if self.v5 and self.persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            protocol=self.protocol,
            clean_session=None if self.v5 else not self.persistent,
            clean_start=(not self.persistent) if self.v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._connect() as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.client = client
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload
                        if not isinstance(payload, bytes):
                            payload = b"" if payload is None else str(payload).encode()
                        corr = (
                            getattr(m.properties, "CorrelationData", None) if m.properties else None
                        )
                        self.messages.append(
                            Seen(
                                m.topic.value,
                                payload,
                                bool(m.retain),
                                bytes(corr) if corr else None,
                            )
                        )
            except aiomqtt.MqttError:
                self.client = None
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        await eventually(
            lambda: self.client is not None, what="the listener to be connected", within=20.0
        )
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)

    def on(self, topic: str) -> list[Seen]:
        return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Seen | None:
        found = self.on(topic)
        return found[-1] if found else None

    def topics_seen(self) -> set[str]:
        return {m.topic for m in self.messages}


class Pos(Listener):
    """A POS terminal on the box whose topics start with ``base``: sends commands to
    ``<base>/cmd/<name>`` and reads back the events the bridge publishes."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: tuple[str, ...],
        *,
        base: str,
        client_id: str = "pos-1",
        v5: bool = True,
        persistent: bool = False,
    ) -> None:
        super().__init__(host, port, topics, client_id=client_id, v5=v5, persistent=persistent)
        self.base = base

    async def send(
        self,
        name: str,
        body: Any,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        retain: bool = False,
    ) -> None:
        """One command (JSON unless ``body`` is bytes), with MQTT 5 reply properties."""
        props = None
        if self.v5 and (response_topic or correlation):
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation:
                props.CorrelationData = correlation
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.publish(f"{self.base}/cmd/{name}", payload, retain=retain, properties=props)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = [m.json() for m in self.messages if m.topic.startswith(f"{self.base}/events/")]
        return [e for e in out if kind is None or e["kind"] == kind]
