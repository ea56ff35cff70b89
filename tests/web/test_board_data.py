"""The board's order data (pure, no browser): what the kitchen ticket shows is there, in the
box's language, and odd shapes from outside never break it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from edged.i18n import Locale
from edged.journal.store import StoredOrder
from edged.sinqro.models import OrderAction
from edged.web import board

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"
MADRID = Locale("en", "Europe/Madrid")


def example(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text("utf-8"))[kind]
    return copy.deepcopy(data)


def stored(raw: dict[str, Any], status: str = "waiting_sp_validation") -> StoredOrder:
    return StoredOrder(
        id=int(raw["id"]),
        type=str(raw["type"]),
        status=status,
        is_final=False,
        code=str(raw.get("marketOrderCode") or raw["id"]),
        execution_time=str(raw.get("executionTime") or ""),
        payload=raw,
        first_seen=1_595_563_000.0,
        updated=1_595_563_000.0,
        acknowledged=False,
    )


def test_a_delivery_counts_to_the_pickup_and_names_the_courier() -> None:
    raw = example("delivery")
    raw["deliveries"][0].update(
        deliveryAccountName="Glovo",
        deliveryAccountPhone="600000001",
        driver={"name": "Jordi", "lastname": "Puig", "phone": "+34611"},
    )
    raw["comment"] = "Alérgico a los frutos secos"
    raw["orderLines"][0]["comment"] = "Bien hecha"
    data = board.order_json(stored(raw), MADRID)
    # pickupAgreedAt 04:55:53 UTC is 06:55 in Madrid; the customer's time is 07:05.
    assert (data["due_label"], data["due_text"]) == ("Pickup", "06:55")
    assert data["customer_time_text"] == "07:05"
    assert data["couriers"] == [{"company": "Glovo 600000001", "driver": "Jordi Puig +34611"}]
    assert data["comment_allergy"] is True
    assert data["lines"][0]["allergy"] is False
    assert "Sorry, we cannot deliver to this address." in data["cancel_reasons"]


def test_a_table_order_says_its_zone_and_table_in_the_boxs_language() -> None:
    raw = example("inside")
    raw["serviceLocation"] = {"code": "BR13", "name": "Mesa 13", "serviceZone": {"name": "Barra"}}
    data = board.order_json(stored(raw), Locale("es", "Europe/Madrid"))
    assert data["table"] == "Barra · Mesa 13"
    assert data["type_text"] == "Pedido en mesa"
    assert not any("entregar" in r or "dirección" in r for r in data["cancel_reasons"])
    # Same minute as the customer's time: nothing else to count to.
    raw["preparationTime"] = raw["executionTime"]
    assert board.order_json(stored(raw), MADRID)["due_label"] == ""


@pytest.mark.parametrize(
    "location",
    [None, [], "Mesa 4", {"serviceZone": "Terraza"}, {"name": {"x": 1}}, {"code": 7}],
)
def test_odd_shapes_give_empty_fields_never_an_error(location: Any) -> None:
    raw = example("inside")
    raw["serviceLocation"] = location
    raw["deliveries"] = [{"driver": "Jordi", "pickupAgreedAt": 5}, "x"]
    raw["comment"] = {"allergy": True}
    raw["orderLines"] = [{"label": "Pan", "comment": ["gluten"]}]
    data = board.order_json(stored(raw), MADRID)
    assert data["comment_allergy"] is False and data["lines"][0]["allergy"] is False
    assert data["couriers"] == []
    assert isinstance(data["table"], str)


def _action(kind: str, delay: int | None) -> OrderAction:
    return OrderAction(
        token="t",
        action_type=kind,
        call_to_action="",
        color="",
        delay_minutes=delay,
        execution_time="",
        raw={},
    )


def test_offline_buttons_take_the_delays_sinqro_offered() -> None:
    actions = [_action("ACCEPT", None), _action("ACCEPT", 20), _action("ACCEPT", 10)]
    actions.append(_action("CANCEL", None))
    delays = board.offered_delays(actions)
    assert delays == (10, 20)
    live = [(b["kind"], b["delay"]) for b in board.action_buttons(actions, MADRID)]
    offline = [(b["kind"], b["delay"]) for b in board.offline_buttons(delays, MADRID)]
    assert live == offline == [("accept", None), ("accept", 10), ("accept", 20), ("cancel", None)]
