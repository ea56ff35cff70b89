"""The SQLite journal: the box's single source of truth.

* ``orders``: latest payload and status of every order the box has seen;
* ``events``: append-only log, each row written in the same transaction as the change it
  describes, numbered by ``seq``;
* ``cursors``: how far each consumer (spooler, bridges, ...) has processed the log; a
  consumer advances its cursor in the same transaction as its own side-effect record;
* ``outbox``: commands for Sinqro, written before anything is sent;
* ``kv``: small durable settings (pairing, web admin).

All database work runs on one dedicated thread with one connection, so fsync never blocks
the event loop and writes never interleave. WAL with ``synchronous=FULL``: a commit that
returned survives a power cut. Other processes (the CLI) may write too; the daemon notices
through ``PRAGMA data_version`` and wakes its consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.schema import LATEST, MIGRATIONS
from edged.sinqro.models import Order, parse_order

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMAND_KINDS = ("accept", "cancel", "status", "catalog")


class JournalError(RuntimeError):
    """The journal could not store something (disk full, I/O error, corrupt file)."""


@dataclass(frozen=True)
class StoredOrder:
    """An order row."""

    id: int
    type: str
    status: str
    is_final: bool
    code: str
    execution_time: str
    payload: dict[str, Any]
    first_seen: float
    updated: float
    acknowledged: bool

    @property
    def order(self) -> Order:
        return parse_order(self.payload)

    @property
    def is_waiting(self) -> bool:
        return self.status == "waiting_sp_validation"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredOrder:
        return cls(
            id=row["id"],
            type=row["type"],
            status=row["status"],
            is_final=bool(row["is_final"]),
            code=row["code"],
            execution_time=row["execution_time"],
            payload=json.loads(row["payload"]),
            first_seen=row["first_seen"],
            updated=row["updated"],
            acknowledged=bool(row["acknowledged"]),
        )


@dataclass(frozen=True)
class Command:
    """An outbox row: one staff decision on its way to Sinqro."""

    id: int
    key: str | None
    order_id: int
    kind: str
    params: dict[str, Any]
    source: str
    state: str
    attempts: int
    created: float
    updated: float
    error_code: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Command:
        return cls(
            id=row["id"],
            key=row["key"],
            order_id=row["order_id"],
            kind=row["kind"],
            params=json.loads(row["params"]),
            source=row["source"],
            state=row["state"],
            attempts=row["attempts"],
            created=row["created"],
            updated=row["updated"],
            error_code=row["error_code"],
            error=row["error"],
        )


@dataclass(frozen=True)
class UpsertResult:
    """What storing an order changed."""

    order: StoredOrder
    new: bool
    status_changed: bool
    events: list[Event]


class Tx:
    """A transaction on the writer thread; passed to :meth:`Journal.transaction` callbacks."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.now = time.time()
        self.events: list[Event] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

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

    def set_cursor(self, consumer: str, seq: int) -> None:
        self.conn.execute(
            "INSERT INTO cursors (consumer, seq) VALUES (?, ?) "
            "ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
            (consumer, seq),
        )

    def get_order(self, order_id: int) -> StoredOrder | None:
        row = self.conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return StoredOrder.from_row(row) if row else None

    def upsert_order(self, order: Order) -> UpsertResult:
        """Store ``order``; append ``order.new`` / ``order.status`` events when they apply."""
        # Only what the decision needs: the old payload is never decoded on this hot path.
        old = self.execute(
            "SELECT status, is_final, first_seen, acknowledged FROM orders WHERE id = ?",
            (order.id,),
        ).fetchone()

        def stored(first_seen: float, acknowledged: bool) -> StoredOrder:
            return StoredOrder(
                id=order.id,
                type=order.type,
                status=order.status,
                is_final=order.is_final,
                code=order.code,
                execution_time=order.execution_time,
                payload=order.raw,
                first_seen=first_seen,
                updated=self.now,
                acknowledged=acknowledged,
            )

        fields = (
            order.type,
            order.status,
            int(order.is_final),
            order.code,
            order.execution_time,
            order.to_json(),
        )
        if old is None:
            self.execute(
                "INSERT INTO orders (type, status, is_final, code, execution_time, payload,"
                " first_seen, updated, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, self.now, self.now, order.id),
            )
            event = self.append_event(
                ev.ORDER_NEW,
                order.id,
                {"type": order.type, "status": order.status, "code": order.code},
            )
            return UpsertResult(
                stored(self.now, False), new=True, status_changed=False, events=[event]
            )
        old_status, old_final, first_seen, acknowledged = old
        # A final order never moves back: a late or replayed frame must not revive it.
        if old_final and not order.is_final:
            current = self.get_order(order.id)
            assert current is not None
            return UpsertResult(current, new=False, status_changed=False, events=[])
        changed = old_status != order.status
        self.execute(
            "UPDATE orders SET type = ?, status = ?, is_final = ?, code = ?, execution_time = ?,"
            " payload = ?, updated = ? WHERE id = ?",
            (*fields, self.now, order.id),
        )
        new_events = []
        if changed:
            new_events.append(
                self.append_event(
                    ev.ORDER_STATUS,
                    order.id,
                    {
                        "status": order.status,
                        "previous": old_status,
                        "type": order.type,
                        "code": order.code,
                        "final": order.is_final,
                    },
                )
            )
        result = stored(first_seen, bool(acknowledged))
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


