"""A plain MQTT client for tests: subscribes, records what arrives, publishes on request."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiomqtt
from bridge_helpers import until


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool

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
    ) -> None:
        """``v5=False``: MQTT 3.1.1 (a broker that speaks nothing newer)."""
        self.host = host
        self.port = port
        self.topics = topics
        self.client_id = client_id
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

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    protocol=self.protocol,
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.client = client
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload
                        if not isinstance(payload, bytes):
                            payload = b"" if payload is None else str(payload).encode()
                        self.messages.append(Seen(m.topic.value, payload, bool(m.retain)))
            except aiomqtt.MqttError:
                self.client = None
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await until(lambda: self.client is not None, "the listener to be connected")
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)

    def on(self, topic: str) -> list[Seen]:
        return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Seen | None:
        found = self.on(topic)
        return found[-1] if found else None

    def topics_seen(self) -> set[str]:
        return {m.topic for m in self.messages}
