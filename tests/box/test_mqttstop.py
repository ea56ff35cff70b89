"""A stop is never lost by an MQTT client (edged.mqttstop).

The races it guards against (a cancellation dropped by asyncio.wait_for inside aiomqtt on
Python 3.11, a DISCONNECT that fails while stopping) cannot be timed on demand against a
real broker, so these clients play them out exactly; the clean-stop tests against
Mosquitto (test_bridge_mqtt, test_fleet) cover the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, cast

import aiomqtt
import pytest

from edged import mqttstop


class SwallowingClient:
    """``publish`` takes a stop that arrives while it waits and returns normally, as
    asyncio.wait_for does on 3.11 when the PUBACK lands at the same moment."""

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # dropped, as wait_for drops it
            await asyncio.sleep(0)
        self.published.append(topic)


class FailingDisconnect:
    """A connection whose DISCONNECT fails with MqttError (a slow broker while stopping)."""

    async def __aenter__(self) -> FailingDisconnect:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise aiomqtt.MqttError("Operation timed out")


async def test_a_stop_dropped_inside_publish_is_raised_again() -> None:
    client = SwallowingClient()

    async def loop() -> None:
        while True:  # a pump that would run forever with the stop dropped
            await mqttstop.publish(cast(aiomqtt.Client, client), "t", b"x")

    task = asyncio.create_task(loop())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert client.published == ["t"]


async def test_a_plain_publish_goes_on() -> None:
    class Quiet:
        async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
            await asyncio.sleep(0)

    await mqttstop.publish(cast(aiomqtt.Client, Quiet()), "t", b"x")


async def test_a_failed_disconnect_while_stopping_is_still_a_stop() -> None:
    entered = asyncio.Event()

    async def session() -> None:
        async with mqttstop.connection(cast(aiomqtt.Client, FailingDisconnect())):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(session())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failed_disconnect_without_a_stop_is_an_outage() -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with mqttstop.connection(cast(aiomqtt.Client, FailingDisconnect())):
            pass
