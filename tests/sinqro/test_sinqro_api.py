"""The REST client against the real simulator: every method, typed errors, retries, timeouts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from edged.simulator.server import Simulator
from edged.sinqro import errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError, SinqroUnauthorized, SinqroUnavailable


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[SinqroApi]:
    client = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=2.0, retries=3)
    try:
        yield client
    finally:
        await client.aclose()


def requests_to(sim: Simulator, method: str, suffix: str) -> int:
    return sum(1 for r in sim.requests if r["method"] == method and r["path"].endswith(suffix))


MENU = {
    "autoSelection": True,
    "menus": [
        {
            "name": "Nuestra carta",
            "type": "menu",
            "externalId": "CARTA",
            "public": True,
            "allowedOrderTypes": ["delivery", "collection"],
            "menuSections": [
                {
                    "externalId": "12-345",
                    "name": "Tacos",
                    "position": 1,
                    "products": [
                        {
                            "name": "Taco al pastor",
                            "externalId": "101",
                            "price": {"amount": 3.5, "vatValue": 10},
                            "productOptionsCategories": [
                                {
                                    "name": "Extras",
                                    "minSelection": 0,
                                    "maxSelection": 3,
                                    "productOptions": [
                                        {"name": "Piña", "price": {"amount": 0.5, "vatValue": 10}},
                                        {"name": "Jalapeño", "price": {"amount": 0.3}},
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


async def test_active_orders_parse_and_skip_bad_entries(sim: Simulator, api: SinqroApi) -> None:
    created = [sim.create_order(t) for t in ("delivery", "collection", "reservation")]
    finished = sim.create_order("inside")
    sim.set_status(finished["id"], "finished")
    # One broken entry in the list must not hide the good ones.
    sim.cloud.orders[999] = {
        "id": 999,
        "type": "delivery",
        "status": {"code": 42, "isFinalStatus": False},
        "sellingPoint": {"id": sim.selling_point_id},
    }
    orders = await api.active_orders(sim.selling_point_id)
    assert sorted(o.id for o in orders) == sorted(o["id"] for o in created)
    assert all(o.status == "waiting_sp_validation" and not o.is_final for o in orders)
    assert all(o.selling_point_id == sim.selling_point_id for o in orders)
    assert api.bad_entries == 1


async def test_orders_filters(sim: Simulator, api: SinqroApi) -> None:
    delivery = sim.create_order("delivery")
    collection = sim.create_order("collection")
    sim.set_status(collection["id"], "cancelled_by_client")
    sp = sim.selling_point_id
    assert [o.id for o in await api.orders(sp, order_type="delivery")] == [delivery["id"]]
    cancelled = await api.orders(sp, global_status="cancelled")
    assert [o.id for o in cancelled] == [collection["id"]]
    assert cancelled[0].is_final
    today = delivery["createdAt"][:10]
    assert len(await api.orders(sp, start_date=today, end_date=today)) == 2
    assert await api.orders(sp, start_date="2999-01-01") == []
    with pytest.raises(SinqroError) as info:
        await api.orders(sp, order_type="takeaway")
    assert info.value.code == "ORDER_TYPE_NOT_FOUND"
    assert info.value.http_status == 404


async def test_get_order_and_not_found(sim: Simulator, api: SinqroApi) -> None:
    created = sim.create_order("insitu")
    order = await api.get_order(created["id"])
    assert order.id == created["id"]
    assert order.type == "insitu"
    assert order.raw["dinersNumber"] == created["dinersNumber"]
    with pytest.raises(SinqroError) as info:
        await api.get_order(123)
    assert info.value.code == errors.ORDER_NOT_FOUND
    assert info.value.http_status == 404
    assert info.value.errors == [{"code": "ORDER_NOT_FOUND", "message": "Order not found"}]


async def test_order_actions_and_delays(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("collection")
    actions = await api.order_actions(order["id"])
    kinds = [(a.action_type, a.delay_minutes) for a in actions]
    assert kinds == [
        ("ACCEPT", None),
        ("ACCEPT", 10),
        ("ACCEPT", 20),
        ("ACCEPT", 30),
        ("CANCEL", None),
    ]
    assert len({a.token for a in actions}) == len(actions)
    delayed = await api.order_actions(order["id"], delay_minutes=15)
    assert [(a.action_type, a.delay_minutes) for a in delayed] == [("ACCEPT", 15), ("CANCEL", None)]
    assert delayed[0].execution_time > order["executionTime"]


async def test_post_action_accept_with_delay(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("delivery")
    actions = await api.order_actions(order["id"], delay_minutes=20)
    accepted = await api.post_action(order["id"], actions[0].token)
    assert accepted.status == "accepted"
    assert accepted.execution_time == actions[0].execution_time
    # The token was for the waiting status: it is spent now.
    with pytest.raises(SinqroError) as info:
        await api.post_action(order["id"], actions[0].token)
    assert info.value.code == "ORDER_ACTION_TOKEN_INVALID"
    ok = [p for p in sim.posted_actions() if p["result"] == "ok"]
    assert [(p["orderId"], p["actionType"], p["delayMinutes"]) for p in ok] == [
        (order["id"], "ACCEPT", 20)
    ]


async def test_post_action_cancel_needs_comment(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("collection")
    cancel = next(a for a in await api.order_actions(order["id"]) if a.action_type == "CANCEL")
    with pytest.raises(SinqroError) as info:
        await api.post_action(order["id"], cancel.token)
    assert info.value.code == errors.ORDER_CANCELLATION_COMMENT_IS_REQUIRED
    assert info.value.http_status == 400
    comment = "Sin masa, lo siento"
    done = await api.post_action(order["id"], cancel.token, cancellation_comment=comment)
    assert done.status == "cancelled_by_sp"
    assert done.is_final
    assert done.raw["cancellationComment"] == "Sin masa, lo siento"


async def test_set_status_rules(sim: Simulator, api: SinqroApi) -> None:
    sp = sim.selling_point_id
    reservation = sim.create_order("reservation")
    accepted = await api.set_status(sp, reservation["id"], "accepted")
    assert accepted.status == "reservation_accepted"
    collection = sim.create_order("collection")
    with pytest.raises(SinqroError) as info:
        await api.set_status(sp, collection["id"], "cancelled_by_sp")
    assert info.value.code == errors.ORDER_CANCELLATION_COMMENT_IS_REQUIRED
    await api.set_status(sp, collection["id"], "accepted", delay_minutes=10)
    with pytest.raises(SinqroError) as info:
        await api.set_status(sp, collection["id"], "delivering")
    assert info.value.code == "ORDER_STATUS_NOT_ALLOWED"
    ready = await api.set_status(sp, collection["id"], "ready")
    assert ready.status == "ready"
    gone = await api.set_status(
        sp, collection["id"], "cancelled_by_sp", cancellation_reason="Cerramos por avería"
    )
    assert gone.status == "cancelled_by_sp"
    assert gone.raw["cancellationComment"] == "Cerramos por avería"
    with pytest.raises(SinqroError) as info:
        await api.set_status(999, collection["id"], "finished")
    assert info.value.code == errors.SELLING_POINT_NOT_FOUND


async def test_patch_menu_collection_raw(sim: Simulator, api: SinqroApi) -> None:
    summary = await api.patch_menu_collection_raw(sim.selling_point_id, MENU)
    assert summary["menus"] == 1
    assert summary["products"] == 1
    assert summary["productOptions"] == 2
    assert sim.menus()[0]["body"] == MENU
    bad = {"menus": [{"name": "Carta", "menuSections": []}]}
    with pytest.raises(SinqroError) as info:
        await api.patch_menu_collection_raw(sim.selling_point_id, bad)
    assert info.value.code == "MENU_TYPE_CODE_REQUIRED"
    assert len(sim.menus()) == 1


async def test_login_selling_points_logout(sim: Simulator) -> None:
    api = SinqroApi(sim.base_url, sim.server_token, timeout=2.0)
    try:
        with pytest.raises(SinqroError) as info:
            await api.login("demo", "wrong")
        assert info.value.code == errors.LOGIN_ERROR
        assert info.value.message == "Incorrect user or password"
        assert requests_to(sim, "POST", "/auth/login") == 1
        api.user_token = await api.login("demo", "demo")
        points = await api.selling_points()
        assert [p.id for p in points] == [3961, 3962]
        assert points[0].timezone == "Europe/Madrid"
        api.user_token = await api.login("solo", "solo")
        assert [p.name for p in await api.selling_points()] == ["Taquería Ñandú"]
        old = api.user_token
        await api.logout()
        assert api.user_token == ""
        api.user_token = old
        with pytest.raises(SinqroUnauthorized):
            await api.selling_points()
    finally:
        await api.aclose()


async def test_unauthorized_is_typed(sim: Simulator) -> None:
    pairs = [("wrong", sim.user_token), (sim.server_token, ""), (sim.server_token, "x")]
    for server, user in pairs:
        api = SinqroApi(sim.base_url, server, user, timeout=2.0)
        try:
            with pytest.raises(SinqroUnauthorized) as info:
                await api.active_orders(sim.selling_point_id)
            assert info.value.code == errors.UNAUTHORIZED
            assert info.value.http_status == 401
            assert info.value.message == "Unauthorized request"
        finally:
            await api.aclose()


async def test_gets_retry_on_5xx(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("delivery")
    sim.fail_requests(2, status=503)
    assert (await api.get_order(order["id"])).id == order["id"]
    assert requests_to(sim, "GET", f"/orders/{order['id']}") == 3


async def test_gets_give_up_after_retries(sim: Simulator, sinqro_config: object) -> None:
    api = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=2.0, retries=1)
    try:
        sim.fail_always(True, status=500)
        with pytest.raises(SinqroUnavailable) as info:
            await api.active_orders(sim.selling_point_id)
        assert info.value.http_status == 500
        assert info.value.transient
        assert requests_to(sim, "GET", "/orders/active") == 2
    finally:
        await api.aclose()


async def test_posts_and_patches_are_never_retried(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("delivery")
    token = (await api.order_actions(order["id"]))[0].token
    sim.fail_requests(1, status=502)
    with pytest.raises(SinqroUnavailable):
        await api.post_action(order["id"], token)
    assert requests_to(sim, "POST", f"/orders/{order['id']}/actions") == 1
    sim.fail_requests(1)
    with pytest.raises(SinqroUnavailable):
        await api.set_status(sim.selling_point_id, order["id"], "accepted")
    assert requests_to(sim, "POST", "/status") == 1
    sim.fail_requests(1)
    with pytest.raises(SinqroUnavailable):
        await api.patch_menu_collection_raw(sim.selling_point_id, MENU)
    assert requests_to(sim, "PATCH", "/collectionRaw") == 1
    sim.fail_requests(1)
    with pytest.raises(SinqroUnavailable):
        await api.login("demo", "demo")
    assert requests_to(sim, "POST", "/auth/login") == 1
    # Nothing reached the order: it still waits.
    assert sim.order(order["id"])["status"]["code"] == "waiting_sp_validation"


async def test_timeout_is_unavailable(sim: Simulator) -> None:
    api = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=0.2, retries=0)
    try:
        sim.set_delay(0.6)
        with pytest.raises(SinqroUnavailable) as info:
            await api.active_orders(sim.selling_point_id)
        assert "timed out" in info.value.message
    finally:
        sim.set_delay(0)
        await api.aclose()


async def test_network_errors_are_unavailable(sim: Simulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    api = SinqroApi(f"http://127.0.0.1:{free_port}/pos-app/v1", "s", "u", timeout=1.0, retries=0)
    try:
        with pytest.raises(SinqroUnavailable):
            await api.active_orders(1)
    finally:
        await api.aclose()
    dropped = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=1.0, retries=0)
    try:
        sim.refuse_all("close")
        with pytest.raises(SinqroUnavailable):
            await dropped.selling_points()
        sim.refuse_all("503")
        with pytest.raises(SinqroUnavailable) as info:
            await dropped.selling_points()
        assert info.value.http_status == 503
    finally:
        await dropped.aclose()


async def test_unparseable_2xx_is_bad_response(sim: Simulator, api: SinqroApi) -> None:
    order = sim.create_order("collection")
    sim.garble_responses(1)
    with pytest.raises(SinqroError) as info:
        await api.get_order(order["id"])
    assert info.value.code == errors.BAD_RESPONSE
    assert not info.value.transient
    # Valid JSON of the wrong shape is just as bad.
    sim.cloud.orders[order["id"]]["status"] = "accepted"
    with pytest.raises(SinqroError) as info:
        await api.get_order(order["id"])
    assert info.value.code == errors.BAD_RESPONSE
