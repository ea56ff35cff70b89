"""Sinqro payloads, parsed at the edge into typed objects.

The API reference (doc 003) is loose about types: its own examples carry ids as strings and
distances as quoted numbers. So the parser is strict only about what the box relies on (an
order's id, its status code and its type) and keeps the full payload for tickets and the
board. Anything that cannot be trusted raises :class:`PayloadError`, which names the path
of the offending field; callers log it, count it and carry on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

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
MAX_DEPTH = 64
# SQLite's INTEGER is 64-bit signed: an id beyond it could not be stored.
MAX_ID = 2**63 - 1
# More entries than any real answer holds (active orders, actions, selling points); a
# bigger list is refused whole before one object per entry is built.
MAX_ENTRIES = 10_000
# A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 writer (SQLite, a
# form post, a log file) can encode. Such characters become U+FFFD at the edge, so the
# order that carried one is still stored and printed.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class PayloadError(ValueError):
    """A payload from outside is unusable; ``path`` points at the offending field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def decode_json(text: str | bytes, *, max_bytes: int, what: str = "message") -> Any:
    """Decode bounded JSON: size and nesting are capped before anything trusts it."""
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > max_bytes:
        raise PayloadError("", f"{what} too large: {size} bytes (limit {max_bytes})")
    # Cheap pre-check so a hostile "[[[[..." never reaches the recursive decoder.
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    opened = 0
    worst = 0
    for ch in raw:
        if ch in "[{":
            opened += 1
            worst = max(worst, opened)
            if worst > MAX_DEPTH * 2:
                break
        elif ch in "]}":
            opened -= 1
    if worst > MAX_DEPTH * 2:
        raise PayloadError("", f"{what} nested too deeply")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError("", f"{what} is not valid JSON: {exc}") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise PayloadError("", f"{what} nested too deeply")
    if _SURROGATE_ESCAPE.search(raw) or _SURROGATE.search(raw):
        value = _without_surrogates(value)
    return value


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in strings and keys replaced by U+FFFD.

    Recursion is safe here: :func:`decode_json` has bounded the depth already.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _check_entries(obj: list[Any], path: str) -> None:
    if len(obj) > MAX_ENTRIES:
        raise PayloadError(path, f"{len(obj)} entries, more than the {MAX_ENTRIES} accepted")


def _as_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise PayloadError(path, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise PayloadError(path, f"expected an integer, got {value!r}")


def _opt_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def opt_float(obj: Any, key: str) -> float | None:
    """``obj[key]`` as a number when it is one (the docs quote some numbers), else None."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer of 400 digits
        return None
    # "inf", 1e999 and NaN are no amount or count: printing int() of one would raise.
    return number if math.isfinite(number) else None


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
    order_id = _as_int(obj["id"], f"{path}.id")
    if not 0 < order_id <= MAX_ID:
        raise PayloadError(f"{path}.id", f"expected a positive 64-bit id, got {order_id}")
    status = obj.get("status")
    if not isinstance(status, dict):
        raise PayloadError(f"{path}.status", "expected an object")
    code = status.get("code")
    if not isinstance(code, str) or not code:
        raise PayloadError(f"{path}.status.code", f"expected a status code, got {code!r}")
    order_type = obj.get("type")
    if not isinstance(order_type, str) or not order_type:
        raise PayloadError(f"{path}.type", f"expected an order type, got {order_type!r}")
    final_flag = status.get("isFinalStatus")
    is_final = final_flag if isinstance(final_flag, bool) else code in FINAL_STATUSES
    # A cancelled order is final whatever the flag says: nothing more can happen to it.
    is_final = is_final or code in FINAL_STATUSES
    sp = obj.get("sellingPoint")
    sp = sp if isinstance(sp, dict) else {}
    sp_id: int | None
    try:
        sp_id = _as_int(sp["id"], f"{path}.sellingPoint.id") if "id" in sp else None
    except PayloadError:
        sp_id = None
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
    sp = _as_int(sp_raw, "sellingPointId") if sp_raw is not None else None
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
        if not isinstance(token, str) or not token:
            raise PayloadError(f"{p}.token", f"expected a token, got {token!r}")
        if not isinstance(kind, str):
            raise PayloadError(f"{p}.actionType", f"expected a string, got {kind!r}")
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
                id=_as_int(item.get("id"), f"sellingPoints[{i}].id"),
                name=_opt_str(item, "name"),
                timezone=_opt_str(item, "timezone"),
            )
        )
    return out
