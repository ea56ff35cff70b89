"""What the journal writes for an order's status change: the order's own page, not its
payload again (the card's bytes per order, benchmarks/README.md).

Counted in WAL frames, one per page a commit writes, on a real journal file: a page count,
not a timing."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from edged.journal import rows
from edged.journal.store import Journal
from edged.simulator.cloud import default_selling_points
from edged.simulator.generate import ORDER_TYPES, build_order
from edged.simulator.statuses import set_status
from edged.sinqro.models import parse_order

FRAME = 24 + 1024  # a WAL frame: its header and one page of the journal's size


def generated(order_id: int, order_type: str) -> dict[str, Any]:
    rng = random.Random(order_id)
    return build_order(order_type, order_id, default_selling_points()[3961], rng=rng)


def wal_size(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def frames_of_each_change(path: Path, raw: dict[str, Any]) -> list[int]:
    """WAL frames written by storing ``raw`` and then each status change of its life."""
    j = await Journal.open(path, watch_interval=0)
    try:
        counts = []
        order = copy.deepcopy(raw)
        before = wal_size(path)
        for code in ("waiting_sp_validation", "accepted", "finished"):
            set_status(order, code)
            result = await j.upsert_order(parse_order(copy.deepcopy(order)))
            assert result.new or result.status_changed
            after = wal_size(path)
            counts.append((after - before) // FRAME)
            before = after
        stored = await j.get_order(raw["id"])
        assert stored is not None
        assert stored.payload == order  # every key and value, whatever order they are kept in
        return counts
    finally:
        await j.close()


@pytest.mark.parametrize("order_type", ORDER_TYPES)
async def test_a_status_change_does_not_write_the_payload_again(
    tmp_path: Path, order_type: str
) -> None:
    raw = generated(17, order_type)
    assert len(json.dumps(raw)) > 2 * 1024  # big enough to overflow the order's leaf page
    new, accepted, finished = await frames_of_each_change(tmp_path / "j.sqlite3", raw)
    # The new order writes its payload's overflow pages; a status change writes the order's
    # leaf, at most the first overflow page (the head runs into it), the open-orders index
    # and the event's page (once in a while a new one): never the whole payload again.
    # Measured: 4 or 5 frames; stored plainly, 8 to 14 for the accept.
    assert new >= 6
    assert accepted <= 5 and finished <= 5, (new, accepted, finished)


async def test_without_the_fixed_head_the_payload_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: stored plainly, each status change rewrites it whole."""
    monkeypatch.setattr(rows, "HEAD_BYTES", 0)
    raw = generated(18, "delivery")
    new, accepted, _ = await frames_of_each_change(tmp_path / "j.sqlite3", raw)
    assert accepted > 5, (new, accepted)


def test_the_stored_text_is_the_payload_and_keeps_its_head_size() -> None:
    raw = generated(19, "collection")
    sizes = set()
    for code in ("waiting_sp_validation", "accepted", "ready", "finished", "cancelled_by_sp"):
        set_status(raw, code)
        text = rows.payload_text(raw, code)
        assert json.loads(text) == raw
        sizes.add(len(code.encode()) + len(text.encode()))
    assert len(sizes) == 1  # the row keeps its size: SQLite overwrites it in place
    # A payload with nothing volatile, or nothing else, is stored as it came.
    assert rows.payload_text({"id": 1}, "x") == '{"id":1}'
    assert json.loads(rows.payload_text({"status": {"code": "x"}}, "x")) == {
        "status": {"code": "x"}
    }
