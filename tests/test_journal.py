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
    await journal.mark_sending(one.id)
    pending = await journal.pending_commands()
    assert pending[0].state == "sending" and pending[0].attempts == 1
    await journal.finish_command(pending[0], ok=True, order=order(5, "accepted"))
    assert await journal.pending_commands() == []
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
