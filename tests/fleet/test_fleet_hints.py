"""Hints from the fleet broker, against the simulator and a real Mosquitto: checked with
Sinqro, bounded, paced, never in the way of the websocket or of other orders; and Sinqro's
own answer correcting a final status the box got wrong."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiomqtt
import pytest
from broker import MosquittoBroker
from conftest import make_sinqro_config
from test_relay import box
from waiting import eventually

from edged.flow import hints
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import parse_order
from edged.state import BoxState


def notification(sim: Simulator, order: dict[str, Any], event: str = "new_order") -> str:
    return json.dumps({"event": event, "sellingPointId": sim.selling_point_id, "data": order})


def accepted(sim: Simulator, order: dict[str, Any]) -> str:
    """A hint that claims more than the box can know yet, so it is always checked (a start-up
    reconcile may have stored the waiting order already)."""
    claimed = dict(order, status={"code": "accepted", "name": "x", "isFinalStatus": False})
    return notification(sim, claimed, "order_status_changed")


async def publish(broker: MosquittoBroker, topic: str, payloads: list[str]) -> None:
    """What any client of the fleet broker can do."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="intruder") as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


def order_gets(sim: Simulator, order_id: int | None = None) -> int:
    tail = f"/orders/{order_id}" if order_id is not None else None
    return sum(
        1
        for r in sim.requests
        if r["method"] == "GET"
        and "/orders/" in r["path"]
        and "sellingPoints" not in r["path"]
        and (tail is None or r["path"].endswith(tail))
    )


async def test_a_flood_of_forged_hints_is_bounded_and_the_websocket_goes_on(
    sim: Simulator, broker: MosquittoBroker, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edged.flow.hints")
    topic = f"edged/sellingPoints/{sim.selling_point_id}/notifications"
    template = sim.create_order("collection")
    async with box(sim, broker, journal, websocket=True) as (link, _):
        # One GET an hour: the flood must wait, bounded, instead of reaching Sinqro.
        link.hints.min_interval = 3600.0
        forged = [notification(sim, dict(template, id=800000 + i)) for i in range(300)]
        await publish(broker, topic, forged)
        await eventually(
            lambda: link.hints.received == 300, what="the flood at the box", within=20.0
        )
        await eventually(
            lambda: link.hints.rejected[hints.UNKNOWN_ORDER] == 1,
            what="the first check",
            within=20.0,
        )
        assert order_gets(sim) == 1
        pending = link.hints.pending
        overflow = link.hints.rejected[hints.OVERFLOW]
        assert pending <= hints.MAX_PENDING
        assert overflow >= 300 - hints.MAX_PENDING - 1
        assert overflow + pending + 1 == 300  # every hint is checked, waiting or counted
        for i in range(300):
            assert await journal.get_order(800000 + i) is None
        # Sinqro's own websocket is not held back by the hints waiting.
        real = sim.create_order("delivery")
        stored = await eventually(lambda: journal.get_order(int(real["id"])), what="the frame")
        assert stored.status == "waiting_sp_validation"
        assert order_gets(sim) == 1
        # Paced again: every hint that waited is checked once, rejected, and the log says
        # so in a few lines, not one per forgery.
        link.hints.min_interval = 0.0
        await eventually(lambda: link.hints.pending == 0, what="the queue drained", within=20.0)
        assert link.hints.rejected[hints.UNKNOWN_ORDER] == pending + 1
        assert order_gets(sim) == pending + 1
        assert link.hints.rejected[hints.OVERFLOW] == overflow
        lines = [r for r in caplog.records if r.name == "edged.flow.hints"]
        assert len(lines) <= hints.LOG_BURST + 3
        code = str(template["marketOrderCode"])
        assert not any(code in r.getMessage() for r in lines)  # no payload in the log


async def test_a_hint_sinqro_cannot_answer_waits_and_holds_back_no_other_order(
    sim: Simulator, broker: MosquittoBroker, journal: Journal
) -> None:
    topic = f"edged/sellingPoints/{sim.selling_point_id}/notifications"
    async with box(sim, broker, journal, websocket=True) as (link, _):
        link.hints.max_attempts = 1000  # keep retrying until the test lifts the fault
        sim.mute_notifications(True)  # these orders reach the box only by the relay
        stuck = sim.create_order("delivery")
        other = sim.create_order("collection")
        elsewhere = sim.create_order("collection", selling_point_id=3962)
        sim.mute_notifications(False)
        sim.fail_order_get(int(stuck["id"]))
        await publish(broker, topic, [accepted(sim, stuck)])
        await eventually(
            lambda: order_gets(sim, int(stuck["id"])) >= 2, what="the GET retried", within=20.0
        )
        # Not applied while Sinqro does not answer (a reconcile may still bring it: that is
        # Sinqro's word too).
        assert link.hints.applied == 0 and link.hints.pending == 1
        # Another order's hint and a websocket frame go through meanwhile.
        await publish(broker, topic, [accepted(sim, other)])
        await eventually(
            lambda: link.hints.applied == 1, what="the other order's hint", within=20.0
        )
        assert await journal.get_order(int(other["id"])) is not None
        by_websocket = sim.create_order("delivery")
        await eventually(lambda: journal.get_order(int(by_websocket["id"])), what="the frame")
        assert link.hints.pending == 1
        # An order of another selling point of the same user: Sinqro knows it, not ours.
        await publish(broker, topic, [notification(sim, elsewhere)])
        await eventually(
            lambda: link.hints.rejected[hints.OTHER_SELLING_POINT] == 1,
            what="the other selling point",
            within=20.0,
        )
        assert await journal.get_order(int(elsewhere["id"])) is None
        # Sinqro answers again: the waiting hint is applied.
        sim.fail_order_get(int(stuck["id"]), on=False)
        await eventually(lambda: link.hints.applied == 2, what="the retried hint", within=20.0)
        stored = await journal.get_order(int(stuck["id"]))
        assert stored is not None and stored.status == "waiting_sp_validation"
        assert link.hints.rejected[hints.UNVERIFIED] == 0


async def test_a_final_status_sinqro_contradicts_on_a_get_is_corrected(
    sim: Simulator, journal: Journal
) -> None:
    order = sim.create_order("delivery")
    order_id = int(order["id"])
    # The box holds it as cancelled (what a forged notification did before hints were
    # checked); Sinqro still has it waiting.
    wrong = json.loads(json.dumps(order))
    wrong["status"] = {"code": "cancelled_by_client", "name": "x", "isFinalStatus": True}
    await journal.upsert_order(parse_order(wrong))
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    config = make_sinqro_config(sim)
    api = SinqroApi(config.base_url, config.server_token, sim.user_token, timeout=2.0)
    link = NotificationLink(
        config,
        api,
        desk,
        journal,
        state,
        lambda: Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id),
    )
    task = asyncio.create_task(link.run())

    async def waiting() -> bool:
        stored = await journal.get_order(order_id)
        return stored is not None and stored.status == "waiting_sp_validation"

    try:
        await eventually(waiting, within=20, what="the order waiting again")
        # Corrected on Sinqro's answer to a direct GET, not on the active-orders list.
        await eventually(
            lambda: link.reconciler.verified_reports >= 1, what="the verify counted", within=20.0
        )
        assert link.reconciler.stale_reports >= 1
        assert order_gets(sim, order_id) >= 1
        assert state.get("waiting_orders") == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.aclose()
    events = [e for e in await journal.read_events(0) if e.order_id == order_id]
    assert [e.kind for e in events] == [ev.ORDER_NEW, ev.ORDER_STATUS]
    reopened = events[1].data
    assert reopened["reopened"] is True and reopened["final"] is False
    assert (reopened["previous"], reopened["status"]) == (
        "cancelled_by_client",
        "waiting_sp_validation",
    )


