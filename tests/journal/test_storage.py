"""The card: nothing written while idle, a damaged journal rebuilt at start, I/O errors lived
through. The daemon runs as a real process against the simulator in its own process; the
state directory sits on a real ext4 file system on a loop device (mounting needs root, as
in CI: without it these tests fail with the reason, they never skip)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from card_rig import card_rig, settle
from harness import DaemonProcess, SimulatorProcess, sinqro_section
from loopfs import LoopFs, LoopFsUnavailable
from ports import free_port
from waiting import eventually_blocking

from edged.configtools import dump_toml
from edged.flow.pairing import Pairing, save_pairing
from edged.journal.store import Journal
from edged.simulator.server import DEFAULT_USER_TOKEN

pytestmark = pytest.mark.slow


# A daemon that is starting does not answer yet, and its journal may be mid-write.
STARTING = (httpx.HTTPError, sqlite3.Error)


def need_loop_devices() -> None:
    try:
        with LoopFs(Path(f"/tmp/edged-loop-probe-{os.getpid()}.img"), size_mib=8):
            pass
    except LoopFsUnavailable as exc:
        pytest.fail(f"these tests need a loop-mounted ext4 (run as root): {exc}", pytrace=False)


# -- idle -------------------------------------------------------------------------------------


def test_twenty_open_orders_through_refresh_cycles_write_nothing_to_the_card(
    tmp_path: Path,
) -> None:
    """20 orders stay open and nobody touches them (the normal state of a box for hours):
    after the first refresh cycle, the status refreshes (every 2 s here), the printer's
    health checks, the MQTT bridge and the web page write not one sector."""
    need_loop_devices()
    with card_rig(tmp_path, refresh=2.0, auto_accept=False, open_orders=20) as rig:
        settle(rig, 20)  # every ticket printed, every order published, two syncs passed
        before = rig.card.bytes_written()
        syncs = rig.active_requests()
        rig.syncs_pass(3)
        written = rig.card.bytes_written() - before
        assert rig.active_requests() - syncs >= 3
        assert written == 0, f"{written} bytes written while idle"


# -- a damaged journal ------------------------------------------------------------------------


def box_config(
    tmp_path: Path, sim: SimulatorProcess, *, user_token: str | None = None, tickets: str = "t1"
) -> Path:
    overrides: dict[str, Any] = {} if user_token is None else {"user_token": user_token}
    doc: dict[str, Any] = {
        "box": {"name": "test-box", "state_dir": str(tmp_path / "state")},
        "sinqro": sinqro_section(sim.info(), **overrides),
        "printers": [{"name": "kitchen", "uri": f"virtual://{tmp_path / tickets}"}],
        "panel": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    path = tmp_path / "edged.toml"
    path.write_text(dump_toml(doc), encoding="utf-8")
    return path


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def health(config: Path) -> dict[str, Any]:
    port = tomllib.loads(config.read_text(encoding="utf-8"))["web"]["port"]
    data: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    return data


def damage_header(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"this is no longer SQLite" * 4)


def damage_truncate(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(size // 2)


def damage_empty(path: Path) -> None:
    """Cut to 0 bytes (a card that lost the file's blocks): not a new journal."""
    with path.open("r+b") as fh:
        fh.truncate(0)


def damage_missing(path: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)


def damage_row(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        order_id = conn.execute("SELECT id FROM orders ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE orders SET payload = '{broken' WHERE id = ?", (order_id,))
    finally:
        conn.close()


@pytest.mark.parametrize(
    "damage", [damage_header, damage_truncate, damage_empty, damage_missing, damage_row]
)
def test_damaged_journal_at_start_heals_refetches_warns_and_keeps_the_pairing(
    tmp_path: Path, cloud: SimulatorProcess, damage: Callable[[Path], None]
) -> None:
    created = httpx.post(f"{cloud.root}/_sim/orders", json={"count": 12}, timeout=10).json()
    open_ids = sorted(int(o["id"]) for o in created)
    config = box_config(tmp_path, cloud)
    journal = tmp_path / "state" / "edged.sqlite3"
    with DaemonProcess(config, log_path=tmp_path / "first.log") as daemon:
        daemon.start()
        eventually_blocking(
            lambda: len(rows(journal, "SELECT id FROM orders")) == 12,
            what="the orders stored",
            within=60.0,
            ignoring=STARTING,
        )
        # A first start is a quiet new journal.
        assert health(config)["journal_state"] == "ok"
        assert daemon.stop() == 0
    assert not [p for p in (tmp_path / "t1").glob("*-text.txt") if "JOURNAL" in p.read_text()]
    # The box was paired on the web page: the config's token no longer counts.
    info = cloud.info()
    token = DEFAULT_USER_TOKEN

    async def pair() -> None:
        j = await Journal.open(journal)
        try:
            await save_pairing(
                j, Pairing(token, int(info["sellingPointId"]), "Kept Pizza", "owner", "UTC")
            )
        finally:
            await j.close()

    asyncio.run(pair())
    config = box_config(tmp_path, cloud, user_token="revoked-config-token", tickets="t2")
    damage(journal)
    rebuilt = damage is not damage_row
    with DaemonProcess(config, log_path=tmp_path / "second.log") as daemon:
        daemon.start()
        eventually_blocking(
            lambda: health(config)["link"] == "online",
            what="the link online with the kept pairing",
            within=60.0,
            ignoring=STARTING,
        )
        stored = eventually_blocking(
            lambda: sorted(r[0] for r in rows(journal, "SELECT id FROM orders")) == open_ids,
            what="every open order fetched again",
            within=60.0,
            ignoring=STARTING,
        )
        assert stored
        state = health(config)
        assert state["ok"] is True and state["paired"] is True
        assert state["journal_state"] == ("recovered" if rebuilt else "ok")
        copies = list(journal.parent.glob("edged.damaged-*.sqlite3"))
        if rebuilt:
            tickets = tmp_path / "t2"
            notice = eventually_blocking(
                lambda: [p for p in tickets.glob("*-text.txt") if "JOURNAL" in p.read_text()],
                what="the printed notice",
                within=60.0,
                ignoring=STARTING,
            )
            if damage is damage_missing:
                assert copies == [] and "missing" in notice[0].read_text()
            else:
                assert len(copies) == 1, "the damaged journal is kept for diagnosis"
                assert copies[0].name in notice[0].read_text()
            # They printed before the journal was lost: again, but never silently twice.
            eventually_blocking(
                lambda: len(list(tickets.glob("*-reprint.txt"))) == 12,
                what="12 tickets again",
                within=60.0,
                ignoring=STARTING,
            )
            assert not list(tickets.glob("*-order.txt"))
            assert all("REPRINT" in p.read_text() for p in tickets.glob("*-reprint.txt"))
        else:
            assert copies == []
            quarantined = rows(journal, "SELECT source, error FROM quarantine")
            assert [q[0] for q in quarantined] == ["orders"]
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert daemon.stop() == 0

    kept = json.loads((journal.parent / "credentials.json").read_text(encoding="utf-8"))
    assert json.loads(kept["pairing"])["selling_point_name"] == "Kept Pizza"


# -- an I/O error -----------------------------------------------------------------------------


@contextlib.contextmanager
def failing_card(where: Path) -> Iterator[tuple[LoopFs, Path]]:
    """An ext4 card whose image lives on a small tmpfs: fill the tmpfs and the card's
    writes fail with real I/O errors (as a worn-out SD card's do)."""
    backing = where / "backing"
    backing.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(backing)], check=True)
    try:
        with LoopFs(backing / "card.img", size_mib=64, mountpoint=where / "card") as card:
            yield card, backing
    finally:
        subprocess.run(["umount", "-l", str(backing)], check=False)


