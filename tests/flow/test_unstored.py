"""Orders the journal cannot store: held (rung, printed from memory) only when they are not
in the journal already, once each, never when final, and stored when the journal takes
them again. The journal is a real SQLite file made full with ``PRAGMA max_page_count``
(writes fail with SQLITE_FULL, reads still work: a full card)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from waiting import eventually

from edged.flow.desk import OrderDesk
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal, JournalError
from edged.sinqro.models import Order, parse_order
from edged.state import BoxState


def big(order_id: int, status: str = "waiting_sp_validation") -> Order:
    final = status in ("finished", "cancelled_by_client")
    return parse_order(
        {
            "id": order_id,
            "type": "delivery",
            "status": {"code": status, "isFinalStatus": final},
            "marketOrderCode": f"C{order_id}",
            "comment": f"{status}-" + "x" * 20_000,  # needs new pages to store
        }
    )


async def set_page_limit(journal: Journal, pages: int | None) -> None:
    """``None``: no limit; 0: the pages the file has now (full from now on)."""

    def run(conn: Any) -> None:
        limit = 1_073_741_823 if pages is None else pages
        if pages == 0:
            limit = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {limit}")

    await journal._call(run)


async def test_orders_the_journal_cannot_store_are_held_once_and_stored_later(
    tmp_path: Path,
) -> None:
    journal = await Journal.open(tmp_path / "edged.sqlite3", watch_interval=0)
    try:
        before = OrderDesk(journal, BoxState(), OrdersConfig())
        await before.ingest(big(1), "websocket")
        # A fresh desk, as after a restart: it knows nothing of order 1 but the journal.
        desk = OrderDesk(journal, BoxState(), OrdersConfig())
        desk.unstored.first_retry = 0.05
        heard: list[tuple[int, str]] = []
        desk.unstored.add_listener(lambda order: heard.append((order.id, order.status)))
        await set_page_limit(journal, 0)  # full from now on

        # Stored already (the journal says so): a refresh that cannot be written is no
        # new order to ring or print.
        with pytest.raises(JournalError):
            await desk.ingest(big(1, "accepted"), "poll")
        assert not desk.unstored.is_held(1)
        # New: held, heard once; again unchanged, not heard again; a new status, heard.
        with pytest.raises(JournalError):
            await desk.ingest(big(2), "websocket")
        with pytest.raises(JournalError):
            await desk.ingest(big(2), "poll")
        assert desk.unstored.is_held(2) and desk.unstored.waiting_ids() == [2]
        assert heard == [(2, "waiting_sp_validation")]
        with pytest.raises(JournalError):
            await desk.ingest(big(2, "accepted"), "poll")
        assert heard[-1] == (2, "accepted") and desk.unstored.waiting_ids() == []
        # Final before it could be stored: nothing for anyone to do.
        with pytest.raises(JournalError):
            await desk.ingest(big(3, "cancelled_by_client"), "websocket")
        assert not desk.unstored.is_held(3) and heard[-1][0] == 2
        # Held, then final while held: let go, and the listeners hear it (it stops ringing).
        with pytest.raises(JournalError):
            await desk.ingest(big(4), "websocket")
        with pytest.raises(JournalError):
            await desk.ingest(big(4, "cancelled_by_client"), "poll")
        assert not desk.unstored.is_held(4)
        assert heard[-2:] == [(4, "waiting_sp_validation"), (4, "cancelled_by_client")]

        await set_page_limit(journal, None)  # room again: the retry stores it
        stored = await eventually(lambda: journal.get_order(2), within=10, what="order 2")
        assert stored is not None and stored.status == "accepted"
        assert not desk.unstored.is_held(2) and desk.unstored.stored_later == 1
        assert len(heard) == 4
        assert await journal.get_order(4) is None  # only Sinqro's next sync brings it
    finally:
        await journal.close()
