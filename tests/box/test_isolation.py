"""One failing order never holds back the others: the composition root in this process
against the simulator with per-order faults. Waits are bounded waits for a condition."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import app_config
from ports import free_port
from test_faults import running_app
from waiting import eventually

import edged
from edged.app import App
from edged.flow.outbox import pick_action
from edged.journal import events as ev
from edged.simulator.server import Simulator
from edged.sinqro.models import Order, OrderAction, parse_order

GENEROUS = 30.0


def posts(sim: Simulator, order_id: int) -> list[dict[str, Any]]:
    return [p for p in sim.posted_actions() if p["orderId"] == order_id]


async def stored_status(app: App, order_id: int) -> str | None:
    stored = await app.journal.get_order(order_id)
    return stored.status if stored else None


async def stored_orders(app: App, *ids: int) -> bool:
    return all([await app.journal.get_order(i) is not None for i in ids])


def config(tmp_path: Path, sim: Simulator, **sinqro: Any) -> Path:
    path = app_config(
        tmp_path,
        sim,
        panel={"enabled": True, "pin_factory": "mock"},
        orders={"retry_max": 1.0},
    )
    if sinqro:
        text = path.read_text(encoding="utf-8")
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in sinqro.items())
        path.write_text(text.replace("[sinqro]\n", "[sinqro]\n" + extra, 1), encoding="utf-8")
    return path


async def test_one_failing_order_does_not_hold_back_another(tmp_path: Path, sim: Simulator) -> None:
    async with running_app(config(tmp_path, sim)) as app:
        x = sim.create_order("collection")["id"]
        y = sim.create_order("collection")["id"]
        await eventually(lambda: stored_orders(app, x, y), within=GENEROUS, what="X, Y stored")
        sim.fail_order(x)
        accept_x = await app.desk.accept(x, source="test")
        accept_y = await app.desk.accept(y, source="test")
        outcome = await app.desk.wait(accept_y.id, timeout=GENEROUS)
        assert outcome.state == "done", outcome
        assert sim.order(y)["status"]["code"] == "accepted"
        # X is still waiting for its own retry, with the reason shown.
        command_x = await app.journal.get_command(accept_x.id)
        assert command_x is not None and command_x.state in ("queued", "sending")
        await eventually(lambda: x in app.sender.retrying(), what="X retrying")
        retrying = app.state.get("outbox.retrying")
        assert "503" in retrying[str(x)], retrying
        assert posts(sim, x) == []

        sim.fail_order(x, on=False)
        outcome = await app.desk.wait(accept_x.id, timeout=GENEROUS)
        assert outcome.state == "done", outcome
        (post,) = posts(sim, x)
        assert post["actionType"] == "ACCEPT" and post["result"] == "ok"
        await eventually(lambda: str(x) not in app.state.get("outbox.retrying"), what="cleared")


async def test_a_cancellation_is_learned_while_another_orders_get_fails(
    tmp_path: Path, sim: Simulator
) -> None:
    async with running_app(config(tmp_path, sim)) as app:
        x = sim.create_order("collection")["id"]
        y = sim.create_order("collection")["id"]
        await eventually(lambda: stored_orders(app, x, y), within=GENEROUS, what="X, Y stored")
        # The websocket is down: only the refresh can learn what happens now.
        sim.refuse_websockets(True)
        await sim.drop_websockets()
        await eventually(lambda: app.state.get("link") == "polling", what="polling")
        sim.fail_order_get(x)
        # X leaves the active list too, so the refresh must GET it (and fails).
        sim.set_status(x, "cancelled_by_team")
        sim.set_status(y, "cancelled_by_client", "changed my mind")
        await eventually(
            lambda: _is(app, y, "cancelled_by_client"), within=GENEROUS, what="Y cancelled"
        )
        await eventually(lambda: app.link.reconciler.unread_orders >= 1, what="X counted unread")
        assert await stored_status(app, x) == "waiting_sp_validation"
        sim.fail_order_get(x, on=False)
        await eventually(
            lambda: _is(app, x, "cancelled_by_team"), within=GENEROUS, what="X refreshed"
        )
        await eventually(lambda: app.link.reconciler.unread_orders == 0, what="nothing unread")


async def test_an_order_that_trips_a_bug_does_not_stop_the_sync(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing X from a refresh raises something nobody expected (a bug for one payload).
    The refresh still learns Y's cancellation, and the link keeps going."""
    async with running_app(config(tmp_path, sim)) as app:
        x = sim.create_order("collection")["id"]
        y = sim.create_order("collection")["id"]
        await eventually(lambda: stored_orders(app, x, y), within=GENEROUS, what="X, Y stored")
        sim.refuse_websockets(True)
        await sim.drop_websockets()
        await eventually(lambda: app.state.get("link") == "polling", what="polling")
        real_ingest = app.desk.ingest

        async def ingest(order: Order, source: str, **kwargs: Any) -> Any:
            if order.id == x:
                raise RuntimeError("a bug that only this order's payload reaches")
            return await real_ingest(order, source, **kwargs)

        monkeypatch.setattr(app.desk, "ingest", ingest)
        sim.set_status(x, "cancelled_by_team")
        sim.set_status(y, "cancelled_by_client", "changed my mind")
        await eventually(
            lambda: _is(app, y, "cancelled_by_client"), within=GENEROUS, what="Y cancelled"
        )
        await eventually(lambda: app.link.reconciler.unread_orders >= 1, what="X counted unread")
        assert app.state.get("link") == "polling"


