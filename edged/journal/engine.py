"""The journal's machinery: one SQLite connection on one thread, and what it tells.

:class:`JournalEngine` opens the journal (creating, migrating or healing it, see
:mod:`edged.journal.opening`), runs every read and every transaction on one dedicated
thread with one connection (:mod:`edged.journal.writer`: group commit, lazy cursors), so
fsync never blocks the event loop and writes never interleave. WAL with
``synchronous=FULL``: a commit that returned survives a power cut.

It tells the rest of the box what happened: listeners get the events of each commit at
once, fault listeners hear when writes start failing (disk full, I/O error) and work again,
and :meth:`JournalEngine.wait_for_events` wakes consumers, also for commits of other
processes (the CLI), noticed through ``PRAGMA data_version``. A row that cannot be decoded
is moved to the ``quarantine`` table and left out of the answer.

What the tables mean (orders, the event log, cursors, the outbox, settings) is
:class:`edged.journal.store.Journal`, built on this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from edged.journal.events import Event
from edged.journal.kept import FILE_NAME as KEPT_FILE
from edged.journal.kept import KeptValues
from edged.journal.opening import Recovery, connect, open_or_heal, presize_wal
from edged.journal.rows import RowError, lenient_text
from edged.journal.tx import Tx, quarantine_row
from edged.journal.writer import JournalError, Writer

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

KV_EPOCH = "journal.epoch"
KV_RECOVERED = "journal.recovered"


class JournalEngine:
    """The journal's connection, thread, transactions and notifications. Create with
    :meth:`open` (on :class:`~edged.journal.store.Journal`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = Writer(self._make_tx, self._published, self._on_fault, self._reopen_sync)
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
    ) -> Self:
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
        self.kept.load()
        had_journal = self.kept.get(KV_EPOCH) is not None
        conn, recovery = open_or_heal(self.path, heal=heal, had_journal=had_journal)
        self._writer.conn = conn
        self.recovery = recovery
        epoch = conn.execute("SELECT value FROM kv WHERE key = ?", (KV_EPOCH,)).fetchone()
        self.epoch = str(epoch[0]) if epoch else ""
        if heal and self.epoch:
            self._keep_epoch()
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

    def _reopen_sync(self) -> sqlite3.Connection:
        """This journal opened again after a storage error (on the writer thread): the same
        file, never a new one (a journal that vanished meanwhile is healed at next start)."""
        conn = connect(self.path, check=False, create=False)
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (KV_EPOCH,)).fetchone()
        if row is None or str(row[0]) != self.epoch:
            conn.close()
            raise JournalError(f"{self.path} is no longer the journal this box opened")
        return conn

    def _keep_epoch(self) -> None:
        """Remember beside the pairing that this box has this journal (written only when
        the epoch changed: a new or rebuilt journal)."""
        try:
            if self.kept.set_now(KV_EPOCH, self.epoch):
                log.info("journal: epoch %s kept in %s", self.epoch, self.kept.path.name)
        except OSError as exc:  # the box still starts; a vanished journal goes unnoticed
            log.error("journal: cannot keep the epoch in %s: %s", self.kept.path.name, exc)

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
            log.info("journal: storage works again")
        else:
            what = "reads" if problem.startswith("journal read") else "writes"
            log.error("journal: %s fail: %s", what, problem)
        self.problem = problem
        for listener in list(self._fault_listeners):
            try:
                listener(problem)
            except Exception:
                log.exception("journal: fault listener failed")

    async def _query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        def run(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        return await self._call(run)  # a storage fault reaches the fault listeners

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

        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                seen = await self._call(poll)
            except (JournalError, sqlite3.Error) as exc:
                if not failing:  # once per run of failures, not twice a second
                    log.warning("journal: watch failed: %s", exc)
                failing = True
                continue
            failing = False
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

    # -- events ----------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

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


def _json_or_none(text: object) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
