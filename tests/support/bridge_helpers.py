"""Shared pieces of the bridge tests: a journal with an OrderDesk, orders, bounded waits."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from edged.flow.desk import OrderDesk
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal
from edged.sinqro.models import Order, parse_order
from edged.state import BoxState

_EXAMPLES: dict[str, Any] = json.loads(
    resources.files("edged.simulator").joinpath("data/examples.json").read_text()
)


def make_order(order_id: int, status: str = "waiting_sp_validation", **extra: Any) -> Order:
    """A realistic Sinqro order (doc 003 example) with our id and status."""
    raw = copy.deepcopy(_EXAMPLES["collection"])
    raw["id"] = order_id
    raw["marketOrderCode"] = f"C{order_id}"
    final = status in ("finished", "cancelled_by_client", "cancelled_by_sp")
    raw["status"] = {"code": status, "name": status, "isFinalStatus": final}
    raw.update(extra)
    return parse_order(raw)


def make_desk(journal: Journal) -> tuple[OrderDesk, BoxState]:
    state = BoxState()
    return OrderDesk(journal, state, OrdersConfig()), state


async def outbox(journal: Journal) -> list[Any]:
    return await journal.recent_commands(1000)


async def event_count(journal: Journal) -> int:
    return (await journal.counts())["events"]


SMALL_CATALOG: dict[str, Any] = {
    "autoSelection": True,
    "menus": [
        {
            "name": "Our menu",
            "type": "menu",
            "externalId": "M1",
            "public": True,
            "allowedOrderTypes": ["delivery", "collection"],
            "schedule": {
                "name": "Lunch",
                "scheduleRanges": [
                    {"startDay": 1, "endDay": 5, "startTime": "12:00", "endTime": "16:00"}
                ],
            },
            "menuSections": [
                {
                    "externalId": "S1",
                    "name": "Pizzas",
                    "position": 1,
                    "products": [
                        {
                            "name": "Margherita",
                            "externalId": "P1",
                            "price": {"amount": 9.5, "vatValue": 10},
                            "public": True,
                            "productVariants": [
                                {
                                    "name": "XXL Margherita",
                                    "externalId": "P1-XXL",
                                    "price": {"amount": 14, "vatValue": 10},
                                }
                            ],
                            "productOptionsCategories": [
                                {
                                    "name": "Extras",
                                    "minSelection": 0,
                                    "maxSelection": 3,
                                    "maxSameOptionSelection": 1,
                                    "productOptions": [
                                        {
                                            "externalId": "O1",
                                            "name": "Extra cheese",
                                            "price": {"amount": 1, "vatValue": 10},
                                        }
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
