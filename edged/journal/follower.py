"""Following the journal's event log from a durable cursor: one start rule, one wait.

Every consumer of the log (printer spooler, MQTT and serial bridges) reads it the same way::

    follower = Follower(journal, "bridge.mqtt")
    await follower.start()                  # the saved cursor, or the start rule
    while True:
        events = await follower.next_batch()
        ...                                 # act; persist with tx.set_cursor or save()
        follower.advance(events[-1].seq)

The start rule (:meth:`Journal.ensure_cursor`): a consumer without a saved cursor starts at
the end of the log as it was when this process opened the journal. Where the cursor is
written stays the consumer's choice: in the same transaction as its own record (spooler),
after the broker acknowledged (MQTT), after the terminal acknowledged (serial).

:func:`patiently` waits out a journal that cannot answer (a failing card) for a consumer
that has nothing better to do meanwhile, instead of ending it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edged.journal.events import Event
from edged.journal.store import Journal, JournalError

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 256
PATIENCE_MAX = 5.0  # seconds between tries of a journal that keeps failing
# Commits by other processes (the CLI) are seen by the journal's own watcher; waiting at
# most this long keeps a consumer moving even if a wake-up was missed.
MAX_WAIT = 1.0


class Follower:
    """One consumer's position in the event log."""

    def __init__(
        self, journal: Journal, consumer: str, *, batch: int = BATCH, lazy: bool = False
    ) -> None:
        self.journal = journal
        self.consumer = consumer
        self.batch = batch
        # Lazy: the cursor rides with the next commit (see Journal.set_cursor), for
        # consumers whose peers drop ids they have seen (the bridges).
        self.lazy = lazy
        self.position = 0  # last event handed over and acted on
        self.saved = 0  # last position written to the journal

    async def start(self) -> int:
        """Load the saved cursor, or create it by the start rule; returns the position."""
        self.position = self.saved = await self.journal.ensure_cursor(self.consumer)
        return self.position

    async def read(self) -> list[Event]:
        """The next events after the position, without waiting (may be empty)."""
        return await self.journal.read_events(self.position, self.batch)

    async def wait(self, timeout: float = MAX_WAIT) -> bool:
        """Wait for an event after the position; True when there is one."""
        return await self.journal.wait_for_events(self.position, timeout)

    async def next_batch(
        self,
        *,
        quiet_after: float | None = None,
        on_quiet: Callable[[], Awaitable[None]] | None = None,
    ) -> list[Event]:
        """The next events, waiting for them. With ``on_quiet``, once nothing came for
        ``quiet_after`` seconds it is called (e.g. to write the cursor) before waiting on."""
        quiet_done = False
        while True:
            events = await self.read()
            if events:
                return events
            if on_quiet is not None and not quiet_done:
                if not await self.wait(quiet_after if quiet_after is not None else MAX_WAIT):
                    await on_quiet()
                    quiet_done = True
                continue
            await self.wait()

    def advance(self, seq: int) -> None:
        """The events up to ``seq`` are dealt with."""
        self.position = max(self.position, seq)

    async def commit(self, seq: int) -> None:
        """Write ``seq`` as the cursor, then move there (per-event acknowledgement)."""
        await self.journal.set_cursor(self.consumer, seq, lazy=self.lazy)
        self.position = self.saved = max(self.position, seq)

    async def save(self) -> None:
        """Write the position as the consumer's cursor, if it moved."""
        if self.position != self.saved:
            await self.journal.set_cursor(self.consumer, self.position, lazy=self.lazy)
            self.saved = self.position


async def patiently(call: Callable[[], Awaitable[T]], who: str) -> T:
    """``await call()`` until the journal answers: while it fails (storage fault), try
    again with backoff, logged once per run of failures."""
    delay = 0.25
    failing = False
    while True:
        try:
            return await call()
        except JournalError as exc:
            if not failing:
                log.error("%s: waiting for the journal: %s", who, exc)
            failing = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, PATIENCE_MAX)
