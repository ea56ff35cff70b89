"""The live board's data: orders as plain JSON for the page, and the buttons each one gets.

Pure functions, no I/O. Everything here is data; the page puts text in with
``textContent``, never as HTML, so an order's comment stays text whatever it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from edged.journal.store import Command, StoredOrder
from edged.printing.ticket import money
from edged.sinqro.models import OrderAction

# The order a restaurant moves an accepted order along (doc 003, orderStatusTypeCode).
STATUS_FLOW = ("accepted", "preparation", "ready", "delivering", "delivered", "finished")
# Which of those make sense per order type: delivering/delivered only for delivery orders
# (doc 003: "only allowed for delivery orders delivered by self drivers"); a plain
# reservation has nothing to prepare.
STATUSES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "delivery": ("preparation", "ready", "delivering", "delivered", "finished"),
    "collection": ("preparation", "ready", "finished"),
    "insitu": ("preparation", "ready", "finished"),
    "inside": ("preparation", "ready", "finished"),
    "reservation": ("finished",),
}
STATUS_LABELS = {
    "preparation": "Preparing",
    "ready": "Ready",
    "delivering": "Out for delivery",
    "delivered": "Delivered",
    "finished": "Finished",
}
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")
MAX_TEXT = 2000


def next_statuses(order_type: str, status: str) -> list[str]:
    """Status buttons for an accepted order: the type's statuses after the current one."""
    allowed = STATUSES_BY_TYPE.get(order_type, ("finished",))
    here = STATUS_FLOW.index(status) if status in STATUS_FLOW else 0
    return [s for s in allowed if STATUS_FLOW.index(s) > here]


def _text(value: Any) -> str:
    """Outside text for the page: a string, bounded; escaping is the page's job."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)[:MAX_TEXT]


def _lines(raw: Any, depth: int = 0) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or depth > 3:
        return []
    out = []
    for item in raw[:200]:
        if not isinstance(item, dict):
            continue
        out.append(
            {
                "label": _text(item.get("label")),
                "quantity": item.get("quantity") if isinstance(item.get("quantity"), int) else None,
                "comment": _text(item.get("comment")),
                "children": _lines(item.get("childrenOrderLines"), depth + 1),
            }
        )
    return out


def _address(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    # Sinqro's Address model (doc 003): street with number, details, postal code, city.
    keys = ("street", "details", "postalCode", "city")
    return ", ".join(_text(raw.get(k)) for k in keys if raw.get(k) and _text(raw.get(k)))


def order_json(order: StoredOrder, pending: Iterable[Command] = ()) -> dict[str, Any]:
    """An order as the board shows it (no tokens: orders carry none)."""
    parsed = order.order
    raw = order.payload
    currency = raw.get("currency")
    return {
        "id": order.id,
        "code": order.code,
        "type": order.type,
        "status": order.status,
        "status_name": _text(parsed.status_name),
        "final": order.is_final,
        "waiting": order.is_waiting,
        "acknowledged": order.acknowledged,
        "market": _text(parsed.market),
        "consumer": _text(parsed.consumer_name),
        "total": parsed.total_amount,
        # Formatted like the ticket, per the order's currency.displayPattern ("{{ amount }}€").
        "total_text": (
            money(parsed.total_amount, currency if isinstance(currency, dict) else {}, "en")
            if parsed.total_amount is not None
            else ""
        ),
        "execution_time": _text(order.execution_time),
        "execution_label": _text(raw.get("executionTimeLabel")),
        "asap": parsed.is_asap,
        "comment": _text(raw.get("comment")),
        "cancellation_comment": _text(raw.get("cancellationComment")),
        "diners": raw.get("dinersNumber") if isinstance(raw.get("dinersNumber"), int) else None,
        "address": _address(raw.get("deliveryAddress")),
        "lines": _lines(raw.get("orderLines")),
        "first_seen": order.first_seen,
        "updated": order.updated,
        "pending": [
            {
                "id": c.id,
                "kind": c.kind,
                "state": c.state,
                "params": _public_params(c),
                # Why an earlier attempt did not go through: the order retries on its own.
                "retrying": _text(c.error) if c.attempts and c.error else "",
            }
            for c in pending
        ],
        "statuses": []
        if order.is_waiting or order.is_final
        else [
            {"status": s, "label": STATUS_LABELS.get(s, s)}
            for s in next_statuses(order.type, order.status)
        ],
    }


def _public_params(command: Command) -> dict[str, Any]:
    keep = ("delay", "status", "comment")
    return {k: command.params[k] for k in keep if k in command.params}


def action_buttons(
    actions: Sequence[OrderAction], *, fallback_delays: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Buttons built from Sinqro's order actions (doc 000: accept, accept with each
    offered delay, cancel). Tokens stay on the box: the outbox fetches fresh ones.

    When Sinqro offers a plain ACCEPT but no delayed one, ``fallback_delays`` (the box's
    configured delays) are offered; Sinqro is asked for that delay when the command is sent.
    """
    buttons: list[dict[str, Any]] = []
    seen: set[tuple[str, int | None]] = set()
    for action in actions:
        kind = action.action_type.upper()
        if kind not in ("ACCEPT", "CANCEL"):
            continue
        delay = int(action.delay_minutes) if action.delay_minutes else None
        key = (kind, delay if kind == "ACCEPT" else None)
        if key in seen:
            continue
        seen.add(key)
        label = _text(action.call_to_action)[:60] or kind.title()
        if kind == "ACCEPT" and delay and str(delay) not in label:
            label = f"{label} +{delay} min"
        buttons.append(
            {
                "kind": kind.lower(),
                "label": label,
                "delay": delay if kind == "ACCEPT" else None,
                "color": action.color if _HEX_COLOR.match(action.color or "") else "",
            }
        )
    if ("ACCEPT", None) in seen and not any(k == "ACCEPT" and d for k, d in seen):
        for delay in sorted({d for d in fallback_delays if d > 0}):
            buttons.append(
                {"kind": "accept", "label": f"Accept +{delay} min", "delay": delay, "color": ""}
            )
    # Accepts first (plain, then by delay), cancel last: the order staff expect.
    buttons.sort(key=lambda b: (b["kind"] != "accept", b["delay"] or 0))
    return buttons


def offline_buttons(delays: Sequence[int]) -> list[dict[str, Any]]:
    """Buttons when Sinqro cannot be asked: the command waits in the outbox anyway."""
    buttons: list[dict[str, Any]] = [
        {"kind": "accept", "label": "Accept", "delay": None, "color": ""}
    ]
    buttons += [
        {"kind": "accept", "label": f"Accept +{d} min", "delay": d, "color": ""}
        for d in sorted({d for d in delays if d > 0})
    ]
    buttons.append({"kind": "cancel", "label": "Cancel", "delay": None, "color": ""})
    return buttons
