"""Alerts that cannot hang, flood or leak: a total deadline on each send (against a server
that trickles its answer), many waiting orders told in a few grouped messages at a real HTTP
receiver, and no secret in a DEBUG log of an alerting run with a Telegram sink.

All over real sockets; waits are for a condition, never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from edged.fleet.alerts import DeliveryError
from edged.fleet.settings import WebhookConfig
from edged.fleet.webhook import WebhookSink

ALERT = {
    "v": 1,
    "id": "b0x:order_waiting:1:0:open",
    "state": "open",
    "title": "Pizza Roma: Order C1 is waiting",
    "message": "Order C1 (Delivery) has waited for a decision since 13:05.",
}


class Trickle:
    """A raw TCP server that reads a request, then answers one byte every ``every`` seconds
    (a head that takes ``len(ANSWER) * every`` seconds to arrive). Counts what it sent and
    notices when the client hangs up."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\nok"

    def __init__(self, every: float) -> None:
        self.every = every
        self.sent = 0
        self.hung_up = asyncio.Event()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for i in range(len(self.ANSWER)):
                writer.write(self.ANSWER[i : i + 1])
                await writer.drain()
                self.sent += 1
                # The client closing shows as EOF on our side.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.every):
                        if not await reader.read(1):
                            break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.hung_up.set()
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Trickle]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


async def test_a_server_trickling_its_answer_is_cut_at_the_deadline() -> None:
    # One byte each 0.2 s never trips httpx's per-read timeout of 1 s; the answer would
    # take over 40 s. The send must end at its own 1 s deadline, as a retryable failure.
    async with Trickle(every=0.2).serving() as trickle, httpx.AsyncClient() as http:
        hook = WebhookConfig(url=f"http://127.0.0.1:{trickle.port}/hook", timeout=1.0)
        sink = WebhookSink(hook, 0, client=http)
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(ALERT)
        assert caught.value.retry
        assert "no whole answer within 1s" in str(caught.value)
        await asyncio.wait_for(trickle.hung_up.wait(), 30)
        assert 0 < trickle.sent < len(Trickle.ANSWER)
