"""The simulator's products, option categories and menus routes (doc 003), over real
sockets: partial and whole products, PATCH that changes only what was sent, errors in the
documented shape, fault injection, and ``isAvailable`` effective in generated orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from edged.simulator.server import Simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {
        "x-api-server-access-token": sim.server_token,
        "x-api-user-access-token": sim.user_token,
    }
    base = f"{sim.base_url}/sellingPoints/{sim.selling_point_id}/"
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        yield client


def ordered_products(sim: Simulator, count: int) -> set[int]:
    ids: set[int] = set()
    for order in sim.create_orders(count, "delivery"):
        for line in order["orderLines"]:
            if line["type"] == "PRODUCT":
                ids.add(int(line["product"]["id"]))
    return ids


def ordered_options(sim: Simulator, count: int) -> set[int]:
    return {
        int(child["productOption"]["id"])
        for order in sim.create_orders(count, "collection")
        for line in order["orderLines"]
        for child in line["childrenOrderLines"]
    }


async def test_products_partial_and_whole(sim: Simulator, http: httpx.AsyncClient) -> None:
    partial = (await http.get("products")).json()
    assert len(partial) == 14
    first = partial[0]
    assert set(first) == {
        "id",
        "externalId",
        "name",
        "image",
        "price",
        "inMenuPrice",
        "public",
        "featured",
    }
    whole = (await http.get(f"products/{first['id']}")).json()
    assert whole["isAvailable"] is True
    assert whole["productVariants"][0]["parentName"] == whole["name"]
    options = whole["productOptionsCategories"][0]["productOptions"]
    assert [o["isAvailable"] for o in options] == [True] * len(options)
    variant = whole["productVariants"][0]
    assert (await http.get(f"products/{variant['id']}")).json()["name"] == variant["name"]
    # Another user's selling point is not found.
    other = await http.get(f"{sim.base_url}/sellingPoints/3963/products")
    assert other.status_code == 404 and other.json()["code"] == "SELLING_POINT_NOT_FOUND"


async def test_patch_changes_only_what_was_sent(sim: Simulator, http: httpx.AsyncClient) -> None:
    before = (await http.get("products/109802")).json()
    answer = await http.patch("products/109802", json={"isAvailable": False})
    assert answer.status_code == 200
    after = answer.json()
    assert after["isAvailable"] is False
    assert {k: v for k, v in after.items() if k != "isAvailable"} == {
        k: v for k, v in before.items() if k != "isAvailable"
    }
    assert sim.product(109802)["isAvailable"] is False
    assert [p["body"] for p in sim.catalog_patches("/products/109802")] == [{"isAvailable": False}]
    # A bad body changes nothing, and says why in the documented shape.
    bad = await http.patch("products/109802", json={"isAvailable": True, "price": "free"})
    assert bad.status_code == 400 and bad.json()["code"] == "BAD_REQUEST"
    assert sim.product(109802)["isAvailable"] is False
    missing = await http.patch("products/42", json={"isAvailable": False})
    assert missing.status_code == 404
    assert missing.json()["errors"] == [
        {"code": "PRODUCT_NOT_FOUND", "message": "Product not found"}
    ]
    wrong = await http.patch("products/109802", json={"isAvailable": "no"})
    assert wrong.status_code == 400


async def test_option_availability_through_its_category(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    categories = (await http.get("productOptionsCategories")).json()
    category = next(c for c in categories if len(c["productOptions"]) >= 2)
    first, second = category["productOptions"][:2]
    answer = await http.patch(
        f"productOptionsCategories/{category['id']}",
        json={"productOptions": [{"id": first["id"], "isAvailable": False}]},
    )
    assert answer.status_code == 200
    options = {o["id"]: o for o in answer.json()["productOptions"]}
    assert options[first["id"]]["isAvailable"] is False
    assert options[second["id"]] == second  # not sent, not changed
    assert answer.json()["name"] == category["name"]
    unknown = await http.patch(
        "productOptionsCategories/1", json={"productOptions": [{"id": 1, "isAvailable": False}]}
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "PRODUCT_OPTION_CATEGORY_NOT_FOUND"
    bounds = await http.patch(
        f"productOptionsCategories/{category['id']}", json={"minOptions": 3, "maxOptions": 1}
    )
    assert bounds.json()["code"] == "CATEGORY_MIN_OPTIONS_CANNOT_BE_GREATER_THAN_MAX_OPTIONS"


async def test_menus(http: httpx.AsyncClient) -> None:
    menus = (await http.get("menus")).json()
    assert [m["type"] for m in menus] == ["menu"]
    menu = (await http.get(f"menus/{menus[0]['id']}")).json()
    assert len(menu["menuSections"][0]["products"]) == 14
    patched = (await http.patch(f"menus/{menus[0]['id']}", json={"name": "Carta de noche"})).json()
    assert patched["name"] == "Carta de noche" and patched["type"] == "menu"
    assert (await http.get("menus/1")).json()["code"] == "MENU_NOT_FOUND"


async def test_unavailable_products_and_options_are_never_ordered(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    assert 109805 in ordered_products(sim, 60)  # the pulpo is ordered while available
    await http.patch("products/109805", json={"isAvailable": False})
    assert 109805 not in ordered_products(sim, 60)
    # The pizza's XXL variant stays available: the pizza is ordered as that variant.
    await http.patch("products/109800", json={"isAvailable": False})
    seen = ordered_products(sim, 60)
    assert 109800 not in seen and 119800 in seen
    category = (await http.get("productOptionsCategories/102013")).json()
    oat = category["productOptions"][0]["id"]
    assert oat in ordered_options(sim, 150)
    await http.patch(
        "productOptionsCategories/102013",
        json={"productOptions": [{"id": oat, "isAvailable": False}]},
    )
    assert oat not in ordered_options(sim, 150)


async def test_catalog_faults(sim: Simulator, http: httpx.AsyncClient) -> None:
    sim.fail_product(109803, status=503)
    assert (await http.patch("products/109803", json={"isAvailable": False})).status_code == 503
    assert sim.product(109803)["isAvailable"] is True
    assert sim.catalog_patches() == []
    assert (await http.get("products/109804")).status_code == 200
    sim.fail_product(109803, on=False)
    sim.fail_requests(1, 500)
    assert (await http.get("products")).status_code == 500
    assert (await http.get("products")).status_code == 200


async def test_catalog_survives_a_state_file(tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    async with Simulator(state_file=state) as first:
        first.cloud.catalog(first.selling_point_id).patch_product(109801, {"isAvailable": False})
        first.cloud.catalog_changed(first.selling_point_id, "/products/109801", {})
    async with Simulator(state_file=state) as second:
        assert second.product(109801)["isAvailable"] is False
        assert second.product(109802)["isAvailable"] is True
