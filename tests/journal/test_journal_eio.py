"""The card fails under a running box (``FS_IOC_SHUTDOWN``: every read and write of the
file system fails with EIO from then on, as when an SD card dies or is pulled out).

The composition root (:class:`edged.app.App`, what ``edged run`` runs) runs in the test's
loop with its state directory on a real ext4 on a loop device (root, as in CI: without it
the test fails with the reason), the simulator on a real socket and the printer stand-in
on TCP. The page must say 503 in the box's language, never 500; an order that arrives
meanwhile must still ring and print, marked as not stored; and once the card is back (a
fresh mount) the order is stored and its ticket counts as printed: no second copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import app_config, printer
from loopfs import LoopFs, LoopFsUnavailable
from ports import free_port
from printer_standin import TcpPrinter
from test_faults import jobs_for, running_app
from waiting import eventually

from edged.journal.writer import JournalError
from edged.simulator.server import Simulator
from edged.web.guard import COOKIE

pytestmark = pytest.mark.slow


def tickets_with(standin: TcpPrinter, text: bytes) -> list[bytes]:
    return [job for job in standin.jobs if text in job]


def stored(app: Any, order_id: int) -> Any:
    """A condition: the order as the journal has it (None while it cannot say)."""

    async def read() -> Any:
        try:
            return await app.journal.get_order(order_id)
        except JournalError:
            return None

    return read


async def test_a_card_that_dies_under_the_box_rings_prints_and_stores_the_order_later(
    tmp_path: Path, sim: Simulator
) -> None:
    try:
        card = LoopFs(tmp_path / "card.img", size_mib=32)
        card.setup()
    except LoopFsUnavailable as exc:
        pytest.fail(f"needs a loop-mounted ext4 (run as root): {exc}", pytrace=False)
    try:
        async with TcpPrinter() as kitchen:
            config = app_config(
                tmp_path,
                sim,
                box={"name": "test-box", "state_dir": str(card.mountpoint), "language": "es"},
                printers=[printer("kitchen", kitchen.uri)],
                web={"host": "127.0.0.1", "port": free_port()},
            )
            async with running_app(config) as app:
                await run_through_a_dead_card(app, sim, kitchen, card)
    finally:
        card.teardown()


async def run_through_a_dead_card(
    app: Any, sim: Simulator, kitchen: TcpPrinter, card: LoopFs
) -> None:
    await eventually(lambda: app.state.get("link") == "online", within=20, what="online")
    first = sim.create_order("collection")["id"]
    await eventually(stored(app, first), within=20, what="stored")

    async def printed() -> bool:
        return [j["state"] for j in await jobs_for(app, first)()] == ["done"]

    await eventually(printed, within=20, what="its ticket printed")
    assert app.state.get("journal") == "ok"
    token, session = app.web.sessions.new(authenticated=True)
    base = f"http://127.0.0.1:{app.web.port}"
    cookies = {COOKIE: token}

    card.shut_down()

    async with httpx.AsyncClient(base_url=base, cookies=cookies) as web:
        accept = await web.post(
            f"/api/orders/{first}/accept", json={}, headers={"X-CSRF-Token": session.csrf}
        )
    assert accept.status_code == 503, accept.text
    assert accept.json()["code"] == "JOURNAL_UNAVAILABLE"
    assert "no puede guardar" in accept.json()["message"]
    assert app.state.get("journal") == "failing"

    # An order while the card is dead: it rings and prints, marked, from memory.
    second = sim.create_order("collection")["id"]
    await eventually(
        lambda: second in app.panel.tracker.ringing, within=20, what="the new order ringing"
    )
    await eventually(
        lambda: app.state.get("panel.buzzer") not in (None, "quiet"), within=10, what="buzzer"
    )
    marked = await eventually(
        lambda: tickets_with(kitchen, "NO GUARDADO AÚN".encode("cp858")),
        within=20,
        what="its ticket, marked as not stored",
    )
    assert len(marked) == 1
    assert app.desk.unstored.is_held(second)
    # The page and /health say it: which order is not stored yet.
    code = app.desk.unstored.held()[0].code
    async with httpx.AsyncClient(base_url=base, cookies=cookies) as web:
        page = await web.get("/board")
        health = (await web.get("/health")).json()
    assert page.status_code == 200 and 'id="journal-unstored"' in page.text
    assert code and code in page.text.split('id="journal-unstored"')[1].split("</p>")[0]
    assert health["journal_state"] == "failing" and health["unstored_orders"] == 1
    # The spooler waits the journal out: it neither fails nor is restarted meanwhile.
    assert app.state.get("part.spooler")["restarts"] == 0

    # The card comes back (mounted again): the journal opens it again and stores the order.
    card.remount()
    order = await eventually(stored(app, second), within=60, what="the held order stored")
    assert order.id == second
    assert not app.desk.unstored.is_held(second)
    jobs = await eventually(jobs_for(app, second), within=20, what="its job recorded")
    # Already out on paper: recorded as printed, never queued for a second, unmarked copy.
    assert [(j["kind"], j["state"]) for j in jobs] == [("order", "done")]
    assert json.loads(jobs[0]["params"])["from_memory"] is True
    await eventually(lambda: app.state.get("journal") == "ok", within=20, what="journal ok")
    assert app.state.get("journal.unstored") == []
    assert len(tickets_with(kitchen, "NO GUARDADO AÚN".encode("cp858"))) == 1
    # It still waits for a decision, and rings as any stored order does.
    assert second in app.panel.tracker.ringing
