"""Sinqro payloads, parsed at the edge into typed objects.

The API reference (doc 003) is loose about types: its own examples carry ids as strings and
distances as quoted numbers. So the parser is strict only about what the box relies on (an
order's id, its status code and its type) and keeps the full payload for tickets and the
board. Anything that cannot be trusted raises :class:`PayloadError`, which names the path
of the offending field; callers log it, count it and carry on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from edged.decoding import PayloadError, decimal, decode_json, parse_id

ORDER_TYPES = ("delivery", "collection", "reservation", "insitu", "inside")
WAITING = "waiting_sp_validation"
# edged's own final status for an order Sinqro no longer knows (ORDER_NOT_FOUND twice, or
# another selling point's after re-pairing): closed locally so its alert stops. Never sent.
GONE = "gone"
# Codes whose orders need no more interaction (doc 003, OrderStatus). The payload's own
# ``isFinalStatus`` wins when it is a boolean.
FINAL_STATUSES = frozenset(
    {
        "finished",
        "cancelled",
        "cancelled_by_sp",
        "cancelled_by_client",
        "cancelled_by_driver",
        "cancelled_by_team",
        "payment_authorisation_failed",
        GONE,
    }
)
CANCELLED_STATUSES = frozenset(s for s in FINAL_STATUSES if s.startswith("cancelled"))
# Codes accepted by POST /sellingPoints/{id}/orders/{orderId}/status (doc 003).
SETTABLE_STATUSES = (
    "accepted",
    "preparation",
    "ready",
    "delivering",
    "delivered",
    "finished",
    "cancelled_by_sp",
)
EVENTS = ("new_order", "order_status_changed")
# More entries than any real answer holds (active orders, actions, selling points); a
# bigger list is refused whole before one object per entry is built.
MAX_ENTRIES = 10_000
# Codes (status, order type, action type) are short words; a token is an opaque string.
MAX_CODE = 64
MAX_TOKEN = 4096


def _check_entries(obj: list[Any], path: str) -> None:
    if len(obj) > MAX_ENTRIES:
        raise PayloadError(path, f"{len(obj)} entries, more than the {MAX_ENTRIES} accepted")


def _as_id(value: Any, path: str) -> int:
    number = parse_id(value)
    if number is None:
        raise PayloadError(path, f"expected a positive 64-bit id, got {_snippet(value)}")
    return number


def _snippet(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, bool, type(None))) else type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool):
        text = "an integer out of range"
    return text[:40]


def _is_code(value: Any) -> TypeGuard[str]:
    """A status code, order type or action type: 1 to 64 printable characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_CODE and value.isprintable()


