"""Generated orders for the simulator, built on the documented examples (doc 003).

Each of the five example orders in ``data/examples.json`` is the skeleton of its type; the
generator gives it a fresh id and code, times near now, the selling point it is for, and
varied lines, options, comments and customers with Spanish text and euro amounts, so the
tickets and the board meet real-looking data.
"""

from __future__ import annotations

import copy
import json
import random
import string
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from edged.sinqro.models import ORDER_TYPES

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

# (label, unit price, VAT %, options offered)
PRODUCTS: list[tuple[str, float, float, list[tuple[str, float]]]] = [
    ("Pizza de la huerta", 11.5, 10, [("Cebolla", 0.5), ("Champiñones", 1.0), ("Jalapeños", 0.8)]),
    ("Pizza 4 estaciones", 13.95, 10, [("Extra de queso", 1.5), ("Sin aceitunas", 0.0)]),
    ("Paella valenciana (2 pers.)", 28.0, 10, [("Con alioli", 0.6)]),
    ("Croquetas de jamón ibérico", 8.75, 10, [("Ración doble", 6.0)]),
    ("Tortilla española", 7.2, 10, [("Con cebolla", 0.0), ("Poco hecha", 0.0)]),
    ("Pulpo a la gallega", 16.9, 10, []),
    ("Calçots con romesco", 12.4, 10, [("Salsa extra", 1.2)]),
    ("Ñoquis al pesto", 10.5, 10, [("Pan sin gluten", 1.0)]),
    ("Ensalada de la güela", 9.3, 10, [("Sin tomate", 0.0), ("Atún", 1.5)]),
    ("Crema catalana", 4.9, 10, []),
    ("Agua 0.5L", 1.5, 10, []),
    ("Refresco limón", 2.2, 10, [("Con hielo", 0.0)]),
    ("Caña de cerveza", 2.5, 21, []),
    ("Café con leche", 1.6, 10, [("Leche de avena", 0.3), ("Descafeinado", 0.0)]),
]


class Offered(NamedTuple):
    """A dish an order may hold: product id, external id, label, unit price, VAT % and
    its extras as (option id, label, price)."""

    product_id: int
    external_id: str | None
    label: str
    price: float
    vat: float
    options: list[tuple[int, str, float]]


def option_id(dish: int, index: int) -> int:
    """The id of the ``index``-th extra of dish ``dish`` (the catalog's too)."""
    return 200000 + dish * 10 + index


def full_offer() -> list[Offered]:
    """Every dish with every extra (what a catalog offers when all is available)."""
    return [
        Offered(
            109800 + dish,
            f"TPV-{dish + 1:03d}",
            label,
            price,
            vat,
            [(option_id(dish, i), name, amount) for i, (name, amount) in enumerate(options)],
        )
        for dish, (label, price, vat, options) in enumerate(PRODUCTS)
    ]


LINE_COMMENTS = [
    "",
    "",
    "",
    "Sin gluten, por favor",
    "Bien hecha",
    "Poco picante, para niños",
    "Cortada en 8 trozos",
]
ORDER_COMMENTS = [
    "",
    "Llamad al timbre, el portero automático está estropeado.",
    "Alérgico a los frutos secos: ¡mucho cuidado!",
    "¿Podéis añadir servilletas y cubiertos? Gracias.",
    "Es un cumpleaños: si podéis, una vela en el postre.",
    "Pago con billete de 50 €.",
    "Dejad el pedido en recepción, 3º piso.",
]
FIRST_NAMES = ["Begoña", "Íñigo", "María José", "Núria", "Óscar", "Ángela", "Joaquín", "Sofía"]
LAST_NAMES = ["Muñoz", "Peña", "García", "Fernández", "Ibáñez", "Güell", "Martínez", "Castaño"]
STREETS = [
    "Calle de la Peña, 12",
    "Carrer de Sant Joan, 4",
    "Avenida de Andalucía, 101",
    "Carrer de la Tecnologia, 17",
    "Calle Cigüeña, 8",
    "Plaça de l'Església, 2",
]
PAYMENTS = [
    ("Efectivo", "CASH", False),
    ("Tarjeta de crédito", "CREDIT_CARD", True),
    ("Bizum", "BIZUM", True),
]


