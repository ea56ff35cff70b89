"""The fleet path tells, Sinqro decides: what comes through ``edged relay`` or the fleet
broker is a hint the box checks with ``GET /orders/{id}`` before it stores anything.

``edged run`` as a process against the simulator in its own process, a real Mosquitto and
``edged relay``; the box takes its notifications from the relay only and polls an hour
apart, so what it does after the start-up reconcile follows from the hints alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from broker import MosquittoBroker
from harness import DaemonProcess, SimulatorProcess, write_config
from ports import free_port
from test_relay import RelayProcess
from waiting import eventually

BOX = "10000000babe0002"
FORGED_ID = 990001


@pytest.fixture
async def relay(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[RelayProcess]:
    process = RelayProcess(tmp_path, broker)
    process.start()
    try:
        async with httpx.AsyncClient() as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"{process.root}/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, within=30, what="the relay")
        yield process
    finally:
        process.stop()


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def status_of(journal: Path, order_id: int) -> str | None:
    found = rows(journal, "SELECT status FROM orders WHERE id = ?", (order_id,))
    return str(found[0][0]) if found else None


def rejected(metrics: str, reason: str) -> int:
    match = re.search(rf'^edged_hints_rejected_total{{reason="{reason}"}} (\d+)', metrics, re.M)
    assert match is not None, f"no edged_hints_rejected_total{{reason={reason!r}}}"
    return int(match.group(1))


def with_status(order: dict[str, Any], code: str, final: bool) -> dict[str, Any]:
    forged = json.loads(json.dumps(order))
    forged["status"] = {"code": code, "name": code, "isFinalStatus": final}
    return forged


async def test_forged_hints_change_nothing_and_genuine_ones_apply_after_a_get(
    tmp_path: Path, cloud: SimulatorProcess, broker: MosquittoBroker, relay: RelayProcess
) -> None:
    info = cloud.info()
    sp = int(info["sellingPointId"])
    tickets = tmp_path / "tickets"
    web_port = free_port()
    config = write_config(
        tmp_path,
        info,
        sinqro={"poll_interval": 3600.0, "status_refresh_interval": 3600.0},
        box={"name": "test-box", "state_dir": str(tmp_path / "state"), "id": BOX},
        fleet={
            "enabled": True,
            "url": broker.url,
            "reconnect_min": 0.1,
            "sinqro_notifications": "instead",
        },
        printers=[{"name": "counter", "uri": f"virtual://{tickets}"}],
        web={"host": "127.0.0.1", "port": web_port, "metrics_public": True},
    )
    journal = tmp_path / "state" / "edged.sqlite3"
    box_web = f"http://127.0.0.1:{web_port}"

    def printed(order_id: int) -> list[str]:
        return sorted(p.name for p in tickets.glob(f"*-{order_id}-*.txt"))

    def gets(order_id: int, seen: list[dict[str, str]]) -> int:
        return sum(1 for r in seen if r["method"] == "GET" and r["path"].endswith(f"/{order_id}"))

    async with httpx.AsyncClient(timeout=10) as http:

        async def count(reason: str) -> int:
            return rejected((await http.get(f"{box_web}/metrics")).text, reason)

        async def requests() -> list[dict[str, str]]:
            answer: list[dict[str, str]] = (await http.get(f"{cloud.root}/_sim/requests")).json()
            return answer

        async def webhook(body: dict[str, Any]) -> None:
            answer = await http.post(relay.url(), json=body)
            assert answer.status_code == 200, answer.text

        with DaemonProcess(config) as daemon:
            await asyncio.to_thread(daemon.start)
            await eventually(
                lambda: "relay: subscribed to" in daemon.log_path.read_text(),
                what="the subscription",
                within=30,
            )

            async def reconciled() -> bool:
                return any(r["path"].endswith("/orders/active") for r in await requests())

            await eventually(reconciled, within=30, what="the start-up reconcile")

            # A genuine new order: stored (from Sinqro's answer) and printed.
            created = await http.post(f"{cloud.root}/_sim/orders", json={"type": "delivery"})
            order = created.json()[0]
            order_id = int(order["id"])
            await webhook({"event": "new_order", "sellingPointId": sp, "data": order})
            await eventually(
                lambda: status_of(journal, order_id) is not None, what="the order", within=30
            )
            assert status_of(journal, order_id) == "waiting_sp_validation"
            await eventually(lambda: printed(order_id), what="its ticket", within=30)

            # A forged cancellation through the relay (the URL secret is all it takes).
            cancelled = with_status(order, "cancelled_by_client", True)
            forged = {"event": "order_status_changed", "sellingPointId": sp, "data": cancelled}
            await webhook(forged)
            await eventually(
                lambda: count_is(count, "contradicted", 1), within=30, what="the forgery counted"
            )
            # The same through the broker, by any client that can publish there.
            topic = f"edged/sellingPoints/{sp}/notifications"
            async with aiomqtt.Client(broker.host, broker.port, identifier="intruder") as intruder:
                await intruder.publish(topic, json.dumps(forged), qos=1)
            await eventually(
                lambda: count_is(count, "contradicted", 2), within=30, what="the second forgery"
            )
            assert status_of(journal, order_id) == "waiting_sp_validation"
            # A new order id Sinqro never made: nothing stored, nothing printed.
            invented = dict(order, id=FORGED_ID)
            await webhook({"event": "new_order", "sellingPointId": sp, "data": invented})
            await eventually(
                lambda: count_is(count, "unknown_order", 1), within=30, what="the unknown id"
            )
            assert status_of(journal, FORGED_ID) is None
            assert gets(FORGED_ID, await requests()) == 1

            # The order really changes at Sinqro: the hint is applied after the GET.
            sim_change = await http.post(
                f"{cloud.root}/_sim/orders/{order_id}/status", json={"code": "cancelled_by_client"}
            )
            assert sim_change.status_code == 200, sim_change.text
            genuine = with_status(order, "cancelled_by_client", True)
            asked = gets(order_id, await requests())
            await webhook({"event": "order_status_changed", "sellingPointId": sp, "data": genuine})
            await eventually(
                lambda: status_of(journal, order_id) == "cancelled_by_client",
                what="the change",
                within=30,
            )
            assert gets(order_id, await requests()) == asked + 1  # applied after the GET
            # Its cancellation slip prints now, and only now: the forgeries printed nothing.
            await eventually(
                lambda: len(printed(order_id)) == 2, what="the cancellation slip", within=30
            )
            assert printed(FORGED_ID) == []
            assert await count("contradicted") == 2
            health = (await http.get(f"{box_web}/health")).json()
            assert health["hints_rejected"]["contradicted"] == 2
            assert health["hints_rejected"]["unknown_order"] == 1
            log_text = daemon.log_path.read_text()
            assert f"hint about order {FORGED_ID} rejected (unknown_order)" in log_text
            assert daemon.stop() == 0
    kinds = [
        kind
        for (kind,) in rows(journal, "SELECT kind FROM events WHERE order_id = ?", (order_id,))
        if kind.startswith("order.")
    ]
    assert kinds == ["order.new", "order.status"]


async def count_is(count: Any, reason: str, value: int) -> bool:
    return bool(await count(reason) == value)
