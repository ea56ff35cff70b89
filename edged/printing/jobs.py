"""Print jobs and print requests: the ``print_jobs`` rows and how anyone asks for a print.

The CLI, the web page, the panel and the bridges ask through the journal
(``print.requested`` events, see :func:`append_print_request`); the spooler turns them into
jobs. Reprints are capped per order and per minute so that a stuck button or a flooding
terminal cannot print a roll of paper: a refused reprint says why
(:func:`reprint_refusal`), both to the caller at once and in a ``print.failed`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Journal, Tx

REQUEST_KINDS = ("reprint", "test", "text")
MAX_TEXT_LINES = 200
MAX_TEXT_LINE = 500
# Reprints of one order, ever, and of all orders in the last minute.
MAX_REPRINTS_PER_ORDER = 5
MAX_REPRINTS_PER_MINUTE = 10


class PrintRefused(ValueError):
    """A print request that will not be printed; ``str()`` is the reason to show."""


@dataclass(frozen=True)
class Job:
    """A ``print_jobs`` row (``payload_size``: bytes of its order, 0 without one)."""

    id: int
    printer: str
    origin: str
    kind: str
    order_id: int | None
    event_seq: int
    params: dict[str, Any]
    state: str
    reprint: bool
    attempts: int
    created: float
    payload_size: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Job:
        keys = row.keys()
        return cls(
            id=row["id"],
            printer=row["printer"],
            origin=row["origin"],
            kind=row["kind"],
            order_id=row["order_id"],
            event_seq=row["event_seq"],
            params=json.loads(row["params"]),
            state=row["state"],
            reprint=bool(row["reprint"]),
            attempts=row["attempts"],
            created=row["created"],
            payload_size=int(row["payload_size"] or 0) if "payload_size" in keys else 0,
        )


def reprint_refusal(tx: Tx, order_id: int) -> str | None:
    """Why a reprint of ``order_id`` may not be printed now (None: it may).

    Counts reprint requests already planned (one per request, whatever the number of
    printers), so it holds across processes and restarts.
    """
    for_order = tx.execute(
        "SELECT COUNT(DISTINCT event_seq) FROM print_jobs WHERE order_id = ? AND kind = 'reprint'",
        (order_id,),
    ).fetchone()[0]
    if for_order >= MAX_REPRINTS_PER_ORDER:
        return f"order {order_id} was already reprinted {for_order} times (the limit)"
    recent = tx.execute(
        "SELECT COUNT(DISTINCT event_seq) FROM print_jobs WHERE kind = 'reprint' AND created > ?",
        (tx.now - 60.0,),
    ).fetchone()[0]
    if recent >= MAX_REPRINTS_PER_MINUTE:
        return (
            f"{recent} reprints in the last minute (at most {MAX_REPRINTS_PER_MINUTE}); try later"
        )
    return None


async def append_print_request(
    journal: Journal,
    kind: str,
    *,
    source: str,
    order_id: int | None = None,
    printer: str | None = None,
    lines: list[str] | None = None,
) -> Event:
    """Ask the spooler (in this process or the daemon) to print: ``reprint`` an order,
    a ``test`` page on ``printer``, or free ``text`` lines. Returns the journal event.

    Raises :class:`PrintRefused` when a reprint is over its limits.
    """
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown print request {kind!r}")
    if kind == "reprint" and order_id is None:
        raise ValueError("a reprint needs an order id")
    if kind == "test" and not printer:
        raise ValueError("a test print needs a printer name")
    data: dict[str, Any] = {"kind": kind, "source": source}
    if order_id is not None:
        data["order_id"] = order_id
    if printer:
        data["printer"] = printer
    if kind == "text":
        data["lines"] = [str(line)[:MAX_TEXT_LINE] for line in (lines or [])][:MAX_TEXT_LINES]

    def run(tx: Tx) -> Event:
        if kind == "reprint" and order_id is not None:
            refused = reprint_refusal(tx, order_id)
            if refused is not None:
                raise PrintRefused(refused)
        return tx.append_event(ev.PRINT_REQUESTED, order_id, data)

    return await journal.transaction(run)
