"""Tickets of orders the journal could not store yet, printed from memory.

An order held by :mod:`edged.journal.unstored` has no job in ``print_jobs`` (nothing can
be written), so the spooler prints its ticket straight from the order it was handed: on
each printer that takes the order's type (and, for ``print_on = "accepted"``, once it is
accepted), with a NOT STORED YET banner on top, through the printer's own thread. A
printer that is not ready skips it: the ticket then prints the normal way once the order
is stored.

Where it printed is kept in the holding area (for the whole process: a spooler rebuilt by
a settings change does not print it again). When the journal takes the order later, the
planner asks :meth:`~edged.journal.unstored.UnstoredOrders.printed_on`: on a printer that
printed it from memory, its order ticket counts as printed (a ``done`` job, so reprints,
cancellation and UPDATED slips find it) instead of printing a second, unmarked copy. The
memory is this process's: after a restart the order prints again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import Executor

from edged.config import BoxConfig
from edged.i18n import NP_, Locale
from edged.journal.unstored import UnstoredOrders
from edged.printing.jobs import Job
from edged.printing.model import Text, Ticket
from edged.printing.output import ticket_bytes
from edged.printing.printer import PrinterRuntime, job_ticket
from edged.printing.settings import order_type_key
from edged.printing.transports import JobMeta, NotReady, PrinterError
from edged.sinqro.models import WAITING, Order

log = logging.getLogger(__name__)

KIND = "unstored"  # the ticket's kind (the virtual printer's file names say it)
BANNER = NP_("ticket", "NOT STORED YET")


class MemoryPrints:
    """Prints held orders and records where they printed in ``held`` (``printers``: name →
    runtime, the spooler's; ``render``: where tickets are laid out, off the loop)."""

    def __init__(
        self,
        printers: dict[str, PrinterRuntime],
        box: BoxConfig,
        render: Executor,
        held: UnstoredOrders[Order],
    ) -> None:
        self.printers = printers
        self.box = box
        self.render = render
        self.held = held
        self._busy: set[tuple[int, str]] = set()

    def takes(self, name: str, order: Order) -> bool:
        config = self.printers[name].config
        if order_type_key(order.type) not in config.order_types or order.is_final:
            return False
        return config.print_on != "accepted" or order.status != WAITING

    async def print_order(self, order: Order) -> None:
        """Print ``order`` from memory on every printer that takes it and has not yet."""
        for name in self.printers:
            key = (order.id, name)
            if not self.takes(name, order) or self.held.printed_on(*key) or key in self._busy:
                continue
            self._busy.add(key)
            try:
                if await self._print(name, order):
                    self.held.mark_printed(*key)
            finally:
                self._busy.discard(key)

    async def _print(self, name: str, order: Order) -> bool:
        printer = self.printers[name]
        loop = asyncio.get_running_loop()
        try:
            ticket, data = await loop.run_in_executor(self.render, self._render, printer, order)
        except Exception:
            log.exception("printer %s: cannot render order %s from memory", name, order.id)
            return False
        meta = JobMeta(0, KIND, order.id, ticket.plain_text())
        try:
            await loop.run_in_executor(printer.executor, printer.transport.deliver, data, meta)
        except (NotReady, PrinterError) as exc:
            log.warning(
                "printer %s: order %s not printed from memory (%s); it prints once stored",
                name,
                order.id,
                exc,
            )
            return False
        log.warning("printer %s: printed order %s from memory, NOT STORED YET", name, order.id)
        return True

    def _render(self, printer: PrinterRuntime, order: Order) -> tuple[Ticket, bytes]:
        name = printer.config.name
        job = Job(0, name, name, "order", order.id, 0, {}, "queued", False, 0, time.time())
        ticket = job_ticket(printer, printer.config, self.box, job, order)
        banner = Locale(self.box.language).pgettext("ticket", BANNER)
        big = 2 if len(banner) <= printer.columns // 2 else 1
        mark = Text(banner, align="center", bold=True, width=big, height=big, invert=True)
        ticket = dataclasses.replace(ticket, kind=KIND, elements=(mark, *ticket.elements))
        copies = printer.config.copies
        return ticket, ticket_bytes(ticket, printer.encoder, copies)
