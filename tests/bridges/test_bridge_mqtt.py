"""MQTT bridge against a real Mosquitto, with a real MQTT client playing the POS terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge_helpers import SMALL_CATALOG, event_count, make_desk, make_order, outbox
from broker import MosquittoBroker
from fuzzing import hostile
from hypothesis import given
from hypothesis import strategies as st
from mqtt_listener import Pos
from waiting import eventually

from edged.bridges.mqtt import CURSOR, MqttBridge, topic_id
from edged.bridges.settings import MqttConfig
from edged.flow.desk import OrderDesk
from edged.journal.store import Journal
from edged.state import BoxState

BASE = "edged/box1"


def terminal(
    broker: MosquittoBroker, topics: tuple[str, ...] = (f"{BASE}/#",), **options: Any
) -> Pos:
    """The test MQTT client as this box's POS terminal on ``broker``."""
    return Pos(broker.host, broker.port, topics, base=BASE, **options)


def config(broker: MosquittoBroker, **overrides: Any) -> MqttConfig:
    cfg = MqttConfig(
        enabled=True,
        url=broker.url,
        reconnect_min=0.05,
        reconnect_max=0.3,
        publish_timeout=5.0,
        max_command_bytes=4096,
        max_catalog_bytes=65536,
    )
    return replace(cfg, **overrides)


@contextlib.asynccontextmanager
async def running(
    cfg: MqttConfig, journal: Journal, desk: OrderDesk, state: BoxState
) -> AsyncIterator[MqttBridge]:
    bridge = MqttBridge(cfg, journal, desk, state, box_id="box1")
    task = asyncio.create_task(bridge.run(), name="test-mqtt-bridge")
    try:
        await eventually(
            lambda: state.get("bridge.mqtt") == "online" or task.done(),
            what="bridge online",
            within=20.0,
        )
        assert not task.done(), task
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_events_arrive_in_order_with_the_order_summary(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    async with terminal(broker) as pos, running(config(broker), journal, desk, state):
        await eventually(
            lambda: [m.payload for m in pos.on(f"{BASE}/status")] == [b"online"],
            what="online",
            within=20.0,
        )
        for i in range(1, 6):
            await desk.ingest(make_order(i), "test")
        await desk.ingest(make_order(3, "accepted"), "test")
        await eventually(lambda: len(pos.events()) >= 6, what="six events", within=20.0)
        events = pos.events()
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) and len(set(ids)) == 6
        assert [e["order_id"] for e in events if e["kind"] == "order.new"] == [1, 2, 3, 4, 5]
        first = events[0]
        assert first["order"]["code"] == "C1" and first["order"]["lines"]
        assert "payload" not in first
        status = events[-1]
        assert status["kind"] == "order.status" and status["data"]["status"] == "accepted"
        assert pos.on(f"{BASE}/events/order.status")
        # The cursor follows the acknowledged publishes.
        cursor = await journal.get_cursor(CURSOR)
        assert cursor is not None and cursor <= journal.last_seq


