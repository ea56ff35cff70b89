"""One configured printer at run time, and how a print job becomes its bytes.

Rendering (order JSON → ticket → bytes) runs on a render thread, never on the event loop:
:func:`render_job` is pure work on its arguments and never raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edged.config import BoxConfig
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings
from edged.printing.jobs import Job
from edged.printing.model import Ticket
from edged.printing.output import ticket_bytes
from edged.printing.settings import PrinterConfig
from edged.printing.slips import (
    cancel_slip,
    printer_test_ticket,
    status_slip,
    text_ticket,
    updated_slip,
)
from edged.printing.ticket import TicketOptions, is_late, order_ticket
from edged.printing.transports import Status, Transport
from edged.sinqro.models import Order, parse_order

log = logging.getLogger(__name__)

TICKET_KINDS = ("order", "reprint")
LOOKAHEAD = 4  # queued jobs per printer rendered ahead


@dataclass(frozen=True)
class Rendered:
    """A job made ready to send: its ticket and bytes, or why it is not printed."""

    ticket: Ticket | None = None
    data: bytes = b""
    execution_time: str = ""
    skip: str | None = None
    error: str | None = None


@dataclass
class PrinterRuntime:
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
    renders: dict[int, asyncio.Future[Rendered]] = field(default_factory=dict)


def printer_executor(name: str) -> ThreadPoolExecutor:
    # One thread per printer: a printer stuck until its timeout only ever holds its own.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"printer-{name}")


def columns_for(config: PrinterConfig) -> int:
    """Characters per line: configured, else from the paper width and the profile."""
    if config.columns:
        return config.columns
    if config.paper_width == 58:
        return 32
    return codepages.get_profile(config.profile, config.command_set).columns_font_a or 42


def encoder_for(config: PrinterConfig) -> EncoderSettings:
    """What the encoder needs to know about one configured printer."""
    return EncoderSettings(
        codepages.resolve(config.profile, config.code_page, config.command_set),
        codepages.get_profile(config.profile, config.command_set),
        config.paper_width,
        config.cut,
        config.render,
        config.command_set,
    )


def render_job(
    printer: PrinterRuntime,
    origin: PrinterConfig,
    box: BoxConfig,
    job: Job,
    payload: str | None,
    copies: int,
) -> Rendered:
    """Decode, lay out and encode one job. Runs on a render thread: never on the loop."""
    try:
        order: Order | None = None
        if job.order_id is not None:
            if payload is None:
                return Rendered(skip="order not in the journal")
            order = parse_order(json.loads(payload))
        ticket = job_ticket(printer, origin, box, job, order)
        data = ticket_bytes(ticket, printer.encoder, copies)
        return Rendered(ticket, data, order.execution_time if order is not None else "")
    except Exception as exc:  # a bug or a payload we cannot render: never block the queue
        log.exception("printer %s: cannot render job %d", printer.config.name, job.id)
        return Rendered(error=f"{type(exc).__name__}: {exc}")


def job_ticket(
    printer: PrinterRuntime, origin: PrinterConfig, box: BoxConfig, job: Job, order: Order | None
) -> Ticket:
    """The ticket of a job: the origin printer's layout, this printer's paper and code page."""
    now = datetime.now(UTC)
    opts = TicketOptions(
        columns=printer.columns,
        language=box.language,
        layout=origin.layout,
        qr_tracking=origin.qr_tracking,
        logo=origin.logo,
        reprint=job.reprint or job.kind == "reprint",
        late=job.kind == "order" and order is not None and is_late(order, now),
        backup_for=job.origin if job.origin != printer.config.name else "",
        currency=box.currency,
        tz=box.timezone,
    )
    if job.kind in TICKET_KINDS and order is not None:
        return order_ticket(order, opts)
    if job.kind == "cancel" and order is not None:
        return cancel_slip(order, str(job.params.get("status", "")), opts, now)
    if job.kind == "status" and order is not None:
        return status_slip(order, str(job.params.get("status", "")), opts, now)
    if job.kind == "updated" and order is not None:
        return updated_slip(order, str(job.params.get("previous", "")), opts, now)
    if job.kind == "test":
        code_page = printer.encoder.code_page.name
        return printer_test_ticket(printer.config.name, box.name, code_page, opts, now)
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