async def _is(app: App, order_id: int, status: str) -> bool:
    return await stored_status(app, order_id) == status


async def test_an_order_unknown_to_sinqro_stops_ringing_and_is_closed(
    tmp_path: Path, sim: Simulator
) -> None:
    async with running_app(config(tmp_path, sim, gone_after=0.5)) as app:
        # An order the journal holds open but this cloud never heard of (a journal kept
        # across a cloud reset, as `make demo` run twice used to show).
        raw = copy.deepcopy(sim.create_order("collection"))
        real_id = raw["id"]
        await eventually(lambda: stored_orders(app, real_id), within=GENEROUS, what="stored")
        ghost_id = real_id + 1000
        raw["id"] = ghost_id
        await app.desk.ingest(parse_order(raw), "test")
        await eventually(lambda: app.state.get("panel.buzzer") != "quiet", what="ringing")
        await eventually(lambda: _is(app, ghost_id, "gone"), within=GENEROUS, what="closed")
        events = [
            e
            for e in await app.journal.read_events(0, limit=10_000)
            if e.order_id == ghost_id and e.kind == ev.ORDER_STATUS
        ]
        assert [e.data["status"] for e in events] == ["gone"]
        assert events[0].data["final"] is True
        assert app.link.reconciler.gone_orders == 1
        await eventually(lambda: app.state.get("waiting_orders") == 1, what="one waiting left")
        # The real order still waits; the ghost no longer rings for itself.
        real = await app.journal.waiting_orders()
        assert [o.id for o in real] == [real_id]


async def test_an_order_of_another_selling_point_is_closed_after_re_pairing(
    tmp_path: Path, sim: Simulator
) -> None:
    async with running_app(config(tmp_path, sim)) as app:
        other = sim.cloud.users["demo"].selling_points[1]
        raw = sim.create_order("collection", selling_point_id=other)
        # Stored while the box served that selling point.
        await app.desk.ingest(parse_order(raw), "test")
        app.link.reconnect_now()
        await eventually(lambda: _is(app, raw["id"], "gone"), within=GENEROUS, what="closed")
        stored = await app.journal.get_order(raw["id"])
        assert stored is not None and stored.is_final


