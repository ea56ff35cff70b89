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
