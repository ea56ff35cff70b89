"""The SQLite journal: the box's single source of truth.

* ``orders``: latest payload and status of every order the box has seen;
* ``events``: append-only log, each row written in the same transaction as the change it
  describes, numbered by ``seq``; the journal's ``epoch`` (a random id made with the
  journal) tells a new journal's numbers from an old one's;
* ``cursors``: how far each consumer (spooler, bridges, ...) has processed the log; a
  consumer advances its cursor in the same transaction as its own side-effect record;
* ``outbox``: commands for Sinqro, written before anything is sent;
* ``kv``: small durable settings; ``quarantine``: rows that could not be decoded;
* ``catalog``, ``availability_timers``: the selling point's products as last read, and
  what the box puts back on at a time (:mod:`edged.journal.catalog`).

The pairing and the web admin password live beside the journal in a file of their own
(:meth:`Journal.kept_get`), so a damaged journal replaced by a fresh one keeps them.

:class:`Journal` is what the box asks of these tables; how it reaches them (one thread,
one connection, group commit, listeners, faults) is :mod:`edged.journal.engine`. Nothing
is written when nothing changed: an order that comes again unchanged (every status
refresh) touches no row.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from edged.journal import events as ev
from edged.journal.catalog import CatalogStore
from edged.journal.engine import KV_RECOVERED
from edged.journal.events import Event
from edged.journal.rows import Command, OrderRecord, StoredOrder, UpsertResult, event_from_row
from edged.journal.tx import COMMAND_KINDS, Tx
from edged.journal.writer import JournalError

__all__ = [
    "COMMAND_KINDS",
    "Command",
    "Journal",
    "JournalError",
    "StoredOrder",
    "Tx",
    "UpsertResult",
]


class Journal(CatalogStore):
    """Async facade over the SQLite journal. Create with :meth:`open`."""

    # -- the rebuilt-journal notice --------------------------------------------------------

    async def dismiss_recovery(self) -> None:
        """The owner has seen that the journal was rebuilt: stop telling."""
        await self.kv_set(KV_RECOVERED, None)
        self.recovered = None

    # -- orders ----------------------------------------------------------------------------

    async def upsert_order(self, order: OrderRecord) -> UpsertResult:
        """Store an order seen from any source. The same order twice is one order and one
        ``order.new`` event; a status change appends ``order.status``."""
        return await self.transaction(lambda tx: tx.upsert_order(order))

    async def get_order(self, order_id: int) -> StoredOrder | None:
        rows = await self._orders("SELECT * FROM orders WHERE id = ?", (order_id,))
        return rows[0] if rows else None

    async def _orders(self, sql: str, params: Any = ()) -> list[StoredOrder]:
        return await self._decoded("orders", sql, params, StoredOrder.from_row)

    async def _commands(self, sql: str, params: Any = ()) -> list[Command]:
        return await self._decoded("outbox", sql, params, Command.from_row)

    async def waiting_orders(self) -> list[StoredOrder]:
        """Orders waiting for the restaurant's decision, oldest first."""
        return await self._orders(
            "SELECT * FROM orders WHERE status = 'waiting_sp_validation' AND is_final = 0"
            " ORDER BY first_seen, id"
        )

    async def waiting_refs(self) -> list[tuple[int, bool]]:
        """``(id, acknowledged)`` of the waiting orders, oldest first: no payloads, so it is
        cheap enough to run on every journal change."""
        rows = await self._query(
            "SELECT id, acknowledged FROM orders"
            " WHERE status = 'waiting_sp_validation' AND is_final = 0 ORDER BY first_seen, id"
        )
        return [(int(r[0]), bool(r[1])) for r in rows]

    async def waiting_times(self) -> list[tuple[int, str, str, float]]:
        """``(id, code, type, first_seen)`` of the waiting orders, oldest first (no payloads:
        the alert rules read it whenever the journal changes)."""
        rows = await self._query(
            "SELECT id, code, type, first_seen FROM orders"
            " WHERE status = 'waiting_sp_validation' AND is_final = 0 ORDER BY first_seen, id"
        )
        return [(int(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows]

    async def orders_seen_since(self, since: float) -> int:
        """How many orders the box first saw at or after ``since`` (unix time)."""
        rows = await self._query("SELECT COUNT(*) FROM orders WHERE first_seen >= ?", (since,))
        return int(rows[0][0])

    async def open_orders(self) -> list[StoredOrder]:
        """Every order that is not final yet, oldest first."""
        return await self._orders("SELECT * FROM orders WHERE is_final = 0 ORDER BY first_seen, id")

    async def list_orders(
        self, *, since: float | None = None, search: str = "", limit: int = 200
    ) -> list[StoredOrder]:
        """Recent orders, newest first; ``search`` matches code, id or payload text."""
        sql = "SELECT * FROM orders WHERE 1 = 1"
        params: list[Any] = []
        if since is not None:
            sql += " AND (first_seen >= ? OR updated >= ?)"
            params += [since, since]
        if search:
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += " AND (code LIKE ? ESCAPE '\\' OR CAST(id AS TEXT) LIKE ? ESCAPE '\\'"
            sql += " OR payload LIKE ? ESCAPE '\\')"
            params += [like, like, like]
        sql += " ORDER BY first_seen DESC, id DESC LIMIT ?"
        params.append(limit)
        return await self._orders(sql, params)

    async def acknowledge(self, order_id: int, source: str) -> bool:
        """Mark an order's alert as silenced; False if unknown or already acknowledged."""

        def run(tx: Tx) -> bool:
            cur = tx.execute(
                "UPDATE orders SET acknowledged = 1 WHERE id = ? AND acknowledged = 0",
                (order_id,),
            )
            if cur.rowcount:
                tx.append_event(ev.ORDER_ACKNOWLEDGED, order_id, {"source": source})
            return bool(cur.rowcount)

        return await self.transaction(run)

    # -- events and cursors ------------------------------------------------------------------

    async def append_event(self, kind: str, order_id: int | None, data: dict[str, Any]) -> Event:
        return await self.transaction(lambda tx: tx.append_event(kind, order_id, data))

    async def read_events(self, after: int, limit: int = 256) -> list[Event]:
        return await self._decoded(
            "events",
            "SELECT seq, ts, kind, order_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
            event_from_row,
        )

    async def get_cursor(self, consumer: str) -> int | None:
        """The consumer's cursor (a lazy value not written yet counts)."""
        lazy = self._writer.lazy_cursor(consumer)
        if lazy is not None:
            return lazy
        rows = await self._query("SELECT seq FROM cursors WHERE consumer = ?", (consumer,))
        return int(rows[0][0]) if rows else None

    async def ensure_cursor(self, consumer: str) -> int:
        """The consumer's cursor; a new consumer starts at the end of the log as it was when
        this process opened the journal: one enabled on an old box does not replay weeks
        of history, and nothing written since the start is missed, however late the
        consumer starts (see :mod:`edged.journal.follower`)."""
        cursor = await self.get_cursor(consumer)
        if cursor is None:
            cursor = self.opened_seq
            await self.set_cursor(consumer, cursor)
        return cursor

    async def set_cursor(self, consumer: str, seq: int, *, lazy: bool = False) -> None:
        """Advance a consumer's cursor. ``lazy``: for consumers whose side effect is not in
        the journal and who de-duplicate (bridges): no commit of its own, the value rides
        with the next one (or is written within seconds); a crash replays a few events."""
        if lazy:
            self._writer.defer_cursor(consumer, seq)
            return
        self._writer.forget_cursor(consumer)
        await self.transaction(lambda tx: tx.set_cursor(consumer, seq))

    # -- outbox ----------------------------------------------------------------------------

    async def enqueue_command(
        self,
        order_id: int,
        kind: str,
        params: dict[str, Any],
        *,
        source: str,
        key: str | None = None,
    ) -> tuple[Command, bool]:
        """Write a command to the outbox with its ``command.queued`` event.

        With a ``key`` the command is idempotent: a repeat returns the first command and
        ``False``. Returns ``(command, created)``.
        """
        return await self.transaction(
            lambda tx: tx.enqueue_command(order_id, kind, params, source=source, key=key)
        )

    async def get_command(self, command_id: int) -> Command | None:
        rows = await self._commands("SELECT * FROM outbox WHERE id = ?", (command_id,))
        return rows[0] if rows else None

    async def command_by_key(self, key: str) -> Command | None:
        """The command enqueued under idempotency ``key``, if any."""
        rows = await self._commands("SELECT * FROM outbox WHERE key = ?", (key,))
        return rows[0] if rows else None

    async def pending_commands(self) -> list[Command]:
        """Commands not finished yet (queued, or caught mid-send by a crash), oldest first."""
        return await self._commands(
            "SELECT * FROM outbox WHERE state IN ('queued', 'sending') ORDER BY id"
        )

    async def recent_commands(self, limit: int = 100) -> list[Command]:
        return await self._commands("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,))

    async def last_command_id(self) -> int:
        """The largest id in the outbox (0 when empty); a newer command's is larger."""
        rows = await self._query("SELECT COALESCE(MAX(id), 0) FROM outbox")
        return int(rows[0][0])

    async def requeue_command(self, command_id: int, error: str) -> None:
        """Back to the queue after a transient failure (network down, 5xx): an attempt
        that may have gone out, counted."""
        await self.transaction(
            lambda tx: tx.execute(
                "UPDATE outbox SET state = 'queued', error = ?, updated = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (error, tx.now, command_id),
            )
        )

    async def finish_command(
        self,
        command: Command,
        *,
        ok: bool,
        order: OrderRecord | None = None,
        error_code: str | None = None,
        error: str | None = None,
        sent: bool = False,
    ) -> dict[str, int]:
        """Close a command: state, its ``command.done``/``command.failed`` event and the
        order Sinqro returned, all in one transaction (``sent``: this outcome answered a
        send, one more attempt).

        Returns the journal's counts as of that transaction, so a caller can publish them
        before anyone woken by the event looks (see :meth:`counts`).
        """

        def run(tx: Tx) -> dict[str, int]:
            tx.execute(
                "UPDATE outbox SET state = ?, error_code = ?, error = ?, updated = ?,"
                " attempts = attempts + ? WHERE id = ?",
                ("done" if ok else "failed", error_code, error, tx.now, int(sent), command.id),
            )
            if order is not None:
                tx.upsert_order(order)
            base = {"command_id": command.id, "kind": command.kind, "source": command.source}
            if ok:
                status = order.status if order is not None else None
                tx.append_event(ev.COMMAND_DONE, command.order_id, {**base, "status": status})
            else:
                tx.append_event(
                    ev.COMMAND_FAILED,
                    command.order_id,
                    {**base, "code": error_code or "ERROR", "message": error or ""},
                )
            return _counts(tx.conn)

        return await self.transaction(run)

    async def queued_count(self) -> int:
        rows = await self._query("SELECT COUNT(*) FROM outbox WHERE state IN ('queued','sending')")
        return int(rows[0][0])

    # -- key/value ---------------------------------------------------------------------------

    async def kv_get(self, key: str) -> str | None:
        rows = await self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def kv_set(self, key: str, value: str | None) -> None:
        """Set (or with ``None`` delete) a durable setting; unchanged, nothing is written."""

        def run(tx: Tx) -> None:
            if value is None:
                tx.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                tx.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    " WHERE value IS NOT excluded.value",
                    (key, value),
                )

        await self.transaction(run)

    async def kept_get(self, key: str) -> str | None:
        """A value kept beside the journal (pairing, admin password), so that it survives
        a journal that had to be replaced. A value an older edged left in ``kv`` moves
        there on first use."""
        value = self.kept.get(key)
        if value is None:
            old = await self.kv_get(key)
            if old is not None:
                await self.kept.set(key, old)
                await self.kv_set(key, None)
                value = old
        return value

    async def kept_set(self, key: str, value: str | None) -> None:
        """Set (``None``: delete) a kept value; written (atomically) only when it changed.

        Raises :class:`JournalError` when the file cannot be written."""
        await self.kept.set(key, value)
        if await self.kv_get(key) is not None:
            await self.kv_set(key, None)  # an older edged's copy must not come back

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, retention_days: int, now: float | None = None) -> dict[str, int]:
        """Delete final orders, finished commands and consumed events older than the
        retention. Events a consumer has not read yet are kept whatever their age."""
        cutoff = (now if now is not None else time.time()) - retention_days * 86400

        def run(tx: Tx) -> dict[str, int]:
            orders = tx.execute(
                "DELETE FROM orders WHERE is_final = 1 AND updated < ?", (cutoff,)
            ).rowcount
            commands = tx.execute(
                "DELETE FROM outbox WHERE state IN ('done','failed') AND updated < ?", (cutoff,)
            ).rowcount
            low = tx.execute("SELECT MIN(seq) FROM cursors").fetchone()[0]
            # The newest event always stays: its seq is where numbering goes on.
            newest = tx.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            keep_from = min(low if low is not None else newest, newest - 1)
            events = tx.execute(
                "DELETE FROM events WHERE ts < ? AND seq <= ?", (cutoff, keep_from)
            ).rowcount
            return {"orders": orders, "commands": commands, "events": events}

        return await self.transaction(run)

    async def counts(self) -> dict[str, int]:
        """Row counts for status pages and metrics."""
        return await self._call(_counts)


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    total, open_, waiting, queued, events = conn.execute(
        "SELECT (SELECT COUNT(*) FROM orders),"
        " (SELECT COUNT(*) FROM orders WHERE is_final = 0),"
        " (SELECT COUNT(*) FROM orders"
        "  WHERE status = 'waiting_sp_validation' AND is_final = 0),"
        " (SELECT COUNT(*) FROM outbox WHERE state IN ('queued','sending')),"
        " (SELECT COUNT(*) FROM events)"
    ).fetchone()
    return {
        "orders": total,
        "open_orders": open_,
        "waiting_orders": waiting,
        "queued_commands": queued,
        "events": events,
    }