class Journal:
    """Async facade over the SQLite journal. Create with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._conn: sqlite3.Connection | None = None
        self._last_seq = 0
        self.opened_seq = 0
        self._data_version = 0
        self._changed = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[list[Event]], None]] = []
        self.write_failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, watch_interval: float = 0.5) -> Journal:
        """Open (creating or migrating) the journal at ``path``."""
        journal = cls(Path(path))
        await journal._call(journal._open_sync)
        if watch_interval > 0:
            journal._watch_task = asyncio.create_task(
                journal._watch_other_writers(watch_interval), name="journal-watch"
            )
        return journal

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning("journal: WAL not available (mode %s)", mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise JournalError(
                f"{self.path} has schema version {version}, newer than this edged ({LATEST})"
            )
        for target in range(version + 1, LATEST + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("journal: migrated %s to schema version %d", self.path, target)
        self._conn = conn
        self._last_seq = self._max_seq_sync()
        # Where a consumer without a cursor starts (see ensure_cursor).
        self.opened_seq = self._last_seq
        self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]

    async def close(self) -> None:
        """Stop the watcher and close the connection; safe to call twice."""
        if self._watch_task:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        if self._conn is not None:
            await self._call(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            # Fold the WAL back so the file alone is a complete copy (e.g. for backups).
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is closed")
        return self._conn

    def _tx_sync(self, fn: Callable[[Tx], T]) -> tuple[T, list[Event]]:
        conn = self._connection()
        tx = Tx(conn)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(tx)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.write_failures += 1
            raise JournalError(f"journal write failed: {exc}") from exc
        return result, tx.events

    async def transaction(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn(tx)`` on the writer thread in one transaction; all or nothing.

        Raises :class:`JournalError` when the database refuses the write (disk full...).
        """
        result: T
        result, new_events = await self._call(self._tx_sync, fn)
        if new_events:
            self._published(new_events)
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

    async def _query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        def run() -> list[sqlite3.Row]:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"journal read failed: {exc}") from exc

        return await self._call(run)

    def _max_seq_sync(self) -> int:
        row = self._connection().execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    async def _watch_other_writers(self, interval: float) -> None:
        """Wake consumers when another process (the CLI) committed to the journal."""

        def poll() -> tuple[int, int] | None:
            conn = self._connection()
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return None
            self._data_version = version
            return version, self._max_seq_sync()

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

    # -- orders ----------------------------------------------------------------------------

    async def upsert_order(self, order: Order) -> UpsertResult:
        """Store an order seen from any source. The same order twice is one order and one
        ``order.new`` event; a status change appends ``order.status``."""
        return await self.transaction(lambda tx: tx.upsert_order(order))

    async def get_order(self, order_id: int) -> StoredOrder | None:
        rows = await self._query("SELECT * FROM orders WHERE id = ?", (order_id,))
        return StoredOrder.from_row(rows[0]) if rows else None

    async def waiting_orders(self) -> list[StoredOrder]:
        """Orders waiting for the restaurant's decision, oldest first."""
        rows = await self._query(
            "SELECT * FROM orders WHERE status = 'waiting_sp_validation' AND is_final = 0"
            " ORDER BY first_seen, id"
        )
        return [StoredOrder.from_row(r) for r in rows]

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
        rows = await self._query("SELECT * FROM orders WHERE is_final = 0 ORDER BY first_seen, id")
        return [StoredOrder.from_row(r) for r in rows]

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
        return [StoredOrder.from_row(r) for r in await self._query(sql, params)]

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
        rows = await self._query(
            "SELECT seq, ts, kind, order_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [Event.from_row((r[0], r[1], r[2], r[3], r[4])) for r in rows]

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

    async def set_cursor(self, consumer: str, seq: int) -> None:
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
        rows = await self._query("SELECT * FROM outbox WHERE id = ?", (command_id,))
        return Command.from_row(rows[0]) if rows else None

    async def pending_commands(self) -> list[Command]:
        """Commands not finished yet (queued, or caught mid-send by a crash), oldest first."""
        rows = await self._query(
            "SELECT * FROM outbox WHERE state IN ('queued', 'sending') ORDER BY id"
        )
        return [Command.from_row(r) for r in rows]

    async def recent_commands(self, limit: int = 100) -> list[Command]:
        rows = await self._query("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,))
        return [Command.from_row(r) for r in rows]

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
        """Set (or with ``None`` delete) a durable setting."""

        def run(tx: Tx) -> None:
            if value is None:
                tx.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                tx.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

        await self.transaction(run)

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
            events = tx.execute(
                "DELETE FROM events WHERE ts < ? AND seq <= ?",
                (cutoff, low if low is not None else self._last_seq),
            ).rowcount
            return {"orders": orders, "commands": commands, "events": events}

        return await self.transaction(run)

    async def counts(self) -> dict[str, int]:
        """Row counts for status pages and metrics."""
        return await self._call(lambda: _counts(self._connection()))


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


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (our scripts have no ';' inside strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
