"""Box-to-POS events of the bridge protocol, built from journal events.

Each carries the journal ``seq`` as its ``id`` and the journal's ``epoch``; delivery is
at-least-once and in order, and a POS drops an ``id`` it has seen. Only
:data:`PUBLISHED_KINDS` leave the box. docs/bridge-protocol.md has the full reference.
"""

from __future__ import annotations

from typing import Any

from edged.bridges.commands import VERSION
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Journal, StoredOrder
from edged.sinqro.models import parse_order

__all__ = ["PUBLISHED_KINDS", "encode_event", "order_summary"]

# Journal events a POS sees. print.requested, print.done and link.* stay inside the box.
PUBLISHED_KINDS = (
    ev.ORDER_NEW,
    ev.ORDER_STATUS,
    ev.ORDER_ACKNOWLEDGED,
    ev.COMMAND_QUEUED,
    ev.COMMAND_DONE,
    ev.COMMAND_FAILED,
    ev.PRINTER_HEALTH,
    ev.PRINT_FAILED,
    ev.CATALOG_CHANGED,
)


def order_summary(order: StoredOrder) -> dict[str, Any]:
    """The part of an order a POS needs to ring it up: who, when, what, how much."""
    raw = order.payload
    consumer_raw = raw.get("consumer")
    consumer: dict[str, Any] = consumer_raw if isinstance(consumer_raw, dict) else {}
    parsed = parse_order(order.payload)
    return {
        "id": order.id,
        "type": order.type,
        "status": order.status,
        "code": order.code,
        "market": parsed.market,
        "created_at": parsed.created_at,
        "execution_time": order.execution_time,
        "asap": parsed.is_asap,
        "customer": parsed.consumer_name,
        "phone": consumer.get("phone") if isinstance(consumer.get("phone"), str) else None,
        "comment": raw.get("comment") if isinstance(raw.get("comment"), str) else None,
        "total": parsed.total_amount,
        "lines": _lines(raw.get("orderLines")),
    }


def _lines(value: Any, depth: int = 0) -> list[dict[str, Any]]:
    if not isinstance(value, list) or depth > 4:
        return []
    out = []
    for line in value:
        if not isinstance(line, dict):
            continue
        ref = line.get("product") or line.get("productOption") or {}
        ref = ref if isinstance(ref, dict) else {}
        out.append(
            {
                "label": line.get("label") if isinstance(line.get("label"), str) else "",
                "quantity": line.get("quantity"),
                "total": line.get("totalAmount"),
                "comment": line.get("comment") if isinstance(line.get("comment"), str) else None,
                "external_id": ref.get("externalId"),
                "options": _lines(line.get("childrenOrderLines"), depth + 1),
            }
        )
    return out


async def encode_event(
    event: Event, journal: Journal, *, full_payload: bool
) -> dict[str, Any] | None:
    """The POS message for a journal event, or None when the POS does not see that kind."""
    if event.kind not in PUBLISHED_KINDS:
        return None
    data = dict(event.data)  # the POS gets the event's fields as the journal has them
    queued = ev.payload(event)
    if isinstance(queued, ev.CommandQueued) and "catalog" in queued.params:
        # A catalog push can be a megabyte: the POS sent it, it does not need it back.
        data["params"] = {**queued.params, "catalog": "..."}
    message: dict[str, Any] = {
        "v": VERSION,
        "id": event.seq,
        # Ids count up within one journal; a new epoch means a new journal (ids restart).
        "epoch": journal.epoch,
        "ts": round(event.ts, 3),
        "kind": event.kind,
        "order_id": event.order_id,
        "data": data,
    }
    if event.kind == ev.ORDER_NEW and event.order_id is not None:
        stored = await journal.get_order(event.order_id)
        if stored is not None:
            message["order"] = order_summary(stored)
            if full_payload:
                message["payload"] = stored.payload
    return message
