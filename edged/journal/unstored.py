"""Orders that came while the journal could not store them: held in memory, rung and
printed all the same, and stored as soon as the journal takes them again.

The journal is the box's single source of truth, but a failing card must not make the
kitchen miss an order. When :meth:`edged.flow.desk.OrderDesk.ingest` cannot store an open
order the box has not stored before, the order is held here:

* the listeners hear of it at once: the panel rings for it (while it waits for a
  decision), the spooler prints its ticket from memory, marked NOT STORED YET
  (:mod:`edged.printing.unstored`);
* a retry, with backoff, hands it to the desk again; once the journal takes it, it goes
  the normal way (``order.new``, auto-accept, bridges, the board), and the ticket that is
  already out counts as printed on the printers that printed it: no second copy;
* Sinqro keeps listing the order as active, so the link's own syncs bring it again too.

What the box already stored is known from what the desk stored in this process (a bounded
memory of order ids) and from the journal when it still answers reads: an order that is
in the journal (a status refresh that could not be written) is not held, rung or printed
again. Held orders live only in memory: a restart before the journal took them loses the
hold, not the order (Sinqro still lists it; it is fetched and printed again, as new).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from edged.journal.rows import OrderRecord
from edged.journal.writer import JournalError
from edged.state import BoxState

log = logging.getLogger(__name__)

FIRST_RETRY = 1.0  # seconds before the first new try to store; doubles up to MAX_RETRY
MAX_RETRY = 30.0
KNOWN_MAX = 4096  # order ids remembered as stored (a busy day's orders, a few KiB)

# The orders held are the flow's own (what the wire parsed); the journal reads only an
# OrderRecord's fields of them and hands the same objects back.
HeldT = TypeVar("HeldT", bound=OrderRecord)


class UnstoredOrders(Generic[HeldT]):
    """The holding area. ``store(order)`` stores one order the normal way (the desk's
    ingest); it raises :class:`JournalError` while the journal cannot. With ``state``, the
    codes of the held orders are kept in its ``journal.unstored`` (the page and
    ``/health`` say which orders are not stored yet)."""

    def __init__(
        self,
        store: Callable[[HeldT], Awaitable[object]],
        *,
        state: BoxState | None = None,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
    ) -> None:
        self._store = store
        self._state = state
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._held: dict[int, HeldT] = {}
        self._known: OrderedDict[int, None] = OrderedDict()
        self._listeners: list[Callable[[HeldT], None]] = []
        self._retry: asyncio.Task[None] | None = None
        self.stored_later = 0  # held orders the journal took afterwards
        # order id -> printers that printed its ticket from memory; for the whole process
        # (a spooler rebuilt by a settings change must not print it again). Read by the
        # planner on the journal thread.
        self._printed: OrderedDict[int, set[str]] = OrderedDict()
        self._printed_lock = threading.Lock()

    # -- what is held ----------------------------------------------------------------------

    def held(self) -> list[HeldT]:
        """The orders waiting to be stored, in the order they came."""
        return list(self._held.values())

    def waiting_ids(self) -> list[int]:
        """Held orders that wait for the restaurant's decision (they ring)."""
        return [o.id for o in self._held.values() if o.is_waiting]

    def is_held(self, order_id: int) -> bool:
        return order_id in self._held

    def known(self, order_id: int) -> bool:
        """Stored by this process (so not to be held, rung or printed again)."""
        return order_id in self._known

    def printed_on(self, order_id: int, printer: str) -> bool:
        """Whether ``printer`` printed this order's ticket from memory (any thread)."""
        with self._printed_lock:
            return printer in self._printed.get(order_id, ())

    def mark_printed(self, order_id: int, printer: str) -> None:
        with self._printed_lock:
            self._printed.setdefault(order_id, set()).add(printer)
            while len(self._printed) > KNOWN_MAX:
                self._printed.popitem(last=False)

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, fn: Callable[[HeldT], None]) -> None:
        """Call ``fn(order)`` on the loop whenever an order is held, again when its status
        changed, and when it became final while held (then it is let go): the panel and
        the spooler, while they run."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[HeldT], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    # -- from the desk ---------------------------------------------------------------------

    def note_stored(self, order_id: int) -> None:
        """The journal holds this order now."""
        self._known[order_id] = None
        self._known.move_to_end(order_id)
        while len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)
        if self._held.pop(order_id, None) is not None:
            self.stored_later += 1
            self._publish()
            log.info("order %s: stored now that the journal works again", order_id)

    def hold(self, order: HeldT, error: JournalError) -> bool:
        """Hold an order the journal could not store. True when it is new here. A final
        order is not held: nobody has anything to do for it."""
        if order.is_final:
            if self._held.pop(order.id, None) is not None:
                self._publish()
                self._tell(order)  # it stops ringing
            return False
        new = order.id not in self._held
        before = self._held.get(order.id)
        self._held[order.id] = order
        if new:
            self._publish()
            log.error(
                "order %s (%s, %s) cannot be stored (%s): it rings and prints from memory, "
                "marked NOT STORED YET, and is stored when the journal works again",
                order.id,
                order.type,
                order.code,
                error,
            )
        if new or (before is not None and before.status != order.status):
            self._tell(order)
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(
                self._retry_loop(), name="unstored-retry"
            )
        return new

    def _publish(self) -> None:
        if self._state is not None:
            self._state.set("journal.unstored", [o.code or str(o.id) for o in self._held.values()])

    def _tell(self, order: HeldT) -> None:
        for listener in list(self._listeners):
            try:
                listener(order)
            except Exception:
                log.exception("unstored: listener failed")

    async def _retry_loop(self) -> None:
        delay = self.first_retry
        while self._held:
            await asyncio.sleep(delay)
            for order in list(self._held.values()):
                try:
                    await self._store(order)
                except JournalError:
                    break  # still failing: the rest waits for the next round
                except Exception:
                    log.exception("unstored: order %s could not be stored", order.id)
                    self._held.pop(order.id, None)
                    self._publish()
            delay = min(delay * 2, self.max_retry)

    async def close(self) -> None:
        """Stop retrying (the process ends; held orders come again from Sinqro)."""
        if self._held:
            log.warning(
                "unstored: %d order(s) were never stored (%s); Sinqro still lists them, "
                "the next start fetches them again",
                len(self._held),
                ", ".join(str(i) for i in self._held),
            )
        task, self._retry = self._retry, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
