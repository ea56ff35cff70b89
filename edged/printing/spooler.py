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

Tickets are rendered off the event loop, each on a thread of its own. An order too big to
be a real one (more than :data:`HEAVY_ORDER` bytes) may take a while to render even with
its lines capped: the tickets queued behind it print meanwhile, and it prints when ready.

Who takes what is :mod:`edged.printing.planner`; how a job becomes bytes is
:mod:`edged.printing.printer`; each printer's health and the failover to its backup are
:mod:`edged.printing.health`; orders the journal could not store yet print from memory
(:mod:`edged.printing.unstored`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edged.backoff import Backoff
from edged.config import BoxConfig
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.follower import Follower, patiently
from edged.journal.store import Journal, JournalError, Tx
from edged.journal.unstored import UnstoredOrders
from edged.printing import pyescpos
from edged.printing.health import PrinterHealth
from edged.printing.jobs import REQUEST_KINDS, Job, PrintRefused, append_print_request
from edged.printing.planner import JobPlanner, has_ticket
from edged.printing.printer import (
    LOOKAHEAD,
    PrinterRuntime,
    Rendered,
    columns_for,
    encoder_for,
    printer_executor,
    render_job,
)
from edged.printing.settings import PrinterConfig, check_printers
from edged.printing.ticket import Ticket
from edged.printing.transports import (
    OFFLINE,
    UNKNOWN,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    TransportFactory,
)
from edged.printing.unstored import MemoryPrints
from edged.sinqro.models import Order
from edged.state import BoxState, printer_key

__all__ = ["REQUEST_KINDS", "Job", "PrintRefused", "Spooler", "append_print_request", "columns_for"]

log = logging.getLogger(__name__)

CONSUMER = "spooler"
BATCH = 256
FIRST_RETRY = 0.5
# Kinds whose printed time is remembered, to notice when an accepted delay moves it.
TIMED_KINDS = ("order", "reprint", "updated")
# An order payload above this many bytes may render slowly: younger jobs overtake it.
HEAVY_ORDER = 64 * 1024


class Spooler:
    """Plans print jobs from the journal and runs one worker per printer."""

    def __init__(
        self,
        printers: list[PrinterConfig],
        journal: Journal,
        state: BoxState,
        box: BoxConfig,
        *,
        transports: TransportFactory,
        unstored: UnstoredOrders[Order] | None = None,
    ) -> None:
        """``transports`` builds each printer's transport (the composition root passes
        :func:`edged.printing.transports.make_transport`); ``unstored``: the orders the
        journal could not store, printed from memory while the spooler runs."""
        check_printers(printers)
        self.journal = journal
        self.state = state
        self.box = box
        # The selling point's time zone (the pairing's); set by the composition root.
        # Tickets of orders carry their own; the test page and slips without one use it.
        self.timezone: Callable[[], str] = lambda: ""
        self._printers: dict[str, PrinterRuntime] = {}
        # One short-lived thread per ticket being rendered: a huge order never holds
        # back the render of the next one, on any printer.
        self._render_pool = ThreadPoolExecutor(
            max_workers=2 + LOOKAHEAD * len(printers), thread_name_prefix="ticket-render"
        )
        for config in printers:
            encoder = encoder_for(config)
            columns = columns_for(config)
            transport = transports(
                config,
                base_dir=Path(box.state_dir),
                codec=encoder.code_page.codec,
                columns=columns,
            )
            self._printers[config.name] = PrinterRuntime(
                config=config,
                transport=transport,
                encoder=encoder,
                columns=columns,
                executor=printer_executor(config.name),
            )
            state.set(printer_key(config.name), {"state": UNKNOWN, "detail": "starting"})
        self.unstored = unstored
        self._memory = (
            MemoryPrints(self._printers, box, self._render_pool, unstored) if unstored else None
        )
        self._memory_tasks: set[asyncio.Task[None]] = set()
        self._planner = JobPlanner(
            {name: p.config for name, p in self._printers.items()},
            unstored.printed_on if unstored else lambda order_id, printer: False,
        )
        self._health = PrinterHealth(journal, state, self._printers)

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
                printer.executor = printer_executor(printer.config.name)
                printer.executor_closed = False
        if self.unstored is not None:
            self.unstored.add_listener(self._on_unstored)
            for order in self.unstored.held():  # held while no spooler ran
                self._on_unstored(order)
        try:
            await self._recover()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._warm_up(), name="spooler-warm-up")
                tg.create_task(self._dispatch(), name="spooler-plan")
                for printer in self._printers.values():
                    tg.create_task(self._worker(printer), name=f"spooler-{printer.config.name}")
        finally:
            if self.unstored is not None:
                self.unstored.remove_listener(self._on_unstored)
            for printer in self._printers.values():
                # A thread stuck in a printer call ends with its own timeout; don't wait.
                printer.executor.shutdown(wait=False, cancel_futures=True)
                printer.executor_closed = True

    async def _warm_up(self) -> None:
        """python-escpos loaded before the first ticket needs it (ESC/POS printers only)."""
        for printer in self._printers.values():
            settings = printer.encoder
            if settings.command_set == "escpos":
                try:
                    await asyncio.to_thread(
                        pyescpos.warm_up, settings.profile.name, settings.raster_dots
                    )
                except Exception:  # the first ticket will say what is wrong, with its job
                    log.exception("printing: python-escpos could not be prepared")
                return

    def _on_unstored(self, order: Order) -> None:
        assert self._memory is not None
        task = asyncio.ensure_future(self._memory.print_order(order))
        self._memory_tasks.add(task)
        task.add_done_callback(self._memory_tasks.discard)

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

        maybe, orphans = await patiently(lambda: self.journal.transaction(run), "spooler")
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
        await patiently(follower.start, "spooler")
        while True:
            events = await patiently(follower.next_batch, "spooler")
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
                    self._planner.order_new(tx, event, touched)
                elif event.kind == ev.ORDER_STATUS:
                    self._planner.order_status(tx, event, touched)
                elif event.kind == ev.PRINT_REQUESTED:
                    self._planner.print_requested(tx, event, touched)
            except (KeyError, TypeError, ValueError) as exc:
                # A malformed event must not stall the queue for every later ticket.
                log.error("spooler: cannot plan event %d (%s): %s", event.seq, event.kind, exc)
        # Lazy: written with the jobs when there are any; events that planned nothing plan
        # nothing again after a crash (jobs are unique per printer, event and kind).
        tx.set_cursor(CONSUMER, events[-1].seq, lazy=True)
        return touched

    # -- printing --------------------------------------------------------------------------

    async def _queued(self, name: str) -> tuple[list[Job], dict[int, str]]:
        """The next few jobs of printer ``name``, oldest first, with their order's size,
        and the JSON of their orders when small (job id → text)."""

        def run(tx: Tx) -> tuple[list[Job], dict[int, str]]:
            rows = tx.execute(
                "SELECT j.*, length(o.payload) AS payload_size,"
                " CASE WHEN length(o.payload) <= ? THEN o.payload END AS payload"
                " FROM print_jobs j LEFT JOIN orders o ON o.id = j.order_id"
                " WHERE j.printer = ? AND j.state IN ('queued', 'sending') ORDER BY j.id LIMIT ?",
                (HEAVY_ORDER, name, LOOKAHEAD),
            ).fetchall()
            # Ordinary orders come with the jobs: one journal hop less on the hot path.
            payloads = {r["id"]: str(r["payload"]) for r in rows if r["payload"] is not None}
            return [Job.from_row(r) for r in rows], payloads

        return await self.journal.transaction(run)

    async def _worker(self, printer: PrinterRuntime) -> None:
        name = printer.config.name
        backoff = Backoff(FIRST_RETRY, printer.config.retry_max)
        first = True
        while True:
            printer.wake.clear()
            try:
                jobs, payloads = await self._queued(name)
            except JournalError as exc:
                log.error("printer %s: journal unavailable: %s", name, exc)
                await asyncio.sleep(backoff.again())
                continue
            self._forget_renders(printer, jobs)
            if not jobs:
                await self._idle(printer, first)
                first = False
                continue
            first = False
            if printer.down_since is not None and await self._health.fail_over(printer):
                continue
            job = await self._next_ready(printer, jobs, payloads)
            if job is None:
                continue  # woken: the queue changed while renders were under way
            rendered = printer.renders.pop(job.id).result()
            try:
                ok = await self._print(printer, job, rendered)
            except JournalError as exc:
                log.error("printer %s: journal unavailable: %s", name, exc)
                ok = False
            if ok:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next())

    def _forget_renders(self, printer: PrinterRuntime, jobs: list[Job]) -> None:
        keep = {job.id for job in jobs}
        for job_id in [j for j in printer.renders if j not in keep]:
            printer.renders.pop(job_id)  # moved to a backup or closed: its thread just ends

    async def _next_ready(
        self, printer: PrinterRuntime, jobs: list[Job], payloads: dict[int, str]
    ) -> Job | None:
        """The job to print next: the oldest, unless it is a heavy order still rendering,
        which the jobs behind it may overtake. None when woken before any was ready."""
        loop = asyncio.get_running_loop()
        for job in jobs:
            if job.id not in printer.renders:
                payload = payloads.get(job.id)
                if payload is None:
                    payload = await self._payload(job.order_id)
                printer.renders[job.id] = loop.run_in_executor(
                    self._render_pool, self._render, printer, job, payload
                )
        waiting: list[asyncio.Future[Rendered]] = []
        for job in jobs:
            future = printer.renders[job.id]
            if future.done():
                return job
            waiting.append(future)
            if job.payload_size <= HEAVY_ORDER:
                break  # an ordinary job keeps its place in the queue
        if len(waiting) == 1 and jobs[0].payload_size <= HEAVY_ORDER:
            await asyncio.wait(waiting)  # renders in milliseconds: not worth a wake-up
            return jobs[0]
        wake: asyncio.Future[Any] = asyncio.ensure_future(printer.wake.wait())
        try:
            await asyncio.wait([*waiting, wake], return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
        return next((j for j in jobs if printer.renders[j.id].done()), None)

    async def _idle(self, printer: PrinterRuntime, first: bool) -> None:
        """Wait for work; poll health meanwhile (often while down, to notice recovery)."""
        config = printer.config
        if first:
            await self._health.poll(printer)
        interval = config.retry_max if printer.down_since is not None else config.health_interval
        try:
            async with asyncio.timeout(interval or None):
                await printer.wake.wait()
        except TimeoutError:
            await self._health.poll(printer)

    async def _print(self, printer: PrinterRuntime, job: Job, rendered: Rendered) -> bool:
        """Print one rendered job; False when the printer could not take it (retry later)."""
        name = printer.config.name
        skip = rendered.skip or await self._start_sending(job)
        if skip is not None:
            log.info("printer %s: job %d (%s) skipped: %s", name, job.id, job.kind, skip)
            await self._close(job, "skipped", skip)
            return True
        if rendered.ticket is None:
            log.error("printer %s: cannot render job %d: %s", name, job.id, rendered.error)
            await self._close(job, "failed", f"cannot render: {rendered.error}")
            return True
        ticket = rendered.ticket
        meta = JobMeta(job.id, ticket.kind, job.order_id, ticket.plain_text())
        loop = asyncio.get_running_loop()
        try:
            seen = await loop.run_in_executor(
                printer.executor, printer.transport.deliver, rendered.data, meta
            )
        except NotReady as exc:
            await self._set_state(job, "queued", error=str(exc))
            await self._health.down(printer, exc.status)
            return False
        except PrinterError as exc:
            await self._set_state(job, "queued", error=str(exc), reprint=exc.partial)
            await self._health.down(printer, Status(OFFLINE, str(exc)))
            return False
        await self._close(job, "done", None, ticket=ticket, execution_time=rendered.execution_time)
        of_order = f" for order {job.order_id}" if job.order_id else ""
        log.info("printer %s: printed %s%s (job %d)", name, ticket.kind, of_order, job.id)
        await self._health.printed(printer, seen)
        return True

    async def _start_sending(self, job: Job) -> str | None:
        """Mark the job ``sending`` (committed before the first byte goes out), unless its
        order moved on since it was rendered: then say why it must not print."""
        order_id = job.order_id

        def run(tx: Tx) -> str | None:
            if order_id is not None:
                row = tx.execute(
                    "SELECT status, is_final FROM orders WHERE id = ?", (order_id,)
                ).fetchone()
                if row is None:
                    return "order not in the journal"
                reason = self._skip_reason(job, str(row["status"]), bool(row["is_final"]))
                if (
                    reason is None
                    and job.kind in ("cancel", "status", "updated")
                    and not has_ticket(tx, job.origin, order_id, ("done",))
                ):
                    reason = "its order ticket was never printed"
                if reason is not None:
                    return reason
            self._update_state(tx, job, "sending")
            return None

        return await self.journal.transaction(run)

    def _render(self, printer: PrinterRuntime, job: Job, payload: str | None) -> Rendered:
        """Render one job (on a render thread) with its origin printer's layout."""
        origin = self._printers.get(job.origin, printer).config
        box = dataclasses.replace(self.box, timezone=self.timezone() or self.box.timezone)
        return render_job(printer, origin, box, job, payload, self._copies(job))

    def _copies(self, job: Job) -> int:
        if job.kind in ("order", "reprint"):
            origin = self._printers.get(job.origin)
            return origin.config.copies if origin else 1
        return 1

    def _skip_reason(self, job: Job, status: str, is_final: bool) -> str | None:
        if job.kind in ("test", "text"):
            return None
        if job.kind in ("order", "updated") and is_final:
            return f"order became {status} before it printed"
        if job.kind == "status" and is_final:
            return f"order already {status}"
        return None

    # -- rendering (on a render thread) ----------------------------------------------------

    async def _payload(self, order_id: int | None) -> str | None:
        """The order's stored JSON text, undecoded (decoding a big one is render work)."""
        if order_id is None:
            return None

        def run(tx: Tx) -> str | None:
            row = tx.execute("SELECT payload FROM orders WHERE id = ?", (order_id,)).fetchone()
            return str(row["payload"]) if row is not None else None

        return await self.journal.transaction(run)

    # -- job state -------------------------------------------------------------------------

    async def _set_state(
        self, job: Job, state: str, *, error: str | None = None, reprint: bool = False
    ) -> None:
        await self.journal.transaction(
            lambda tx: self._update_state(tx, job, state, error=error, reprint=reprint)
        )

    def _update_state(
        self, tx: Tx, job: Job, state: str, *, error: str | None = None, reprint: bool = False
    ) -> None:
        tx.execute(
            "UPDATE print_jobs SET state = ?, error = ?, updated = ?,"
            " attempts = attempts + ?, reprint = MAX(reprint, ?) WHERE id = ?",
            (state, error, tx.now, int(state == "sending"), int(reprint), job.id),
        )

    async def _close(
        self,
        job: Job,
        state: str,
        reason: str | None,
        ticket: Ticket | None = None,
        execution_time: str = "",
    ) -> None:
        await self.journal.transaction(
            lambda tx: self._close_job(tx, job, state, reason, ticket, execution_time)
        )

    def _close_job(
        self,
        tx: Tx,
        job: Job,
        state: str,
        reason: str | None,
        ticket: Ticket | None = None,
        execution_time: str = "",
    ) -> None:
        tx.execute(
            "UPDATE print_jobs SET state = ?, error = ?, updated = ? WHERE id = ?",
            (state, reason, tx.now, job.id),
        )
        if state == "done" and job.kind in TIMED_KINDS and execution_time:
            # The time this ticket showed: an accepted delay that moves it prints UPDATED.
            params = {**job.params, "execution_time": execution_time}
            tx.execute(
                "UPDATE print_jobs SET params = ? WHERE id = ?",
                (json.dumps(params, ensure_ascii=False), job.id),
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

    def health(self) -> dict[str, dict[str, str]]:
        """Current health of every printer (as in BoxState)."""
        return self._health.current()

    @property
    def printer_names(self) -> list[str]:
        return list(self._printers)
