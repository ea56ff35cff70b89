"""Alerts that cannot hang, flood or leak: a total deadline on each send (against a server
that trickles its answer), many waiting orders told in a few grouped messages at a real HTTP
receiver, and no secret in a DEBUG log of an alerting run with a Telegram sink.

All over real sockets; waits are for a condition, never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from bridge_helpers import make_desk, make_order
from harness import DaemonProcess, SimulatorProcess, write_config
from test_alerts import Receiver, monitor, running
from test_faults import new_order
from waiting import eventually

from edged.fleet import alert_text
from edged.fleet.alerts import DeliveryError
from edged.fleet.courier import RateLimit, TokenBucket
from edged.fleet.settings import AlertsConfig, WebhookConfig
from edged.fleet.webhook import WebhookSink
from edged.i18n import Locale
from edged.journal.store import Journal
from edged.redaction import Redactor, secrets_of
from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

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


# -- no secret in the log ------------------------------------------------------------------------

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BEARER = "bearer-s3cret-for-the-hook"


class TelegramStandIn:
    """Telegram's ``sendMessage`` on a local port: records each message it is sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.port = 0

    async def send_message(self, request: web.Request) -> web.Response:
        self.tokens.append(request.match_info["token"])
        self.messages.append(await request.json())
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[TelegramStandIn]:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self.send_message)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            await runner.cleanup()


