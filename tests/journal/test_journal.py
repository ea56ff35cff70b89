"""The SQLite journal: one order once, events with the change, cursors, outbox, disk full."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.journal import events as ev
from edged.journal.schema import LATEST
from edged.journal.store import Journal, JournalError
from edged.sinqro.models import parse_order


def order(order_id: int, status: str = "waiting_sp_validation", **extra: Any) -> Any:
    final = status in ("finished", "cancelled_by_client", "cancelled_by_sp")
    return parse_order(
        {
            "id": order_id,
            "type": "delivery",
            "status": {"code": status, "isFinalStatus": final},
            "marketOrderCode": f"C{order_id}",
            **extra,
        }
    )


async def test_schema_is_migrated_with_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await Journal.open(path)
    await j.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # Opening again is a no-op migration and keeps the data.
    j = await Journal.open(path)
    assert await j.integrity_check() == "ok"
    await j.close()


async def test_same_order_twice_is_one_order_and_one_new_event(journal: Journal) -> None:
    first = await journal.upsert_order(order(7))
    again = await journal.upsert_order(order(7))
    assert first.new and not again.new
    events = await journal.read_events(0)
    assert [e.kind for e in events] == [ev.ORDER_NEW]
    assert events[0].order_id == 7
    assert (await journal.counts())["orders"] == 1


async def test_status_change_appends_an_event_and_final_orders_never_revive(
    journal: Journal,
) -> None:
    await journal.upsert_order(order(8))
    changed = await journal.upsert_order(order(8, "accepted"))
    assert changed.status_changed
    await journal.upsert_order(order(8, "cancelled_by_client"))
    # A late, replayed frame must not bring a cancelled order back to life.
    late = await journal.upsert_order(order(8, "accepted"))
    assert not late.status_changed
    stored = await journal.get_order(8)
    assert stored is not None and stored.status == "cancelled_by_client" and stored.is_final
    kinds = [(e.kind, e.data.get("status")) for e in await journal.read_events(0)]
    assert kinds == [
        (ev.ORDER_NEW, "waiting_sp_validation"),
        (ev.ORDER_STATUS, "accepted"),
        (ev.ORDER_STATUS, "cancelled_by_client"),
    ]


async def test_committed_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await Journal.open(path)
    await j.upsert_order(order(1))
    await j.set_cursor("spooler", 1)
    await j.enqueue_command(1, "accept", {"delay": None}, source="test")
    await j.close()
    j = await Journal.open(path)
    try:
        assert (await j.get_order(1)) is not None
        assert await j.get_cursor("spooler") == 1
        assert [c.kind for c in await j.pending_commands()] == ["accept"]
        assert j.last_seq == 2
    finally:
        await j.close()


async def test_wait_for_events_wakes_on_commit(journal: Journal) -> None:
    waiter = asyncio.create_task(journal.wait_for_events(0, timeout=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await journal.upsert_order(order(3))
    assert await waiter is True
    assert await journal.wait_for_events(journal.last_seq, timeout=0.05) is False


async def test_another_process_writing_wakes_waiters(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    daemon = await Journal.open(path, watch_interval=0.05)
    cli = await Journal.open(path, watch_interval=0)
    try:
        seq = daemon.last_seq
        waiter = asyncio.create_task(daemon.wait_for_events(seq, timeout=30))
        await cli.upsert_order(order(11))
        assert await waiter is True
        assert [e.order_id for e in await daemon.read_events(seq)] == [11]
    finally:
        await cli.close()
        await daemon.close()


async def test_outbox_key_applies_a_command_once(journal: Journal) -> None:
    await journal.upsert_order(order(5))
    one, created = await journal.enqueue_command(5, "accept", {}, source="mqtt", key="pos:42")
    two, again = await journal.enqueue_command(5, "accept", {}, source="mqtt", key="pos:42")
    assert created and not again and one.id == two.id
    assert len(await journal.pending_commands()) == 1
    assert await journal.last_command_id() == one.id
    await journal.requeue_command(one.id, "timed out")
    pending = await journal.pending_commands()
    assert pending[0].state == "queued" and pending[0].attempts == 1
    await journal.finish_command(pending[0], ok=True, order=order(5, "accepted"), sent=True)
    assert await journal.pending_commands() == []
    done = await journal.get_command(one.id)
    assert done is not None and done.attempts == 2
    kinds = [e.kind for e in await journal.read_events(0)]
    assert kinds == [ev.ORDER_NEW, ev.COMMAND_QUEUED, ev.ORDER_STATUS, ev.COMMAND_DONE]


async def test_consumer_work_and_cursor_commit_together(journal: Journal) -> None:
    await journal.upsert_order(order(9))

    def consume_then_fail(tx: Any) -> None:
        tx.set_cursor("bridge", 1)
        raise RuntimeError("crash between side effect and commit")

    with pytest.raises(RuntimeError):
        await journal.transaction(consume_then_fail)
    assert await journal.get_cursor("bridge") is None


async def test_prune_keeps_open_orders_and_unread_events(journal: Journal) -> None:
    await journal.upsert_order(order(1))
    await journal.upsert_order(order(2))
    await journal.upsert_order(order(2, "finished"))
    await journal.set_cursor("slow-consumer", 1)
    far_future = 10**10
    pruned = await journal.prune(30, now=far_future)
    assert pruned["orders"] == 1
    assert await journal.get_order(1) is not None
    assert await journal.get_order(2) is None
    # Events beyond the slowest cursor are kept for it.
    assert [e.seq for e in await journal.read_events(0)] == [2, 3]


async def test_search_escapes_like_wildcards(journal: Journal) -> None:
    await journal.upsert_order(order(1, comment="sin cebolla"))
    await journal.upsert_order(order(2, comment="100% picante"))
    assert [o.id for o in await journal.list_orders(search="cebolla")] == [1]
    assert [o.id for o in await journal.list_orders(search="%")] == [2]
    # "1_0" would match "100" if "_" were a LIKE wildcard.
    assert await journal.list_orders(search="1_0") == []


@contextlib.contextmanager
def tiny_filesystem(where: Path) -> Iterator[Path]:
    """A real, small filesystem so the journal meets ENOSPC (mounting needs root, as in CI)."""
    assert os.geteuid() == 0, "the disk-full test mounts a small tmpfs and must run as root"
    mount = where / f"tiny-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_disk_full_is_an_error_not_a_crash_and_keeps_what_was_stored(
    tmp_path: Path,
) -> None:
    with tiny_filesystem(tmp_path) as mount:
        j = await Journal.open(mount / "j.sqlite3")
        try:
            stored = 0
            big = "x" * 4000
            with pytest.raises(JournalError):
                for i in range(1, 1000):
                    await j.upsert_order(order(i, comment=big))
                    stored = i
            assert stored > 0
            assert j.write_failures == 1
            # Reads still work, and everything committed before the full disk is there.
            assert (await j.counts())["orders"] == stored
            assert (await j.get_order(stored)) is not None
            assert await j.integrity_check() == "ok"
        finally:
            await j.close()


# -- sparing the card ---------------------------------------------------------------------------


def data_version(path: Path) -> Any:
    """A watcher on another connection: its data_version moves with every commit."""
    conn = sqlite3.connect(path)
    return conn, lambda: conn.execute("PRAGMA data_version").fetchone()[0]


async def test_the_same_order_again_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await Journal.open(path)
    conn, version = data_version(path)
    try:
        await j.upsert_order(order(1, comment="extra cheese"))
        before = version()
        again = await j.upsert_order(order(1, comment="extra cheese"))
        # The same payload with its keys in another order is the same order.
        raw = dict(reversed(list(order(1, comment="extra cheese").raw.items())))
        await j.upsert_order(parse_order(raw))
        await j.kv_set("k", "v")
        mid = version()
        await j.kv_set("k", "v")
        assert not again.new and not again.status_changed and again.events == []
        assert version() == mid and mid == before + 1  # only the first kv_set wrote
        changed = await j.upsert_order(order(1, comment="no cheese"))
        assert version() == mid + 1 and not changed.status_changed
        stored = await j.get_order(1)
        assert stored is not None and stored.payload["comment"] == "no cheese"
    finally:
        conn.close()
        await j.close()


async def test_transactions_waiting_together_share_a_commit_and_keep_their_own_errors(
    journal: Journal,
) -> None:
    await journal.upsert_order(order(1))
    commits = journal.commits

    def boom(tx: Any) -> None:
        tx.append_event("test.note", 1, {"n": "lost"})
        raise RuntimeError("this caller's own bug")

    def duplicate(tx: Any) -> None:
        tx.execute("INSERT INTO orders SELECT * FROM orders WHERE id = 1")

    results = await asyncio.gather(
        *(journal.upsert_order(order(100 + n)) for n in range(20)),
        journal.transaction(boom),
        journal.transaction(duplicate),
        *(journal.upsert_order(order(200 + n)) for n in range(20)),
        return_exceptions=True,
    )
    assert isinstance(results[20], RuntimeError)
    assert isinstance(results[21], JournalError)
    assert all(not isinstance(r, BaseException) and r.new for r in results[:20] + results[22:])
    assert journal.commits - commits < 42, "the writes that waited together shared commits"
    kinds = [e.kind for e in await journal.read_events(0)]
    assert "test.note" not in kinds and kinds.count(ev.ORDER_NEW) == 41
    assert (await journal.counts())["orders"] == 41


async def test_a_lazy_cursor_rides_along_with_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await Journal.open(path)
    conn = sqlite3.connect(path)

    def on_disk() -> Any:
        row = conn.execute("SELECT seq FROM cursors WHERE consumer = 'pos'").fetchone()
        return row[0] if row else None

    try:
        await j.upsert_order(order(1))
        await j.set_cursor("pos", 1, lazy=True)
        assert await j.get_cursor("pos") == 1
        assert on_disk() is None  # no commit of its own
        await j.upsert_order(order(2))
        assert on_disk() == 1
        await j.set_cursor("pos", 2, lazy=True)
    finally:
        await j.close()  # writes what waits
        assert on_disk() == 2
        conn.close()


async def test_rows_that_cannot_be_decoded_are_quarantined_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await Journal.open(path)
    for n in (1, 2, 3):
        await j.upsert_order(order(n))
    await j.enqueue_command(1, "accept", {}, source="test")
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE orders SET payload = '{broken' WHERE id = 1")
    raw.execute("UPDATE orders SET payload = CAST(x'7b22ff22' AS TEXT) WHERE id = 2")  # not UTF-8
    raw.execute("UPDATE events SET data = '[1, 2]' WHERE seq = 3")
    raw.execute("UPDATE outbox SET params = 'nope'")
    raw.close()
    try:
        assert [o.id for o in await j.open_orders()] == [3]
        assert [e.seq for e in await j.read_events(0)] == [1, 2, 4]
        assert await j.pending_commands() == []
        quarantined = await j._query("SELECT source, row_key FROM quarantine ORDER BY id")
        assert [(r[0], r[1]) for r in quarantined] == [
            ("orders", "1"),
            ("orders", "2"),
            ("events", "3"),
            ("outbox", "1"),
        ]
        assert j.quarantined == 4
        # The box goes on: the same order comes again from Sinqro and is stored afresh.
        assert (await j.upsert_order(order(1))).new
    finally:
        await j.close()


@pytest.mark.parametrize("how", ["header", "truncated"])
async def test_a_damaged_journal_is_moved_aside_by_the_daemon_only(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "edged.sqlite3"
    j = await Journal.open(path)
    for n in range(1, 60):
        await j.upsert_order(order(n, comment="x" * 500))
    await j.kept_set("pairing", '{"user_token": "t"}')
    old_epoch = j.epoch
    await j.close()
    with path.open("r+b") as fh:
        if how == "header":
            fh.write(b"garbage" * 10)
        else:
            fh.truncate(path.stat().st_size // 2)
    with pytest.raises(JournalError, match="damaged"):
        await Journal.open(path, watch_interval=0)  # the CLI: refuses, moves nothing
    assert not [p for p in os.listdir(tmp_path) if p.startswith("edged.damaged-")]
    healed = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert healed.recovery is not None and healed.recovered is not None
        kept_as = healed.recovery.kept_as
        assert (tmp_path / kept_as).exists() and kept_as.startswith("edged.damaged-")
        assert (await healed.counts())["orders"] == 0
        assert healed.epoch and healed.epoch != old_epoch
        assert await healed.kept_get("pairing") == '{"user_token": "t"}'
        await healed.dismiss_recovery()
    finally:
        await healed.close()
    again = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert again.recovery is None and again.recovered is None
    finally:
        await again.close()


async def test_kept_values_move_out_of_an_old_kv_table_into_a_private_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edged.sqlite3"
    j = await Journal.open(path)
    await j.kv_set("web.admin_password", "hash-from-an-older-edged")
    try:
        assert await j.kept_get("web.admin_password") == "hash-from-an-older-edged"
        assert await j.kv_get("web.admin_password") is None
        kept = tmp_path / "credentials.json"
        assert kept.stat().st_mode & 0o777 == 0o600
        mtime = kept.stat().st_mtime_ns
        await j.kept_set("web.admin_password", "hash-from-an-older-edged")
        assert kept.stat().st_mtime_ns == mtime, "an unchanged value is not written"
        await j.kept_set("web.admin_password", None)
        assert await j.kept_get("web.admin_password") is None
    finally:
        await j.close()


async def test_an_older_journal_is_rebuilt_with_small_pages_by_the_daemon(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edged.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    j = await Journal.open(path, watch_interval=0)  # the CLI leaves it as it is
    await j.upsert_order(order(1))
    await j.close()
    assert sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0] == 4096
    j = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert (await j._query("PRAGMA page_size"))[0][0] == 1024
        assert (await j._query("PRAGMA journal_mode"))[0][0] == "wal"
        assert await j.get_order(1) is not None
        assert await j.integrity_check() == "ok"
    finally:
        await j.close()


async def test_settings_an_older_edged_left_in_a_damaged_journal_are_saved(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edged.sqlite3"
    j = await Journal.open(path)
    await j.kv_set("web.admin_password", "hash-kept-in-kv-by-an-older-edged")
    for n in range(1, 80):
        await j.upsert_order(order(n, comment="y" * 800))
    await j.close()
    # Damage the orders' pages (the end of the file), not the small kv table.
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(size - 20 * 1024)
        fh.write(b"\xff" * 16 * 1024)
    healed = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert healed.recovery is not None
        assert await healed.kept_get("web.admin_password") == "hash-kept-in-kv-by-an-older-edged"
        assert (await healed.counts())["orders"] == 0
    finally:
        await healed.close()