def test_io_errors_on_the_card_keep_the_box_up_and_health_says_so(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    need_loop_devices()
    with failing_card(tmp_path) as (card, backing):
        doc: dict[str, Any] = {
            "box": {"name": "test-box", "state_dir": str(card.mountpoint / "state")},
            "sinqro": sinqro_section(cloud.info()),
            "orders": {"retry_max": 0.5},
            "panel": {"enabled": False},
            "web": {"host": "127.0.0.1", "port": free_port()},
        }
        config = tmp_path / "edged.toml"
        config.write_text(dump_toml(doc), encoding="utf-8")
        journal = card.mountpoint / "state" / "edged.sqlite3"
        with DaemonProcess(config, log_path=tmp_path / "edged.log") as daemon:
            daemon.start()
            eventually_blocking(
                lambda: health(config)["link"] == "online",
                what="the link online",
                within=60.0,
                ignoring=STARTING,
            )
            first = httpx.post(f"{cloud.root}/_sim/orders", json={}, timeout=10).json()[0]["id"]
            eventually_blocking(
                lambda: rows(journal, f"SELECT 1 FROM orders WHERE id = {first}"),
                what="stored",
                within=60.0,
                ignoring=STARTING,
            )
            filler = backing / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)

            def order_then_look() -> bool:
                # New orders keep coming; sooner or later the card refuses their writes.
                httpx.post(f"{cloud.root}/_sim/orders", json={}, timeout=10)
                time.sleep(0.2)
                return health(config)["ok"] is False

            eventually_blocking(
                order_then_look,
                what="/health saying the journal fails",
                within=90,
                ignoring=STARTING,
            )
            state = health(config)
            assert state["journal_state"] == "failing"
            # The box stays up: the page answers, the link and the outbox keep running.
            assert daemon.proc is not None and daemon.proc.poll() is None
            assert state["link"] in ("online", "polling")
            log = daemon.log_path.read_text(errors="replace")
            assert "journal: writes fail" in log
            assert daemon.stop() == 0
