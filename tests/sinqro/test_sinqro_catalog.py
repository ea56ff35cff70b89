"""The catalog client calls against the simulator, and the parsers against the shapes doc
003 shows (ids as strings, a variant with its parent's id, isAvailable absent)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.catalog import Catalog, parse_category, parse_partial_ids, parse_product
from edged.sinqro.errors import SinqroError, SinqroUnavailable


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[SinqroApi]:
    client = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=2.0, retries=1)
    async with client:
        yield client


async def test_whole_catalog_from_the_simulator(sim: Simulator, api: SinqroApi) -> None:
    sp = sim.selling_point_id
    catalog = await api.catalog(sp)
    assert len([p for p in catalog.products if p.parent_id is None]) == 14
    variant = catalog.product(119800)
    assert variant is not None and variant.parent_id == 109800
    oat = catalog.option(200130)
    assert oat is not None and oat.available and oat.category_id == 102013
    pizza = catalog.product(109800)
    assert pizza is not None and pizza.external_id == "TPV-001" and pizza.category_ids == (102000,)


async def test_availability_calls(sim: Simulator, api: SinqroApi) -> None:
    sp = sim.selling_point_id
    changed = await api.set_product_available(sp, 109805, False)
    assert changed[0].available is False and sim.product(109805)["isAvailable"] is False
    category = await api.set_option_available(sp, 102013, 200130, False)
    assert [o.available for o in category.options if o.id == 200130] == [False]
    assert sim.option(200130)["isAvailable"] is False
    assert (await api.catalog(sp)).option(200130).available is False  # type: ignore[union-attr]
    with pytest.raises(SinqroError) as caught:
        await api.set_product_available(sp, 42, False)
    assert caught.value.code == "PRODUCT_NOT_FOUND" and caught.value.message == "Product not found"
    sim.fail_product(109806)
    with pytest.raises(SinqroUnavailable):
        await api.set_product_available(sp, 109806, False)
    assert sim.product(109806)["isAvailable"] is True


DOC_PRODUCT = {  # doc 003's PosProduct example, trimmed: ids as strings, variant "843" too
    "id": "843",
    "name": "Neapolitan Pizza",
    "price": {"amount": 11.5, "vatValue": 10.0},
    "isAvailable": True,
    "productOptionsCategories": [
        {
            "id": "102",
            "name": "Our ingredients",
            "productOptions": [
                {"id": "233", "name": "Cheddar", "isAvailable": True, "price": {"amount": 0.75}},
                {"name": "no id, left out"},
            ],
        }
    ],
    "productVariants": [
        {"id": "843", "name": "XXL size", "isAvailable": True},
        {"id": "844", "name": "Family", "isAvailable": False, "productOptionsIds": [102]},
    ],
}


def test_parsers_take_the_documented_shapes() -> None:
    products, categories = parse_product(DOC_PRODUCT)
    assert [(p.id, p.parent_id, p.available) for p in products] == [
        (843, None, True),
        (844, 843, False),
    ]
    assert products[1].category_ids == (102,)
    assert [(o.id, o.price) for o in categories[0].options] == [(233, 0.75)]
    # The partial example has no isAvailable; an entry without an id is skipped.
    assert parse_partial_ids([{"id": 23211, "name": "First"}, {"name": "x"}, "junk"]) == [23211]
    unnamed = parse_category({"id": 7, "productOptions": [{"id": 8}]})
    assert unnamed.name == "#7" and unnamed.options[0].available is True


def test_canonical_json_round_trips_and_finds() -> None:
    products, categories = parse_product(DOC_PRODUCT)
    catalog = Catalog(tuple(reversed(products)), tuple(categories))
    text = json.dumps(catalog.to_json(), sort_keys=True)
    again = Catalog.from_json(json.loads(text))
    assert again == Catalog(tuple(products), tuple(categories))
    assert json.dumps(again.to_json(), sort_keys=True) == text
    assert [i.id for i in again.find("844")] == [844]
    assert [i.id for i in again.find("cheddar")] == [233]
    assert [i.id for i in again.find("pizza")] == [843]
