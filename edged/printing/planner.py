"""Which printer prints what: print jobs planned from journal events.

Runs on the journal thread, inside the transaction that advances the spooler's cursor, so
a job can neither be lost nor planned twice. A printer takes the order types in its
``order_types``; an order of a type the box does not know goes to every printer that takes
``"other"``. Printers with ``update_slip`` print an UPDATED slip when an accepted delay
moves the time of an order whose ticket is already out. An order whose ticket a printer
printed from memory before the journal could store it (:mod:`edged.printing.unstored`)
gets a ``done`` job there: it is out, and never prints a second time unmarked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import StoredOrder, Tx
from edged.printing.jobs import MAX_TEXT_LINE, MAX_TEXT_LINES, reprint_refusal
from edged.printing.settings import PrinterConfig, order_type_key
from edged.printing.ticket import parse_time
from edged.sinqro.models import CANCELLED_STATUSES, GONE, WAITING

log = logging.getLogger(__name__)

# A spooler that meets an old journal (first start, printer added later) must not print
# the whole history: orders the box has known for longer than this are not printed.
STALE_AFTER = 12 * 3600.0


def has_ticket(tx: Tx, origin: str, order_id: int, states: tuple[str, ...]) -> bool:
    """True when ``origin`` has an order ticket (or reprint) of the order in ``states``."""
    marks = ",".join("?" * len(states))
    row = tx.execute(
        f"SELECT 1 FROM print_jobs WHERE order_id = ? AND origin = ?"
        f" AND kind IN ('order', 'reprint') AND state IN ({marks}) LIMIT 1",
        (order_id, origin, *states),
    ).fetchone()
    return row is not None


def printed_before(tx: Tx, order: StoredOrder) -> bool:
    """After a damaged journal was replaced, an order Sinqro created before that may have
    printed already: its ticket comes again under a REPRINT banner, never silently twice."""
    if tx.recovered_at is None:
        return False
    created = parse_time(order.payload.get("createdAt"))
    return created is None or created.timestamp() < tx.recovered_at


class JobPlanner:
    """Plans the jobs of the configured printers (``printers``: name → config, in order)."""

    def __init__(
        self,
        printers: dict[str, PrinterConfig],
        printed_from_memory: Callable[[int, str], bool] = lambda order_id, printer: False,
    ) -> None:
        self.printers = printers
        self.printed_from_memory = printed_from_memory

    def add(
        self,
        tx: Tx,
        printer: str,
        kind: str,
        event: Event,
        params: dict[str, Any],
        *,
        state: str = "queued",
        error: str | None = None,
        reprint: bool = False,
    ) -> bool:
        cur = tx.execute(
            "INSERT OR IGNORE INTO print_jobs (printer, origin, kind, order_id, event_seq, params,"
            " state, created, updated, error, reprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                printer,
                printer,
                kind,
                event.order_id,
                event.seq,
                json.dumps(params, ensure_ascii=False),
                state,
                tx.now,
                tx.now,
                error,
                int(reprint),
            ),
        )
        return bool(cur.rowcount)

    def order_new(self, tx: Tx, event: Event, touched: set[str]) -> None:
        if event.order_id is None:
            return
        order = tx.get_order(event.order_id)
        if order is None:
            return
        data = ev.payload(event)
        status = data.status if isinstance(data, ev.OrderNew) and data.status else order.status
        stale = tx.now - order.first_seen > STALE_AFTER
        kind = order_type_key(order.type)
        if kind != order.type:
            takers = [n for n, p in self.printers.items() if kind in p.order_types]
            log.warning(
                "spooler: order %d has a type the box does not know (%r); printing it on "
                "the printers that take 'other': %s",
                order.id,
                order.type[:40],
                ", ".join(takers) or "none",
            )
        for name, config in self.printers.items():
            if kind not in config.order_types:
                continue
            if config.print_on == "accepted" and (status == WAITING or order.is_final):
                continue
            if order.is_final or stale:
                # Over (cancelled, finished) before its ticket could print, or history from
                # before this printer existed: recorded, not printed.
                why = f"order already {order.status}" if order.is_final else "stale order"
                self.add(tx, name, "order", event, {}, state="skipped", error=why)
                continue
            if self.order_ticket(tx, name, order, event, reprint=printed_before(tx, order)):
                touched.add(name)

    def order_ticket(
        self, tx: Tx, name: str, order: StoredOrder, event: Event, *, reprint: bool = False
    ) -> bool:
        """Plan the order ticket on ``name``; True when it is to print. One printed from
        memory while the journal could not store the order is out already: done."""
        if self.printed_from_memory(order.id, name):
            out = {"execution_time": order.execution_time, "from_memory": True}
            self.add(tx, name, "order", event, out, state="done")
            return False
        return self.add(tx, name, "order", event, {}, reprint=reprint)

    def order_status(self, tx: Tx, event: Event, touched: set[str]) -> None:
        if event.order_id is None:
            return
        order = tx.get_order(event.order_id)
        if order is None:
            return
        data = ev.payload(event)
        status = data.status if isinstance(data, ev.OrderStatus) else ""
        live = ("queued", "sending", "done")
        for name, config in self.printers.items():
            if order_type_key(order.type) not in config.order_types:
                continue
            previous = self.moved_since_printed(tx, name, order) if config.update_slip else None
            if (
                previous is not None
                and not order.is_final
                and self.add(tx, name, "updated", event, {"previous": previous})
            ):
                touched.add(name)
            printed = has_ticket(tx, name, order.id, live)
            if status in CANCELLED_STATUSES or status == GONE:
                if (
                    config.cancel_slip
                    and printed
                    and self.add(tx, name, "cancel", event, {"status": status})
                ):
                    touched.add(name)
            elif (
                status in config.status_slips
                and printed
                and self.add(tx, name, "status", event, {"status": status})
            ):
                touched.add(name)
            if (
                config.print_on == "accepted"
                and status != WAITING
                and not order.is_final
                and not has_ticket(tx, name, order.id, (*live, "skipped", "failed"))
                and tx.now - order.first_seen <= STALE_AFTER
                and self.order_ticket(tx, name, order, event)
            ):
                touched.add(name)

    def moved_since_printed(self, tx: Tx, origin: str, order: StoredOrder) -> str | None:
        """The time the last ticket (or UPDATED slip) of ``order`` from ``origin`` showed,
        when the order now has another one; None when nothing moved or nothing is out."""
        row = tx.execute(
            "SELECT state, params FROM print_jobs WHERE order_id = ? AND origin = ?"
            " AND kind IN ('order', 'reprint', 'updated') AND state IN ('queued', 'sending',"
            " 'done') ORDER BY id DESC LIMIT 1",
            (order.id, origin),
        ).fetchone()
        if row is None or row["state"] != "done":
            return None  # nothing out yet, or the ticket still to print shows the new time
        printed = json.loads(row["params"]).get("execution_time")
        before = parse_time(printed)
        now = parse_time(order.execution_time)
        if before is None or now is None or before.replace(second=0) == now.replace(second=0):
            return None
        return str(printed)

    def print_requested(self, tx: Tx, event: Event, touched: set[str]) -> None:
        data = ev.payload(event)
        if not isinstance(data, ev.PrintRequested):
            return
        kind = data.kind
        source = data.source[:40]
        wanted = data.printer
        if wanted is not None and wanted not in self.printers:
            self.refuse(tx, event, kind, wanted, "no such printer")
            return
        if kind == "reprint":
            order = tx.get_order(event.order_id) if event.order_id is not None else None
            if order is None:
                self.refuse(tx, event, "reprint", wanted or "", "order not in the journal")
                return
            refused = reprint_refusal(tx, order.id, before=event.seq)
            if refused is not None:
                self.refuse(tx, event, "reprint", wanted or "", refused)
                return
            targets = [wanted] if wanted else self.reprint_targets(tx, order)
            for name in targets:
                if self.add(tx, name, "reprint", event, {"source": source}):
                    touched.add(name)
        elif kind == "test":
            if not wanted:
                self.refuse(tx, event, "test", "", "no printer named")
                return
            if self.add(tx, wanted, "test", event, {"source": source}):
                touched.add(wanted)
        elif kind == "text":
            if data.lines is None:
                self.refuse(tx, event, "text", wanted or "", "no lines")
                return
            lines = [line[:MAX_TEXT_LINE] for line in data.lines[:MAX_TEXT_LINES]]
            params: dict[str, Any] = {"source": source, "lines": lines}
            if data.qr:
                params["qr"] = data.qr[:MAX_TEXT_LINE]
            if data.big:
                params["big"] = data.big
            target = wanted or next(iter(self.printers), None)
            if target is not None and self.add(tx, target, "text", event, params):
                touched.add(target)
        else:
            self.refuse(tx, event, kind, wanted or "", "unknown print request")

    def reprint_targets(self, tx: Tx, order: StoredOrder) -> list[str]:
        printed = [n for n in self.printers if has_ticket(tx, n, order.id, ("done",))]
        if printed:
            return printed
        kind = order_type_key(order.type)
        takers = [n for n, p in self.printers.items() if kind in p.order_types]
        return takers or list(self.printers)[:1]

    def refuse(self, tx: Tx, event: Event, kind: str, printer: str, reason: str) -> None:
        log.warning("spooler: print request %d (%s) refused: %s", event.seq, kind, reason)
        tx.append_event(
            ev.PRINT_FAILED,
            event.order_id,
            {"printer": printer, "job_id": None, "kind": kind, "reason": reason},
        )