def _opt_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def opt_float(obj: Any, key: str) -> float | None:
    """``obj[key]`` as a finite number when it is one (the docs quote some numbers, as in
    ``"12.50"``), else None: "inf", 1e999 and NaN are no amount, and printing int() of
    one would raise."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return decimal(value)


@dataclass(frozen=True)
class Order:
    """An order or reservation as the box sees it; ``raw`` keeps the whole payload."""

    id: int
    type: str
    status: str
    status_name: str
    is_final: bool
    created_at: str
    execution_time: str
    is_asap: bool
    code: str
    market: str
    selling_point_id: int | None
    timezone: str
    consumer_name: str
    total_amount: float | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_waiting(self) -> bool:
        return self.status == WAITING

    def to_json(self) -> str:
        return json.dumps(self.raw, ensure_ascii=False, separators=(",", ":"))


def parse_order(obj: Any, path: str = "order") -> Order:
    """Validate one Order object (doc 003, model Order)."""
    if not isinstance(obj, dict):
        raise PayloadError(path, f"expected an object, got {type(obj).__name__}")
    if "id" not in obj:
        raise PayloadError(f"{path}.id", "missing")
    order_id = _as_id(obj["id"], f"{path}.id")
    status = obj.get("status")
    if not isinstance(status, dict):
        raise PayloadError(f"{path}.status", "expected an object")
    code = status.get("code")
    if not _is_code(code):
        raise PayloadError(f"{path}.status.code", f"expected a status code, got {_snippet(code)}")
    order_type = obj.get("type")
    if not _is_code(order_type):
        raise PayloadError(f"{path}.type", f"expected an order type, got {_snippet(order_type)}")
    final_flag = status.get("isFinalStatus")
    is_final = final_flag if isinstance(final_flag, bool) else code in FINAL_STATUSES
    # A cancelled order is final whatever the flag says: nothing more can happen to it.
    is_final = is_final or code in FINAL_STATUSES
    sp = obj.get("sellingPoint")
    sp = sp if isinstance(sp, dict) else {}
    sp_id = parse_id(sp.get("id"))
    consumer = obj.get("consumer")
    consumer = consumer if isinstance(consumer, dict) else {}
    name = " ".join(p for p in (_opt_str(consumer, "name"), _opt_str(consumer, "lastname")) if p)
    market = obj.get("market")
    market = market if isinstance(market, dict) else {}
    return Order(
        id=order_id,
        type=order_type,
        status=code,
        status_name=_opt_str(status, "name") or code,
        is_final=is_final,
        created_at=_opt_str(obj, "createdAt"),
        execution_time=_opt_str(obj, "executionTime"),
        is_asap=obj.get("isAsap") is True,
        code=_opt_str(obj, "marketOrderCode") or str(order_id),
        market=_opt_str(market, "name"),
        selling_point_id=sp_id,
        timezone=_opt_str(sp, "timezone"),
        consumer_name=name,
        total_amount=opt_float(obj, "totalAmount"),
        raw=obj,
    )


def parse_orders(obj: Any, path: str = "orders") -> tuple[list[Order], list[PayloadError]]:
    """Parse a list of orders; one bad entry does not hide the good ones."""
    if not isinstance(obj, list):
        raise PayloadError(path, f"expected a list, got {type(obj).__name__}")
    _check_entries(obj, path)
    good: list[Order] = []
    bad: list[PayloadError] = []
    for i, item in enumerate(obj):
        try:
            good.append(parse_order(item, f"{path}[{i}]"))
        except PayloadError as exc:
            bad.append(exc)
    return good, bad


@dataclass(frozen=True)
class Notification:
    """A websocket envelope: ``new_order`` or ``order_status_changed``."""

    event: str
    order: Order
    selling_point_id: int | None
    config: dict[str, Any]


def parse_notification(text: str | bytes, *, max_bytes: int) -> Notification:
    """Parse one websocket frame (doc 003, PosNewOrderNotification)."""
    obj = decode_json(text, max_bytes=max_bytes, what="frame")
    if not isinstance(obj, dict):
        raise PayloadError("", f"expected an object, got {type(obj).__name__}")
    event = obj.get("event")
    if event not in EVENTS:
        raise PayloadError("event", f"unknown event {event!r}")
    order = parse_order(obj.get("data"), "data")
    sp_raw = obj.get("sellingPointId")
    sp = _as_id(sp_raw, "sellingPointId") if sp_raw is not None else None
    config = obj.get("config")
    return Notification(
        event=str(event),
        order=order,
        selling_point_id=sp,
        config=config if isinstance(config, dict) else {},
    )


@dataclass(frozen=True)
class OrderAction:
    """One button Sinqro offers for an order (doc 003, OrderAction)."""

    token: str
    action_type: str
    call_to_action: str
    color: str
    delay_minutes: float | None
    execution_time: str
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_actions(obj: Any, path: str = "actions") -> list[OrderAction]:
    """Parse the array returned by ``GET /orders/{id}/actions``."""
    if not isinstance(obj, list):
        raise PayloadError(path, f"expected a list, got {type(obj).__name__}")
    _check_entries(obj, path)
    out = []
    for i, item in enumerate(obj):
        p = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise PayloadError(p, "expected an object")
        token = item.get("token")
        kind = item.get("actionType")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            raise PayloadError(f"{p}.token", f"expected a token, got {_snippet(token)}")
        if not _is_code(kind):
            raise PayloadError(f"{p}.actionType", f"expected an action type, got {_snippet(kind)}")
        out.append(
            OrderAction(
                token=token,
                action_type=kind,
                call_to_action=_opt_str(item, "callToAction") or kind.title(),
                color=_opt_str(item, "color"),
                delay_minutes=opt_float(item, "delayMinutes"),
                execution_time=_opt_str(item, "executionTime"),
                raw=item,
            )
        )
    return out


@dataclass(frozen=True)
class SellingPoint:
    """A selling point the logged-in user may link the box to."""

    id: int
    name: str
    timezone: str


def parse_selling_points(obj: Any) -> list[SellingPoint]:
    if not isinstance(obj, list):
        raise PayloadError("sellingPoints", f"expected a list, got {type(obj).__name__}")
    _check_entries(obj, "sellingPoints")
    out = []
    for i, item in enumerate(obj):
        if not isinstance(item, dict):
            raise PayloadError(f"sellingPoints[{i}]", "expected an object")
        out.append(
            SellingPoint(
                id=_as_id(item.get("id"), f"sellingPoints[{i}].id"),
                name=_opt_str(item, "name"),
                timezone=_opt_str(item, "timezone"),
            )
        )
    return out
