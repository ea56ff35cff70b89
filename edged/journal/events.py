"""Event kinds in the journal's append-only log, and the event record.

Every consumer (spooler, panel, bridges, web board) reads this log through its own durable
cursor, so these names and ``data`` fields are a contract: add fields, never rename them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# order.new        {type, status, code}                      first time the box sees an order
# order.status     {status, previous, type, code}            status changed (any source)
#                  reopened: true when Sinqro's GET /orders/{id} contradicted a final status
# order.acknowledged {source}                                staff silenced its alert
# command.queued   {command_id, kind, params, source}        written to the outbox
# command.done     {command_id, kind, source, status}        Sinqro took it (status: order's new)
# command.failed   {command_id, kind, source, code, message} Sinqro refused it, or it was moot
# printer.health   {printer, state, detail}                  a printer's health changed
# print.done       {printer, job_id, kind, reprint}          a ticket left for the printer
# print.failed     {printer, job_id, kind, reason}           a ticket could not be printed
# print.requested  {kind: reprint|test|text, order_id?, printer?, lines?, source}
#                                                            CLI, web, panel or bridge asks to print
# link.paired      {selling_point_id}                        the box was paired (web)
# link.unpaired    {}                                        the box was logged out
# catalog.changed  {selling_point_id, products, unavailable} the catalog read differs from the
#                                                            stored one
ORDER_NEW = "order.new"
ORDER_STATUS = "order.status"
ORDER_ACKNOWLEDGED = "order.acknowledged"
COMMAND_QUEUED = "command.queued"
COMMAND_DONE = "command.done"
COMMAND_FAILED = "command.failed"
PRINTER_HEALTH = "printer.health"
PRINT_DONE = "print.done"
PRINT_FAILED = "print.failed"
PRINT_REQUESTED = "print.requested"
LINK_PAIRED = "link.paired"
LINK_UNPAIRED = "link.unpaired"
CATALOG_CHANGED = "catalog.changed"


@dataclass(frozen=True)
class Event:
    """One row of the event log."""

    seq: int
    ts: float
    kind: str
    order_id: int | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "order_id": self.order_id,
            "data": self.data,
        }

    @classmethod
    def from_row(cls, row: tuple[int, float, str, int | None, str]) -> Event:
        seq, ts, kind, order_id, data = row
        return cls(seq=seq, ts=ts, kind=kind, order_id=order_id, data=json.loads(data))


# -- typed payloads -----------------------------------------------------------------------
# What consumers read from ``Event.data``, decoded once with the field types above. Rows
# written by an older edged may lack a field: it decodes to its empty value.


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class OrderNew:
    type: str
    status: str
    code: str


@dataclass(frozen=True)
class OrderStatus:
    status: str
    previous: str
    type: str
    code: str
    final: bool


@dataclass(frozen=True)
class CommandQueued:
    command_id: int
    kind: str
    source: str


@dataclass(frozen=True)
class CommandDone:
    command_id: int
    kind: str
    source: str
    status: str


@dataclass(frozen=True)
class CommandFailed:
    command_id: int
    kind: str
    source: str
    code: str
    message: str


Payload = OrderNew | OrderStatus | CommandQueued | CommandDone | CommandFailed


def payload(event: Event) -> Payload | None:
    """The typed payload of an order or command event; None for other kinds."""
    d = event.data
    if event.kind == ORDER_NEW:
        return OrderNew(_text(d, "type"), _text(d, "status"), _text(d, "code"))
    if event.kind == ORDER_STATUS:
        return OrderStatus(
            _text(d, "status"),
            _text(d, "previous"),
            _text(d, "type"),
            _text(d, "code"),
            d.get("final") is True,
        )
    if event.kind == COMMAND_QUEUED:
        return CommandQueued(_number(d, "command_id"), _text(d, "kind"), _text(d, "source"))
    if event.kind == COMMAND_DONE:
        return CommandDone(
            _number(d, "command_id"), _text(d, "kind"), _text(d, "source"), _text(d, "status")
        )
    if event.kind == COMMAND_FAILED:
        return CommandFailed(
            _number(d, "command_id"),
            _text(d, "kind"),
            _text(d, "source"),
            _text(d, "code") or "ERROR",
            _text(d, "message"),
        )
    return None
