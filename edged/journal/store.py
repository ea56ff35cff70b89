"""The SQLite journal: the box's single source of truth.

* ``orders``: latest payload and status of every order the box has seen;
* ``events``: append-only log, each row written in the same transaction as the change it
  describes, numbered by ``seq``; the journal's ``epoch`` (a random id made with the
  journal) tells a new journal's numbers from an old one's;
* ``cursors``: how far each consumer (spooler, bridges, ...) has processed the log; a
  consumer advances its cursor in the same transaction as its own side-effect record;
* ``outbox``: commands for Sinqro, written before anything is sent;
* ``kv``: small durable settings; ``quarantine``: rows that could not be decoded.

The pairing and the web admin password live beside the journal in a file of their own
(:meth:`Journal.kept_get`), so a damaged journal replaced by a fresh one keeps them.

All database work runs on one dedicated thread with one connection (see
:mod:`edged.journal.writer`: group commit, lazy cursors), so fsync never blocks the event
loop and writes never interleave. WAL with ``synchronous=FULL``: a commit that returned
survives a power cut. Nothing is written when nothing changed: an order that comes again
unchanged (every status refresh) touches no row. Other processes (the CLI) may write too;
the daemon notices through ``PRAGMA data_version`` and wakes its consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.kept import FILE_NAME as KEPT_FILE
from edged.journal.kept import KeptValues
from edged.journal.opening import Recovery, open_or_heal, presize_wal
from edged.journal.rows import (
    Command,
    RowError,
    StoredOrder,
    UpsertResult,
    event_from_row,
    lenient_text,
)
from edged.journal.tx import COMMAND_KINDS, Tx, quarantine_row
from edged.journal.writer import JournalError, Writer, is_storage_fault
from edged.sinqro.models import Order

__all__ = [
    "COMMAND_KINDS",
    "Command",
    "Journal",
    "JournalError",
    "StoredOrder",
    "Tx",
    "UpsertResult",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

KV_EPOCH = "journal.epoch"
KV_RECOVERED = "journal.recovered"


class Journal:
    """Async facade over the SQLite journal. Create with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = Writer(self._make_tx, self._published, self._on_fault)
        self._last_seq = 0
        self.opened_seq = 0
        self._data_version = 0
        self._changed = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._fault_listeners: list[Callable[[str | None], None]] = []
        self.epoch = ""
        self.problem: str | None = None
        self.recovery: Recovery | None = None
        self.recovered: dict[str, Any] | None = None
        self.kept = KeptValues(path.parent / KEPT_FILE)
        self.quarantined = 0

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str | Path, *, watch_interval: float = 0.5, heal: bool = False
    ) -> Journal:
        """Open (creating or migrating) the journal at ``path``.

        With ``heal`` (the daemon), a damaged journal is moved aside and a fresh one is
        started (:attr:`recovery` says so); without it, a damaged journal raises
        :class:`JournalError`.
        """
        journal = cls(Path(path))
        try:
            await journal._call(lambda: journal._open_sync(heal), barrier=True)
        except BaseException:
            journal._writer.stop()
            raise
        if watch_interval > 0:
            journal._watch_task = asyncio.create_task(
                journal._watch_other_writers(watch_interval), name="journal-watch"
            )
        return journal

    def _open_sync(self, heal: bool) -> None:
        conn, recovery = open_or_heal(self.path, heal=heal)
        self._writer.conn = conn
        self.kept.load()
        self.recovery = recovery
        epoch = conn.execute("SELECT value FROM kv WHERE key = ?", (KV_EPOCH,)).fetchone()
        self.epoch = str(epoch[0]) if epoch else ""
        if recovery is not None:
            conn.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                (KV_RECOVERED, json.dumps(recovery.to_dict())),
            )
        raw = conn.execute("SELECT value FROM kv WHERE key = ?", (KV_RECOVERED,)).fetchone()
        self.recovered = _json_or_none(raw[0]) if raw else None
        self._last_seq = self._max_seq_sync(conn)
        # Where a consumer without a cursor starts (see ensure_cursor).
        self.opened_seq = self._last_seq
        self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        if heal:  # the daemon, which keeps the journal open; not a short CLI command
            presize_wal(conn, self.path)

    async def close(self) -> None:
        """Stop the watcher, write what waits, checkpoint and close; safe to call twice."""
        if self._watch_task:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        if self._writer.conn is not None:
            await self._call(self._close_sync, barrier=True)
        self._writer.stop()
        await asyncio.to_thread(self._writer.join, 10)

    def _close_sync(self) -> None:
        conn = self._writer.conn
        if conn is None:
            return
        self._writer._flush_lazy()
        # Fold the WAL back so the file alone is a complete copy (e.g. for backups).
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        self._writer.conn = None

    # -- plumbing --------------------------------------------------------------------------

    def _make_tx(self, conn: sqlite3.Connection) -> Tx:
        at = self.recovered.get("at") if self.recovered else None
        return Tx(conn, self.epoch, float(at) if isinstance(at, (int, float)) else None)

    async def _call(self, fn: Callable[..., R], *, barrier: bool = False) -> R:
        """Run ``fn(conn)`` (a read) or ``fn()`` (a barrier) on the journal thread."""
        result: R = await self._writer.submit("barrier" if barrier else "read", fn)
        return result

    def _connection(self) -> sqlite3.Connection:
        return self._writer._connection()

    @property
    def write_failures(self) -> int:
        """Writes that failed (disk full, I/O error...) since the journal was opened."""
        return self._writer.write_failures

    @property
    def commits(self) -> int:
        return self._writer.commits

    async def transaction(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn(tx)`` on the writer thread in one transaction; all or nothing.

        Transactions that wait together share one commit (group commit), each in its own
        savepoint: ``fn`` gets its own result or its own error either way. Raises
        :class:`JournalError` when the database refuses the write (disk full...).
        """
        result: T = await self._writer.submit("write", fn)
        return result

    def _published(self, new_events: list[Event]) -> None:
        self._last_seq = max(self._last_seq, new_events[-1].seq)
        self._wake()
        for listener in list(self._listeners):
            try:
                listener(new_events)
            except Exception:
                log.exception("journal: event listener failed")

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def add_listener(self, fn: Callable[[list[Event]], None]) -> None:
        """Call ``fn(events)`` on the loop right after events are committed (low latency)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[list[Event]], None]) -> None:
        """Stop calling ``fn`` (a stopped part's listener); unknown ``fn`` is ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def add_fault_listener(self, fn: Callable[[str | None], None]) -> None:
        """Call ``fn(problem)`` when writes start failing (text) or work again (None)."""
        self._fault_listeners.append(fn)

    def _on_fault(self, error: BaseException | None) -> None:
        problem = None if error is None else str(error)
        if problem == self.problem:
            return
        if problem is None:
            log.info("journal: writes work again")
        else:
            log.error("journal: writes fail: %s", problem)
        self.problem = problem
        for listener in list(self._fault_listeners):
            try:
                listener(problem)
            except Exception:
                log.exception("journal: fault listener failed")

    async def _query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        def run(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        try:
            return await self._call(run)
        except JournalError as exc:
            if is_storage_fault(exc):
                self._on_fault(exc)
            raise

    async def _decoded(
        self, table: str, sql: str, params: Any, decode: Callable[[sqlite3.Row], R]
    ) -> list[R]:
        """Rows of ``table`` decoded; a row that cannot be is quarantined and left out."""

        def run(conn: sqlite3.Connection) -> tuple[list[R], list[tuple[sqlite3.Row, str]]]:
            try:
                rows = conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                conn.text_factory = lenient_text
                try:
                    rows = conn.execute(sql, params).fetchall()
                finally:
                    conn.text_factory = str
            good: list[R] = []
            bad: list[tuple[sqlite3.Row, str]] = []
            for row in rows:
                try:
                    good.append(decode(row))
                except RowError as exc:
                    bad.append((row, str(exc)))
            return good, bad

        good, bad = await self._call(run)
        if bad:
            await self._quarantine(table, bad)
        return good

    async def _quarantine(self, table: str, bad: list[tuple[sqlite3.Row, str]]) -> None:
        def run(tx: Tx) -> None:
            for row, error in bad:
                quarantine_row(tx.conn, table, row, error, tx.now)

        try:
            await self.transaction(run)
        except JournalError as exc:
            log.error("journal: cannot quarantine %d %s row(s) yet: %s", len(bad), table, exc)
            return
        self.quarantined += len(bad)

    def _max_seq_sync(self, conn: sqlite3.Connection | None = None) -> int:
        row = (conn or self._connection()).execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    async def _watch_other_writers(self, interval: float) -> None:
        """Wake consumers when another process (the CLI) committed to the journal."""

        def poll(conn: sqlite3.Connection) -> tuple[int, int] | None:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return None
            self._data_version = version
            return version, self._max_seq_sync(conn)

        while True:
            await asyncio.sleep(interval)
            try:
                seen = await self._call(poll)
            except (JournalError, sqlite3.Error) as exc:
                log.warning("journal: watch failed: %s", exc)
                continue
            if seen is not None:
                self._last_seq = max(self._last_seq, seen[1])
                self._wake()

    # -- health ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """Round-trip through the writer thread; raises if the journal is unusable."""
        await self._query("SELECT 1")

    async def integrity_check(self) -> str:
        rows = await self._query("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows)

    def check(self) -> None:
        """Raise :class:`JournalError` while writes fail (for ``/health``)."""
        if self.problem is not None:
            raise JournalError(self.problem)

    async def dismiss_recovery(self) -> None:
        """The owner has seen that the journal was rebuilt: stop telling."""
        await self.kv_set(KV_RECOVERED, None)
        self.recovered = None

    # -- orders ----------------------------------------------------------------------------

    async def upsert_order(self, order: Order) -> UpsertResult:
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

    @property
    def last_seq(self) -> int:
        return self._last_seq

    async def append_event(self, kind: str, order_id: int | None, data: dict[str, Any]) -> Event:
        return await self.transaction(lambda tx: tx.append_event(kind, order_id, data))

    async def read_events(self, after: int, limit: int = 256) -> list[Event]:
        return await self._decoded(
            "events",
            "SELECT seq, ts, kind, order_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
            event_from_row,
        )

    async def wait_for_events(self, after: int, timeout: float | None = None) -> bool:
        """Return once an event with ``seq > after`` exists (True) or ``timeout`` passes."""
        while self._last_seq <= after:
            changed = self._changed
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                return self._last_seq > after
        return True

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

    async def pending_commands(self) -> list[Command]:
        """Commands not finished yet (queued, or caught mid-send by a crash), oldest first."""
        return await self._commands(
            "SELECT * FROM outbox WHERE state IN ('queued', 'sending') ORDER BY id"
        )

    async def recent_commands(self, limit: int = 100) -> list[Command]:
        return await self._commands("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,))

    async def mark_sending(self, command_id: int) -> None:
        """Record that a send is about to start (so a crash mid-send is detectable)."""
        await self.transaction(
            lambda tx: tx.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated = ?"
                " WHERE id = ?",
                (tx.now, command_id),
            )
        )

    async def requeue_command(self, command_id: int, error: str) -> None:
        """Back to the queue after a transient failure (network down, 5xx)."""
        await self.transaction(
            lambda tx: tx.execute(
                "UPDATE outbox SET state = 'queued', error = ?, updated = ? WHERE id = ?",
                (error, tx.now, command_id),
            )
        )

    async def finish_command(
        self,
        command: Command,
        *,
        ok: bool,
        order: Order | None = None,
        error_code: str | None = None,
        error: str | None = None,
    ) -> dict[str, int]:
        """Close a command: state, its ``command.done``/``command.failed`` event and the
        order Sinqro returned, all in one transaction.

        Returns the journal's counts as of that transaction, so a caller can publish them
        before anyone woken by the event looks (see :meth:`counts`).
        """

        def run(tx: Tx) -> dict[str, int]:
            tx.execute(
                "UPDATE outbox SET state = ?, error_code = ?, error = ?, updated = ? WHERE id = ?",
                ("done" if ok else "failed", error_code, error, tx.now, command.id),
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


def _json_or_none(text: object) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
