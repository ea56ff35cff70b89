"""The catalog on the box against the simulator: refreshes that write only what changed
(bytes at a loop device), sold out as an outbox command sent once (offline too), Sinqro's
refusal kept with its reason, and items put back on at their time (a controllable clock
and wall clock)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from loopfs import LoopFs, LoopFsUnavailable
from waiting import eventually

from edged.clock import FakeClock
from edged.flow.catalog import CatalogKeeper
from edged.flow.outbox import OutboxSender
from edged.flow.pairing import Pairing
from edged.flow.refusals import CommandRefused
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.state import BoxState

START = 1_780_000_000.0  # a wall-clock instant the tests move by hand


@dataclass
class Box:
    sim: Simulator
    journal: Journal
    keeper: CatalogKeeper
    sender: OutboxSender
    state: BoxState
    clock: FakeClock
    wall: list[float]

    def patches(self, suffix: str) -> int:
        """PATCHes the cloud applied (not those a fault refused)."""
        return len(self.sim.catalog_patches(suffix))


@contextlib.asynccontextmanager
async def running_box(sim: Simulator, path: Path, *, run_keeper: bool = True) -> AsyncIterator[Box]:
    journal = await Journal.open(path)
    state = BoxState()
    api = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=2.0, retries=1)
    pairing = Pairing(
        user_token=sim.user_token, selling_point_id=sim.selling_point_id, timezone="Europe/Madrid"
    )
    clock = FakeClock()
    wall = [START]
    keeper = CatalogKeeper(
        journal, api, state, lambda: pairing, clock=clock, now=lambda: wall[0], timer_tick=20.0
    )
    sender = OutboxSender(journal, api, state, OrdersConfig(retry_max=0.2), lambda: pairing)
    tasks = [asyncio.create_task(sender.run(), name="sender")]
    if run_keeper:
        tasks.append(asyncio.create_task(keeper.run(), name="keeper"))
    try:
        yield Box(sim, journal, keeper, sender, state, clock, wall)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.aclose()
        await journal.close()


async def test_sold_out_is_sent_once_and_kept(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3") as box:
        await eventually(lambda: box.keeper.refreshes >= 1, what="first refresh")
        command, back = await box.keeper.set_available("Pulpo a la gallega", False, source="test")
        assert back is None
        await eventually(lambda: sim.product(109805)["isAvailable"] is False, within=2.0)
        done = await eventually(lambda: box.journal.get_command(command.id), what="command")
        await eventually(lambda: _state(box, command.id), what="command done")
        assert box.patches("/products/109805") == 1
        stored = await eventually(
            lambda: _stored_unavailable(box, 109805), what="stored catalog says sold out"
        )
        assert stored and done is not None
        # Back on by hand; the same request key twice is one command.
        again, _ = await box.keeper.set_available("109805", True, source="test", request_key="k1")
        same, _ = await box.keeper.set_available("109805", True, source="test", request_key="k1")
        assert again.id == same.id
        await eventually(lambda: sim.product(109805)["isAvailable"] is True, within=2.0)
        await eventually(lambda: _state(box, again.id))
        assert box.patches("/products/109805") == 2


async def _state(box: Box, command_id: int) -> bool:
    command = await box.journal.get_command(command_id)
    return command is not None and command.state == "done"


async def _stored_unavailable(box: Box, product_id: int) -> bool:
    product = (await box.keeper.catalog()).product(product_id)
    return product is not None and not product.available


async def test_an_option_sold_out_through_its_category(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3") as box:
        await eventually(lambda: box.keeper.refreshes >= 1)
        command, _ = await box.keeper.set_available("Leche de avena", False, source="test")
        assert command.params["item"] == "option" and command.params["category_id"] == 102013
        await eventually(lambda: sim.option(200130)["isAvailable"] is False, within=2.0)
        assert box.patches("/productOptionsCategories/102013") == 1
        assert sim.option(200131)["isAvailable"] is True


async def test_offline_the_change_waits_and_goes_once(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3") as box:
        await eventually(lambda: box.keeper.refreshes >= 1)
        sim.refuse_all("close")
        command, _ = await box.keeper.set_available("TPV-003", False, source="test")
        await eventually(lambda: _attempted(box, command.id), what="a send that met the dead link")
        assert sim.product(109802)["isAvailable"] is True
        sim.refuse_all(None)
        box.sender.kick()
        await eventually(lambda: _state(box, command.id), what="sent when the link returned")
        assert sim.product(109802)["isAvailable"] is False
        assert box.patches("/products/109802") == 1


async def _attempted(box: Box, command_id: int) -> bool:
    command = await box.journal.get_command(command_id)
    return command is not None and command.attempts >= 1 and command.state == "queued"


async def test_refusal_is_kept_with_sinqros_reason(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3") as box:
        await eventually(lambda: box.keeper.refreshes >= 1)
        del sim.cloud.catalog(sim.selling_point_id).products[109809]  # gone at Sinqro
        command, _ = await box.keeper.set_available("Crema catalana", False, source="test")
        await eventually(lambda: _failed(box, command.id))
        failed = await box.journal.get_command(command.id)
        assert failed is not None
        assert (failed.error_code, failed.error) == ("PRODUCT_NOT_FOUND", "Product not found")
        with pytest.raises(CommandRefused) as unknown:
            await box.keeper.set_available("nothing like this", False, source="test")
        assert unknown.value.code == "UNKNOWN_PRODUCT"
        with pytest.raises(CommandRefused) as bad:
            await box.keeper.set_available("109801", False, until="someday", source="test")
        assert bad.value.code == "BAD_UNTIL"


async def _failed(box: Box, command_id: int) -> bool:
    command = await box.journal.get_command(command_id)
    return command is not None and command.state == "failed"


async def test_back_on_by_itself_at_its_time(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3") as box:
        await eventually(lambda: box.keeper.refreshes >= 1)
        _, back = await box.keeper.set_available("109801", False, until="1h", source="test")
        assert back == START + 3600
        await eventually(lambda: sim.product(109801)["isAvailable"] is False, within=2.0)
        timers = await box.journal.timers()
        assert [(t.item_id, t.until) for t in timers] == [(109801, START + 3600)]
        box.wall[0] = START + 3599
        await eventually(lambda: box.keeper.idle, what="keeper waiting for its tick")
        await box.clock.advance(20.0)
        assert sim.product(109801)["isAvailable"] is False
        assert await box.journal.timers() != []
        await eventually(lambda: box.keeper.idle, what="keeper waiting for its tick")
        box.wall[0] = START + 3601
        await box.clock.advance(20.0)
        await eventually(lambda: sim.product(109801)["isAvailable"] is True, within=2.0)
        assert await box.journal.timers() == []
        sources = [c.source for c in await box.journal.recent_commands()]
        assert sources.count("timer") == 1


async def test_closing_is_the_selling_points_day_end(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path / "j.sqlite3", run_keeper=False) as box:
        await box.keeper.refresh()
        _, back = await box.keeper.set_available("109801", False, until="closing", source="t")
        # START is 22:26 in Madrid: the business day ends at 04:00 the next morning there.
        madrid = ZoneInfo("Europe/Madrid")
        assert datetime.fromtimestamp(START, madrid).hour == 22
        assert back == datetime(2026, 5, 29, 4, 0, tzinfo=madrid).timestamp()
        _, at = await box.keeper.set_available("109802", False, until="23:30", source="t")
        assert at == datetime(2026, 5, 28, 23, 30, tzinfo=madrid).timestamp()


async def settled(card: LoopFs) -> int:
    """The device's byte count once the file system has flushed what it still held (its
    own journal commits a first write a moment later): two equal readings in a row."""
    last = [-1]

    async def steady() -> int | None:
        now = await asyncio.to_thread(card.bytes_written)
        same = now == last[0]
        last[0] = now
        return now if same else None

    result: int = await eventually(steady, within=30.0, interval=0.5, what="a settled card")
    return result


async def test_refresh_writes_nothing_when_nothing_changed(sim: Simulator, tmp_path: Path) -> None:
    try:
        card = LoopFs(Path(f"/tmp/edged-catalog-{os.getpid()}.img"), size_mib=16)
        card.setup()
    except LoopFsUnavailable as exc:
        pytest.fail(f"this test needs a loop-mounted ext4 (run as root): {exc}", pytrace=False)
    try:
        async with running_box(sim, card.mountpoint / "j.sqlite3", run_keeper=False) as box:
            events = []
            box.journal.add_listener(events.extend)
            assert await box.keeper.refresh() is True
            before = await settled(card)
            for _ in range(3):
                assert await box.keeper.refresh() is False
            written = await asyncio.to_thread(card.bytes_written) - before
            assert box.keeper.refreshes == 4
            assert written == 0, f"{written} bytes written by unchanged refreshes"
            # A change elsewhere (Sinqro's back office) is stored, with its event.
            sim.cloud.catalog(sim.selling_point_id).patch_product(109804, {"isAvailable": False})
            assert await box.keeper.refresh() is True
            assert await asyncio.to_thread(card.bytes_written) > before
            changed = [e for e in events if e.kind == ev.CATALOG_CHANGED]
            assert changed[-1].data["changed"] == [
                {"kind": "product", "id": 109804, "available": False}
            ]
    finally:
        card.teardown()
