"""Sinqro's order statuses as the simulator applies them (doc 003, OrderStatus; doc 000,
POS workflow)::

    waiting_sp_validation --accept--> accepted (reservation_accepted for reservations)
    accepted -> preparation -> ready -> [delivering -> delivered] -> finished
    any non-final --cancel--> cancelled_by_sp (needs a comment / cancellationReason)

``delivering`` and ``delivered`` exist only for delivery orders brought by the restaurant's
own riders (``deliveries[].isSelfDelivery``). Steps may be skipped forwards, never backwards,
and a final status never changes through the API (:func:`allowed`); the ACCEPT action of an
accepted order is its next step (:func:`next_step`). The client, driver or team side
(``cancelled_by_client``...) is not checked here: see :meth:`Cloud.force_status
<edged.simulator.cloud.Cloud.force_status>`.
"""

from __future__ import annotations

from typing import Any

from edged.simulator.errors import CloudError
from edged.sinqro.models import FINAL_STATUSES

# (name, colour) per status code, as the Spanish-language examples show them.
STATUSES: dict[str, tuple[str, str]] = {
    "waiting_sp_validation": ("Esperando validación del negocio", "#f7981d"),
    "accepted": ("Aceptado", "#5aac44"),
    "reservation_accepted": ("Reserva aceptada", "#5aac44"),
    "preparation": ("En preparación", "#0079bf"),
    "ready": ("Listo", "#61bd4f"),
    "delivering": ("En reparto", "#00c2e0"),
    "delivered": ("Entregado", "#51e898"),
    "finished": ("Finalizado", "#5aac44"),
    "incident": ("Incidencia", "#eb5a46"),
    "cancelled": ("Cancelado", "#eb5a46"),
    "cancelled_by_sp": ("Cancelado por el negocio", "#eb5a46"),
    "cancelled_by_client": ("Cancelado por el cliente", "#eb5a46"),
    "cancelled_by_driver": ("Cancelado por el repartidor", "#eb5a46"),
    "cancelled_by_team": ("Cancelado por el equipo", "#eb5a46"),
    "payment_authorisation_failed": ("Autorización de pago fallida", "#eb5a46"),
}
RANK = {
    "waiting_sp_validation": 0,
    "accepted": 1,
    "reservation_accepted": 1,
    "incident": 1,
    "preparation": 2,
    "ready": 3,
    "delivering": 4,
    "delivered": 5,
    "finished": 6,
}


def status_object(code: str) -> dict[str, Any]:
    """An OrderStatus object (doc 003)."""
    name, color = STATUSES[code]
    final = code in FINAL_STATUSES
    if code == "finished":
        global_code = "finished"
    elif final:
        global_code = "cancelled"
    else:
        global_code = "processing"
    return {
        "code": code,
        "name": name,
        "color": color,
        "isFinalStatus": final,
        "globalStatusCode": global_code,
    }


def set_status(order: dict[str, Any], code: str) -> None:
    """Give ``order`` the status ``code``, with the flags that follow from it."""
    order["status"] = status_object(code)
    final = code in FINAL_STATUSES
    order["isCancellable"] = not final and code not in ("delivering", "delivered")
    order["isAcceptable"] = code == "waiting_sp_validation"


def self_delivery(order: dict[str, Any]) -> bool:
    """A delivery order the restaurant's own riders bring (it may be delivering)."""
    deliveries = order.get("deliveries") or []
    return order["type"] == "delivery" and any(
        isinstance(d, dict) and d.get("isSelfDelivery") for d in deliveries
    )


def allowed(order: dict[str, Any], target: str) -> str:
    """The status ``target`` leads to, or CloudError when the move is not allowed."""
    current = order["status"]["code"]
    if current in FINAL_STATUSES:
        raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"order is already {current}")
    if target == "cancelled_by_sp":
        if not order.get("isCancellable", True):
            raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"order is {current}")
        return target
    if target == "accepted":
        if current != "waiting_sp_validation":
            raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"order is {current}")
        return "reservation_accepted" if order["type"] == "reservation" else "accepted"
    if current == "waiting_sp_validation":
        raise CloudError("ORDER_STATUS_NOT_ALLOWED", "accept the order first")
    if target in ("delivering", "delivered") and not self_delivery(order):
        raise CloudError(
            "ORDER_STATUS_NOT_ALLOWED", f"{target} is only for self-delivered delivery orders"
        )
    if order["type"] == "reservation" and target != "finished":
        raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"a reservation cannot be {target}")
    if RANK[target] <= RANK.get(current, 0):
        raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"order is {current}, not before {target}")
    return target


def next_step(order: dict[str, Any]) -> str | None:
    """Where the ACCEPT action of an order past waiting leads; None when nowhere."""
    current = order["status"]["code"]
    if current in ("reservation_accepted", "incident", "delivered"):
        return "finished"
    steps = {"accepted": "preparation", "preparation": "ready", "delivering": "delivered"}
    if current == "ready":
        return "delivering" if self_delivery(order) else "finished"
    return steps.get(current)
