"""The journal's one thread: every read and write on one SQLite connection, with group commit.

Work is queued from the event loop and answered through asyncio futures, in the order it
was queued. Transactions that wait next to each other in the queue run as **one** SQLite
transaction, each inside its own savepoint:

* a lone transaction commits at once: nothing waits for company, so no latency is added;
* transactions that queued up while the previous commit was being fsynced (a reconnect's
  catch-up, a burst, the spooler and the sender reacting to the same order) share one
  commit, so one fsync and one copy of each page they touch go to the card;
* each caller still gets its own result or its own error: a callback that raises is rolled
  back to its savepoint and the others commit. If SQLite drops the whole transaction (disk
  full, I/O error), every other caller's work is run again on its own, so a caller only ever
  sees the error its own work met.

Storage that fails (an I/O error, a card that went away) is the journal's own error,
:class:`JournalError`, for reads as for writes, and the fault listeners hear of it. After an
I/O error the connection is opened again, with backoff, before the next work: a card that
comes back (or is mounted again) is used again without a restart. A reopen never creates a
journal: a file that is gone stays an error until the next start (which heals it).

Lazy cursors: a consumer whose side effect is not in the journal (the MQTT and serial
bridges publish; the spooler, when it planned nothing) may advance its cursor lazily. The
new value is written with the next commit that changes something anyway, or by itself
after :data:`LAZY_FLUSH` seconds, or at close: no fsync of its own on the hot path. A crash
only means a few events are delivered again, which consumers already de-duplicate by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edged.journal.events import Event

log = logging.getLogger(__name__)

MAX_GROUP = 128  # transactions in one commit; bounds the first caller's wait in a burst
LAZY_FLUSH = 5.0  # seconds a lazy cursor may wait for a commit to ride along with
REOPEN_FIRST = 0.5  # seconds before the first reopen after an I/O error; doubles each time
REOPEN_MAX = 30.0
# SQLite's primary result codes after which the connection itself is suspect.
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 14, 26
_REOPEN_CODES = (SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB)

Kind = Literal["read", "write", "barrier"]


class JournalError(RuntimeError):
    """The journal could not store something (disk full, I/O error, corrupt file)."""


def needs_reopen(exc: BaseException) -> bool:
    """An error after which the connection may be dead (I/O error, the card remounted)."""
    cause = exc.__cause__ if isinstance(exc, JournalError) else exc
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _REOPEN_CODES


def is_storage_fault(exc: BaseException) -> bool:
    """An error that says the storage itself is in trouble (full, I/O, corrupt, locked),
    as opposed to a bug in one caller's SQL (constraint, misuse)."""
    if isinstance(exc, JournalError):
        exc = exc.__cause__ or exc
    benign = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, benign)


class TxBase:
    """A transaction on the writer thread (``Journal``'s ``Tx`` adds the operations)."""

    def __init__(
        self, conn: sqlite3.Connection, epoch: str = "", recovered_at: float | None = None
    ) -> None:
        self.conn = conn
        self.now = time.time()
        self.epoch = epoch
        # When this journal replaced a damaged one (unix time), until the owner dismissed it:
        # orders older than that may have printed before.
        self.recovered_at = recovered_at
        self.events: list[Event] = []
        self.lazy_cursors: dict[str, int] = {}

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


@dataclass
class _Work:
    kind: Kind
    fn: Callable[..., Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _Outcome:
    work: _Work
    value: Any = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)


_STOP = object()
_TICK = object()  # wakes the thread so it notices a new lazy cursor's deadline


class _Stopped(Exception):
    """The writer thread was asked to stop."""


