"""Decisions reach Sinqro once: OrderDesk → outbox → OutboxSender → the simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import eventually

from edged.flow.desk import OrderDesk
from edged.flow.outbox import OutboxSender, pick_action
from edged.flow.pairing import Pairing
from edged.flow.refusals import CommandRefused
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import parse_order
from edged.state import BoxState


@dataclass
class Flow:
    sim: Simulator
    journal: Journal
    desk: OrderDesk
    sender: OutboxSender
    api: SinqroApi
    state: BoxState

    async def new_order(self, order_type: str = "delivery") -> int:
        """An order created in the cloud and stored by the box, as the link would."""
        raw = self.sim.create_orders(1, order_type)[0]
        await self.desk.ingest(parse_order(raw), "test")
        return int(raw["id"])

    def posts(self, order_id: int, kind: str = "action") -> list[dict[str, Any]]:
        return [
            p for p in self.sim.posted_actions() if p["orderId"] == order_id and p["kind"] == kind
        ]


@contextlib.asynccontextmanager
async def running_flow(
    sim: Simulator,
    path: Path,
    config: OrdersConfig | None = None,
    *,
    timeout: float = 2.0,
    api_class: type[SinqroApi] = SinqroApi,
) -> AsyncIterator[Flow]:
    config = config or OrdersConfig(retry_max=0.2)
    journal = await Journal.open(path)
    state = BoxState()
    api = api_class(sim.base_url, sim.server_token, sim.user_token, timeout=timeout, retries=1)
    pairing = Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id)
    desk = OrderDesk(journal, state, config)
    sender = OutboxSender(journal, api, state, config, lambda: pairing, settle=timeout)
    task = asyncio.create_task(sender.run(), name="sender")
    try:
        yield Flow(sim, journal, desk, sender, api, state)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.aclose()
        await journal.close()


@pytest.fixture
async def flow(sim: Simulator, tmp_path: Path) -> AsyncIterator[Flow]:
    async with running_flow(sim, tmp_path / "j.sqlite3") as f:
        yield f


async def test_accept_reaches_sinqro_once_with_the_accept_token(flow: Flow) -> None:
    order_id = await flow.new_order()
    command = await flow.desk.accept(order_id, source="test")
    outcome = await flow.desk.wait(command.id, timeout=10)
    assert outcome.state == "done", outcome
    posts = flow.posts(order_id)
    assert len(posts) == 1
    assert posts[0]["actionType"] == "ACCEPT" and posts[0]["result"] == "ok"
    assert flow.sim.order(order_id)["status"]["code"] == "accepted"
    stored = await flow.journal.get_order(order_id)
    assert stored is not None and stored.status == "accepted"
    kinds = [e.kind for e in await flow.journal.read_events(0) if e.order_id == order_id]
    assert kinds == [ev.ORDER_NEW, ev.COMMAND_QUEUED, ev.ORDER_STATUS, ev.COMMAND_DONE]


async def test_accept_with_a_delay_uses_the_matching_delayed_action(flow: Flow) -> None:
    order_id = await flow.new_order("collection")
    command = await flow.desk.accept(order_id, 20, source="test")
    assert (await flow.desk.wait(command.id, timeout=10)).state == "done"
    (post,) = flow.posts(order_id)
    assert post["actionType"] == "ACCEPT" and post["delayMinutes"] == 20


async def test_any_delay_is_asked_of_sinqro_with_the_delay_minutes_query(flow: Flow) -> None:
    # Doc 003: GET /orders/{id}/actions?delayMinutes=N returns the options for that delay.
    order_id = await flow.new_order()
    command = await flow.desk.accept(order_id, 7, source="test")
    assert (await flow.desk.wait(command.id, timeout=10)).state == "done"
    (post,) = flow.posts(order_id)
    assert post["delayMinutes"] == 7


async def test_cancel_needs_a_comment_and_sends_it(flow: Flow) -> None:
    order_id = await flow.new_order()
    with pytest.raises(CommandRefused) as info:
        await flow.desk.cancel(order_id, "   ", source="test")
    assert info.value.code == "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"
    command = await flow.desk.cancel(order_id, "Sin repartidor, lo sentimos", source="test")
    assert (await flow.desk.wait(command.id, timeout=10)).state == "done"
    (post,) = flow.posts(order_id)
    assert post["actionType"] == "CANCEL"
    assert post["comment"] == "Sin repartidor, lo sentimos"
    stored = await flow.journal.get_order(order_id)
    assert stored is not None and stored.is_final


async def test_status_changes_go_by_status_code(flow: Flow) -> None:
    order_id = await flow.new_order("collection")
    accept = await flow.desk.accept(order_id, source="test")
    assert (await flow.desk.wait(accept.id, timeout=10)).state == "done"
    for status in ("preparation", "ready"):
        command = await flow.desk.set_status(order_id, status, source="test")
        assert (await flow.desk.wait(command.id, timeout=10)).state == "done"
    assert [p["requested"] for p in flow.posts(order_id, "status")] == ["preparation", "ready"]
    with pytest.raises(CommandRefused):
        await flow.desk.set_status(order_id, "cancelled_by_sp", source="test")


async def test_a_decision_taken_offline_waits_and_is_delivered_once(flow: Flow) -> None:
    order_id = await flow.new_order()
    flow.sim.refuse_all("close")
    command = await flow.desk.accept(order_id, source="test")
    outcome = await flow.desk.wait(command.id, timeout=1.0)
    assert outcome.state == "queued"
    assert flow.state.get("queued_commands") == 1
    assert flow.posts(order_id) == []
    flow.sim.refuse_all(None)
    flow.sender.kick()
    assert (await flow.desk.wait(command.id, timeout=15)).state == "done"
    assert len(flow.posts(order_id)) == 1
    assert flow.state.get("queued_commands") == 0


async def test_a_post_whose_answer_is_lost_is_checked_not_resent(
    sim: Simulator, tmp_path: Path
) -> None:
    # Sinqro applies the accept but its answer comes after the box gave up: the box cannot
    # know whether it landed. The retry must read the order and find it accepted.
    class SlowAnswers(SinqroApi):
        async def post_action(
            self, order_id: int, token: str, *, cancellation_comment: str | None = None
        ) -> Any:
            sim.set_late_answers(1.0)  # applied at once, answered after the box gave up
            try:
                return await super().post_action(
                    order_id, token, cancellation_comment=cancellation_comment
                )
            finally:
                sim.set_late_answers(0)

    async with running_flow(
        sim, tmp_path / "j.sqlite3", timeout=0.5, api_class=SlowAnswers
    ) as flow:
        order_id = await flow.new_order()
        command = await flow.desk.accept(order_id, source="test")
        assert (await flow.desk.wait(command.id, timeout=15)).state == "done"
        assert len(flow.posts(order_id)) == 1
        assert flow.sim.order(order_id)["status"]["code"] == "accepted"
        final = await flow.journal.get_command(command.id)
        assert final is not None and final.attempts == 1


async def test_a_send_that_went_out_is_read_back_before_it_goes_again(
    sim: Simulator, tmp_path: Path
) -> None:
    # Sinqro applied the accept, then the box tripped over its own bug before recording
    # anything: the journal shows no attempt, but this process knows it sent the command.
    class TripsOnce(SinqroApi):
        tripped = False

        async def post_action(
            self, order_id: int, token: str, *, cancellation_comment: str | None = None
        ) -> Any:
            answer = await super().post_action(
                order_id, token, cancellation_comment=cancellation_comment
            )
            if not TripsOnce.tripped:
                TripsOnce.tripped = True
                raise RuntimeError("lost on the way back")
            return answer

    async with running_flow(sim, tmp_path / "j.sqlite3", api_class=TripsOnce) as flow:
        order_id = await flow.new_order()
        command = await flow.desk.accept(order_id, source="test")
        assert (await flow.desk.wait(command.id, timeout=15)).state == "done"
        assert TripsOnce.tripped
        assert len(flow.posts(order_id)) == 1
        assert flow.sim.order(order_id)["status"]["code"] == "accepted"


async def test_after_a_crash_mid_send_the_sender_reads_the_order_first(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite3"
    # The previous process queued the accept and posted it, then died before recording
    # the answer: nothing in the journal says it was sent (no commit before a send).
    journal = await Journal.open(path)
    raw = sim.create_orders(1, "delivery")[0]
    order_id = int(raw["id"])
    await journal.upsert_order(parse_order(raw))
    command, _ = await journal.enqueue_command(order_id, "accept", {"delay": None}, source="t")
    async with SinqroApi(sim.base_url, sim.server_token, sim.user_token) as api:
        accept = pick_action(await api.order_actions(order_id), "ACCEPT", None)
        assert accept is not None
        await api.post_action(order_id, accept.token)
    await journal.close()

    async with running_flow(sim, path) as flow:
        assert (await flow.desk.wait(command.id, timeout=15)).state == "done"
        assert len(flow.posts(order_id)) == 1


async def test_a_second_accept_queued_while_waiting_is_closed_without_a_post(
    flow: Flow,
) -> None:
    # Two accepts queued for one waiting order (a journal from before the desk refused
    # second decisions): once the first is done, Sinqro's ACCEPT action means "next
    # step"; the second must not send it.
    order_id = await flow.new_order("collection")
    flow.sim.refuse_all("close")
    first = await flow.desk.accept(order_id, source="panel")
    second, _ = await flow.journal.enqueue_command(
        order_id, "accept", {"delay": None}, source="mqtt"
    )
    flow.sim.refuse_all(None)
    flow.sender.kick()
    assert (await flow.desk.wait(first.id, timeout=15)).state == "done"
    assert (await flow.desk.wait(second.id, timeout=15)).state == "done"
    (post,) = flow.posts(order_id)
    assert post["actionType"] == "ACCEPT" and post["result"] == "ok"
    assert flow.sim.order(order_id)["status"]["code"] == "accepted"


async def test_a_second_decision_on_a_queued_order_is_refused_at_its_source(flow: Flow) -> None:
    # Offline, Accept then Accept +15 (or Cancel): the second is refused at once with its
    # code, never queued to be dropped later; a retry with the same key is not a second one.
    order_id = await flow.new_order("delivery")
    flow.sim.refuse_all("close")
    first = await flow.desk.accept(order_id, source="web", key="tap-1")
    for second in (
        flow.desk.accept(order_id, 15, source="web"),
        flow.desk.cancel(order_id, "no rider", source="mqtt"),
    ):
        with pytest.raises(CommandRefused) as refused:
            await second
        assert refused.value.code == "DECISION_QUEUED"
    again = await flow.desk.accept(order_id, source="web", key="tap-1")
    assert again.id == first.id
    assert [c.id for c in await flow.journal.pending_commands()] == [first.id]
    flow.sim.refuse_all(None)
    flow.sender.kick()
    assert (await flow.desk.wait(first.id, timeout=15)).state == "done"


async def test_an_order_cancelled_by_the_client_meanwhile_fails_the_accept(flow: Flow) -> None:
    order_id = await flow.new_order()
    flow.sim.refuse_all("close")
    command = await flow.desk.accept(order_id, source="test")
    assert (await flow.desk.wait(command.id, timeout=0.5)).state == "queued"
    flow.sim.refuse_all(None)
    flow.sim.set_status(order_id, "cancelled_by_client")
    flow.sender.kick()
    outcome = await flow.desk.wait(command.id, timeout=15)
    assert outcome.state == "failed"
    assert flow.posts(order_id, "action") == [] or all(
        p["result"] != "ok" for p in flow.posts(order_id)
    )


async def test_auto_accept_accepts_each_new_order_once(sim: Simulator, tmp_path: Path) -> None:
    config = OrdersConfig(auto_accept=True, auto_accept_delay=10, retry_max=0.2)
    async with running_flow(sim, tmp_path / "j.sqlite3", config) as flow:
        raw = sim.create_orders(1, "delivery")[0]
        order = parse_order(raw)
        await flow.desk.ingest(order, "websocket")
        await flow.desk.ingest(order, "poll")
        await eventually(
            lambda: sim.order(order.id)["status"]["code"] == "accepted", within=10, what="accept"
        )
        await asyncio.sleep(0.3)
        (post,) = flow.posts(order.id)
        assert post["delayMinutes"] == 10


async def test_unknown_and_decided_orders_are_refused_locally(flow: Flow) -> None:
    with pytest.raises(CommandRefused) as info:
        await flow.desk.accept(999_999, source="test")
    assert info.value.code == "UNKNOWN_ORDER"
    order_id = await flow.new_order()
    command = await flow.desk.accept(order_id, source="test")
    assert (await flow.desk.wait(command.id, timeout=10)).state == "done"
    with pytest.raises(CommandRefused) as info:
        await flow.desk.accept(order_id, source="test")
    assert info.value.code == "NOT_WAITING"
