"""The notification link against the real simulator, with a real SQLite journal."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import make_sinqro_config
from waiting import eventually

from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.simulator.generate import notification_example
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.settings import SinqroConfig
from edged.state import BoxState


@dataclass
class Harness:
    sim: Simulator
    config: SinqroConfig
    journal: Journal
    state: BoxState
    desk: OrderDesk
    api: SinqroApi
    link: NotificationLink
    pairing: Pairing
    online_calls: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.link.run(), name="test-link")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def events(self, kind: str, order_id: int) -> list[ev.Event]:
        return [
            e
            for e in await self.journal.read_events(0, limit=10_000)
            if e.kind == kind and e.order_id == order_id
        ]

    async def status_of(self, order_id: int) -> str | None:
        stored = await self.journal.get_order(order_id)
        return stored.status if stored else None

    async def wait_link(self, value: str) -> None:
        await eventually(lambda: self.state.get("link") == value, what=f"link={value}")


@pytest.fixture
async def make_link(sim: Simulator, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Harness] = []

    async def factory(*, start: bool = True, paired: bool = True, **overrides: Any) -> Harness:
        config = make_sinqro_config(sim, **overrides)
        journal = await Journal.open(tmp_path / f"j{len(made)}.sqlite3")
        state = BoxState()
        desk = OrderDesk(journal, state, OrdersConfig())
        api = SinqroApi(config.base_url, config.server_token, timeout=config.request_timeout)
        pairing = Pairing(sim.user_token, sim.selling_point_id) if paired else Pairing()
        harness: Harness

        def current() -> Pairing:
            return harness.pairing

        link = NotificationLink(
            config,
            api,
            desk,
            journal,
            state,
            current,
            on_online=lambda: harness.online_calls.append(1),
        )
        harness = Harness(sim, config, journal, state, desk, api, link, pairing)
        made.append(harness)
        if start:
            harness.start()
        return harness

    yield factory
    for harness in made:
        await harness.stop()
        await harness.api.aclose()
        await harness.journal.close()


async def test_new_order_by_websocket_reaches_the_journal(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link(poll_interval=60, status_refresh_interval=60)
    await h.wait_link("online")
    await eventually(lambda: h.link.reconciler.reconciles >= 2, what="start-up reconciles")
    order = sim.create_order("delivery")
    await eventually(lambda: h.status_of(order["id"]), what="order stored")
    new = await h.events(ev.ORDER_NEW, order["id"])
    assert len(new) == 1
    assert new[0].data["type"] == "delivery"
    assert new[0].data["code"] == order["marketOrderCode"]
    assert h.link.frames == 1
    # Intervals are 60 s: only the websocket can have brought it.
    assert h.link.reconciler.polls == 0
    assert h.link.reconciler.refreshes == 0
    stored = await h.journal.get_order(order["id"])
    assert stored is not None
    assert stored.payload["orderLines"] == order["orderLines"]
    assert h.online_calls


async def test_same_order_by_websocket_and_reconcile_is_one_order(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link()
    await h.wait_link("online")
    order = sim.create_order("collection")
    await eventually(lambda: h.status_of(order["id"]), what="order stored")
    # Reconnects, polls and refreshes all see it again; the drop is a cut, not a close.
    await sim.drop_websockets(abrupt=True)
    await eventually(lambda: h.link.reconnects >= 1, what="reconnect")
    await h.wait_link("online")
    syncs = h.link.reconciler
    before = syncs.refreshes + syncs.polls + syncs.reconciles
    await eventually(
        lambda: syncs.refreshes + syncs.polls + syncs.reconciles >= before + 2,
        what="more syncs",
    )
    assert len(await h.events(ev.ORDER_NEW, order["id"])) == 1
    assert await h.events(ev.ORDER_STATUS, order["id"]) == []
    assert h.state.get("link.reconnects") == h.link.reconnects


async def test_order_created_while_disconnected_is_found_after_reconnect(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link(poll_interval=60)
    await h.wait_link("online")
    sim.refuse_all("503")
    await sim.drop_websockets()
    await h.wait_link("offline")
    assert sim.connected() == 0
    order = sim.create_order("reservation")  # no one hears the notification
    sim.clear_faults()
    await h.wait_link("online")
    await eventually(lambda: h.status_of(order["id"]), what="order reconciled")
    assert len(await h.events(ev.ORDER_NEW, order["id"])) == 1
    assert h.link.reconnects >= 1


async def test_status_change_arrives_as_order_status_event(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link(poll_interval=60, status_refresh_interval=60)
    await h.wait_link("online")
    order = sim.create_order("delivery")
    await eventually(lambda: h.status_of(order["id"]), what="order stored")
    sim.set_status(order["id"], "cancelled_by_client", "Me he equivocado de dirección")
    await eventually(lambda: h.events(ev.ORDER_STATUS, order["id"]), what="order.status event")
    (event,) = await h.events(ev.ORDER_STATUS, order["id"])
    assert event.data["status"] == "cancelled_by_client"
    assert event.data["previous"] == "waiting_sp_validation"
    assert event.data["final"] is True
    stored = await h.journal.get_order(order["id"])
    assert stored is not None and stored.is_final


async def test_bad_frames_are_counted_and_ignored(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link()
    await h.wait_link("online")
    wrong_types = notification_example()
    wrong_types["data"]["id"] = "not-a-number"
    wrong_types["sellingPointId"] = sim.selling_point_id
    unknown = notification_example()
    unknown["event"] = "order_eaten"
    sim.send_raw('{"event": "new_order", "data": ')  # truncated JSON
    sim.send_raw("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[")
    sim.send_raw(json.dumps(unknown))
    sim.send_raw(json.dumps(wrong_types))
    sim.send_raw(json.dumps({"event": "new_order", "data": None, "sellingPointId": []}))
    await eventually(lambda: h.link.bad_frames == 5, what="5 bad frames")
    assert h.state.get("link") == "online"
    assert h.link.reconnects == 0
    # Another selling point's order is not ours.
    foreign = sim.create_order("inside", selling_point_id=3962)
    envelope = notification_example()
    envelope["data"] = foreign
    envelope["sellingPointId"] = 3962
    sim.send_raw(json.dumps(envelope))
    await eventually(lambda: h.link.ignored_frames == 1, what="foreign frame ignored")
    # An oversize frame costs one reconnect, nothing more.
    sim.send_raw(json.dumps({"event": "new_order", "pad": "x" * (80 * 1024)}))
    await eventually(lambda: h.link.bad_frames == 6, what="oversize frame counted")
    await eventually(lambda: h.link.reconnects == 1, what="reconnect after oversize")
    await h.wait_link("online")
    order = sim.create_order("collection")
    await eventually(lambda: h.status_of(order["id"]), what="next order still arrives")
    assert await h.journal.get_order(foreign["id"]) is None


async def test_revoked_token_means_unauthorized_without_hot_loop(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link(reconnect_max=30)
    await h.wait_link("online")
    await sim.revoke_token()
    await h.wait_link("unauthorized")
    assert "pair" in h.state.get("link.detail")
    seen = len(sim.requests)
    await asyncio.sleep(1.0)
    # Waiting reconnect_max (30 s) between tries: at most a straggler request.
    assert len(sim.requests) - seen <= 1
    assert h.state.get("link") == "unauthorized"
    # A new pairing is tried at once.
    sim.restore_token()
    h.link.reconnect_now()
    await h.wait_link("online")


async def test_polling_takes_over_while_websocket_is_refused(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    sim.refuse_websockets()
    h: Harness = await make_link()
    await h.wait_link("polling")
    assert "503" in h.state.get("link.detail")
    order = sim.create_order("insitu")
    await eventually(lambda: h.status_of(order["id"]), what="order found by polling")
    assert h.link.reconciler.polls >= 1
    assert h.link.frames == 0
    assert h.online_calls
    sim.set_status(order["id"], "cancelled_by_team")
    await eventually(
        lambda: h.events(ev.ORDER_STATUS, order["id"]), what="final status by GET of vanished"
    )
    sim.refuse_websockets(False)
    await h.wait_link("online")


async def test_refresh_learns_status_while_websocket_is_silent(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link()
    await h.wait_link("online")
    order = sim.create_order("collection")
    await eventually(lambda: h.status_of(order["id"]), what="order stored")
    sim.mute_notifications()
    sim.set_status(order["id"], "finished")
    await eventually(
        lambda: h.events(ev.ORDER_STATUS, order["id"]), what="status refreshed by REST"
    )
    assert await h.status_of(order["id"]) == "finished"
    assert h.link.reconciler.refreshes >= 1
    assert h.state.get("link") == "online"


async def test_half_open_websocket_is_detected(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link(ping_interval=0.2, ping_timeout=0.2)
    await h.wait_link("online")
    sim.stall_websockets()
    await eventually(lambda: h.link.reconnects >= 1, what="reconnect after missed pongs")
    sim.stall_websockets(False)
    await h.wait_link("online")
    order = sim.create_order("delivery")
    await eventually(lambda: h.status_of(order["id"]), what="order after recovery")


async def test_not_paired_waits_for_pairing(sim: Simulator, make_link: Callable[..., Any]) -> None:
    h: Harness = await make_link(paired=False)
    await h.wait_link("not_paired")
    assert sim.connected() == 0
    assert sim.requests == []
    h.pairing = Pairing(sim.user_token, sim.selling_point_id)
    h.link.reconnect_now()
    await h.wait_link("online")
    assert h.api.user_token == sim.user_token


async def test_re_pairing_moves_to_the_new_selling_point(
    sim: Simulator, make_link: Callable[..., Any]
) -> None:
    h: Harness = await make_link()
    await h.wait_link("online")
    token = sim.login_token("demo", "demo")
    h.pairing = Pairing(token, 3962)
    h.link.reconnect_now()
    await eventually(lambda: sim.connected(3962) == 1, what="websocket for 3962")
    await eventually(lambda: sim.connected(sim.selling_point_id) == 0, what="old one closed")
    order = sim.create_order("collection", selling_point_id=3962)
    await eventually(lambda: h.status_of(order["id"]), what="order of the new selling point")
