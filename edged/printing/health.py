"""Printer health and failover: what the box shows about each printer, and where its
tickets go while it is down.

:class:`PrinterHealth` keeps each printer's last known :class:`Status` (state key
``printer.NAME``, a ``printer.health`` event when it changes) and the time it went down.
The spooler's workers report to it: a status poll while idle, a delivery that failed, a
ticket that printed. Once a printer has been down for ``failover_after`` seconds its queued
tickets move to its backup printer (:meth:`PrinterHealth.fail_over`), which prints them
under the layout of the printer they were meant for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from edged.journal import events as ev
from edged.journal.store import Journal, JournalError, Tx
from edged.printing.printer import PrinterRuntime
from edged.printing.transports import NOT_READY, UNKNOWN, Status
from edged.state import BoxState, printer_key

log = logging.getLogger(__name__)


class PrinterHealth:
    """Health and failover of the spooler's ``printers`` (by name)."""

    def __init__(
        self, journal: Journal, state: BoxState, printers: dict[str, PrinterRuntime]
    ) -> None:
        self.journal = journal
        self.state = state
        self._printers = printers

    async def poll(self, printer: PrinterRuntime) -> None:
        """Ask the printer for its status (on its own I/O thread) and show it."""
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(printer.executor, printer.transport.status)
        await self.show(printer, status)
        if status.state in NOT_READY:
            if printer.down_since is None:
                printer.down_since = time.monotonic()
        elif printer.down_since is not None:
            log.info("printer %s: back (%s)", printer.config.name, status.state)
            printer.down_since = None
            printer.failed_over = False

    async def fail_over(self, printer: PrinterRuntime) -> bool:
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

    async def down(self, printer: PrinterRuntime, status: Status) -> None:
        """A delivery failed: the printer is down from now (if it was not already)."""
        if printer.down_since is None:
            printer.down_since = time.monotonic()
            log.warning(
                "printer %s: cannot print: %s %s", printer.config.name, status.state, status.detail
            )
        await self.show(printer, status)

    async def printed(self, printer: PrinterRuntime, seen: Status) -> None:
        """A ticket went out: the printer is up, in the state the delivery saw."""
        if printer.down_since is not None:
            log.info("printer %s: back", printer.config.name)
        printer.down_since = None
        printer.failed_over = False
        await self.show(printer, seen)

    async def show(self, printer: PrinterRuntime, status: Status) -> None:
        """Show ``status`` (state key ``printer.NAME``); a change is logged and recorded."""
        name = printer.config.name
        previous = printer.health
        printer.health = status
        self.state.set(printer_key(name), status.as_dict())
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

    def current(self) -> dict[str, dict[str, str]]:
        """Current health of every printer (as in BoxState)."""
        return {
            name: (p.health or Status(UNKNOWN, "starting")).as_dict()
            for name, p in self._printers.items()
        }