async def test_a_late_websocket_frame_never_reopens_a_final_order_by_itself(
    sim: Simulator, journal: Journal
) -> None:
    order = sim.create_order("collection")
    order_id = int(order["id"])
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    config = make_sinqro_config(sim, poll_interval=3600, status_refresh_interval=3600)
    api = SinqroApi(config.base_url, config.server_token, sim.user_token, timeout=2.0)
    link = NotificationLink(
        config,
        api,
        desk,
        journal,
        state,
        lambda: Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id),
    )
    task = asyncio.create_task(link.run())
    try:
        await eventually(lambda: link.websocket_up, what="the websocket", within=20.0)

        async def final() -> bool:
            stored = await journal.get_order(order_id)
            return stored is not None and stored.status == "cancelled_by_client"

        await eventually(lambda: journal.get_order(order_id), what="the order")
        sim.set_status(order_id, "cancelled_by_client")
        await eventually(final, what="the cancellation")
        # The old "waiting" frame again, late: checked with a GET, and Sinqro says cancelled.
        gets = order_gets(sim, order_id)
        stale = link.reconciler.stale_reports
        verified = link.reconciler.verified_reports
        assert sim.send_raw(notification(sim, order)) == 1
        await eventually(
            lambda: link.reconciler.verified_reports > verified, what="Sinqro's answer", within=20.0
        )
        assert link.reconciler.stale_reports > stale
        assert order_gets(sim, order_id) > gets
        assert await final()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.aclose()
    events = [e for e in await journal.read_events(0) if e.order_id == order_id]
    assert [e.kind for e in events] == [ev.ORDER_NEW, ev.ORDER_STATUS]
    assert events[1].data["status"] == "cancelled_by_client"
