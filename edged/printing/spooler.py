"""The print spooler: every ticket printed once, on every configured printer.

Jobs come from the journal's event log, read through the spooler's own cursor:

* ``order.new`` / ``order.status`` plan order tickets, cancellation slips and status slips;
* ``print.requested`` (CLI, web page, panel, bridges) plans reprints, test and text tickets.

A job is written to ``print_jobs`` in the same transaction that advances the cursor, so a
crash can neither lose a job nor plan it twice. Each printer has its own worker task and
its own I/O thread: a dead or slow printer never delays another one.

A job's life: ``queued`` → ``sending`` (committed before the first byte goes out) →
``done`` (with its ``print.done`` event). A job found in ``sending`` at start-up may or may
not have printed when the box died: it is printed again under a REPRINT banner, never
silently twice. When a printer is not ready (offline, paper out, cover open) the worker
waits with backoff; after ``failover_after`` seconds its queue moves to its backup
printer, if it has one.

After an outage there is no paper flood: an order that became final meanwhile (cancelled,
finished) is skipped, one whose execution time has passed prints under a LATE banner, and
the queue prints oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edged.config import BoxConfig
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.follower import Follower
from edged.journal.store import Journal, JournalError, StoredOrder, Tx
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode
from edged.printing.settings import PrinterConfig, check_printers
from edged.printing.ticket import (
    Ticket,
    TicketOptions,
    cancel_slip,
    is_late,
    order_ticket,
    parse_time,
    printer_test_ticket,
    status_slip,
    text_ticket,
)
from edged.printing.transports import (
    NOT_READY,
    OFFLINE,
    UNKNOWN,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    Transport,
    make_transport,
)
from edged.sinqro.models import CANCELLED_STATUSES, GONE, WAITING
from edged.state import BoxState

log = logging.getLogger(__name__)

CONSUMER = "spooler"
BATCH = 256
REQUEST_KINDS = ("reprint", "test", "text")
# A spooler that meets an old journal (first start, printer added later) must not print
# the whole history: orders the box has known for longer than this are not printed.
STALE_AFTER = 12 * 3600.0
MAX_TEXT_LINES = 200
MAX_TEXT_LINE = 500
FIRST_RETRY = 0.5
TICKET_KINDS = ("order", "reprint")


@dataclass(frozen=True)
class Job:
    """A ``print_jobs`` row."""

    id: int
    printer: str
    origin: str
    kind: str
    order_id: int | None
    event_seq: int
    params: dict[str, Any]
    state: str
    reprint: bool
    attempts: int
    created: float

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(
            id=row["id"],
            printer=row["printer"],
            origin=row["origin"],
            kind=row["kind"],
            order_id=row["order_id"],
            event_seq=row["event_seq"],
            params=json.loads(row["params"]),
            state=row["state"],
            reprint=bool(row["reprint"]),
            attempts=row["attempts"],
            created=row["created"],
        )


@dataclass
class _Printer:
    """Runtime of one configured printer."""

    config: PrinterConfig
    transport: Transport
    encoder: EncoderSettings
    columns: int
    executor: ThreadPoolExecutor
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    health: Status | None = None
    down_since: float | None = None  # monotonic time of the first failure in a row
    failed_over: bool = False
    executor_closed: bool = False


def _executor(name: str) -> ThreadPoolExecutor:
    # One thread per printer: a printer stuck until its timeout only ever holds its own.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"printer-{name}")


def columns_for(config: PrinterConfig) -> int:
    """Characters per line: configured, else from the paper width and the profile."""
    if config.columns:
        return config.columns
    if config.paper_width == 58:
        return 32
    return codepages.get_profile(config.profile).columns_font_a or 42


async def append_print_request(
    journal: Journal,
    kind: str,
    *,
    source: str,
    order_id: int | None = None,
    printer: str | None = None,
    lines: list[str] | None = None,
    qr: str = "",
    big: Sequence[int] = (),
) -> Event:
    """Ask the spooler (in this process or the daemon) to print: ``reprint`` an order,
    a ``test`` page on ``printer``, or free ``text`` lines. Returns the journal event."""
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown print request {kind!r}")
    if kind == "reprint" and order_id is None:
        raise ValueError("a reprint needs an order id")
    if kind == "test" and not printer:
        raise ValueError("a test print needs a printer name")
    data: dict[str, Any] = {"kind": kind, "source": source}
    if order_id is not None:
        data["order_id"] = order_id
    if printer:
        data["printer"] = printer
    if kind == "text":
        data["lines"] = [str(line)[:MAX_TEXT_LINE] for line in (lines or [])][:MAX_TEXT_LINES]
        if qr:
            data["qr"] = str(qr)[:MAX_TEXT_LINE]
        if big:
            data["big"] = [int(i) for i in big][:MAX_TEXT_LINES]
    return await journal.append_event(ev.PRINT_REQUESTED, order_id, data)


def printed_before(tx: Tx, order: StoredOrder) -> bool:
    """After a damaged journal was replaced, an order Sinqro created before that may have
    printed already: its ticket comes again under a REPRINT banner, never silently twice."""
    if tx.recovered_at is None:
        return False
    created = parse_time(order.payload.get("createdAt"))
    return created is None or created.timestamp() < tx.recovered_at


class Spooler:
    """Plans print jobs from the journal and runs one worker per printer."""

    def __init__(
        self,
        printers: list[PrinterConfig],
        journal: Journal,
        state: BoxState,
        box: BoxConfig,
    ) -> None:
        check_printers(printers)
        self.journal = journal
        self.state = state
        self.box = box
        self._printers: dict[str, _Printer] = {}
        for config in printers:
            code_page = codepages.resolve(config.profile, config.code_page)
            profile = codepages.get_profile(config.profile)
            columns = columns_for(config)
            transport = make_transport(
                config.uri,
                config.timeout,
                base_dir=Path(box.state_dir),
                codec=code_page.codec,
                columns=columns,
            )
            self._printers[config.name] = _Printer(
                config=config,
                transport=transport,
                encoder=EncoderSettings(code_page, profile, config.paper_width, config.cut),
                columns=columns,
                executor=_executor(config.name),
            )
            state.set(f"printer.{config.name}", {"state": UNKNOWN, "detail": "starting"})

    # -- requests (same path as the CLI: through the journal) ------------------------------

    async def request_reprint(
        self, order_id: int, printer: str | None = None, *, source: str
    ) -> None:
        """Print an order again (REPRINT banner), on ``printer`` or where it printed."""
        await append_print_request(
            self.journal, "reprint", order_id=order_id, printer=printer, source=source
        )

    async def request_test_print(self, printer: str, *, source: str) -> None:
        """Print the test page on ``printer``."""
        await append_print_request(self.journal, "test", printer=printer, source=source)

    async def request_text(
        self,
        lines: list[str],
        *,
        source: str,
        printer: str | None = None,
        qr: str = "",
        big: Sequence[int] = (),
    ) -> None:
        """Print free text (the setup ticket) on ``printer`` or the first printer; the
        lines at indexes ``big`` in large type, ``qr`` as a QR code at the end."""
        await append_print_request(
            self.journal, "text", lines=lines, printer=printer, source=source, qr=qr, big=big
        )

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Plan and print until cancelled."""
        for printer in self._printers.values():
            if printer.executor_closed:
                printer.executor = _executor(printer.config.name)
                printer.executor_closed = False
        try:
            await self._recover()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._dispatch(), name="spooler-plan")
                for printer in self._printers.values():
                    tg.create_task(self._worker(printer), name=f"spooler-{printer.config.name}")
        finally:
            for printer in self._printers.values():
                # A thread stuck in a printer call ends with its own timeout; don't wait.
                printer.executor.shutdown(wait=False, cancel_futures=True)
                printer.executor_closed = True

    async def _recover(self) -> None:
        names = list(self._printers)

        def run(tx: Tx) -> tuple[int, list[Job]]:
            maybe = tx.execute(
                "UPDATE print_jobs SET state = 'queued', reprint = 1, updated = ?"
                " WHERE state = 'sending'",
                (tx.now,),
            ).rowcount
            # A job parked on a backup that is no longer configured goes home.
            marks = ",".join("?" * len(names))
            tx.execute(
                f"UPDATE print_jobs SET printer = origin WHERE state = 'queued'"
                f" AND printer NOT IN ({marks}) AND origin IN ({marks})",
                (*names, *names),
            )
            rows = tx.execute(
                f"SELECT * FROM print_jobs WHERE state = 'queued' AND printer NOT IN ({marks})",
                names,
            ).fetchall()
            orphans = [Job.from_row(r) for r in rows]
            for job in orphans:
                self._close_job(tx, job, "failed", "printer no longer configured")
            return maybe, orphans

        maybe, orphans = await self.journal.transaction(run)
        if maybe:
            log.warning(
                "spooler: %d ticket(s) were being sent when the box stopped; "
                "printing them again marked REPRINT",
                maybe,
            )
        for job in orphans:
            log.warning("spooler: job %d for removed printer %s dropped", job.id, job.printer)

    # -- planning --------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        follower = Follower(self.journal, CONSUMER, batch=BATCH)
        await follower.start()
        while True:
            events = await follower.next_batch()
            try:
                touched = await self.journal.transaction(
                    functools.partial(self._plan, events=events)
                )
            except JournalError as exc:
                log.error("spooler: cannot record print jobs: %s; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            # The cursor itself moved in the planning transaction (tx.set_cursor).
            follower.advance(events[-1].seq)
            for name in touched:
                self._printers[name].wake.set()

    def _plan(self, tx: Tx, *, events: list[Event]) -> set[str]:
        """Turn events into jobs; runs on the journal thread inside one transaction."""
        touched: set[str] = set()
        for event in events:
            try:
                if event.kind == ev.ORDER_NEW:
                    self._plan_new(tx, event, touched)
                elif event.kind == ev.ORDER_STATUS:
                    self._plan_status(tx, event, touched)
                elif event.kind == ev.PRINT_REQUESTED:
                    self._plan_request(tx, event, touched)
            except (KeyError, TypeError, ValueError) as exc:
                # A malformed event must not stall the queue for every later ticket.
                log.error("spooler: cannot plan event %d (%s): %s", event.seq, event.kind, exc)
        # Lazy: written with the jobs when there are any; events that planned nothing plan
        # nothing again after a crash (jobs are unique per printer, event and kind).
        tx.set_cursor(CONSUMER, events[-1].seq, lazy=True)
        return touched

    def _add(
        self,
        tx: Tx,
        printer: str,
        kind: str,
        event: Event,
        params: dict[str, Any],
        *,
        state: str = "queued",
        error: str | None = None,
        reprint: bool = False,
    ) -> bool:
        cur = tx.execute(
            "INSERT OR IGNORE INTO print_jobs (printer, origin, kind, order_id, event_seq, params,"
            " state, created, updated, error, reprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                printer,
                printer,
                kind,
                event.order_id,
                event.seq,
                json.dumps(params, ensure_ascii=False),
                state,
                tx.now,
                tx.now,
                error,
                int(reprint),
            ),
        )
        return bool(cur.rowcount)

    def _has_ticket(self, tx: Tx, origin: str, order_id: int, states: tuple[str, ...]) -> bool:
        marks = ",".join("?" * len(states))
        row = tx.execute(
            f"SELECT 1 FROM print_jobs WHERE order_id = ? AND origin = ?"
            f" AND kind IN ('order', 'reprint') AND state IN ({marks}) LIMIT 1",
            (order_id, origin, *states),
        ).fetchone()
        return row is not None

    def _plan_new(self, tx: Tx, event: Event, touched: set[str]) -> None:
        if event.order_id is None:
            return
        order = tx.get_order(event.order_id)
        if order is None:
            return
        data = ev.payload(event)
        status = data.status if isinstance(data, ev.OrderNew) and data.status else order.status
        stale = tx.now - order.first_seen > STALE_AFTER
        for name, printer in self._printers.items():
            config = printer.config
            if order.type not in config.order_types:
                continue
            if config.print_on == "accepted" and (status == WAITING or order.is_final):
                continue
            if order.is_final or stale:
                # Over (cancelled, finished) before its ticket could print, or history from
                # before this printer existed: recorded, not printed.
                why = f"order already {order.status}" if order.is_final else "stale order"
                self._add(tx, name, "order", event, {}, state="skipped", error=why)
                continue
            if self._add(tx, name, "order", event, {}, reprint=printed_before(tx, order)):
                touched.add(name)

    def _plan_status(self, tx: Tx, event: Event, touched: set[str]) -> None:
        if event.order_id is None:
            return
        order = tx.get_order(event.order_id)
        if order is None:
            return
        data = ev.payload(event)
        status = data.status if isinstance(data, ev.OrderStatus) else ""
        live = ("queued", "sending", "done")
        for name, printer in self._printers.items():
            config = printer.config
            if order.type not in config.order_types:
                continue
            has_ticket = self._has_ticket(tx, name, order.id, live)
            if status in CANCELLED_STATUSES or status == GONE:
                if (
                    config.cancel_slip
                    and has_ticket
                    and self._add(tx, name, "cancel", event, {"status": status})
                ):
                    touched.add(name)
            elif (
                status in config.status_slips
                and has_ticket
                and self._add(tx, name, "status", event, {"status": status})
            ):
                touched.add(name)
            if (
                config.print_on == "accepted"
                and status != WAITING
                and not order.is_final
                and not self._has_ticket(tx, name, order.id, (*live, "skipped", "failed"))
                and tx.now - order.first_seen <= STALE_AFTER
                and self._add(tx, name, "order", event, {})
            ):
                touched.add(name)

    def _plan_request(self, tx: Tx, event: Event, touched: set[str]) -> None:
        data = event.data
        kind = data.get("kind")
        source = str(data.get("source", ""))[:40]
        wanted = data.get("printer")
        if wanted is not None and (not isinstance(wanted, str) or wanted not in self._printers):
            self._refuse(tx, event, str(kind), str(wanted), "no such printer")
            return
        if kind == "reprint":
            order = tx.get_order(event.order_id) if event.order_id is not None else None
            if order is None:
                self._refuse(tx, event, "reprint", wanted or "", "order not in the journal")
                return
            targets = [wanted] if wanted else self._reprint_targets(tx, order)
            for name in targets:
                if self._add(tx, name, "reprint", event, {"source": source}):
                    touched.add(name)
        elif kind == "test":
            if not wanted:
                self._refuse(tx, event, "test", "", "no printer named")
                return
            if self._add(tx, wanted, "test", event, {"source": source}):
                touched.add(wanted)
        elif kind == "text":
            raw = data.get("lines")
            if not isinstance(raw, list):
                self._refuse(tx, event, "text", wanted or "", "no lines")
                return
            lines = [str(line)[:MAX_TEXT_LINE] for line in raw[:MAX_TEXT_LINES]]
            params: dict[str, Any] = {"source": source, "lines": lines}
            qr = data.get("qr")
            if isinstance(qr, str) and qr:
                params["qr"] = qr[:MAX_TEXT_LINE]
            big = data.get("big")
            if isinstance(big, list):
                params["big"] = [i for i in big if isinstance(i, int) and not isinstance(i, bool)]
            target = wanted or next(iter(self._printers), None)
            if target is not None and self._add(tx, target, "text", event, params):
                touched.add(target)
        else:
            self._refuse(tx, event, str(kind), wanted or "", "unknown print request")

    def _reprint_targets(self, tx: Tx, order: StoredOrder) -> list[str]:
        printed = [n for n in self._printers if self._has_ticket(tx, n, order.id, ("done",))]
        if printed:
            return printed
        takers = [n for n, p in self._printers.items() if order.type in p.config.order_types]
        return takers or list(self._printers)[:1]

    def _refuse(self, tx: Tx, event: Event, kind: str, printer: str, reason: str) -> None:
        log.warning("spooler: print request %d (%s) refused: %s", event.seq, kind, reason)
        tx.append_event(
            ev.PRINT_FAILED,
            event.order_id,
            {"printer": printer, "job_id": None, "kind": kind, "reason": reason},
        )

    # -- printing --------------------------------------------------------------------------

    async def _next_job(self, name: str) -> Job | None:
        def run(tx: Tx) -> Job | None:
            row = tx.execute(
                "SELECT * FROM print_jobs WHERE printer = ? AND state IN ('queued', 'sending')"
                " ORDER BY id LIMIT 1",
                (name,),
            ).fetchone()
            return Job.from_row(row) if row else None

        return await self.journal.transaction(run)

    async def _worker(self, printer: _Printer) -> None:
        name = printer.config.name
        delay = min(FIRST_RETRY, printer.config.retry_max)
        first = True
        while True:
            printer.wake.clear()
            try:
                job = await self._next_job(name)
            except JournalError as exc:
                log.error("printer %s: journal unavailable: %s", name, exc)
                await asyncio.sleep(delay)
                continue
            if job is None:
                await self._idle(printer, first)
                first = False
                continue
            first = False
            if printer.down_since is not None and await self._maybe_fail_over(printer):
                continue
            try:
                ok = await self._print(printer, job)
            except JournalError as exc:
                log.error("printer %s: journal unavailable: %s", name, exc)
                ok = False
            if ok:
                delay = min(FIRST_RETRY, printer.config.retry_max)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, printer.config.retry_max)

    async def _idle(self, printer: _Printer, first: bool) -> None:
        """Wait for work; poll health meanwhile (often while down, to notice recovery)."""
        config = printer.config
        if first:
            await self._poll_health(printer)
        interval = config.retry_max if printer.down_since is not None else config.health_interval
        try:
            async with asyncio.timeout(interval or None):
                await printer.wake.wait()
        except TimeoutError:
            await self._poll_health(printer)

    async def _poll_health(self, printer: _Printer) -> None:
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(printer.executor, printer.transport.status)
        await self._set_health(printer, status)
        if status.state in NOT_READY:
            if printer.down_since is None:
                printer.down_since = time.monotonic()
        elif printer.down_since is not None:
            log.info("printer %s: back (%s)", printer.config.name, status.state)
            printer.down_since = None
            printer.failed_over = False

    async def _maybe_fail_over(self, printer: _Printer) -> bool:
        """Move this printer's queue to its backup once it has been down long enough."""
        config = printer.config
        assert printer.down_since is not None
        if not config.backup or time.monotonic() - printer.down_since < config.failover_after:
            return False
        name, backup = config.name, config.backup

        def run(tx: Tx) -> int:
            return tx.execute(
                "UPDATE print_jobs SET printer = ?, updated = ?"
                " WHERE printer = ? AND origin = ? AND state = 'queued'",
                (backup, tx.now, name, name),
            ).rowcount

        moved = await self.journal.transaction(run)
        if moved:
            if not printer.failed_over:
                log.warning(
                    "printer %s: down for %.0f s, its tickets go to %s",
                    name,
                    time.monotonic() - printer.down_since,
                    backup,
                )
            printer.failed_over = True
            self._printers[backup].wake.set()
        return moved > 0

    async def _print(self, printer: _Printer, job: Job) -> bool:
        """Print one job; False when the printer could not take it (retry later)."""
        name = printer.config.name
        order = await self.journal.get_order(job.order_id) if job.order_id is not None else None
        skip = self._skip_reason(job, order)
        if (
            skip is None
            and job.kind in ("cancel", "status")
            and job.order_id is not None
            and not await self._ticket_done(job.origin, job.order_id)
        ):
            skip = "its order ticket was never printed"
        if skip is not None:
            log.info("printer %s: job %d (%s) skipped: %s", name, job.id, job.kind, skip)
            await self._close(job, "skipped", skip)
            return True
        try:
            ticket = self._ticket(printer, job, order)
            data = encode(ticket, printer.encoder, self._copies(job))
        except Exception as exc:  # a bug or a payload we cannot render: never block the queue
            log.exception("printer %s: cannot render job %d", name, job.id)
            await self._close(job, "failed", f"cannot render: {exc}")
            return True
        await self._set_state(job, "sending")
        meta = JobMeta(job.id, ticket.kind, job.order_id)
        loop = asyncio.get_running_loop()
        try:
            seen = await loop.run_in_executor(
                printer.executor, printer.transport.deliver, data, meta
            )
        except NotReady as exc:
            await self._set_state(job, "queued", error=str(exc))
            await self._down(printer, exc.status)
            return False
        except PrinterError as exc:
            await self._set_state(job, "queued", error=str(exc), reprint=exc.partial)
            await self._down(printer, Status(OFFLINE, str(exc)))
            return False
        await self._close(job, "done", None, ticket=ticket)
        of_order = f" for order {job.order_id}" if job.order_id else ""
        log.info("printer %s: printed %s%s (job %d)", name, ticket.kind, of_order, job.id)
        if printer.down_since is not None:
            log.info("printer %s: back", name)
        printer.down_since = None
        printer.failed_over = False
        await self._set_health(printer, seen)
        return True

    def _copies(self, job: Job) -> int:
        if job.kind in ("order", "reprint"):
            origin = self._printers.get(job.origin)
            return origin.config.copies if origin else 1
        return 1

    def _skip_reason(self, job: Job, order: StoredOrder | None) -> str | None:
        if job.kind in ("test", "text"):
            return None
        if order is None:
            return "order not in the journal"
        if job.kind == "order" and order.is_final:
            return f"order became {order.status} before it printed"
        if job.kind == "status" and order.is_final:
            return f"order already {order.status}"
        return None

    async def _ticket_done(self, origin: str, order_id: int) -> bool:
        def run(tx: Tx) -> bool:
            return self._has_ticket(tx, origin, order_id, ("done",))

        return await self.journal.transaction(run)

    def _ticket(self, printer: _Printer, job: Job, order: StoredOrder | None) -> Ticket:
        """Render with the origin printer's layout and this printer's paper and code page."""
        origin = self._printers.get(job.origin, printer).config
        now = datetime.now(UTC)
        parsed = order.order if order is not None else None
        opts = TicketOptions(
            columns=printer.columns,
            language=self.box.language,
            layout=origin.layout,
            qr_tracking=origin.qr_tracking,
            logo=origin.logo,
            reprint=job.reprint or job.kind == "reprint",
            late=job.kind == "order" and parsed is not None and is_late(parsed, now),
            backup_for=job.origin if job.origin != printer.config.name else "",
        )
        if job.kind in TICKET_KINDS and parsed is not None:
            return order_ticket(parsed, opts)
        if job.kind == "cancel" and parsed is not None:
            return cancel_slip(parsed, str(job.params.get("status", "")), opts, now)
        if job.kind == "status" and parsed is not None:
            return status_slip(parsed, str(job.params.get("status", "")), opts, now)
        if job.kind == "test":
            code_page = printer.encoder.code_page.name
            return printer_test_ticket(printer.config.name, self.box.name, code_page, opts, now)
        if job.kind == "text":
            lines = job.params.get("lines", [])
            big = job.params.get("big", [])
            return text_ticket(
                [str(x) for x in lines] if isinstance(lines, list) else [],
                opts,
                qr=str(job.params.get("qr", "")),
                big=[i for i in big if isinstance(i, int)] if isinstance(big, list) else [],
            )
        raise ValueError(f"unknown job kind {job.kind!r}")

    # -- job state -------------------------------------------------------------------------

    async def _set_state(
        self, job: Job, state: str, *, error: str | None = None, reprint: bool = False
    ) -> None:
        def run(tx: Tx) -> None:
            tx.execute(
                "UPDATE print_jobs SET state = ?, error = ?, updated = ?,"
                " attempts = attempts + ?, reprint = MAX(reprint, ?) WHERE id = ?",
                (state, error, tx.now, int(state == "sending"), int(reprint), job.id),
            )

        await self.journal.transaction(run)

    async def _close(
        self, job: Job, state: str, reason: str | None, ticket: Ticket | None = None
    ) -> None:
        await self.journal.transaction(lambda tx: self._close_job(tx, job, state, reason, ticket))

    def _close_job(
        self, tx: Tx, job: Job, state: str, reason: str | None, ticket: Ticket | None = None
    ) -> None:
        tx.execute(
            "UPDATE print_jobs SET state = ?, error = ?, updated = ? WHERE id = ?",
            (state, reason, tx.now, job.id),
        )
        if state == "done":
            data: dict[str, Any] = {
                "printer": job.printer,
                "job_id": job.id,
                "kind": ticket.kind if ticket else job.kind,
                "reprint": job.reprint or job.kind == "reprint",
            }
            if job.origin != job.printer:
                data["instead_of"] = job.origin
            tx.append_event(ev.PRINT_DONE, job.order_id, data)
        elif state == "failed":
            tx.append_event(
                ev.PRINT_FAILED,
                job.order_id,
                {"printer": job.printer, "job_id": job.id, "kind": job.kind, "reason": reason},
            )

    # -- health ----------------------------------------------------------------------------

    async def _down(self, printer: _Printer, status: Status) -> None:
        if printer.down_since is None:
            printer.down_since = time.monotonic()
            log.warning(
                "printer %s: cannot print: %s %s", printer.config.name, status.state, status.detail
            )
        await self._set_health(printer, status)

    async def _set_health(self, printer: _Printer, status: Status) -> None:
        name = printer.config.name
        previous = printer.health
        printer.health = status
        self.state.set(f"printer.{name}", status.as_dict())
        if previous is not None and previous.state == status.state:
            return
        if previous is None and status.state == UNKNOWN:
            return
        log.info("printer %s: %s %s", name, status.state, status.detail)
        with contextlib.suppress(JournalError):
            await self.journal.append_event(
                ev.PRINTER_HEALTH,
                None,
                {"printer": name, "state": status.state, "detail": status.detail},
            )

    def health(self) -> dict[str, dict[str, str]]:
        """Current health of every printer (as in BoxState)."""
        return {
            name: (p.health or Status(UNKNOWN, "starting")).as_dict()
            for name, p in self._printers.items()
        }

    @property
    def printer_names(self) -> list[str]:
        return list(self._printers)
