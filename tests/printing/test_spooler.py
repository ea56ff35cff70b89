"""The spooler: durable jobs, printed once, failover, no paper flood, hostile text.

Everything runs on real SQLite journals in temporary directories and real TCP printer
stand-ins; waits are bounded conditions, never timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from escpos_decoder import Decoded, decode
from printer_standin import TcpPrinter
from waiting import eventually

from edged.config import BoxConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.printing.settings import PrinterConfig
from edged.printing.spooler import PrintRefused, Spooler, append_print_request
from edged.printing.transports import JobMeta, Status, make_transport
from edged.sinqro.models import parse_order
from edged.state import BoxState

EXAMPLES = json.loads(
    (Path(__file__).parents[2] / "edged/simulator/data/examples.json").read_text("utf-8")
)
HOSTILE = "Timbre\x1bp\x00\x19\xfa 2º\x1dV\x00\x1bt\x00\x10\x14\x01\x00\x05\x1b@\x9b\x7f izq."


def order(kind: str, order_id: int, *, minutes: float = 60, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(EXAMPLES[kind])
    raw["id"] = order_id
    raw["marketOrderCode"] = f"C{order_id}"
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    raw["executionTime"] = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    raw.update(changes)
    return raw


def with_status(raw: dict[str, Any], code: str, final: bool) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw["status"] = {"code": code, "name": code, "isFinalStatus": final}
    return raw


def printer(name: str, uri: str, **overrides: Any) -> PrinterConfig:
    values: dict[str, Any] = {
        "name": name,
        "uri": uri,
        "timeout": 2.0,
        "retry_max": 0.05,
        "health_interval": 0,
    }
    values.update(overrides)
    config = PrinterConfig(**values)
    config.check()
    return config


class Box:
    """A journal, a state and a running spooler, restartable like the real daemon."""

    def __init__(self, tmp_path: Path, printers: list[PrinterConfig]) -> None:
        self.path = tmp_path / "j.sqlite3"
        self.tmp_path = tmp_path
        self.printers = printers
        self.state = BoxState()
        self.journal: Journal
        self.spooler: Spooler
        self.task: asyncio.Task[None] | None = None

    async def start(self, patch: Callable[[Spooler], None] | None = None) -> Box:
        self.journal = await Journal.open(self.path, watch_interval=0.05)
        box = BoxConfig(state_dir=str(self.tmp_path), language="en")
        self.spooler = Spooler(
            self.printers, self.journal, self.state, box, transports=make_transport
        )
        if patch is not None:
            patch(self.spooler)
        self.task = asyncio.create_task(self.spooler.run(), name="spooler")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.journal.close()

    async def add(self, raw: dict[str, Any]) -> None:
        await self.journal.upsert_order(parse_order(raw))

    async def jobs(self) -> list[dict[str, Any]]:
        def run(tx: Any) -> list[dict[str, Any]]:
            rows = tx.execute("SELECT * FROM print_jobs ORDER BY id").fetchall()
            return [dict(r) for r in rows]

        result: list[dict[str, Any]] = await self.journal.transaction(run)
        return result

    async def events(self, kind: str) -> list[ev.Event]:
        return [e for e in await self.journal.read_events(0, 10_000) if e.kind == kind]


@pytest.fixture
async def tcp() -> AsyncIterator[Callable[[str], Any]]:
    started: list[TcpPrinter] = []

    async def make(mode: str = "online") -> TcpPrinter:
        p = await TcpPrinter(mode).start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.close()


def tickets(p: TcpPrinter) -> list[Decoded]:
    out = [decode(job) for job in p.jobs]
    for d in out:
        assert d.unexpected == [], d.unexpected
    return out


async def test_prints_once_and_records_the_job_before_sending(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri)])
    states_at_send: list[str] = []

    def spy(spooler: Spooler) -> None:
        transport = spooler._printers["front"].transport
        real = transport.deliver

        def deliver(data: bytes, meta: JobMeta) -> Status:
            # Another connection, as a crash would leave the file: the job must be there.
            with sqlite3.connect(box.path) as conn:
                row = conn.execute("SELECT state FROM print_jobs WHERE id = ?", (meta.job_id,))
                states_at_send.append(row.fetchone()[0])
            return real(data, meta)

        transport.deliver = deliver  # type: ignore[method-assign]

    await box.start(spy)
    try:
        await box.add(order("delivery", 1001))
        await eventually(lambda: front.jobs, what="ticket")
        await eventually(lambda: box.events(ev.PRINT_DONE), what="print.done")
        assert states_at_send == ["sending"]
        [ticket] = tickets(front)
        assert ticket.find("#C1001").big
        assert "REPRINT" not in ticket.text and "LATE" not in ticket.text
        jobs = await box.jobs()
        assert [(j["kind"], j["state"], j["order_id"]) for j in jobs] == [("order", "done", 1001)]
        [done] = await box.events(ev.PRINT_DONE)
        assert done.order_id == 1001
        assert done.data == {
            "printer": "front",
            "job_id": jobs[0]["id"],
            "kind": "order",
            "reprint": False,
        }
        assert box.state.get("printer.front")["state"] == "online"
        # The same order again (a replayed notification) is not a second ticket.
        await box.add(order("delivery", 1001))
    finally:
        await box.stop()
    assert len(front.jobs) == 1


async def test_restart_never_reprints_a_done_job(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri)])
    await box.start()
    try:
        await box.add(order("collection", 2001))
        await eventually(lambda: len(front.jobs) == 1, what="first ticket")
        await eventually(lambda: box.events(ev.PRINT_DONE), what="first print.done")
    finally:
        await box.stop()
    await box.start()
    try:
        await box.add(order("collection", 2002))
        await eventually(lambda: len(front.jobs) >= 2, what="second ticket")
        await eventually(lambda: _all_closed(box), what="jobs closed")
    finally:
        await box.stop()
    codes = [t.find("#C").text.strip() for t in tickets(front)]
    assert codes == ["#C2001", "#C2002"]


async def _all_closed(box: Box) -> bool:
    return all(j["state"] in ("done", "skipped", "failed") for j in await box.jobs())


async def test_job_caught_sending_by_a_crash_prints_again_marked_reprint(
    tmp_path: Path, tcp: Any
) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri)])
    entered = threading.Event()
    release = threading.Event()

    def stuck(spooler: Spooler) -> None:
        def deliver(data: bytes, meta: JobMeta) -> Status:
            entered.set()
            release.wait(10)  # the box "dies" while the bytes are on their way
            return Status("unknown", "")

        spooler._printers["front"].transport.deliver = deliver  # type: ignore[method-assign]

    await box.start(stuck)
    try:
        await box.add(order("inside", 3001))
        await eventually(entered.is_set, what="send started")
        jobs = await box.jobs()
        assert [j["state"] for j in jobs] == ["sending"]
    finally:
        await box.stop()
        release.set()
    assert front.jobs == []

    await box.start()
    try:
        await eventually(lambda: front.jobs, what="ticket after restart")
        await eventually(lambda: box.events(ev.PRINT_DONE), what="print.done")
        [ticket] = tickets(front)
        assert ticket.lines[0].text.strip() == "REPRINT" and ticket.lines[0].invert
        [job] = await box.jobs()
        assert job["state"] == "done" and job["reprint"] == 1
        [done] = await box.events(ev.PRINT_DONE)
        assert done.data["reprint"] is True
    finally:
        await box.stop()


async def test_a_dead_printer_does_not_delay_another(tmp_path: Path, tcp: Any) -> None:
    bar = await tcp("online")
    box = Box(tmp_path, [printer("kitchen", "tcp://127.0.0.1:9"), printer("bar", bar.uri)])
    release = threading.Event()

    def dead(spooler: Spooler) -> None:
        def deliver(data: bytes, meta: JobMeta) -> Status:
            release.wait(10)  # a printer that swallows the connection and never answers
            raise OSError("never")

        spooler._printers["kitchen"].transport.deliver = deliver  # type: ignore[method-assign]

    await box.start(dead)
    try:
        for n in range(3):
            await box.add(order("collection", 4001 + n))
        await eventually(lambda: len(bar.jobs) == 3, what="bar tickets")
        kitchen = [j for j in await box.jobs() if j["printer"] == "kitchen"]
        assert [j["state"] for j in kitchen] == ["sending", "queued", "queued"]
    finally:
        release.set()
        await box.stop()


async def test_failover_to_the_backup_printer(tmp_path: Path, tcp: Any) -> None:
    kitchen = await tcp("paper_out")
    counter = await tcp("online")
    box = Box(
        tmp_path,
        [
            printer("kitchen", kitchen.uri, layout="kitchen", backup="counter", failover_after=0.2),
            printer("counter", counter.uri, order_types=["delivery"]),
        ],
    )
    await box.start()
    try:
        await box.add(order("collection", 5001))
        await eventually(lambda: counter.jobs, what="ticket on the backup")
        await eventually(lambda: _all_closed(box), what="job done")
        [ticket] = tickets(counter)
        assert "Instead of printer: kitchen" in ticket.text
        assert "€" not in ticket.text  # still the kitchen's layout
        [job] = await box.jobs()
        assert (job["printer"], job["origin"], job["state"]) == ("counter", "kitchen", "done")
        assert box.state.get("printer.kitchen")["state"] == "paper_out"
        health = await box.events(ev.PRINTER_HEALTH)
        assert {"printer": "kitchen", "state": "paper_out", "detail": "paper roll empty"} in [
            e.data for e in health
        ]
        [done] = await box.events(ev.PRINT_DONE)
        assert done.data["printer"] == "counter" and done.data["instead_of"] == "kitchen"
    finally:
        await box.stop()
    assert kitchen.jobs == []


async def test_after_an_outage_no_paper_flood(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("paper_out")
    box = Box(tmp_path, [printer("front", front.uri, status_slips=["ready"])])
    await box.start()
    try:
        late = order("collection", 6001, minutes=-20)
        cancelled = order("delivery", 6002)
        finished = order("insitu", 6003)
        fine = order("inside", 6004)
        for raw in (late, cancelled, finished, fine):
            await box.add(raw)
        await box.add(with_status(cancelled, "cancelled_by_client", True))
        await box.add(with_status(finished, "finished", True))
        await eventually(lambda: box.state.get("printer.front")["state"] == "paper_out")
        assert front.jobs == []
        front.mode = "online"  # paper back in
        await eventually(lambda: _all_closed(box), what="queue drained")
        states = {(j["order_id"], j["kind"]): j["state"] for j in await box.jobs()}
    finally:
        await box.stop()
    printed = tickets(front)
    codes = [t.find("#C").text.strip() for t in printed]
    assert codes == ["#C6001", "#C6004"]  # oldest first, final orders left out
    assert printed[0].lines[0].text.strip() == "LATE"
    assert "LATE" not in printed[1].text
    assert states[(6002, "order")] == "skipped"
    assert states[(6003, "order")] == "skipped"
    # No cancellation slip for a ticket that never printed.
    assert states.get((6002, "cancel"), "skipped") == "skipped"


async def test_cancel_and_status_slips_for_printed_orders(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri, status_slips=["ready"])])
    await box.start()
    try:
        a = order("collection", 7001)
        b = order("delivery", 7002)
        await box.add(a)
        await box.add(b)
        await eventually(lambda: len(front.jobs) == 2, what="two tickets")
        await box.add(with_status(a, "ready", False))
        await box.add(with_status(b, "cancelled_by_driver", True))
        await eventually(lambda: len(front.jobs) == 4, what="two slips")
    finally:
        await box.stop()
    ready, cancel = tickets(front)[2:]
    assert ready.find("READY").big and "#C7001" in ready.text
    assert cancel.lines[0].text.strip() == "CANCELLED" and cancel.lines[0].invert
    assert "Cancelled by the driver" in cancel.text and "#C7002" in cancel.text


async def test_hostile_comment_never_reaches_the_printer_as_commands(
    tmp_path: Path, tcp: Any
) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri, copies=2)])
    await box.start()
    try:
        raw = order("delivery", 8001, comment=HOSTILE)
        raw["consumer"]["name"] = HOSTILE
        raw["orderLines"][0]["comment"] = HOSTILE
        raw["deliveryAddress"]["details"] = HOSTILE
        await box.add(raw)
        await eventually(lambda: front.jobs, what="ticket")
    finally:
        await box.stop()
    [data] = front.jobs
    for bad in (b"\x1bp", b"\x1dV\x00", b"\x1bt\x00", b"\x10\x14", b"\x9b", b"\x7f"):
        assert bad not in data, bad
    assert data.count(b"\x1b@") == 1  # one init: nothing reset the printer mid-ticket
    assert data.count(b"\x1bt") == 1  # one code page, never switched
    assert data.count(b"\x1dV") == 2  # one cut per copy, none from the text
    decoded = decode(data)
    assert decoded.unexpected == []
    # The control bytes are gone; their printable neighbours ("p", "\xfa" = ú) remain.
    assert "Timbrepú 2º Vt@ izq." in decoded.text


async def test_requests_from_another_process(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    back = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri), printer("back", back.uri)])
    await box.start()
    try:
        await box.add(order("collection", 9001))
        await eventually(lambda: front.jobs and back.jobs, what="tickets")
        # The CLI opens its own journal on the same file and appends the request.
        cli = await Journal.open(box.path, watch_interval=0)
        try:
            await append_print_request(cli, "reprint", order_id=9001, printer="back", source="cli")
            await append_print_request(cli, "test", printer="front", source="cli")
            await append_print_request(cli, "reprint", order_id=424242, source="cli")
            await append_print_request(cli, "test", printer="nope", source="cli")
        finally:
            await cli.close()
        await eventually(lambda: len(back.jobs) == 2 and len(front.jobs) == 2, what="requests")
        await box.spooler.request_text(["Wi-Fi: Casa Pepe", "Contraseña: ñandú€"], source="setup")
        await eventually(lambda: len(front.jobs) == 3, what="setup ticket")
        failed = await box.events(ev.PRINT_FAILED)
        assert sorted(e.data["reason"] for e in failed) == [
            "no such printer",
            "order not in the journal",
        ]
    finally:
        await box.stop()
    reprint = tickets(back)[1]
    assert reprint.lines[0].text.strip() == "REPRINT" and "#C9001" in reprint.text
    test_page = tickets(front)[1]
    assert "TEST PRINT" in test_page.text and "ñ á é í ó ú ü ç à è ò ï l·l €" in test_page.text
    assert "Contraseña: ñandú€" in tickets(front)[2].text


async def test_virtual_printer_in_the_spooler(tmp_path: Path) -> None:
    box = Box(tmp_path, [printer("demo", "virtual://tickets")])
    await box.start()
    try:
        await box.add(order("reservation", 9501))
        await eventually(lambda: list((tmp_path / "tickets").glob("*-9501-order.png")))
    finally:
        await box.stop()
    [txt] = (tmp_path / "tickets").glob("*-9501-order.txt")
    assert "#C9501" in txt.read_text("utf-8")


def huge_order(order_id: int) -> dict[str, Any]:
    """About 1 MB: 300 lines, each with 10 options of 100 sub-options (303,300 lines)."""
    leaf = {"label": "x", "quantity": 1, "totalAmount": 0}
    option = {"label": "opt", "quantity": 1, "childrenOrderLines": [leaf] * 100}
    line = {"label": "Menu", "quantity": 1, "totalAmount": 1, "childrenOrderLines": [option] * 10}
    return order("collection", order_id, orderLines=[line] * 300)


async def test_a_huge_order_never_holds_back_the_next_ticket(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri)])
    gate = threading.Event()
    render_threads: list[str] = []

    def hold_the_huge_one(spooler: Spooler) -> None:
        real = spooler._render

        def render(printer: Any, job: Any, payload: str | None) -> Any:
            if job.order_id == 9901:
                render_threads.append(threading.current_thread().name)
                # Still rendering (as long as the test likes) when the next order comes.
                assert gate.wait(30), "the test never let the huge ticket finish"
            return real(printer, job, payload)

        spooler._render = render  # type: ignore[method-assign]

    await box.start(hold_the_huge_one)
    try:
        raw = huge_order(9901)
        assert len(json.dumps(raw)) > 1_000_000
        await box.add(raw)
        await eventually(lambda: render_threads, what="the huge ticket rendering")
        await box.add(order("collection", 9902))
        # The next order's ticket arrives while the huge one is still being rendered.
        await eventually(lambda: len(front.jobs) == 1, within=15, what="the next ticket")
        assert "#C9902" in tickets(front)[0].text
        assert not gate.is_set()
        gate.set()
        await eventually(lambda: len(front.jobs) == 2, within=60, what="the huge ticket")
    finally:
        gate.set()
        await box.stop()
    assert render_threads and render_threads[0].startswith("ticket-render")
    huge = tickets(front)[1]
    assert "#C9901" in huge.text
    assert len(huge.lines) < 1000  # capped: not a kilometre of paper
    more = huge.find("more lines, see the page")
    assert more.bold and int(more.text.split()[0]) > 300_000


async def test_reprints_are_capped_per_order_and_per_minute(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    box = Box(tmp_path, [printer("front", front.uri)])
    await box.start()
    try:
        for n in range(12):
            await box.add(order("collection", 9600 + n))
        await eventually(lambda: len(front.jobs) == 12, what="twelve tickets")
        for _ in range(5):
            await append_print_request(box.journal, "reprint", order_id=9600, source="web")
        with pytest.raises(PrintRefused, match="already reprinted 5 times"):
            await append_print_request(box.journal, "reprint", order_id=9600, source="web")
        await eventually(lambda: len(front.jobs) == 17, what="five reprints")
        for n in range(1, 6):
            await append_print_request(box.journal, "reprint", order_id=9600 + n, source="web")
        with pytest.raises(PrintRefused, match="in the last minute"):
            await append_print_request(box.journal, "reprint", order_id=9610, source="web")
        # A terminal that appends its requests straight to the journal meets the same caps.
        for _ in range(3):
            await box.journal.append_event(
                ev.PRINT_REQUESTED, 9611, {"kind": "reprint", "order_id": 9611, "source": "mqtt"}
            )

        async def three_refused() -> bool:
            return len(await box.events(ev.PRINT_FAILED)) == 3

        await eventually(three_refused, what="three refusals")
        await eventually(lambda: len(front.jobs) == 22, what="ten reprints")
        failed = await box.events(ev.PRINT_FAILED)
    finally:
        await box.stop()
    assert all("in the last minute" in e.data["reason"] for e in failed)
    assert len(front.jobs) == 22


async def test_an_order_of_an_unknown_type_prints_where_other_is_taken(
    tmp_path: Path, tcp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    front = await tcp("online")
    kitchen = await tcp("online")
    box = Box(
        tmp_path,
        [printer("front", front.uri), printer("kitchen", kitchen.uri, order_types=["delivery"])],
    )
    await box.start()
    try:
        raw = order("collection", 9701)
        raw["type"] = "catering"
        await box.add(raw)
        await box.add(order("delivery", 9702))
        await eventually(lambda: len(front.jobs) == 2 and kitchen.jobs, what="tickets")
    finally:
        await box.stop()
    assert "CATERING" in tickets(front)[0].text and "#C9701" in tickets(front)[0].text
    assert [("#C9702" in d.text) for d in tickets(kitchen)] == [True]
    assert "type the box does not know ('catering')" in caplog.text
    assert "'other': front" in caplog.text


async def test_an_accepted_delay_prints_an_updated_slip(tmp_path: Path, tcp: Any) -> None:
    front = await tcp("online")
    quiet = await tcp("online")
    box = Box(
        tmp_path,
        [printer("front", front.uri), printer("quiet", quiet.uri, update_slip=False)],
    )
    await box.start()
    try:
        raw = order("delivery", 9801, minutes=30)
        raw["status"] = {"code": "waiting_sp_validation", "name": "Waiting"}
        await box.add(raw)
        await eventually(lambda: front.jobs and quiet.jobs, what="tickets")
        later = with_status(raw, "accepted", False)
        moved = datetime.now(UTC) + timedelta(minutes=50)
        later["executionTime"] = moved.strftime("%Y-%m-%dT%H:%M:%S+0000")
        await box.add(later)
        await eventually(lambda: len(front.jobs) == 2, what="updated slip")
        # Accepted again without a new time: nothing more to say.
        await box.add(with_status(later, "preparation", False))
        await eventually(lambda: box.events(ev.ORDER_STATUS), what="second status", within=5)
    finally:
        await box.stop()
    slip = tickets(front)[1]
    assert slip.lines[0].text.strip() == "UPDATED" and slip.lines[0].invert
    local = moved.astimezone(ZoneInfo("Europe/Madrid"))
    assert slip.find(f"New time: {local:%H:%M}").big
    assert "Was: " in slip.text and "#C9801" in slip.text
    assert len(front.jobs) == 2 and len(quiet.jobs) == 1


async def test_the_cancel_slip_tells_the_kitchen_what_to_stop(tmp_path: Path, tcp: Any) -> None:
    kitchen = await tcp("online")
    box = Box(tmp_path, [printer("kitchen", kitchen.uri, layout="kitchen")])
    await box.start()
    try:
        raw = order("inside", 9851)
        await box.add(raw)
        await eventually(lambda: kitchen.jobs, what="ticket")
        gone = with_status(raw, "cancelled_by_sp", True)
        gone["status"]["name"] = "Cancelled by the restaurant"
        gone["cancellationComment"] = "Cancelled by the restaurant"
        await box.add(gone)
        await eventually(lambda: len(kitchen.jobs) == 2, what="cancel slip")
    finally:
        await box.stop()
    slip = tickets(kitchen)[1]
    assert slip.text.count("Cancelled by the restaurant") == 1  # the reason only repeated it
    assert "Reason" not in slip.text
    assert slip.find("Table: Terraza · Mesa 10").big
    items = [line for line in slip.lines if " x " in line.text]
    assert items and all(line.height == 2 for line in items)  # kitchen layout: big type
    assert "€" not in slip.text


async def test_the_five_reference_orders_in_raster_mode_on_the_virtual_printer(
    tmp_path: Path,
) -> None:
    from PIL import Image

    box = Box(
        tmp_path,
        [printer("demo", "virtual://tickets", render="raster", profile="TM-T20III")],
    )
    await box.start()
    kinds = ("delivery", "collection", "reservation", "insitu", "inside")
    try:
        for n, kind in enumerate(kinds):
            await box.add(order(kind, 9950 + n))
        folder = tmp_path / "tickets"
        await eventually(
            lambda: len(list(folder.glob("*-order.txt"))) == 5, within=30, what="tickets"
        )
    finally:
        await box.stop()
    for n, kind in enumerate(kinds):
        [txt] = folder.glob(f"*-{9950 + n}-order.txt")
        [png] = folder.glob(f"*-{9950 + n}-order.png")
        text = txt.read_text("utf-8")
        assert text.startswith("[raster]") and f"#C{9950 + n}" in text, kind
        with Image.open(png) as img:
            gray = img.convert("L")
            # The 576-dot picture is shown dot for dot, with the virtual paper's margins.
            assert gray.width == 576 + 32, kind
            assert gray.height > 400 and gray.getextrema()[0] == 0, kind
