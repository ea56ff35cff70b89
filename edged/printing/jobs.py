"""Print jobs and print requests: the ``print_jobs`` rows and how anyone asks for a print.

The CLI, the web page, the panel and the bridges ask through the journal, all one way
(``print.requested`` events, see :func:`request_print`); the spooler turns them into
jobs. Reprints are capped per order and per minute so that a stuck button or a flooding
terminal cannot print a roll of paper: a refused reprint says why
(:func:`reprint_refusal`), both to the caller at once and in a ``print.failed`` event.
When a saved change removes a printer, :func:`move_to_backups` hands its tickets on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def reprint_refusal(tx: Tx, order_id: int, before: int | None = None) -> str | None:
    """Why a reprint of ``order_id`` may not be printed now (None: it may).

    Counts the reprint requests in the journal (those before event ``before`` when the
    spooler checks one it is planning), so it holds across processes and restarts, and a
    flood goes on being refused for as long as it lasts.
    """
    last = before if before is not None else 2**63 - 1
    reprint = "kind = 'print.requested' AND json_extract(data, '$.kind') = 'reprint'"
    for_order = tx.execute(
        f"SELECT COUNT(*) FROM events WHERE order_id = ? AND seq < ? AND {reprint}",
        (order_id, last),
    ).fetchone()[0]
    if for_order >= MAX_REPRINTS_PER_ORDER:
        return f"order {order_id} was already reprinted {for_order} times (the limit)"
    # Events are appended in time order: the last minute is the tail of the log.
    older = tx.execute(
        "SELECT seq FROM events WHERE ts <= ? ORDER BY seq DESC LIMIT 1", (tx.now - 60.0,)
    ).fetchone()
    recent = tx.execute(
        f"SELECT COUNT(*) FROM events WHERE seq > ? AND seq < ? AND {reprint}",
        (older[0] if older else 0, last),
    ).fetchone()[0]
    if recent >= MAX_REPRINTS_PER_MINUTE:
        return f"{recent} reprints asked in the last minute (at most {MAX_REPRINTS_PER_MINUTE})"
    return None


class UnknownOrder(PrintRefused):
    """A reprint of an order the journal does not hold."""


def request_print(
    tx: Tx,
    kind: str,
    *,
    source: str,
    order_id: int | None = None,
    printer: str | None = None,
    lines: list[str] | None = None,
    qr: str = "",
    big: Sequence[int] = (),
    known_order: bool = False,
) -> Event:
    """Append the ``print.requested`` event inside transaction ``tx``: the one way to ask
    for a print, so a caller can commit its own record with it (a bridge's dedup row).

    Raises :class:`PrintRefused` when a reprint is over its limits, and, with
    ``known_order``, :class:`UnknownOrder` for a reprint of an order not in the journal
    (without it the spooler answers that one with a ``print.failed``); ValueError for a
    request that cannot be made.
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
        if qr:
            data["qr"] = str(qr)[:MAX_TEXT_LINE]
        if big:
            data["big"] = [int(i) for i in big][:MAX_TEXT_LINES]
    if kind == "reprint" and order_id is not None:
        if known_order and tx.get_order(order_id) is None:
            raise UnknownOrder(f"order {order_id} is not in the journal")
        refused = reprint_refusal(tx, order_id)
        if refused is not None:
            raise PrintRefused(refused)
    return tx.append_event(ev.PRINT_REQUESTED, order_id, data)


async def append_print_request(
    journal: Journal,
    kind: str,
    *,
    source: str,
    order_id: int | None = None,
    printer: str | None = None,
    lines: list[str] | None = None,
    qr: str = "",
    big: Sequence[int] = (),
) -> Event:
    """Ask the spooler (in this process or the daemon) to print: ``reprint`` an order,
    a ``test`` page on ``printer``, or free ``text`` lines (those at indexes ``big`` in
    large type, ``qr`` as a QR code at the end). Returns the journal event.

    Raises :class:`PrintRefused` when a reprint is over its limits (see
    :func:`request_print`, its one transaction).
    """
    return await journal.transaction(
        lambda tx: request_print(
            tx,
            kind,
            source=source,
            order_id=order_id,
            printer=printer,
            lines=lines,
            qr=qr,
            big=big,
        )
    )


async def move_to_backups(journal: Journal, moves: Sequence[tuple[str, str]]) -> int:
    """Hand the queued tickets of removed printers to their backups: ``moves`` is
    ``(removed, backup)`` pairs. A ticket that was being sent goes again, marked REPRINT
    (it may have printed). Returns how many tickets moved. Call it while no spooler runs."""

    def run(tx: Tx) -> int:
        moved = 0
        for removed, backup in moves:
            moved += tx.execute(
                "UPDATE print_jobs SET printer = ?, origin = ?, updated = ?,"
                " reprint = (reprint OR state = 'sending'), state = 'queued'"
                " WHERE printer = ? AND state IN ('queued', 'sending')",
                (backup, backup, tx.now, removed),
            ).rowcount
        return moved

    return await journal.transaction(run)