async def test_broker_outage_loses_nothing(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    pos_ctx = terminal(broker, (f"{BASE}/events/#",), client_id="pos-durable", persistent=True)
    async with pos_ctx as pos, running(config(broker), journal, desk, state) as bridge:
        for i in range(1, 6):
            await desk.ingest(make_order(i), "test")
        await eventually(
            lambda: len(pos.events("order.new")) >= 5, what="the first five orders", within=20.0
        )
        broker.stop()
        await eventually(
            lambda: state.get("bridge.mqtt") == "offline", what="the bridge to notice", within=20.0
        )
        for i in range(6, 11):
            await desk.ingest(make_order(i), "test")
        broker.start()
        for i in range(11, 16):
            await desk.ingest(make_order(i), "test")
        await eventually(
            lambda: {e["order_id"] for e in pos.events("order.new")} >= set(range(1, 16)),
            what="all fifteen orders",
            within=40,
        )
        assert bridge.reconnects >= 1
        # At-least-once: duplicates may come, but first sightings are in journal order.
        seen: list[int] = []
        for event in pos.events():
            if event["id"] not in seen:
                seen.append(event["id"])
        assert seen == sorted(seen)
        await eventually(
            lambda: bridge.saved_cursor == journal.last_seq,
            what="the cursor to catch up",
            within=20.0,
        )
        assert await journal.get_cursor(CURSOR) == journal.last_seq


async def test_commands_apply_once_mqtt5_correlation(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(7), "test")
    async with (
        terminal(broker, ("pos/replies/#", f"{BASE}/events/#")) as pos,
        running(config(broker), journal, desk, state),
    ):
        for _ in range(2):
            await pos.send(
                "accept",
                {"id": "acc-7", "order_id": 7, "delay": 10},
                response_topic="pos/replies/1",
                correlation=b"corr-xyz",
            )
        await eventually(
            lambda: len(pos.on("pos/replies/1")) >= 2, what="two responses", within=20.0
        )
        first, second = pos.on("pos/replies/1")[:2]
        assert first.correlation == b"corr-xyz" and second.correlation == b"corr-xyz"
        assert first.json() == second.json()
        assert first.json()["status"] == "queued" and first.json()["id"] == "acc-7"
        rows = await outbox(journal)
        assert len(rows) == 1 and rows[0].kind == "accept" and rows[0].source == "mqtt"
        # Sinqro's answer lands: the final response goes to the same place, same correlation.
        await journal.finish_command(rows[0], ok=True, order=make_order(7, "accepted"))
        await eventually(
            lambda: len(pos.on("pos/replies/1")) >= 3, what="the final response", within=20.0
        )
        final = pos.on("pos/replies/1")[2]
        assert final.correlation == b"corr-xyz"
        assert final.json()["status"] == "ok" and final.json()["order_status"] == "accepted"
        await eventually(
            lambda: pos.events("command.done") != [], what="the command.done event", within=20.0
        )


async def test_commands_plain_form_for_mqtt311(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(8), "test")
    async with (
        terminal(broker, (f"{BASE}/response/#",), v5=False) as pos,
        running(config(broker), journal, desk, state),
    ):
        body = {"id": "cx-8", "order_id": 8, "comment": "Out of dough"}
        await pos.send("cancel", body)
        await pos.send("cancel", body)
        await eventually(
            lambda: len(pos.on(f"{BASE}/response/cx-8")) >= 2,
            what="two plain responses",
            within=20.0,
        )
        a, b = pos.on(f"{BASE}/response/cx-8")[:2]
        assert a.json() == b.json()
        assert a.json()["id"] == "cx-8" and a.json()["status"] == "queued"
        rows = await outbox(journal)
        assert len(rows) == 1 and rows[0].params == {"comment": "Out of dough"}
        await journal.finish_command(
            rows[0], ok=False, error_code="ORDER_NOT_FOUND", error="no such order"
        )
        await eventually(
            lambda: len(pos.on(f"{BASE}/response/cx-8")) >= 3,
            what="the final response",
            within=20.0,
        )
        final = pos.on(f"{BASE}/response/cx-8")[2].json()
        assert final["status"] == "error" and final["code"] == "ORDER_NOT_FOUND"


async def test_hostile_commands_get_errors_and_change_nothing(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(9), "test")
    async with (
        terminal(broker, (f"{BASE}/response/#", f"{BASE}/errors", "pos/r")) as pos,
        running(config(broker), journal, desk, state),
    ):
        before = await event_count(journal)
        await pos.send("accept", b"\x00\xffnot json at all")
        await pos.send("accept", {"id": "big", "order_id": 9, "pad": "x" * 10_000})
        await pos.send("accept", {"id": "typ", "order_id": "nine"})
        await pos.send("accept", {"id": "arr", "order_id": [9]})
        await pos.send("self_destruct", {"id": "unk"})
        await pos.send("accept", b"{}", response_topic="pos/r", correlation=b"c-1")
        await pos.send("accept", {"id": "spoof", "order_id": 9}, response_topic=f"{BASE}/status")
        await eventually(lambda: len(pos.messages) >= 7, what="seven error responses", within=20.0)
        codes = {m.topic: m.json()["code"] for m in pos.messages if m.json()["status"] == "error"}
        assert codes[f"{BASE}/errors"] == "BAD_JSON"
        assert codes[f"{BASE}/response/big"] == "TOO_LARGE"
        assert codes[f"{BASE}/response/typ"] == "BAD_FIELD"
        assert codes[f"{BASE}/response/arr"] == "BAD_FIELD"
        assert codes[f"{BASE}/response/unk"] == "UNKNOWN_COMMAND"
        # MQTT 5 without an id in the body: the correlation data names the request.
        (corr,) = pos.on("pos/r")
        assert corr.correlation == b"c-1" and corr.json()["id"] == "c-1"
        assert corr.json()["code"] == "BAD_FIELD"
        # A ResponseTopic inside our own tree is not obeyed: answered on the plain topic.
        (spoof,) = pos.on(f"{BASE}/response/spoof")
        assert spoof.json()["status"] == "queued"
        rows = await outbox(journal)
        assert len(rows) == 1 and rows[0].key == "mqtt:spoof"
        assert await event_count(journal) == before + 1  # only the spoof's command.queued


async def test_retained_commands_are_ignored(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(10), "test")
    async with terminal(broker, (f"{BASE}/response/#",), v5=False, client_id="pos-old") as pos:
        await pos.send("accept", {"id": "ret-1", "order_id": 10}, retain=True)
        for version in ("3.1.1", "5"):
            async with running(config(broker, protocol=version), journal, desk, state):
                await pos.send("ping", {"id": f"ping-{version}"})
                await eventually(
                    lambda v=version: bool(pos.on(f"{BASE}/response/ping-{v}")),
                    what="pong",
                    within=20.0,
                )
        assert pos.on(f"{BASE}/response/ret-1") == []
        assert await outbox(journal) == []


async def test_reprint_and_acknowledge(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(11), "test")
    async with (
        terminal(broker, (f"{BASE}/#",)) as pos,
        running(config(broker), journal, desk, state),
    ):
        await pos.send("reprint", {"id": "rp-1", "order_id": 11})
        await pos.send("reprint", {"id": "rp-1", "order_id": 11})
        await pos.send("acknowledge", {"id": "ack-1", "order_id": 11})
        await eventually(
            lambda: bool(pos.on(f"{BASE}/response/ack-1")),
            what="the acknowledge response",
            within=20.0,
        )
        assert [m.json()["status"] for m in pos.on(f"{BASE}/response/rp-1")] == ["ok", "ok"]
        assert pos.on(f"{BASE}/response/ack-1")[0].json()["acknowledged"] == [11]
        kinds = [e.kind for e in await journal.read_events(0)]
        assert kinds.count("print.requested") == 1
        await eventually(
            lambda: bool(pos.events("order.acknowledged")), what="order.acknowledged", within=20.0
        )


async def test_catalog_push_reports_back(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    async with (
        terminal(broker, (f"{BASE}/response/#",)) as pos,
        running(config(broker), journal, desk, state),
    ):
        await pos.send("catalog", {"id": "cat-1", "catalog": SMALL_CATALOG})
        await eventually(lambda: bool(pos.on(f"{BASE}/response/cat-1")), what="queued", within=20.0)
        queued = pos.on(f"{BASE}/response/cat-1")[0].json()
        assert queued["status"] == "queued" and queued["catalog"]["products"] == 2
        (row,) = await outbox(journal)
        assert row.kind == "catalog" and row.params["catalog"] == SMALL_CATALOG
        await journal.finish_command(row, ok=True)
        await eventually(
            lambda: len(pos.on(f"{BASE}/response/cat-1")) >= 2,
            what="the final response",
            within=20.0,
        )
        assert pos.on(f"{BASE}/response/cat-1")[1].json()["status"] == "ok"
        # A bigger-than-command but within catalog limit push is accepted; a broken one is not.
        broken = json.loads(json.dumps(SMALL_CATALOG))
        broken["menus"][0]["menuSections"][0]["products"][0]["name"] = ""
        await pos.send("catalog", {"id": "cat-2", "catalog": broken})
        await eventually(
            lambda: bool(pos.on(f"{BASE}/response/cat-2")), what="the refusal", within=20.0
        )
        refusal = pos.on(f"{BASE}/response/cat-2")[0].json()
        assert refusal["code"] == "BAD_CATALOG" and "products[0].name" in refusal["message"]
        assert len(await outbox(journal)) == 1


async def test_offline_on_clean_stop(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    async with running(config(broker), journal, desk, state):
        pass
    assert state.get("bridge.mqtt") == "offline"
    # A terminal arriving later reads the retained status.
    async with terminal(broker, (f"{BASE}/status",), client_id="late") as pos:
        await eventually(
            lambda: bool(pos.on(f"{BASE}/status")), what="the retained status", within=20.0
        )
        (status,) = pos.on(f"{BASE}/status")
        assert status.payload == b"offline" and status.retain


async def test_last_will_when_the_process_dies(
    broker: MosquittoBroker, journal: Journal, tmp_path: Path
) -> None:
    child = Path(__file__).parents[1] / "support" / "mqtt_bridge_child.py"
    async with terminal(broker, (f"{BASE}/status",)) as pos:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(child), str(broker.port), str(tmp_path / "child.sqlite3")
        )
        try:
            await eventually(
                lambda: [m.payload for m in pos.on(f"{BASE}/status")][-1:] == [b"online"],
                what="the child bridge online",
                within=30,
            )
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
            await eventually(
                lambda: [m.payload for m in pos.on(f"{BASE}/status")][-1:] == [b"offline"],
                what="the last will",
                within=20.0,
            )
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# -- floods and names ---------------------------------------------------------------------------


async def test_a_burst_of_5000_commands_gets_5000_answers(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(101), "test")
    cfg = config(broker, max_pending_commands=8)
    async with terminal(broker, (f"{BASE}/response/#",)) as pos, running(cfg, journal, desk, state):
        assert pos.client is not None
        ids = [f"b-{n}" for n in range(5000)]
        kinds = ["ping", "acknowledge", "reprint"]
        # All at once: paho queues them, the broker passes them on as fast as it can.
        await asyncio.gather(
            *(
                pos.client.publish(
                    f"{BASE}/cmd/{kinds[n % 3]}",
                    json.dumps(
                        {"id": rid} if kinds[n % 3] == "ping" else {"id": rid, "order_id": 101}
                    ).encode(),
                    qos=1,
                )
                for n, rid in enumerate(ids)
            )
        )

        def answered() -> dict[str, dict[str, Any]]:
            return {m.json()["id"]: m.json() for m in pos.messages}

        await eventually(
            lambda: len(answered()) == len(ids), what="an answer to every command", within=120
        )
    answers = answered()
    assert set(answers) == set(ids)
    statuses = {(a["status"], a.get("code", "")) for a in answers.values()}
    # Taken, refused with BUSY (nothing changed), or a reprint over its cap: never silence.
    assert statuses <= {("ok", ""), ("error", "BUSY"), ("error", "REPRINT_LIMIT")}, statuses
    printed = await journal.transaction(
        lambda tx: tx.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'print.requested'"
        ).fetchone()[0]
    )
    reprints_taken = sum(
        1
        for n, rid in enumerate(ids)
        if kinds[n % 3] == "reprint" and answers[rid]["status"] == "ok"
    )
    assert printed == reprints_taken


def test_topic_ids_keep_plain_names_and_never_merge_two_names() -> None:
    assert topic_id("shop-1") == "shop-1" and topic_id("box1") == "box1"
    assert topic_id("Pizza Roma").startswith("pizza-roma_")
    assert topic_id("Пицца Рома") != topic_id("寿司屋")
    for name in ("Пицца Рома", "寿司屋", "a/b", "#", "+", "x" * 200, "", " "):
        level = topic_id(name)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", level), level


@given(names=st.lists(st.text(max_size=20), min_size=2, max_size=2, unique=True))
@hostile(3000)
def test_two_different_names_never_share_a_topic(names: list[str]) -> None:
    first, second = names
    assert topic_id(first) != topic_id(second)
    for level in (topic_id(first), topic_id(second)):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", level), level


async def test_two_boxes_with_non_latin_names_get_their_own_topics(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    first = MqttBridge(config(broker), journal, desk, state, box_id="Пицца Рома")
    second = MqttBridge(config(broker), journal, desk, state, box_id="寿司屋")
    assert first.base != second.base
    assert first._client().identifier != second._client().identifier
