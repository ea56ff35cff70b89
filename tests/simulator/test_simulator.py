"""The simulator itself, over real sockets: auth, state machine, tokens, errors, websocket,
generated orders, admin endpoints and the separate-process mode."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ports import free_port
from waiting import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edged.simulator.server import Simulator
from edged.sinqro.models import FINAL_STATUSES, ORDER_TYPES, parse_notification, parse_order

UNAUTHORIZED_BODY = {
    "errors": [{"code": "UNAUTHORIZED", "message": "Unauthorized request"}],
    "code": "UNAUTHORIZED",
    "message": "Unauthorized request",
    "httpResponseCode": "401",
}


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {
        "x-api-server-access-token": sim.server_token,
        "x-api-user-access-token": sim.user_token,
    }
    async with httpx.AsyncClient(base_url=sim.base_url + "/", headers=headers) as client:
        yield client


def ws_url(sim: Simulator, sp: int | None = None) -> str:
    return f"{sim.websocket_url}?sellingPointId={sp or sim.selling_point_id}"


def auth_headers(sim: Simulator) -> dict[str, str]:
    return {
        "x-api-server-access-token": sim.server_token,
        "x-api-user-access-token": sim.user_token,
    }


async def test_both_headers_are_required(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url + "/") as client:
        cases = [
            {},
            {"x-api-server-access-token": sim.server_token},
            {"x-api-user-access-token": sim.user_token},
            {"x-api-server-access-token": "nope", "x-api-user-access-token": sim.user_token},
        ]
        for headers in cases:
            answer = await client.get("sellingPoints", headers=headers)
            assert answer.status_code == 401
            assert answer.json() == UNAUTHORIZED_BODY
        answer = await client.post("auth/login", json={"username": "demo", "password": "demo"})
        assert answer.status_code == 401  # login needs the server token too
        good = await client.post(
            "auth/login",
            data={"username": "demo", "password": "demo"},
            headers={"x-api-server-access-token": sim.server_token},
        )
        assert good.status_code == 200
        assert good.json()["token"]


async def test_delivery_runs_the_whole_status_machine(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    order = sim.create_order("delivery")
    # The restaurant's own rider: delivering and delivered are allowed.
    sim.cloud.orders[order["id"]]["deliveries"][0]["isSelfDelivery"] = True
    path = f"sellingPoints/{sim.selling_point_id}/orders/{order['id']}/status"
    steps = ["accepted", "preparation", "ready", "delivering", "delivered", "finished"]
    for code in steps:
        answer = await http.post(path, json={"orderStatusTypeCode": code})
        assert answer.status_code == 200, answer.text
        status = answer.json()["status"]
        assert status["code"] == code
        assert status["isFinalStatus"] is (code == "finished")
        assert status["globalStatusCode"] == ("finished" if code == "finished" else "processing")
    late = await http.post(path, json={"orderStatusTypeCode": "ready"})
    assert late.status_code == 400
    assert late.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"
    assert late.json()["httpResponseCode"] == "400"


async def test_status_rules(sim: Simulator, http: httpx.AsyncClient) -> None:
    sp = sim.selling_point_id
    collection = sim.create_order("collection")
    path = f"sellingPoints/{sp}/orders/{collection['id']}/status"
    # Accept first; no skipping the decision.
    answer = await http.post(path, json={"orderStatusTypeCode": "ready"})
    assert answer.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"
    answer = await http.post(path, json={"orderStatusTypeCode": "rejected"})
    assert answer.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"
    assert (await http.post(path, json={"orderStatusTypeCode": "accepted"})).status_code == 200
    answer = await http.post(path, json={"orderStatusTypeCode": "delivered"})
    assert answer.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"  # not a delivery
    assert (await http.post(path, json={"orderStatusTypeCode": "ready"})).status_code == 200
    answer = await http.post(path, json={"orderStatusTypeCode": "preparation"})
    assert answer.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"  # never backwards
    answer = await http.post(path, json={"orderStatusTypeCode": "cancelled_by_sp"})
    assert answer.json()["code"] == "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"
    answer = await http.post(
        path,
        json={"orderStatusTypeCode": "cancelled_by_sp", "cancellationReason": "Horno roto"},
    )
    body = answer.json()
    assert body["status"]["code"] == "cancelled_by_sp"
    assert body["status"]["globalStatusCode"] == "cancelled"
    assert body["isCancellable"] is False
    reservation = sim.create_order("reservation")
    path = f"sellingPoints/{sp}/orders/{reservation['id']}/status"
    answer = await http.post(path, json={"orderStatusTypeCode": "accepted", "delayMinutes": 10})
    assert answer.json()["status"]["code"] == "reservation_accepted"
    answer = await http.post(path, json={"orderStatusTypeCode": "preparation"})
    assert answer.json()["code"] == "ORDER_STATUS_NOT_ALLOWED"
    answer = await http.post(path, json={"orderStatusTypeCode": "finished"})
    assert answer.json()["status"]["isFinalStatus"] is True


async def test_action_tokens_are_per_order_and_per_status(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    first = sim.create_order("collection")
    second = sim.create_order("collection")
    actions = (await http.get(f"orders/{first['id']}/actions")).json()
    assert [a["actionType"] for a in actions] == ["ACCEPT"] * 4 + ["CANCEL"]
    assert [a["delayMinutes"] for a in actions] == [None, 10, 20, 30, None]
    assert all(a["orderType"] == "collection" for a in actions)
    again = (await http.get(f"orders/{first['id']}/actions")).json()
    assert [a["token"] for a in again] == [a["token"] for a in actions]  # stable while valid
    other = (await http.get(f"orders/{second['id']}/actions")).json()
    assert not {a["token"] for a in other} & {a["token"] for a in actions}
    # A token of the first order does nothing to the second.
    answer = await http.post(f"orders/{second['id']}/actions", data={"token": actions[0]["token"]})
    assert answer.status_code == 400
    assert answer.json()["code"] == "ORDER_ACTION_TOKEN_INVALID"
    answer = await http.post(f"orders/{first['id']}/actions", data={"token": actions[2]["token"]})
    assert answer.status_code == 200
    assert answer.json()["status"]["code"] == "accepted"
    assert answer.json()["delayMinutes"] == 20
    # Spent: the order moved on.
    answer = await http.post(f"orders/{first['id']}/actions", data={"token": actions[0]["token"]})
    assert answer.json()["code"] == "ORDER_ACTION_TOKEN_INVALID"
    # Accepted orders offer the next step and a cancel.
    step = (await http.get(f"orders/{first['id']}/actions")).json()
    assert [(a["actionType"], a["callToAction"]) for a in step] == [
        ("ACCEPT", "En preparación"),
        ("CANCEL", "Cancelar"),
    ]
    cancel = step[1]["token"]
    answer = await http.post(f"orders/{first['id']}/actions", data={"token": cancel})
    assert answer.json()["code"] == "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"
    answer = await http.post(
        f"orders/{first['id']}/actions",
        data={"token": cancel, "cancellationComment": "Nos quedamos sin ñoquis"},
    )
    assert answer.json()["status"]["code"] == "cancelled_by_sp"
    assert answer.json()["cancellationComment"] == "Nos quedamos sin ñoquis"
    assert (await http.get(f"orders/{first['id']}/actions")).json() == []
    results = [(p["orderId"], p["result"]) for p in sim.posted_actions()]
    assert results == [
        (second["id"], "ORDER_ACTION_TOKEN_INVALID"),
        (first["id"], "ok"),
        (first["id"], "ORDER_ACTION_TOKEN_INVALID"),
        (first["id"], "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"),
        (first["id"], "ok"),
    ]


async def test_delayed_actions_on_request(sim: Simulator, http: httpx.AsyncClient) -> None:
    order = sim.create_order("delivery")
    actions = (await http.get(f"orders/{order['id']}/actions?delayMinutes=45")).json()
    assert [(a["actionType"], a["delayMinutes"]) for a in actions] == [
        ("ACCEPT", 45),
        ("CANCEL", None),
    ]
    assert actions[0]["executionTime"] > order["executionTime"]
    assert actions[0]["transportType"] == "Motocicleta"


async def test_not_found_errors(sim: Simulator, http: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "orders/1"),
        ("GET", "orders/1/actions"),
        ("POST", "orders/1/actions"),
    ):
        answer = await http.request(method, path, data={"token": "x"} if method == "POST" else None)
        assert answer.status_code == 404
        assert answer.json() == {
            "errors": [{"code": "ORDER_NOT_FOUND", "message": "Order not found"}],
            "code": "ORDER_NOT_FOUND",
            "message": "Order not found",
            "httpResponseCode": "404",
        }
    # The solo user's selling point and orders are not demo's.
    solo = sim.create_order("collection", selling_point_id=3963)
    answer = await http.get("sellingPoints/3963/orders/active")
    assert answer.json()["code"] == "SELLING_POINT_NOT_FOUND"
    assert (await http.get(f"orders/{solo['id']}")).json()["code"] == "ORDER_NOT_FOUND"


async def test_generated_orders_look_real(sim: Simulator) -> None:
    orders = [sim.create_order(t) for t in ORDER_TYPES for _ in range(4)]
    assert len({o["id"] for o in orders}) == len(orders)
    text = json.dumps(orders, ensure_ascii=False)
    assert any(ch in text for ch in "ñáéíóúüç")
    assert "€" in text
    for raw in orders:
        order = parse_order(raw)
        assert order.selling_point_id == sim.selling_point_id
        assert order.status == "waiting_sp_validation" and not order.is_final
        assert raw["createdAt"].endswith("+0000")
        lines = raw["orderLines"]
        if raw["type"] == "reservation":
            assert lines == [] and raw["totalAmount"] == 0
        else:
            assert any(line["type"] == "PRODUCT" for line in lines)
            assert raw["totalAmount"] == pytest.approx(sum(x["totalAmount"] for x in lines))
            assert raw["payments"][0]["amount"] == raw["totalAmount"]
        if raw["type"] in ("reservation", "insitu", "inside"):
            assert raw["dinersNumber"] >= 1
        if raw["type"] == "delivery":
            assert raw["deliveryAddress"]["street"]
            assert any(line["type"] == "DELIVERY" for line in lines)
        if raw["type"] == "inside":
            assert raw["serviceLocation"]["name"].startswith("Mesa ")


async def test_websocket_pushes_envelopes_to_its_selling_point(sim: Simulator) -> None:
    async with (
        connect(ws_url(sim), additional_headers=auth_headers(sim)) as ws,
        connect(ws_url(sim, 3962), additional_headers=auth_headers(sim)) as other,
    ):
        await eventually(lambda: sim.connected() == 2, what="two clients")
        order = sim.create_order("collection")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert set(frame) == {"event", "data", "config", "sellingPointId"}
        assert frame["event"] == "new_order"
        assert frame["sellingPointId"] == sim.selling_point_id
        assert frame["data"] == order
        sim.set_status(order["id"], "cancelled_by_client")
        note = parse_notification(await asyncio.wait_for(ws.recv(), 5), max_bytes=1 << 20)
        assert note.event == "order_status_changed"
        assert note.order.status == "cancelled_by_client"
        assert note.order.is_final and note.order.status in FINAL_STATUSES
        # The 3962 client heard nothing of 3961's orders.
        mine = sim.create_order("inside", selling_point_id=3962)
        assert json.loads(await asyncio.wait_for(other.recv(), 5))["data"]["id"] == mine["id"]


async def test_websocket_upgrade_checks(sim: Simulator) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(sim)):
            pass
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body or b"{}") == UNAUTHORIZED_BODY
    with pytest.raises(InvalidStatus) as info:
        async with connect(sim.websocket_url, additional_headers=auth_headers(sim)):
            pass
    assert info.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(sim, 3963), additional_headers=auth_headers(sim)):
            pass
    assert info.value.response.status_code == 404
    sim.refuse_websockets()
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(sim), additional_headers=auth_headers(sim)):
            pass
    assert info.value.response.status_code == 503


async def test_menu_collection_raw(sim: Simulator, http: httpx.AsyncClient) -> None:
    path = f"sellingPoints/{sim.selling_point_id}/menus/collectionRaw"
    body: dict[str, Any] = {
        "autoSelection": True,
        "menus": [
            {
                "name": "Our menu",
                "type": "menu",
                "menuSections": [
                    {
                        "name": "Maldito Tacos",
                        "products": [
                            {
                                "name": "MEADLE EAST GREEN",
                                "price": {"amount": 10, "vatValue": 10},
                                "productOptionsCategories": [
                                    {
                                        "name": "Extras",
                                        "minSelection": 0,
                                        "maxSelection": 100,
                                        "productOptions": [
                                            {"name": "EXTRA PAN", "price": {"amount": 1}},
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    answer = await http.patch(path, json=body)
    assert answer.status_code == 201
    assert answer.json()["products"] == 1
    assert sim.menus()[0]["body"] == body
    body["menus"][0]["menuSections"][0]["products"][0]["productOptionsCategories"][0][
        "minSelection"
    ] = 200
    answer = await http.patch(path, json=body)
    assert answer.json()["code"] == "CATEGORY_MIN_OPTIONS_CANNOT_BE_GREATER_THAN_MAX_OPTIONS"
    answer = await http.patch(path, json={"menus": "no"})
    assert answer.json()["code"] == "UNDEFINED_SECTIONS_AND_PRODUCTS"
    assert len(sim.menus()) == 1


async def test_admin_endpoints(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.admin_url + "/") as admin:
        created = (await admin.post("orders", json={"type": "inside", "count": 2})).json()
        assert [o["type"] for o in created] == ["inside", "inside"]
        order_id = created[0]["id"]
        changed = await admin.post(f"orders/{order_id}/status", json={"code": "cancelled_by_team"})
        assert changed.json()["status"]["code"] == "cancelled_by_team"
        listed = (await admin.get("orders")).json()
        assert {o["id"] for o in listed} == {o["id"] for o in created}
        assert (await admin.post("faults", json={"failCount": 1, "failStatus": 502})).json()[
            "failCount"
        ] == 1
        async with httpx.AsyncClient(base_url=sim.base_url + "/") as api:
            answer = await api.get("sellingPoints", headers=auth_headers(sim))
            assert answer.status_code == 502
            answer = await api.get("sellingPoints", headers=auth_headers(sim))
            assert answer.status_code == 200
            await admin.post("tokens/revoke", json={})
            answer = await api.get("sellingPoints", headers=auth_headers(sim))
            assert answer.status_code == 401
            await admin.post("tokens/restore", json={})
            await admin.post("faults", json={"refuseAll": "503"})
            answer = await api.get("sellingPoints", headers=auth_headers(sim))
            assert answer.status_code == 503
            await admin.delete("faults")
            answer = await api.get("sellingPoints", headers=auth_headers(sim))
            assert answer.status_code == 200
        requests = (await admin.get("requests")).json()
        assert [r["path"].rsplit("/", 1)[-1] for r in requests] == ["sellingPoints"] * 5
        assert (await admin.get("actions")).json() == []
        state = (await admin.get("state")).json()
        assert state["orders"] == 2 and state["websockets"] == 0


async def test_generator_creates_orders(sim: Simulator) -> None:
    sim.start_generator(0.05)
    await eventually(lambda: len(sim.orders()) >= 3, what="generated orders")
    sim.stop_generator()
    assert {o["sellingPoint"]["id"] for o in sim.orders()} == {sim.selling_point_id}


async def _start_process(port: int, state: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "edged.simulator", "--port", str(port), "--state", str(state)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/_sim/state")
            return True
        except httpx.HTTPError:
            return False

    await eventually(up, within=8.0, interval=0.05, what="simulator process")
    return proc


async def test_separate_process_with_state_file(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "sim.json"
    proc = await _start_process(port, state)
    try:
        admin = f"http://127.0.0.1:{port}/_sim"
        async with httpx.AsyncClient() as client:
            order = (await client.post(f"{admin}/orders", json={"type": "collection"})).json()[0]
            base = f"http://127.0.0.1:{port}/pos-app/v1"
            headers = {
                "x-api-server-access-token": "sim-server-token",
                "x-api-user-access-token": "sim-user-token-demo",
            }
            actions = await client.get(f"{base}/orders/{order['id']}/actions", headers=headers)
            token = actions.json()[0]["token"]
            await client.post(
                f"{base}/orders/{order['id']}/actions", data={"token": token}, headers=headers
            )

        def saved() -> bool:
            try:
                data = json.loads(state.read_text("utf-8"))
            except (OSError, ValueError):
                return False
            return [p["result"] for p in data["posted"]] == ["ok"]

        await eventually(saved, what="state file written")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0
    # A restarted simulator carries on from the file.
    proc = await _start_process(port, state)
    try:
        async with httpx.AsyncClient() as client:
            orders = (await client.get(f"http://127.0.0.1:{port}/_sim/orders")).json()
            posted = (await client.get(f"http://127.0.0.1:{port}/_sim/actions")).json()
        assert [o["status"]["code"] for o in orders] == ["accepted"]
        assert [p["actionType"] for p in posted] == ["ACCEPT"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
