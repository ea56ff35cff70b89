"""aiomqtt used so that a stop is never lost.

Every MQTT client in edged (POS bridge, fleet link, relay and its subscriber) runs a
reconnect loop that a stop cancels. On Python 3.11 two things can eat that cancellation:

* aiomqtt waits for CONNACK and PUBACK through ``asyncio.wait_for``, which returns the
  result and drops a cancellation that arrives just as the answer lands (fixed in 3.12);
* a slow DISCONNECT while stopping surfaces as :class:`aiomqtt.MqttError` from the
  client's ``__aexit__``, which the loop would take for an outage and reconnect.

Either leaves the loop running and the daemon's stop hanging. :func:`publish` and
:func:`connection` notice the lost stop and raise it again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt


def _cancels() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


async def publish(client: aiomqtt.Client, topic: str, payload: bytes | str, **kwargs: Any) -> None:
    """``client.publish`` that raises a cancellation requested while it was in flight."""
    before = _cancels()
    await client.publish(topic, payload, **kwargs)
    if _cancels() > before:
        raise asyncio.CancelledError


@contextlib.asynccontextmanager
async def connection(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, for a reconnect loop: a stop that reached the body, or that
    arrived while connecting, leaves as :class:`asyncio.CancelledError` even when the
    disconnect turns it into :class:`aiomqtt.MqttError`; real outages still raise that."""
    before = _cancels()
    stopping = False
    try:
        async with client:
            if _cancels() > before:
                stopping = True
                raise asyncio.CancelledError
            try:
                yield client
            except asyncio.CancelledError:
                stopping = True
                raise
    except aiomqtt.MqttError as exc:
        if stopping:
            raise asyncio.CancelledError from exc
        raise