@cache
def _examples() -> dict[str, Any]:
    text = resources.files("edged.simulator").joinpath("data/examples.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def example(order_type: str) -> dict[str, Any]:
    """A deep copy of the documented example order of ``order_type``."""
    return copy.deepcopy(_examples()[order_type])


def notification_example() -> dict[str, Any]:
    """The documented PosNewOrderNotification envelope."""
    return copy.deepcopy(_examples()["_notification_example"])


def fmt_time(moment: datetime) -> str:
    """ISO 8601 with a ``+0000`` style offset, as the API writes times."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _label(moment: datetime, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz or "Europe/Madrid"))
    today = datetime.now(local.tzinfo).date()
    day = "hoy" if local.date() == today else "el"
    return f"{day} {local:%d/%m} a las {local:%H:%M}h"


def _money(value: float) -> float:
    return round(value + 0.0, 2)


def _split_vat(total: float, vat: float) -> tuple[float, float]:
    base = _money(total / (1 + vat / 100))
    return base, _money(total - base)


def _lines(rng: random.Random, offer: list[Offered]) -> list[dict[str, Any]]:
    lines = []
    for dish in rng.sample(offer, min(len(offer), rng.randint(1, 4))):
        vat = dish.vat
        qty = rng.choice([1, 1, 1, 2, 3])
        children = []
        unit = dish.price
        for opt_id, opt_label, opt_price in rng.sample(
            dish.options, rng.randint(0, len(dish.options))
        ):
            opt_total = _money(opt_price)
            base, vat_amount = _split_vat(opt_total, vat)
            children.append(
                {
                    "type": "PRODUCT_OPTION",
                    "totalAmount": opt_total,
                    "unitPrice": opt_total,
                    "quantity": 1,
                    "label": opt_label,
                    "comment": None,
                    "childrenOrderLines": [],
                    "baseAmount": base,
                    "vatAmount": vat_amount,
                    "vatValue": vat,
                    "productOption": {"id": opt_id, "externalId": None},
                }
            )
            unit += opt_price
        total = _money(unit * qty)
        base, vat_amount = _split_vat(total, vat)
        lines.append(
            {
                "type": "PRODUCT",
                "totalAmount": total,
                "unitPrice": _money(unit),
                "quantity": qty,
                "label": dish.label,
                "comment": rng.choice(LINE_COMMENTS) or None,
                "childrenOrderLines": children,
                "baseAmount": base,
                "vatAmount": vat_amount,
                "vatValue": vat,
                "product": {"id": dish.product_id, "externalId": dish.external_id},
            }
        )
    return lines


def build_order(
    order_type: str,
    order_id: int,
    selling_point: dict[str, Any],
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    offer: list[Offered] | None = None,
) -> dict[str, Any]:
    """A fresh ``waiting_sp_validation`` order of ``order_type`` for ``selling_point``,
    its lines drawn from ``offer`` (every dish when None)."""
    if order_type not in ORDER_TYPES:
        raise ValueError(f"unknown order type {order_type!r}")
    rng = rng or random.Random()
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    tz = str(selling_point.get("timezone") or "Europe/Madrid")
    order = example(order_type)
    order["id"] = order_id
    order["sellingPoint"] = copy.deepcopy(selling_point)
    code = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(6))
    order["marketOrderCode"] = code
    order["marketOrderId"] = str(rng.randint(10000, 99999))
    order["comment"] = rng.choice(ORDER_COMMENTS)
    order["cancellationComment"] = None

    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    consumer = order.get("consumer") or {}
    consumer.update(
        {
            "id": rng.randint(10000, 99999),
            "name": first,
            "lastname": last,
            "phone": f"+346{rng.randint(10000000, 99999999)}",
        }
    )
    order["consumer"] = consumer

    lead = {"reservation": 120, "insitu": 90}.get(order_type, rng.choice([20, 30, 45]))
    execution = now + timedelta(minutes=lead)
    preparation = execution - timedelta(minutes=10 if order_type == "delivery" else 0)
    order["createdAt"] = fmt_time(now)
    order["executionTime"] = fmt_time(execution)
    order["preparationTime"] = fmt_time(preparation)
    order["executionTimeLabel"] = _label(execution, tz)
    order["preparationTimeLabel"] = _label(preparation, tz)
    order["isAsap"] = order_type in ("delivery", "collection") and rng.random() < 0.3

    if order_type == "reservation":
        lines: list[dict[str, Any]] = []
    else:
        lines = _lines(rng, full_offer() if offer is None else offer)
    total = sum(float(line["totalAmount"]) for line in lines)
    if order_type == "delivery":
        fee = rng.choice([0.0, 1.0, 1.5, 2.95])
        base, vat_amount = _split_vat(fee, 21)
        lines.append(
            {
                "type": "DELIVERY",
                "totalAmount": fee,
                "unitPrice": fee,
                "quantity": 1,
                "label": "Gastos de envío",
                "comment": None,
                "childrenOrderLines": [],
                "baseAmount": base,
                "vatAmount": vat_amount,
                "vatValue": 21,
                "distance": round(rng.uniform(0.3, 4.0), 2),
            }
        )
        total += fee
        order["deliveryAmount"] = fee
        street = rng.choice(STREETS)
        address = order.get("deliveryAddress") or {}
        address.update({"street": street, "placeName": f"{street}, {address.get('city', '')}"})
        order["deliveryAddress"] = address
        for delivery in order.get("deliveries") or []:
            delivery["id"] = rng.randint(100000, 999999)
            delivery["deliveryAddress"] = copy.deepcopy(address)
            delivery["pickupAgreedAt"] = fmt_time(preparation)
            delivery["pickupConfirmedAt"] = fmt_time(preparation)
            delivery["deliveryAgreedAt"] = fmt_time(execution)
            delivery["deliveryConfirmedAt"] = fmt_time(execution)
            delivery["destinationContactName"] = f"{first} · {last}"
            # Mostly the restaurant's own riders, so delivering/delivered can be tried.
            delivery["isSelfDelivery"] = rng.random() < 0.8
    if order_type in ("reservation", "insitu", "inside"):
        order["dinersNumber"] = rng.randint(1, 8)
    if order_type == "inside":
        table = rng.randint(1, 24)
        zone = rng.choice([("TZ", "Terraza"), ("SL", "Salón"), ("BR", "Barra")])
        order["serviceLocation"] = {
            "code": f"{zone[0]}{table}",
            "name": f"Mesa {table}",
            "serviceZone": {"code": zone[0], "name": zone[1]},
        }
    order["orderLines"] = lines
    total = _money(total)
    base = _money(sum(float(line.get("baseAmount") or 0) for line in lines))
    order["totalAmount"] = total
    order["baseAmount"] = base
    order["vatAmount"] = _money(total - base)
    if total > 0:
        name, method, prepaid = rng.choice(PAYMENTS)
        order["payments"] = [
            {
                "id": rng.randint(50000, 99999),
                "amount": total,
                "paymentMethodName": name,
                "prepaid": prepaid,
                "methodCode": method,
                "status": {
                    "code": "DONE" if prepaid else "CREATED",
                    "name": "Finalizado" if prepaid else "Iniciado",
                    "color": "#5AAC44" if prepaid else "#000000",
                    "isFinalStatus": prepaid,
                },
            }
        ]
    else:
        order["payments"] = []
    return order