async def test_delayed_accept_against_a_cloud_answering_delay_minutes_null(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.null_action_delays(True)
    async with running_app(config(tmp_path, sim)) as app:
        order_id = sim.create_order("collection")["id"]
        await eventually(lambda: stored_orders(app, order_id), within=GENEROUS, what="stored")
        command = await app.desk.accept(order_id, 10, source="test")
        outcome = await app.desk.wait(command.id, timeout=GENEROUS)
        assert outcome.state == "done", outcome
        (post,) = posts(sim, order_id)
        assert post["actionType"] == "ACCEPT" and post["delayMinutes"] == 10
        assert sim.order(order_id)["status"]["code"] == "accepted"


def test_pick_action_rule_for_delayed_accepts() -> None:
    def action(kind: str, delay: float | None, token: str) -> OrderAction:
        return OrderAction(
            token=token,
            action_type=kind,
            call_to_action=kind,
            color="",
            delay_minutes=delay,
            execution_time="",
            raw={},
        )

    exact = [action("ACCEPT", None, "plain"), action("ACCEPT", 10, "ten")]
    assert (chosen := pick_action(exact, "ACCEPT", 10)) and chosen.token == "ten"
    undated = [action("ACCEPT", None, "asked-for-ten"), action("CANCEL", None, "c")]
    assert (chosen := pick_action(undated, "ACCEPT", 10)) and chosen.token == "asked-for-ten"
    # Several undated ACCEPTs, or only other delays: no guess (the status route is used).
    two = [action("ACCEPT", None, "a"), action("ACCEPT", None, "b")]
    assert pick_action(two, "ACCEPT", 10) is None
    assert pick_action([action("ACCEPT", 20, "twenty")], "ACCEPT", 10) is None


async def test_a_stale_frame_does_not_move_an_accepted_order_back(
    tmp_path: Path, sim: Simulator
) -> None:
    async with running_app(config(tmp_path, sim)) as app:
        raw = sim.create_order("collection")
        order_id = raw["id"]
        await eventually(lambda: stored_orders(app, order_id), within=GENEROUS, what="stored")
        command = await app.desk.accept(order_id, source="test")
        assert (await app.desk.wait(command.id, timeout=GENEROUS)).state == "done"
        before = await app.journal.get_order(order_id)
        assert before is not None and before.status == "accepted"
        # A late copy of the new-order frame, with other lines.
        stale = copy.deepcopy(raw)
        stale["orderLines"] = [{"label": "STALE LINE", "quantity": 9}]
        frame = {"event": "new_order", "data": stale, "sellingPointId": sim.selling_point_id}
        sim.send_raw(json.dumps(frame))
        await eventually(lambda: app.link.reconciler.stale_reports >= 1, what="stale frame seen")
        # Checked with a direct GET: Sinqro says accepted, so accepted it stays.
        await eventually(lambda: _get_count(sim, order_id) >= 1, what="GET /orders/{id}")
        after = await app.journal.get_order(order_id)
        assert after is not None and after.status == "accepted"
        assert "STALE LINE" not in json.dumps(after.payload)
        statuses = [
            e.data["status"]
            for e in await app.journal.read_events(0, limit=10_000)
            if e.order_id == order_id and e.kind == ev.ORDER_STATUS
        ]
        assert statuses == ["accepted"]


def _get_count(sim: Simulator, order_id: int) -> int:
    path = f"/orders/{order_id}"
    return sum(1 for r in sim.requests if r["method"] == "GET" and r["path"].endswith(path))


async def test_metrics_parse_with_a_prometheus_parser_and_hold_the_link_counters(
    tmp_path: Path, sim: Simulator
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    path = app_config(
        tmp_path, sim, web={"host": "127.0.0.1", "port": port, "metrics_public": True}
    )
    async with running_app(path) as app:
        order_id = sim.create_order("collection")["id"]
        await eventually(lambda: stored_orders(app, order_id), within=GENEROUS, what="stored")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        frames = families["edged_link_frames"]
        assert frames.type == "counter"
        assert frames.samples[0].value >= 1  # the new order's frame
        for name in ("edged_link_reconciles", "edged_link_bad_frames", "edged_link_polls"):
            assert families[name].type == "counter"
        # A histogram, so a fleet's decision times add up (a summary's cannot).
        decision = families["edged_web_decision_seconds"]
        assert decision.type == "histogram"
        buckets = [s for s in decision.samples if s.name.endswith("_bucket")]
        assert [s.labels["le"] for s in buckets][-1] == "+Inf"
        assert {s.name for s in decision.samples} == {
            "edged_web_decision_seconds_bucket",
            "edged_web_decision_seconds_sum",
            "edged_web_decision_seconds_count",
        }
        (info,) = families["edged_build_info"].samples
        assert info.value == 1 and info.labels["version"] == edged.__version__
        assert info.labels["python"] == platform.python_version() and info.labels["commit"]
        # The standard process family, read from /proc: this process is the daemon.
        rss = families["process_resident_memory_bytes"].samples[0].value
        assert 10 * 2**20 < rss < 2**32
        started = families["process_start_time_seconds"].samples[0].value
        assert abs(started - start_time_from_proc()) < 5
        assert families["process_cpu_seconds"].type == "counter"
        assert families["process_open_fds"].samples[0].value > 3
        # Prometheus' own checker, as a scrape would see it.
        checked = await asyncio.to_thread(
            subprocess.run,
            ["promtool", "check", "metrics"],
            input=response.text,
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def start_time_from_proc() -> float:
    """This process's start time from /proc, computed apart from the code under test."""
    ticks = os.sysconf("SC_CLK_TCK")
    boot = float(Path("/proc/stat").read_text().split("btime ")[1].split()[0])
    stat = Path("/proc/self/stat").read_text()
    return boot + int(stat[stat.rindex(")") + 2 :].split()[19]) / ticks