async def test_a_debug_log_of_an_alerting_run_holds_no_secret(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    async with TelegramStandIn().serving() as telegram:
        hook = {
            "url": f"http://127.0.0.1:{telegram.port}/bot{BOT_TOKEN}/sendMessage",
            "format": "telegram",
            "chat_id": "-1001234567890",
            "token": BEARER,
            "timeout": 5.0,
        }
        config = write_config(
            tmp_path,
            cloud.info(),
            logging={"level": "DEBUG"},
            alerts={"order_waiting_after": 1.0, "retry_min": 0.2, "webhooks": [hook]},
        )
        with DaemonProcess(config) as box:
            await asyncio.to_thread(box.start)
            await asyncio.to_thread(new_order, cloud)
            await eventually(lambda: telegram.messages, within=60, what="the Telegram message")
            await asyncio.to_thread(box.stop)
        # The stand-in was reached through the URL, and was told about the order.
        assert telegram.tokens[0] == BOT_TOKEN
        assert "has waited for a decision" in telegram.messages[0]["text"]
        log = box.log_path.read_text(encoding="utf-8")
        assert " DEBUG " in log  # it did log at DEBUG
        for secret in (
            BOT_TOKEN,
            BOT_TOKEN.split(":")[1],
            BEARER,
            DEFAULT_SERVER_TOKEN,
            DEFAULT_USER_TOKEN,
        ):
            assert secret not in log, secret


def test_the_redactor_masks_secrets_in_messages_arguments_and_tracebacks() -> None:
    redactor = Redactor()
    redactor.remember("relay-secret-0123456789", "abc")  # too short to remember: ignored
    lines = {
        "POST https://api.telegram.org/bot123:AA-b_c/sendMessage": "/bot***/sendMessage",
        "mqtt://edged:hunter22@broker:1883": "mqtt://edged:***@broker",
        "> x-api-user-access-token: u-tok-1": "x-api-user-access-token: ***",
        "headers=[(b'authorization', b'Bearer zzz')]": "(b'authorization', b'***')",
        "GET /x?token=t1&page=2": "/x?token=***&page=2",
        '{"password": "pw1", "n": 1}': '{"password": "***", "n": 1}',
        "POST /sinqro/relay-secret-0123456789": "POST /sinqro/***",
    }
    for line, masked in lines.items():
        assert masked in redactor.redact(line), line
    # Ordinary words stay: masking must not eat the message.
    plain = "Sinqro refused the user token: pair the box again (abc)"
    assert redactor.redact(plain) == plain

    record = logging.LogRecord("x", logging.DEBUG, "f", 1, "to %s", ("/bot9:Z/x",), None)
    try:
        raise ValueError("relay-secret-0123456789 in the path")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert redactor.filter(record)
    assert record.getMessage() == "to /bot***/x"
    assert record.exc_text and "relay-secret" not in record.exc_text
    assert "*** in the path" in record.exc_text


def test_secrets_of_a_config_are_the_fields_marked_secret() -> None:
    hooks = [WebhookConfig(url="https://h.example/bot1:x/send", token="tk-0001")]
    config = AlertsConfig(webhooks=hooks)
    assert secrets_of(config) == ["https://h.example/bot1:x/send", "tk-0001"]


# -- many waiting orders: a few grouped messages -------------------------------------------------

ORDERS = 150


def carried(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts one message at the receiver holds (a grouped one holds many)."""
    return list(body["alerts"]) if body.get("state") == "digest" else [body]


async def test_150_waiting_orders_make_a_handful_of_messages_and_lose_none(
    journal: Journal,
) -> None:
    desk, state = make_desk(journal)
    receiver = Receiver(refuse=0)
    burst, every = 3, 5.0
    hook = WebhookConfig(url=f"http://127.0.0.1:{receiver.port}/hook", burst=burst, every=every)
    async with receiver.serving(), httpx.AsyncClient() as http:
        sink = WebhookSink(hook, 0, client=http)
        mon = monitor(journal, state, [sink], order_waiting_after=0.2)
        started = time.monotonic()
        async with running(mon):
            for order_id in range(1, ORDERS + 1):
                await desk.ingest(make_order(order_id), "test")

            def told() -> set[str]:
                return {a["incident"] for _, b, _ in receiver.posts for a in carried(b)}

            await eventually(lambda: len(told()) == ORDERS, within=60, what="every order told")
        elapsed = time.monotonic() - started
    messages = [b for _, b, _ in receiver.posts]
    # The bucket's own bound: the burst, then one per `every` seconds.
    assert len(messages) <= burst + math.ceil(elapsed / every), (len(messages), elapsed)
    assert len(messages) <= burst + 3, len(messages)  # a handful, not 150
    assert told() == {f"order_waiting:{i}" for i in range(1, ORDERS + 1)}
    grouped = [b for b in messages if b["state"] == "digest"]
    assert grouped, "nothing was grouped"
    last = grouped[-1]
    n = len(last["alerts"])
    assert last["title"].startswith(f"Pizza Roma: {n} orders waiting, oldest ")
    assert last["message"].startswith(f"{n} orders waiting, oldest ")
    assert last["subject"] == {"count": n}
    assert mon.couriers["webhook-0"].delivered == ORDERS
    assert mon.couriers["webhook-0"].messages == len(messages)


def test_a_grouped_message_speaks_the_box_language() -> None:
    now = 1_716_541_200.0  # 2024-05-24 11:00 in Madrid (+02:00)
    alerts = [
        {
            "id": f"b:order_waiting:{i}:0:open",
            "incident": f"order_waiting:{i}",
            "rule": "order_waiting",
            "state": "open",
            "since": "2024-05-24T10:51:00+02:00" if i == 1 else "2024-05-24T10:58:00+02:00",
            "subject": {"order_id": i, "code": f"C{i}"},
            "message": "...",
        }
        for i in range(1, 13)
    ]
    alerts.append(
        {
            "id": "b:order_waiting:1:0:resolved",
            "incident": "order_waiting:1",
            "rule": "order_waiting",
            "state": "resolved",
            "subject": {"order_id": 1, "code": "C1"},
            "message": "...",
        }
    )
    alerts.append(
        {
            "id": "b:printer_down:bar:0:open",
            "incident": "printer_down:bar",
            "rule": "printer_down",
            "state": "open",
            "message": "La impresora bar está sin papel desde las 10:59.",
        }
    )
    title, message = alert_text.digest(Locale("es", "Europe/Madrid"), alerts, now)
    # Order 1 was answered in the meantime: 11 still wait, the oldest of them since 10:58.
    assert title == "11 pedidos en espera, el más antiguo desde hace 2 min"
    lines = message.split("\n")
    assert lines[0] == f"{title}: C2, C3, C4, C5, C6, C7, C8, C9, C10, C11 y 1 más"
    assert lines[1] == "1 pedido respondido: C1"
    assert lines[2] == "La impresora bar está sin papel desde las 10:59."
    title, _ = alert_text.digest(Locale("ca", "Europe/Madrid"), alerts[-1:], now)
    assert title == "1 alerta"


def test_the_token_bucket_gives_a_burst_then_a_steady_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(RateLimit(burst=3, every=10.0), clock=lambda: now[0])
    for _ in range(3):
        assert bucket.wait() == 0
        bucket.take()
    assert bucket.wait() == pytest.approx(10.0)
    now[0] = 4.0
    assert bucket.wait() == pytest.approx(6.0)
    now[0] = 10.0
    assert bucket.wait() == 0
    bucket.take()
    now[0] = 1000.0  # a long quiet time refills only up to the burst
    for _ in range(3):
        bucket.take()
    assert bucket.wait() > 0
