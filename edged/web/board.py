"""The live board's data: orders as plain JSON for the page, and the buttons each one gets.

Pure functions, no I/O. Everything a person reads is built here in the box's language and
the selling point's time zone (a :class:`~edged.i18n.Locale`), from codes, never from
Sinqro's own display strings (those are Spanish whatever the box speaks); Sinqro's text is
only a fallback for a code this box does not know. The page puts text in with
``textContent``, never as HTML, so an order's comment stays text whatever it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from edged.allergens import is_allergy_note
from edged.decoding import parse_id
from edged.i18n import N_, Locale
from edged.i18n.words import STATUS_WORDS, TYPE_WORDS
from edged.journal.store import Command, StoredOrder
from edged.printing.ticket import couriers, kitchen_time, parse_time, table_text
from edged.sinqro.models import OrderAction, parse_order

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
# Buttons that move an order to a status.
STEP_LABELS = {
    "preparation": N_("Start preparing"),
    "ready": N_("Ready"),
    "delivering": N_("Out for delivery"),
    "delivered": N_("Delivered"),
    "finished": N_("Finished"),
}
# Preset cancellation reasons (told to the customer), per order type: "we cannot deliver
# to this address" only makes sense for a delivery. Free text is always possible too.
_BUSY = N_("Sorry, we are too busy right now.")
_STOCK = N_("Sorry, an item is out of stock.")
_CLOSING = N_("Sorry, we are closing.")
CANCEL_REASONS: dict[str, tuple[str, ...]] = {
    "delivery": (_BUSY, _STOCK, _CLOSING, N_("Sorry, we cannot deliver to this address.")),
    "collection": (_BUSY, _STOCK, _CLOSING),
    "insitu": (_BUSY, _STOCK, _CLOSING),
    "inside": (_STOCK, _BUSY, _CLOSING),
    "reservation": (N_("Sorry, we are fully booked at that time."), _CLOSING),
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if abs(number) < 1e12 else None


def cancel_reasons(order_type: str, locale: Locale) -> list[str]:
    """The preset reasons offered for cancelling an order of ``order_type``."""
    presets = CANCEL_REASONS.get(order_type, (_BUSY, _STOCK, _CLOSING))
    return [locale.gettext(r) for r in presets]


def _line_item(line: dict[str, Any]) -> dict[str, Any] | None:
    for key, kind in (("product", "product"), ("productOption", "option")):
        ref = line.get(key)
        item_id = parse_id(str(ref.get("id"))) if isinstance(ref, dict) else None
        if item_id is not None:
            return {"kind": kind, "id": item_id}
    return None


def _lines(raw: Any, depth: int = 0) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or depth > 3:
        return []
    out = []
    for item in raw[:200]:
        if not isinstance(item, dict) or item.get("type") in ("DELIVERY", "DISCOUNT"):
            continue
        out.append(
            {
                "label": _text(item.get("label")),
                "quantity": item.get("quantity") if isinstance(item.get("quantity"), int) else None,
                "comment": _text(item.get("comment")),
                "allergy": is_allergy_note(item.get("comment")),
                "children": _lines(item.get("childrenOrderLines"), depth + 1),
                # What "sold out" next to the line marks (the menu's own ids).
                "item": _line_item(item),
            }
        )
    return out


def _address(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    # Sinqro's Address model (doc 003): street with number, details, postal code, city.
    keys = ("street", "details", "postalCode", "city")
    return ", ".join(_text(raw.get(k)) for k in keys if raw.get(k) and _text(raw.get(k)))


def payment(raw: dict[str, Any], total: float | None) -> tuple[str, float]:
    """``("paid", 0)``, ``("collect", amount)`` or ``("unknown", 0)`` from the payments."""
    payments = [p for p in raw.get("payments") or [] if isinstance(p, dict)]
    if not payments:
        return ("unknown", 0.0)
    to_collect = sum(
        _number(p.get("amount")) or 0.0 for p in payments if p.get("prepaid") is not True
    )
    if to_collect > 0.005:
        return ("collect", to_collect)
    return ("paid", 0.0)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _stamp(value: Any) -> float | None:
    parsed = parse_time(value)
    return parsed.timestamp() if parsed is not None else None


def order_json(
    order: StoredOrder, locale: Locale, pending: Iterable[Command] = ()
) -> dict[str, Any]:
    """An order as the board shows it (no tokens: orders carry none)."""
    _ = locale.gettext
    parsed = parse_order(order.payload)
    raw = order.payload
    currency = _dict(raw.get("currency"))
    total = _number(parsed.total_amount)
    pay, to_collect = payment(raw, total)
    consumer = _dict(raw.get("consumer"))
    due = _stamp(order.execution_time)
    created = _stamp(parsed.created_at)
    # Due when Sinqro says (an ASAP order carries its estimate); else as soon as it came.
    customer_at = due if due is not None else (created or order.first_seen)
    # The counter counts to the time the kitchen must meet, as the kitchen ticket prints
    # it big: the courier's pickup, else the preparation time, when it is another minute.
    due_at, due_label = customer_at, ""
    ready = kitchen_time(parsed)
    if ready is not None and due is not None and int(ready[1].timestamp()) // 60 != int(due) // 60:
        due_at = ready[1].timestamp()
        due_label = _("Pickup") if ready[0] == "pickup" else _("Ready by")
    status_word = STATUS_WORDS.get(order.status)
    return {
        "id": order.id,
        "code": order.code,
        "type": order.type,
        "type_text": _(TYPE_WORDS[order.type]) if order.type in TYPE_WORDS else order.type,
        "status": order.status,
        "status_text": _(status_word) if status_word else _text(parsed.status_name),
        "final": order.is_final,
        "waiting": order.is_waiting,
        "acknowledged": order.acknowledged,
        "market": _text(parsed.market),
        "consumer": _text(parsed.consumer_name),
        "phone": _text(consumer.get("phone"))[:40],
        "total": total,
        "total_text": locale.money(total, currency) if total is not None else "",
        "payment": pay,
        "to_collect_text": locale.money(to_collect, currency) if pay == "collect" else "",
        "asap": parsed.is_asap,
        "due": due_at,
        "due_label": due_label,
        "due_text": locale.time(due_at) if due_at else "",
        "due_day": locale.date(due_at) if due_at else "",
        # The customer's own time, said apart when the counter counts to another one.
        "customer_time_text": locale.time(customer_at) if due_label else "",
        "table": table_text(parsed),
        "couriers": [{"company": c, "driver": d} for c, d in couriers(parsed)],
        "comment": _text(raw.get("comment")),
        "comment_allergy": is_allergy_note(raw.get("comment")),
        "cancellation_comment": _text(raw.get("cancellationComment")),
        "diners": raw.get("dinersNumber") if isinstance(raw.get("dinersNumber"), int) else None,
        "address": _address(raw.get("deliveryAddress")),
        "lines": _lines(raw.get("orderLines")),
        "first_seen": order.first_seen,
        "seen_text": locale.time(order.first_seen),
        "seen_day": locale.date(order.first_seen),
        "updated": order.updated,
        "pending": [pending_json(c, locale) for c in pending],
        "cancel_reasons": cancel_reasons(order.type, locale) if order.is_waiting else [],
        "statuses": []
        if order.is_waiting or order.is_final
        else [
            {"status": s, "label": _(STEP_LABELS[s])}
            for s in next_statuses(order.type, order.status)
        ],
    }


def pending_json(command: Command, locale: Locale) -> dict[str, Any]:
    """A queued command and what it will do, in words."""
    _ = locale.gettext
    delay = command.params.get("delay")
    if command.kind == "accept":
        text = (
            _("Accept +{minutes} min").format(minutes=delay)
            if isinstance(delay, int) and delay
            else _("Accept")
        )
    elif command.kind == "cancel":
        text = _("Cancel")
    elif command.kind == "status":
        status = str(command.params.get("status", ""))
        text = _(STEP_LABELS[status]) if status in STEP_LABELS else status
    else:
        text = command.kind
    retrying = command.attempts > 0
    return {
        "id": command.id,
        "kind": command.kind,
        "state": command.state,
        "retrying": retrying,
        "text": text,
        "error": _text(command.error)[:200] if retrying else "",
    }


def _accept_label(delay: int | None, locale: Locale) -> str:
    _ = locale.gettext
    return _("Accept +{minutes} min").format(minutes=delay) if delay else _("Accept")


def action_buttons(
    actions: Sequence[OrderAction], locale: Locale, *, fallback_delays: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Buttons built from Sinqro's order actions (doc 000: accept, accept with each
    offered delay, cancel), labelled from ``actionType`` and ``delayMinutes`` in the box's
    language; Sinqro's ``callToAction`` only labels a type this box has no words for.
    Tokens stay on the box: the outbox fetches fresh ones.

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
        cancel = locale.gettext("Cancel")
        label = _accept_label(delay, locale) if kind == "ACCEPT" else cancel
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
                {
                    "kind": "accept",
                    "label": _accept_label(delay, locale),
                    "delay": delay,
                    "color": "",
                }
            )
    # Accepts first (plain, then by delay), cancel last: the order staff expect.
    buttons.sort(key=lambda b: (b["kind"] != "accept", b["delay"] or 0))
    return buttons


def offline_buttons(delays: Sequence[int], locale: Locale) -> list[dict[str, Any]]:
    """Buttons when Sinqro cannot be asked: the command waits in the outbox anyway. The
    same shape as Sinqro's own buttons when ``delays`` are the ones Sinqro last offered."""
    buttons: list[dict[str, Any]] = [
        {"kind": "accept", "label": _accept_label(None, locale), "delay": None, "color": ""}
    ]
    buttons += [
        {"kind": "accept", "label": _accept_label(d, locale), "delay": d, "color": ""}
        for d in sorted({d for d in delays if d > 0})
    ]
    buttons.append(
        {"kind": "cancel", "label": locale.gettext("Cancel"), "delay": None, "color": ""}
    )
    return buttons


def offered_delays(actions: Sequence[OrderAction]) -> tuple[int, ...]:
    """The accept delays (minutes) Sinqro offers in ``actions``, smallest first."""
    return tuple(
        sorted(
            {
                int(a.delay_minutes)
                for a in actions
                if a.action_type.upper() == "ACCEPT" and a.delay_minutes and a.delay_minutes > 0
            }
        )
    )


def waiting_order(orders: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Waiting orders soonest due first (then the oldest seen)."""
    return sorted(orders, key=lambda o: (o["due"] or o["first_seen"], o["first_seen"], o["id"]))