class Writer:
    """Owns the thread and the connection. ``make_tx(conn)`` builds each callback's Tx;
    ``on_commit(events, outcomes)`` runs on the loop after each commit (see Journal);
    ``reopen()`` opens the journal again after an I/O error (None: never)."""

    def __init__(
        self,
        make_tx: Callable[[sqlite3.Connection], TxBase],
        on_commit: Callable[[list[Event]], None],
        on_fault: Callable[[BaseException | None], None],
        reopen: Callable[[], sqlite3.Connection] | None = None,
    ) -> None:
        self.conn: sqlite3.Connection | None = None
        self._make_tx = make_tx
        self._on_commit = on_commit
        self._on_fault = on_fault
        self._reopen = reopen
        self._reopen_at: float | None = None  # monotonic time of the next reopen
        self._reopen_delay = REOPEN_FIRST
        self.reopens = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lazy: dict[str, int] = {}
        self._lazy_since: float | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        self.grouped = 0  # transactions that shared a commit with another
        self.write_failures = 0
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    # -- from the event loop -----------------------------------------------------------------

    def submit(self, kind: Kind, fn: Callable[..., Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Work(kind, fn, loop, future))
        return future

    def defer_cursor(self, consumer: str, seq: int) -> None:
        """Remember a lazy cursor; it is written with the next commit (or soon)."""
        with self._lock:
            self._lazy[consumer] = seq
            if self._lazy_since is None:
                self._lazy_since = time.monotonic()
        self._queue.put(_TICK)

    def forget_cursor(self, consumer: str) -> None:
        """A durable write of this cursor supersedes its lazy value."""
        with self._lock:
            self._lazy.pop(consumer, None)

    def lazy_cursor(self, consumer: str) -> int | None:
        with self._lock:
            return self._lazy.get(consumer)

    def stop(self) -> None:
        self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- on the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        writes: list[_Work] = []  # transactions waiting next to each other in the queue
        while True:
            try:
                writes = self._step(writes)
            except _Stopped:
                return
            except BaseException:  # a bug here must not leave every caller waiting forever
                log.exception("journal: writer step failed")
                self._answer([_Outcome(w, error=JournalError("journal failed")) for w in writes])
                writes = []

    def _step(self, writes: list[_Work]) -> list[_Work]:
        """Take the next item and do what it says; returns the writes still waiting.
        Raises :class:`_Stopped` after the stop item."""
        if writes:
            item = self._get(0)
            if item is None:  # nothing more waits: commit at once
                self._commit(writes)
                return []
        else:
            item = self._next()
            if item is None or item is _TICK:
                self._maybe_flush_lazy()
                return []
        if item is _STOP:
            self._commit(writes)
            self._flush_lazy()
            raise _Stopped
        if item is _TICK:
            return writes
        assert isinstance(item, _Work)
        if item.kind == "write":
            writes.append(item)
            if len(writes) >= MAX_GROUP:
                self._commit(writes)
                return []
            return writes
        # Reads and barriers (open, close) keep their place in line: whoever asks after
        # a write was queued sees it committed.
        self._commit(writes)
        self._answer([_Outcome(item, *self._call(item))])
        return []

    def _get(self, timeout: float) -> object | None:
        try:
            if timeout <= 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _next(self) -> object | None:
        """The next item; None when a lazy cursor is due before one arrives."""
        with self._lock:
            since = self._lazy_since
        if since is None:
            return self._queue.get()
        return self._get(since + LAZY_FLUSH - time.monotonic())

    def _call(self, work: _Work) -> tuple[Any, BaseException | None]:
        try:
            if work.kind == "barrier":
                return work.fn(), None
            self._maybe_reopen()
            value = work.fn(self._connection())
        except sqlite3.Error as exc:
            error = JournalError(f"journal read failed: {exc}")
            error.__cause__ = exc
            if work.kind == "read" and is_storage_fault(exc):
                self._fault(error)
            return None, error
        except BaseException as exc:
            return None, exc
        return value, None

    # -- a connection that failed --------------------------------------------------------------

    def _maybe_reopen(self) -> None:
        """After an I/O error, open the journal again once the backoff has passed."""
        at = self._reopen_at
        if at is None or self._reopen is None or time.monotonic() < at:
            return
        try:
            conn = self._reopen()
        except (sqlite3.Error, JournalError, OSError) as exc:
            self._reopen_delay = min(self._reopen_delay * 2, REOPEN_MAX)
            self._reopen_at = time.monotonic() + self._reopen_delay
            log.warning("journal: cannot open it again yet: %s", exc)
            return
        old, self.conn = self.conn, conn
        if old is not None:
            with contextlib.suppress(sqlite3.Error):
                old.close()
        self._reopen_at = None
        self._reopen_delay = REOPEN_FIRST
        self.reopens += 1
        log.info("journal: opened again after a storage error")

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise JournalError("journal is closed")
        return self.conn

    def _commit(self, writes: list[_Work]) -> None:
        """Run ``writes`` as one transaction, one savepoint each, and answer every caller."""
        if not writes:
            return
        try:
            self._maybe_reopen()
            conn = self._connection()
            changes = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, JournalError) as exc:
            self._fail_all(writes, exc)
            return
        outcomes: list[_Outcome] = []
        lazy: dict[str, int] = {}
        for index, work in enumerate(writes):
            tx = self._make_tx(conn)
            try:
                conn.execute("SAVEPOINT work")
            except sqlite3.Error as exc:  # the storage gave up between two callers
                self._abandon(conn)
                self._answer([o for o in outcomes if o.error is not None])
                self._fail_all([o.work for o in outcomes if o.error is None], exc)
                self._fail_all(writes[index:], exc)
                return
            try:
                value = work.fn(tx)
                conn.execute("RELEASE work")
            except BaseException as exc:
                error = self._as_journal_error(exc, "write")
                if not conn.in_transaction:
                    # SQLite gave the whole transaction up: this caller gets its error, the
                    # others' work runs again without it.
                    self._answer([_Outcome(work, error=error)])
                    self._commit([o.work for o in outcomes] + writes[index + 1 :])
                    return
                try:
                    conn.execute("ROLLBACK TO work")
                    conn.execute("RELEASE work")
                except sqlite3.Error as again:
                    self._abandon(conn)
                    self._answer([o for o in outcomes if o.error is not None])
                    self._answer([_Outcome(work, error=error)])
                    self._fail_all([o.work for o in outcomes if o.error is None], again)
                    self._fail_all(writes[index + 1 :], again)
                    return
                outcomes.append(_Outcome(work, error=error))
                continue
            lazy.update(tx.lazy_cursors)
            outcomes.append(_Outcome(work, value=value, events=tx.events))
        for consumer, seq in lazy.items():
            self.defer_cursor(consumer, seq)
        changed = conn.total_changes != changes
        try:
            flushed = self._write_lazy(conn) if changed else {}
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abandon(conn)
            ok = [o.work for o in outcomes if o.error is None]
            if len(ok) > 1:
                # Whose work made the commit fail is unknown: each runs again alone.
                self._answer([o for o in outcomes if o.error is not None])
                for work in ok:
                    self._commit([work])
                return
            self._answer([o for o in outcomes if o.error is not None])
            self._fail_all(ok, exc)
            return
        self._lazy_written(flushed)
        self.commits += 1
        if len(outcomes) > 1:
            self.grouped += len(outcomes)
        if changed:
            self._fault(None)
        self._answer(outcomes)

    @staticmethod
    def _abandon(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _as_journal_error(self, exc: BaseException, what: str) -> BaseException:
        if not isinstance(exc, sqlite3.Error):
            return exc
        error = JournalError(f"journal {what} failed: {exc}")
        error.__cause__ = exc
        self.write_failures += 1
        if is_storage_fault(exc):
            self._fault(error)
        return error

    def _fail_all(self, writes: list[_Work], exc: BaseException) -> None:
        if not writes:
            return
        error = exc
        if not isinstance(exc, JournalError):
            error = JournalError(f"journal write failed: {exc}")
            error.__cause__ = exc
        self.write_failures += len(writes)
        if is_storage_fault(exc):
            self._fault(error)
        self._answer([_Outcome(w, error=error) for w in writes])

    def _fault(self, error: BaseException | None) -> None:
        """Tell the loop storage fails (``error``) or works again (None: only a commit
        that wrote says so; a read that works may have come from SQLite's own cache)."""
        if error is not None and needs_reopen(error) and self._reopen_at is None:
            self._reopen_at = time.monotonic() + self._reopen_delay
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_fault, error)

    # -- lazy cursors --------------------------------------------------------------------------

    def _write_lazy(self, conn: sqlite3.Connection) -> dict[str, int]:
        with self._lock:
            pending = dict(self._lazy)
        for consumer, seq in pending.items():
            conn.execute(
                "INSERT INTO cursors (consumer, seq) VALUES (?, ?) "
                "ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
                (consumer, seq),
            )
        return pending

    def _lazy_written(self, flushed: dict[str, int]) -> None:
        with self._lock:
            for consumer, seq in flushed.items():
                if self._lazy.get(consumer) == seq:
                    del self._lazy[consumer]
            self._lazy_since = time.monotonic() if self._lazy else None

    def _maybe_flush_lazy(self) -> None:
        with self._lock:
            due = self._lazy_since is not None and (
                time.monotonic() - self._lazy_since >= LAZY_FLUSH
            )
        if due:
            self._flush_lazy()

    def _flush_lazy(self) -> None:
        """Write the lazy cursors in a transaction of their own."""
        with self._lock:
            if not self._lazy:
                self._lazy_since = None
                return
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            flushed = self._write_lazy(conn)
            conn.execute("COMMIT")
        except (sqlite3.Error, JournalError) as exc:
            conn_ = self.conn
            with contextlib.suppress(sqlite3.Error):
                if conn_ is not None and conn_.in_transaction:
                    conn_.execute("ROLLBACK")
            log.warning("journal: cannot save consumer cursors yet: %s", exc)
            with self._lock:
                self._lazy_since = time.monotonic()  # try again in LAZY_FLUSH seconds
            return
        self._lazy_written(flushed)

    # -- answers -------------------------------------------------------------------------------

    def _answer(self, outcomes: list[_Outcome]) -> None:
        """Complete the callers' futures on their loop; then publish the committed events."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome.work.loop, []).append(outcome)
        for loop, group in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(self._deliver, group)

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        # The callers first, then the listeners: a caller runs its next step (e.g. sets
        # counts in the box state) before anyone its events wake up.
        events: list[Event] = []
        for outcome in outcomes:
            future = outcome.work.future
            events += outcome.events
            if future.cancelled():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.value)
        if events:
            self._on_commit(events)
