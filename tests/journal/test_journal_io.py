"""The journal's file itself: one that vanished is damage (not a first start), and storage
that fails under a running journal is the journal's own error, reads included."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from loopfs import LoopFs, LoopFsUnavailable

from edged import cli
from edged.configtools import dump_toml
from edged.journal.kept import FILE_NAME
from edged.journal.store import Journal, JournalError
from edged.sinqro.models import parse_order


def order(order_id: int) -> Any:
    return parse_order(
        {
            "id": order_id,
            "type": "delivery",
            "status": {"code": "waiting_sp_validation", "isFinalStatus": False},
            "marketOrderCode": f"C{order_id}",
        }
    )


def kept(tmp_path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((tmp_path / FILE_NAME).read_text(encoding="utf-8"))
    return data


async def first_start(path: Path) -> str:
    """A box's first start (the daemon): a quiet new journal whose epoch is kept."""
    j = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert j.recovery is None and j.recovered is None
        await j.upsert_order(order(1))
        epoch = j.epoch
    finally:
        await j.close()
    assert kept(path.parent)["journal.epoch"] == epoch
    return epoch


def empty(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.truncate(0)


def missing(path: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)


@pytest.mark.parametrize("vanish", [empty, missing])
async def test_a_journal_that_vanished_is_damaged_not_new(tmp_path: Path, vanish: Any) -> None:
    path = tmp_path / "edged.sqlite3"
    old_epoch = await first_start(path)
    vanish(path)
    # The CLI refuses it (and creates nothing the daemon would then take for a journal).
    with pytest.raises(JournalError, match="damaged"):
        await Journal.open(path, watch_interval=0)
    assert not path.exists() or path.stat().st_size == 0
    healed = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert healed.recovery is not None and healed.recovered is not None
        assert "empty" in healed.recovery.reason or "missing" in healed.recovery.reason
        copies = [p for p in os.listdir(tmp_path) if p.startswith("edged.damaged-")]
        if vanish is empty:
            assert copies == [healed.recovery.kept_as]
        else:
            assert copies == [] and healed.recovery.kept_as == ""
        assert healed.epoch and healed.epoch != old_epoch
        assert (await healed.counts())["orders"] == 0
    finally:
        await healed.close()
    assert kept(tmp_path)["journal.epoch"] == healed.epoch


async def test_the_kept_epoch_is_written_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "edged.sqlite3"
    await first_start(path)
    before = (tmp_path / FILE_NAME).stat()
    again = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert again.recovery is None
    finally:
        await again.close()
    after = (tmp_path / FILE_NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_without_a_kept_epoch_an_empty_file_is_a_first_start(tmp_path: Path) -> None:
    path = tmp_path / "edged.sqlite3"
    path.touch()  # e.g. made by an installer; no journal ever lived on this box
    j = await Journal.open(path, watch_interval=0, heal=True)
    try:
        assert j.recovery is None and j.recovered is None
    finally:
        await j.close()
    assert kept(tmp_path)["journal.epoch"] == j.epoch


# -- storage that fails under a running journal ---------------------------------------------


def big_order(order_id: int) -> Any:
    return parse_order(
        {
            "id": order_id,
            "type": "delivery",
            "status": {"code": "waiting_sp_validation", "isFinalStatus": False},
            "marketOrderCode": f"C{order_id}",
            "comment": f"{order_id}-" + "x" * 60_000,
        }
    )


async def until_stored(j: Journal, order_id: int, within: float = 30.0) -> int:
    """Try to store the order until the journal takes it; returns the failed tries."""
    failures = 0
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await j.upsert_order(big_order(order_id))
            return failures
        except JournalError:
            failures += 1
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_a_card_that_fails_under_the_journal_gives_journal_errors_then_comes_back(
    tmp_path: Path,
) -> None:
    try:
        card = LoopFs(tmp_path / "card.img", size_mib=32)
        card.setup()
    except LoopFsUnavailable as exc:
        pytest.fail(f"needs a loop-mounted ext4 (run as root): {exc}", pytrace=False)
    try:
        path = card.mountpoint / "state" / "edged.sqlite3"
        j = await Journal.open(path, watch_interval=0, heal=True)
        faults: list[str | None] = []
        j.add_fault_listener(faults.append)
        try:
            # More than SQLite's own page cache holds: a search has to read the card.
            for n in range(1, 61):
                await j.upsert_order(big_order(n))
            card.shut_down()
            with pytest.raises(JournalError):
                await j.upsert_order(big_order(99))
            with pytest.raises(JournalError):
                await j.list_orders(search="no such text", limit=500)
            with pytest.raises(JournalError):
                await j.counts()
            assert j.problem is not None and faults and faults[-1] is not None
            card.remount()
            # The journal opens the file again by itself and stores what waited.
            await until_stored(j, 99)
            assert j.problem is None and faults[-1] is None
            assert j._writer.reopens >= 1
            assert (await j.counts())["orders"] == 61
            assert len(await j.list_orders(search="99-", limit=500)) == 1
        finally:
            await j.close()
    finally:
        card.teardown()


def test_the_cli_says_what_a_vanished_journal_is_in_the_box_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edged.sqlite3"
    asyncio.run(first_start(path))
    empty(path)
    config = tmp_path / "edged.toml"
    config.write_text(
        dump_toml(
            {
                "box": {"state_dir": str(tmp_path), "language": "ca"},
                "sinqro": {"server_token": "t", "user_token": "u", "selling_point_id": 1},
            }
        ),
        encoding="utf-8",
    )
    assert cli.main(["orders", "-c", str(config)]) == cli.EX_UNAVAILABLE
    err = capsys.readouterr().err
    # In Catalan, with the reason: the journal is damaged, and what the daemon will do.
    assert err.startswith("no es pot obrir el registre de comandes:"), err
    assert "damaged" in err and "journal file is empty" in err
    assert "Traceback" not in err
    assert path.stat().st_size == 0, "the CLI left the damaged journal as it was"
