"""Work inside one journal transaction: the :class:`Tx` every ``Journal.transaction``
callback receives, on the journal's thread."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.rows import (
    Command,
    OrderRecord,
    RowError,
    StoredOrder,
    UpsertResult,
    event_from_row,
    lenient_text,
    payload_digest,
    payload_text,
    row_as_json,
)
from edged.journal.writer import TxBase

log = logging.getLogger(__name__)

COMMAND_KINDS = ("accept", "cancel", "status", "catalog", "availability")
# Tables whose rows are decoded, the column that identifies a row in each, its decoder.
ROW_KEYS = {"orders": "id", "events": "seq", "outbox": "id"}
DECODERS: dict[str, Callable[[sqlite3.Row], object]] = {
    "orders": StoredOrder.from_row,
    "events": event_from_row,
    "outbox": Command.from_row,
}


class Tx(TxBase):
    """A transaction on the writer thread; passed to :meth:`Journal.transaction` callbacks."""

    def append_event(self, kind: str, order_id: int | None, data: dict[str, Any]) -> Event:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        cur = self.conn.execute(
            "INSERT INTO events (ts, kind, order_id, data) VALUES (?, ?, ?, ?)",
            (self.now, kind, order_id, text),
        )
        assert cur.lastrowid is not None
        event = Event(seq=cur.lastrowid, ts=self.now, kind=kind, order_id=order_id, data=data)
        self.events.append(event)
        return event

    def set_cursor(self, consumer: str, seq: int, *, lazy: bool = False) -> None:
        """Advance ``consumer``'s cursor in this transaction; ``lazy`` when no side effect
        depends on it (written with this commit if it changes anything, else soon)."""
        if lazy:
            self.lazy_cursors[consumer] = seq
            return
        self.lazy_cursors.pop(consumer, None)
        self.conn.execute(
            "INSERT INTO cursors (consumer, seq) VALUES (?, ?) "
            "ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
            (consumer, seq),
        )

    def get_order(self, order_id: int) -> StoredOrder | None:
        """The order as stored; a row that cannot be decoded is quarantined (None)."""
        row = self.conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            return None
        try:
            return StoredOrder.from_row(row)
        except RowError as exc:
            quarantine_row(self.conn, "orders", row, str(exc), self.now)
            return None

    def upsert_order(self, order: OrderRecord, *, reopen: bool = False) -> UpsertResult:
        """Store ``order``; append ``order.new`` / ``order.status`` events when they apply.
        The same order again, unchanged, writes nothing.

        A final order never moves back to an open status, unless ``reopen``: the order is
        Sinqro's own answer to ``GET /orders/{id}``, which corrects a final status the box
        should never have stored (its ``order.status`` event then says ``reopened``)."""
        # Only what the decision needs: the old payload is never decoded on this hot path.
        old = self.execute(
            "SELECT status, is_final, first_seen, updated, acknowledged, digest"
            " FROM orders WHERE id = ?",
            (order.id,),
        ).fetchone()

        def stored(first_seen: float, updated: float, acknowledged: bool) -> StoredOrder:
            return StoredOrder(
                id=order.id,
                type=order.type,
                status=order.status,
                is_final=order.is_final,
                code=order.code,
                execution_time=order.execution_time,
                payload=order.raw,
                first_seen=first_seen,
                updated=updated,
                acknowledged=acknowledged,
            )

        digest = payload_digest(order.raw)
        fields = (
            order.type,
            order.status,
            int(order.is_final),
            order.code,
            order.execution_time,
            payload_text(order.raw, order.status),
            digest,
        )
        if old is None:
            self.execute(
                "INSERT INTO orders (type, status, is_final, code, execution_time, payload,"
                " digest, first_seen, updated, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, self.now, self.now, order.id),
            )
            event = self.append_event(
                ev.ORDER_NEW,
                order.id,
                {"type": order.type, "status": order.status, "code": order.code},
            )
            return UpsertResult(
                stored(self.now, self.now, False), new=True, status_changed=False, events=[event]
            )
        old_status, old_final, first_seen, updated, acknowledged, old_digest = old
        # A final order never moves back: a late or replayed frame must not revive it.
        # Only Sinqro's direct answer may (``reopen``).
        reopened = bool(old_final) and not order.is_final
        if reopened and not reopen:
            current = self.get_order(order.id)
            if current is None:  # its row could not be decoded: quarantined, store afresh
                return self.upsert_order(order)
            return UpsertResult(current, new=False, status_changed=False, events=[])
        changed = old_status != order.status
        if not changed and old_digest == digest and bool(old_final) == order.is_final:
            return UpsertResult(
                stored(first_seen, updated, bool(acknowledged)),
                new=False,
                status_changed=False,
                events=[],
            )
        self.execute(
            "UPDATE orders SET type = ?, status = ?, is_final = ?, code = ?, execution_time = ?,"
            " payload = ?, digest = ?, updated = ? WHERE id = ?",
            (*fields, self.now, order.id),
        )
        new_events = []
        if changed or reopened:
            data: dict[str, Any] = {
                "status": order.status,
                "previous": old_status,
                "type": order.type,
                "code": order.code,
                "final": order.is_final,
            }
            if reopened:
                data["reopened"] = True
            new_events.append(self.append_event(ev.ORDER_STATUS, order.id, data))
            changed = True
        result = stored(first_seen, self.now, bool(acknowledged))
        return UpsertResult(result, new=False, status_changed=changed, events=new_events)

    def live_counts(self) -> tuple[int, int]:
        """``(waiting orders, queued commands)``: both from small indexed ranges, cheap
        enough for every write."""
        waiting = self.execute(
            "SELECT COUNT(*) FROM orders WHERE is_final = 0 AND status = 'waiting_sp_validation'"
        ).fetchone()[0]
        queued = self.execute(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'sending')"
        ).fetchone()[0]
        return int(waiting), int(queued)

    def enqueue_command(
        self,
        order_id: int,
        kind: str,
        params: dict[str, Any],
        *,
        source: str,
        key: str | None = None,
    ) -> tuple[Command, bool]:
        """Outbox row plus its ``command.queued`` event (see :meth:`Journal.enqueue_command`)."""
        if kind not in COMMAND_KINDS:
            raise ValueError(f"unknown command kind {kind!r}")
        if key is not None:
            row = self.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return Command.from_row(row), False
        cur = self.execute(
            "INSERT INTO outbox (key, order_id, kind, params, source, state, created, updated)"
            " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
            (key, order_id, kind, json.dumps(params), source, self.now, self.now),
        )
        command_id = cur.lastrowid
        self.append_event(
            ev.COMMAND_QUEUED,
            order_id,
            {"command_id": command_id, "kind": kind, "params": params, "source": source},
        )
        row = self.execute("SELECT * FROM outbox WHERE id = ?", (command_id,)).fetchone()
        return Command.from_row(row), True


def quarantine_row(
    conn: sqlite3.Connection, table: str, row: sqlite3.Row, error: str, now: float
) -> None:
    """Move a row that cannot be decoded out of ``table`` into ``quarantine``, and log it.

    Only if it is still there and still cannot be decoded: two readers may have met the
    same row, and the order may have been stored afresh in between."""
    key_column = ROW_KEYS[table]
    key = row[key_column]
    conn.text_factory = lenient_text
    try:
        current = conn.execute(f"SELECT * FROM {table} WHERE {key_column} = ?", (key,)).fetchone()
    finally:
        conn.text_factory = str
    if current is None:
        return
    try:
        DECODERS[table](current)
    except RowError:
        row = current
    else:
        return
    conn.execute(
        "INSERT INTO quarantine (source, row_key, row, error, ts) VALUES (?, ?, ?, ?, ?)",
        (table, str(key), row_as_json(row), error, now),
    )
    conn.execute(f"DELETE FROM {table} WHERE {key_column} = ?", (key,))
    log.error("journal: %s row %s cannot be decoded (%s); moved to quarantine", table, key, error)
