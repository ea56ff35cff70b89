"""Schema migrations that spare the card: a journal of an older edged keeps its rows and its
numbering, and no commit rewrites the sqlite_sequence page for an event or a print job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edged.journal.opening import split_sql
from edged.journal.schema import LATEST, MIGRATIONS
from edged.journal.store import Journal, Tx


def journal_at(path: Path, version: int) -> sqlite3.Connection:
    """A journal file as an edged at schema ``version`` left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for target in range(1, version + 1):
        for statement in split_sql(MIGRATIONS[target]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def sequence_rows(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    finally:
        conn.close()


async def test_events_and_print_jobs_keep_rows_and_numbers_without_autoincrement(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edged.sqlite3"
    conn = journal_at(path, 4)
    conn.executemany(
        "INSERT INTO events (ts, kind, order_id, data) VALUES (1.0, 'order.new', ?, '{}')",
        [(n,) for n in range(1, 6)],
    )
    conn.execute(
        "INSERT INTO print_jobs (printer, origin, kind, order_id, event_seq, params, state,"
        " created, updated) VALUES ('k', 'k', 'order', 1, 1, '{}', 'done', 1.0, 1.0)"
    )
    conn.close()

    journal = await Journal.open(path)
    try:

        def add(tx: Tx) -> tuple[int, int]:
            event = tx.append_event("order.new", 9, {"type": "delivery"})
            cur = tx.execute(
                "INSERT INTO print_jobs (printer, origin, kind, order_id, event_seq, params,"
                " state, created, updated) VALUES ('k', 'k', 'order', 9, ?, '{}', 'queued',"
                " 2.0, 2.0)",
                (event.seq,),
            )
            assert cur.lastrowid is not None
            return event.seq, cur.lastrowid

        seq, job = await journal.transaction(add)
        events = await journal.read_events(0)
    finally:
        await journal.close()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert (seq, job) == (6, 2)
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == LATEST
        tables = dict(check.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        indexes = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        check.close()
    assert "AUTOINCREMENT" not in tables["events"].upper()
    assert "AUTOINCREMENT" not in tables["print_jobs"].upper()
    assert {"print_jobs_queue", "print_jobs_order"} <= indexes
    # Only the outbox still counts in sqlite_sequence (it can be pruned empty).
    assert set(sequence_rows(path)) <= {"outbox"}


async def test_numbering_goes_on_after_an_older_edged_pruned_every_event(tmp_path: Path) -> None:
    path = tmp_path / "edged.sqlite3"
    conn = journal_at(path, 4)
    conn.executemany(
        "INSERT INTO events (ts, kind, order_id, data) VALUES (1.0, 'order.new', 1, '{}')",
        [()] * 7,
    )
    conn.execute("DELETE FROM events")  # sqlite_sequence still says 7
    conn.close()

    journal = await Journal.open(path)
    try:
        event = await journal.append_event("order.new", 2, {"type": "delivery"})
    finally:
        await journal.close()
    assert event.seq == 8  # never a number a consumer's cursor has already passed
