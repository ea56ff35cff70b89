"""Event kinds in the journal's append-only log, and the event record.

Every consumer (spooler, panel, bridges, web board) reads this log through its own durable
cursor, so these names and ``data`` fields are a contract: add fields, never rename them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
# catalog.changed  {selling_point_id, products, unavailable, changed}
#                                                            the catalog read differs from the
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
# What consumers read from ``Event.data``, decoded once with the field types above: read a
# payload with :func:`payload` (or :func:`decode`), never ``Event.data`` fields by hand.
# Rows written by an older edged may lack a field: it decodes to its empty value. Writers
# still give a plain dict, so what is stored stays as it always was.


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _maybe_number(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    reopened: bool = False


@dataclass(frozen=True)
class OrderAcknowledged:
    source: str


@dataclass(frozen=True)
class CommandQueued:
    command_id: int
    kind: str
    source: str
    params: dict[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class PrinterHealth:
    printer: str
    state: str
    detail: str


@dataclass(frozen=True)
class PrintDone:
    printer: str
    job_id: int
    kind: str
    reprint: bool


@dataclass(frozen=True)
class PrintFailed:
    printer: str
    job_id: int | None
    kind: str
    reason: str


@dataclass(frozen=True)
class PrintRequested:
    """``printer`` None when none was named; a name that is not text stays as its text,
    so it is refused as an unknown printer. ``lines`` None when a text request has none."""

    kind: str
    source: str
    order_id: int | None
    printer: str | None
    lines: list[str] | None
    qr: str
    big: list[int]


@dataclass(frozen=True)
class LinkPaired:
    selling_point_id: int


@dataclass(frozen=True)
class LinkUnpaired:
    pass


@dataclass(frozen=True)
class CatalogChanged:
    """``changed``: the items whose availability moved, ``{kind, id, available}`` each."""

    selling_point_id: int
    products: int
    unavailable: int
    changed: list[dict[str, Any]] = field(default_factory=list)


Payload = (
    OrderNew
    | OrderStatus
    | OrderAcknowledged
    | CommandQueued
    | CommandDone
    | CommandFailed
    | PrinterHealth
    | PrintDone
    | PrintFailed
    | PrintRequested
    | LinkPaired
    | LinkUnpaired
    | CatalogChanged
)


def payload(event: Event) -> Payload | None:
    """The typed payload of ``event``; None for a kind this edged does not know."""
    return decode(event.kind, event.data)


def decode(kind: str, d: dict[str, Any]) -> Payload | None:
    """The typed payload of an event of ``kind`` with ``data`` ``d``; None for a kind this
    edged does not know."""
    if kind == ORDER_NEW:
        return OrderNew(_text(d, "type"), _text(d, "status"), _text(d, "code"))
    if kind == ORDER_STATUS:
        return OrderStatus(
            _text(d, "status"),
            _text(d, "previous"),
            _text(d, "type"),
            _text(d, "code"),
            d.get("final") is True,
            d.get("reopened") is True,
        )
    if kind == ORDER_ACKNOWLEDGED:
        return OrderAcknowledged(_text(d, "source"))
    if kind == COMMAND_QUEUED:
        params = d.get("params")
        return CommandQueued(
            _number(d, "command_id"),
            _text(d, "kind"),
            _text(d, "source"),
            dict(params) if isinstance(params, dict) else {},
        )
    if kind == COMMAND_DONE:
        return CommandDone(
            _number(d, "command_id"), _text(d, "kind"), _text(d, "source"), _text(d, "status")
        )
    if kind == COMMAND_FAILED:
        return CommandFailed(
            _number(d, "command_id"),
            _text(d, "kind"),
            _text(d, "source"),
            _text(d, "code") or "ERROR",
            _text(d, "message"),
        )
    if kind == PRINTER_HEALTH:
        return PrinterHealth(_text(d, "printer"), _text(d, "state"), _text(d, "detail"))
    if kind == PRINT_DONE:
        return PrintDone(
            _text(d, "printer"), _number(d, "job_id"), _text(d, "kind"), d.get("reprint") is True
        )
    if kind == PRINT_FAILED:
        return PrintFailed(
            _text(d, "printer"), _maybe_number(d, "job_id"), _text(d, "kind"), _text(d, "reason")
        )
    if kind == PRINT_REQUESTED:
        return _print_requested(d)
    if kind == LINK_PAIRED:
        return LinkPaired(_number(d, "selling_point_id"))
    if kind == LINK_UNPAIRED:
        return LinkUnpaired()
    if kind == CATALOG_CHANGED:
        changed = d.get("changed")
        return CatalogChanged(
            _number(d, "selling_point_id"),
            _number(d, "products"),
            _number(d, "unavailable"),
            [c for c in changed if isinstance(c, dict)] if isinstance(changed, list) else [],
        )
    return None


def _print_requested(d: dict[str, Any]) -> PrintRequested:
    printer = d.get("printer")
    lines = d.get("lines")
    qr = d.get("qr")
    big = d.get("big")
    return PrintRequested(
        kind=_text(d, "kind"),
        source=_text(d, "source"),
        order_id=_maybe_number(d, "order_id"),
        printer=None if printer is None else str(printer),
        lines=[str(line) for line in lines] if isinstance(lines, list) else None,
        qr=qr if isinstance(qr, str) else "",
        big=[i for i in big if isinstance(i, int) and not isinstance(i, bool)]
        if isinstance(big, list)
        else [],
    )
