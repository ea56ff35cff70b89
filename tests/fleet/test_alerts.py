"""Alerts: the rules, once per incident, resolved messages, retries, and the two sinks
(a webhook on a local HTTP receiver, the fleet topic on a real Mosquitto)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from bridge_helpers import make_desk, make_order
from broker import MosquittoBroker
from mqtt_listener import Listener
from ports import free_port
from waiting import eventually

from edged.fleet.alerts import KV_KEY, STATE_KEY, AlertMonitor, DeliveryError
from edged.fleet.identity import BoxIdentity
from edged.fleet.link import FleetLink
from edged.fleet.settings import AlertsConfig, FleetConfig, WebhookConfig
from edged.fleet.telemetry import Telemetry
from edged.fleet.webhook import WebhookSink, body
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.state import BoxState

BOX = "b0x0000000000001"


class Clock:
    """Real time plus an offset the test moves forward (the journal stamps real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Sink:
    """An in-memory sink; fails while ``failing`` is set."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.alerts: list[dict[str, Any]] = []
        self.failing: DeliveryError | None = None
        self.attempts = 0

    async def deliver(self, alert: dict[str, Any]) -> None:
        self.attempts += 1
        if self.failing is not None:
            raise self.failing
        self.alerts.append(alert)

    def states(self) -> list[tuple[str, str]]:
        return [(a["incident"], a["state"]) for a in self.alerts]


def monitor(
    journal: Journal,
    state: BoxState,
    sinks: list[Any],
    clock: Clock | None = None,
    language: str = "en",
    **rules: Any,
) -> AlertMonitor:
    config = AlertsConfig(
        **{
            "order_waiting_after": 60.0,
            "link_down_after": 60.0,
            "printer_down_after": 60.0,
            "decision_stuck_after": 60.0,
            "retry_min": 0.05,
            "retry_max": 0.2,
            **rules,
        }
    )
    return AlertMonitor(
        config,
        journal=journal,
        state=state,
        sinks=sinks,
        box_id=BOX,
        box_name="Pizza Roma",
        language=language,  # type: ignore[arg-type]
        selling_point=lambda: (3442, "My restaurant", "Europe/Madrid"),
        clock=clock or Clock(),
    )


@contextlib.asynccontextmanager
async def running(mon: AlertMonitor) -> AsyncIterator[AlertMonitor]:
    task = asyncio.create_task(mon.run(), name="test-alerts")
    try:
        yield mon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- the rules, on a moved clock ---------------------------------------------------------------


async def test_order_waiting_opens_once_and_resolves_with_the_new_status(
    journal: Journal,
) -> None:
    desk, state = make_desk(journal)
    clock = Clock()
    sink = Sink()
    mon = monitor(journal, state, [sink], clock)
    await desk.ingest(make_order(4912), "test")
    next_due = await mon.evaluate()
    assert mon.open == {} and next_due is not None and 59 < next_due - clock() <= 60
    clock.offset = 61
    await mon.evaluate()
    await mon.evaluate()
    assert list(mon.open) == ["order_waiting:4912"]
    assert state.get(STATE_KEY)[0]["title"] == "Pizza Roma: Order C4912 is waiting"
    await desk.ingest(make_order(4912, "accepted"), "test")
    await mon.evaluate()
    await mon.evaluate()
    assert mon.open == {} and state.get(STATE_KEY) == []
    queue = [e["alert"] for e in mon.couriers["memory"].queue]
    assert [(a["incident"], a["state"]) for a in queue] == [
        ("order_waiting:4912", "open"),
        ("order_waiting:4912", "resolved"),
    ]
    opened, resolved = queue
    assert opened["subject"] == {"order_id": 4912, "code": "C4912", "type": "collection"}
    assert opened["selling_point"] == {"id": 3442, "name": "My restaurant"}
    assert opened["since"].endswith(("+01:00", "+02:00"))  # the selling point's zone
    assert "has waited for a decision since" in opened["message"]
    assert resolved["message"].startswith("Order C4912 is now Accepted")
    assert resolved["duration"] >= 61
    assert opened["id"] != resolved["id"]


async def test_alerts_speak_the_box_language(journal: Journal) -> None:
    desk, state = make_desk(journal)
    clock = Clock()
    mon = monitor(journal, state, [Sink()], clock, language="es")
    await desk.ingest(make_order(77), "test")
    state.set("printer.cocina", {"state": "paper_out", "detail": "no paper"})
    await mon.evaluate()
    clock.offset = 61
    await mon.evaluate()
    alerts = {a["alert"]["incident"]: a["alert"] for a in mon.couriers["memory"].queue}
    order = alerts["order_waiting:77"]
    assert order["title"] == "Pizza Roma: Pedido C77 en espera"
    assert order["message"].startswith("El pedido C77 (Para recoger) espera una decisión desde ")
    assert order["subject"]["type"] == "collection"  # machines keep the code
    printer = alerts["printer_down:cocina"]
    assert printer["title"] == "Pizza Roma: Impresora cocina: sin papel"


async def test_link_and_printer_rules_and_unknown_states(journal: Journal) -> None:
    _, state = make_desk(journal)
    clock = Clock()
    mon = monitor(journal, state, [Sink()], clock)
    state.set("link", "offline")
    state.set("link.detail", "Sinqro unreachable: timeout")
    state.set("printer.kitchen", {"state": "paper_out", "detail": "no paper"})
    state.set("printer.bar", {"state": "online", "detail": ""})
    await mon.evaluate()
    clock.offset = 61
    await mon.evaluate()
    assert sorted(mon.open) == ["link_down", "printer_down:kitchen"]
    assert mon.open["printer_down:kitchen"].title == "Pizza Roma: Printer kitchen: out of paper"
    # Unknown is not resolved: the link restarting, the printer not answering.
    state.set("link", "starting")
    state.set("printer.kitchen", {"state": "unknown", "detail": ""})
    await mon.evaluate()
    assert sorted(mon.open) == ["link_down", "printer_down:kitchen"]
    state.set("link", "polling")
    state.set("printer.kitchen", {"state": "online", "detail": ""})
    await mon.evaluate()
    assert mon.open == {}
    # A problem shorter than the rule's time says nothing.
    state.set("printer.bar", {"state": "offline", "detail": ""})
    clock.offset = 100
    await mon.evaluate()
    state.set("printer.bar", {"state": "online", "detail": ""})
    clock.offset = 200
    await mon.evaluate()
    assert mon.open == {} and mon.opened == 2 and mon.resolved == 2


async def test_decisions_stuck_and_refused(journal: Journal) -> None:
    desk, state = make_desk(journal)
    clock = Clock()
    sink = Sink()
    mon = monitor(journal, state, [sink], clock, order_waiting_after=0.0)
    # Refusals come from the journal's events, which reach a listening monitor.
    with mon.listening():
        await desk.ingest(make_order(7), "test")
        command = await desk.accept(7, source="test")
        await mon.evaluate()
        clock.offset = 61
        await mon.evaluate()
        assert list(mon.open) == ["decision_stuck"]
        # Sinqro refuses it: the queue is empty again, the refusal is its own incident.
        await journal.finish_command(command, ok=False, error_code="INVALID_TOKEN", error="expired")
        await mon.evaluate()
        assert list(mon.open) == ["decision_refused:7"]
        assert "INVALID_TOKEN expired" in mon.open["decision_refused:7"].values["detail"]
        # A refusal that only means the order had moved on is not an incident.
        await desk.ingest(make_order(8), "test")
        other = await desk.accept(8, source="test")
        await journal.finish_command(other, ok=False, error_code="ORDER_MOVED_ON", error="x")
        await mon.evaluate()
        assert list(mon.open) == ["decision_refused:7"]
        # The order moves on (cancelled by the customer): resolved.
        await desk.ingest(make_order(7, "cancelled_by_client"), "test")
        await mon.evaluate()
        assert mon.open == {}


async def test_a_restart_neither_repeats_nor_loses_alerts(journal: Journal) -> None:
    desk, state = make_desk(journal)
    clock = Clock()
    clock.offset = 61
    down = Sink()
    down.failing = DeliveryError("receiver down")
    await desk.ingest(make_order(21), "test")
    async with running(monitor(journal, state, [down], clock)) as first:
        await eventually(lambda: bool(first.open), what="the incident", within=20.0)
        await eventually(lambda: down.attempts >= 2, what="retries", within=20.0)
        await eventually(
            lambda: first._saved == first._document(), what="the state kept", within=20.0
        )
    stored = json.loads(await journal.kv_get(KV_KEY) or "{}")
    assert [i["key"] for i in stored["open"]] == ["order_waiting:21"]
    assert len(stored["queues"]["memory"]) == 1
    up = Sink()
    async with running(monitor(journal, state, [up], clock)) as second:
        await eventually(lambda: len(up.alerts) == 1, what="the kept alert delivered", within=20.0)
        await second.evaluate()
        assert up.states() == [("order_waiting:21", "open")]
        await desk.ingest(make_order(21, "accepted"), "test")
        await eventually(lambda: len(up.alerts) == 2, what="the resolved alert", within=20.0)
        assert up.states()[1] == ("order_waiting:21", "resolved")
        await eventually(
            lambda: second._saved == second._document(), what="the state kept", within=20.0
        )
    assert await journal.kv_get(KV_KEY) is None  # nothing open, nothing queued


async def test_a_refusing_sink_drops_and_the_others_go_on(journal: Journal) -> None:
    desk, state = make_desk(journal)
    clock = Clock()
    clock.offset = 61
    bad, good = Sink("bad"), Sink("good")
    bad.failing = DeliveryError("HTTP 404", retry=False)
    await desk.ingest(make_order(5), "test")
    async with running(monitor(journal, state, [bad, good], clock)) as mon:
        await eventually(lambda: len(good.alerts) == 1, what="the good sink", within=20.0)
        await eventually(
            lambda: mon.couriers["bad"].dropped == 1, what="the bad sink gave up", within=20.0
        )
        assert bad.attempts == 1


def test_webhook_bodies() -> None:
    alert = {
        "state": "open",
        "title": "Box: Order C1 is waiting",
        "message": "Order C1 ...",
        "id": "x",
    }
    ntfy = WebhookConfig(url="https://ntfy.sh", format="ntfy", topic="shop-alerts")
    assert body(ntfy, alert) == {
        "topic": "shop-alerts",
        "title": "Box: Order C1 is waiting",
        "message": "Order C1 ...",
        "priority": 4,
        "tags": ["warning"],
    }
    telegram = WebhookConfig(
        url="https://api.telegram.org/bot1:x/sendMessage", format="telegram", chat_id="-100"
    )
    assert body(telegram, alert) == {
        "chat_id": "-100",
        "text": "Box: Order C1 is waiting\nOrder C1 ...",
        "disable_web_page_preview": True,
    }
    assert body(WebhookConfig(url="https://x.example"), alert) is alert


# -- end to end: HTTP receiver and the fleet topic ---------------------------------------------


class Receiver:
    """A local HTTP endpoint: answers 503 ``refuse`` times, then 200; records every POST."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.posts: list[tuple[int, dict[str, Any], str]] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        status = 503 if len(self.posts) < self.refuse else 200
        auth = request.headers.get("Authorization", "")
        self.posts.append((status, await request.json(), auth))
        return web.Response(status=status, headers={"Retry-After": "0"} if status == 503 else {})

    def accepted(self) -> list[dict[str, Any]]:
        return [b for s, b, _ in self.posts if s == 200]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        try:
            yield self
        finally:
            await runner.cleanup()


async def test_an_order_waiting_past_its_limit_reaches_webhook_and_fleet(
    tmp_path: Path, journal: Journal
) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    desk, state = make_desk(journal)
    identity = BoxIdentity(BOX, "serial", BOX, "test board")
    telemetry = Telemetry(
        identity=identity,
        box_name=lambda: "Pizza Roma",
        state=state.snapshot,
        selling_point=lambda: (3442, "My restaurant", "Europe/Madrid"),
        orders_since=journal.orders_seen_since,
        incidents=list,
        storage_path=tmp_path,
    )
    fleet = FleetLink(
        FleetConfig(enabled=True, url=broker.url, reconnect_min=0.05, reconnect_max=0.3),
        box_id=BOX,
        telemetry=telemetry,
        wait_changed=state.wait_changed,
    )
    receiver = Receiver(refuse=2)
    hook = WebhookConfig(url=f"http://127.0.0.1:{receiver.port}/hook", token="s3cret")
    try:
        async with (
            receiver.serving(),
            httpx.AsyncClient() as http,
            Listener(broker.host, broker.port, (f"edged/{BOX}/alert",)) as central,
        ):
            mon = monitor(
                journal,
                state,
                [fleet, WebhookSink(hook, 0, client=http)],
                order_waiting_after=0.5,
            )
            fleet_task = asyncio.create_task(fleet.run())
            try:
                async with running(mon):
                    await desk.ingest(make_order(4912), "test")
                    await eventually(
                        lambda: len(receiver.accepted()) == 1, what="the webhook alert", within=20.0
                    )
                    await eventually(
                        lambda: len(central.messages) == 1, what="the fleet alert", within=20.0
                    )
                    # Two 503s, then taken: three posts of the same alert, one accepted.
                    assert [s for s, _, _ in receiver.posts] == [503, 503, 200]
                    assert {b["id"] for _, b, _ in receiver.posts} == {receiver.accepted()[0]["id"]}
                    assert all(auth == "Bearer s3cret" for _, _, auth in receiver.posts)
                    opened = central.messages[0].json()
                    assert opened == receiver.accepted()[0]
                    assert (opened["incident"], opened["state"]) == ("order_waiting:4912", "open")
                    await desk.ingest(make_order(4912, "accepted"), "test")
                    await eventually(
                        lambda: len(receiver.accepted()) == 2,
                        what="the resolved webhook",
                        within=20.0,
                    )
                    await eventually(
                        lambda: len(central.messages) == 2,
                        what="the resolved fleet alert",
                        within=20.0,
                    )
                    await mon.evaluate()
                    resolved = central.messages[1].json()
                    assert (resolved["incident"], resolved["state"]) == (
                        "order_waiting:4912",
                        "resolved",
                    )
                    assert receiver.accepted()[1] == resolved
                    # Once each: nothing more was sent for this incident.
                    assert len(receiver.accepted()) == 2 and len(central.messages) == 2
            finally:
                fleet_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fleet_task
    finally:
        broker.kill()


async def test_journal_events_feed_refusals(journal: Journal) -> None:
    desk, state = make_desk(journal)
    mon = monitor(journal, state, [Sink()])
    await desk.ingest(make_order(3), "test")
    mon._on_events(
        [
            ev.Event(
                seq=1,
                ts=time.time(),
                kind=ev.COMMAND_FAILED,
                order_id=3,
                data={"kind": "catalog", "code": "X"},
            )
        ]
    )
    await mon.evaluate()
    assert mon.open == {}  # a catalog push is not a decision on an order
