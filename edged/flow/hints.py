"""Hints: notifications that did not come from Sinqro's own connection, checked with Sinqro.

A notification from a push source (``edged relay`` over the fleet broker, or any other
MQTT/push path) is only a claim: anyone holding the relay's URL secret, or any client of
the broker, can publish one. So it is a *hint* that an order may have changed. The box asks
Sinqro (``GET /orders/{id}``, doc 003) and applies only Sinqro's answer: no new order, no
status and no final state comes from the fleet path without Sinqro's word.

:class:`HintChecker` holds the hints waiting to be checked and checks them one at a time:

* per order id: a hint for an order already waiting is merged into it; one that arrives
  while its order is being fetched makes the order be fetched once more afterwards;
* bounded: at most ``max_pending`` orders wait; a hint beyond that is dropped and counted
  (the next refresh of the active orders covers what it might have said);
* paced: at most one ``GET`` every ``min_interval`` seconds, so a flood of forged hints
  never makes the box hammer Sinqro;
* a 5xx or a timeout is retried with backoff (the order's hint waits aside, the others go
  on); after ``max_attempts`` it is dropped and counted as ``unverified``, and a sync is
  asked for;
* an id Sinqro does not know (``ORDER_NOT_FOUND``) or an order of another selling point is
  dropped, counted by reason (:attr:`HintChecker.rejected`) and logged at WARNING, with the
  order id and the source only. A hint whose status Sinqro contradicts (a forged
  cancellation, or a late one) is counted as ``contradicted``; Sinqro's answer is what the
  box stores.

Hints never touch websocket frames, which the link applies directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edged import backoff
from edged.flow.desk import OrderDesk
from edged.flow.reconcile import Reconciler
from edged.journal.store import Journal, JournalError
from edged.sinqro import errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError, SinqroUnauthorized
from edged.sinqro.models import Order
from edged.state import BoxState

log = logging.getLogger(__name__)

# Why a hint was dropped (the label of edged_hints_rejected_total).
UNKNOWN_ORDER = "unknown_order"  # Sinqro answers ORDER_NOT_FOUND
OTHER_SELLING_POINT = "other_selling_point"  # the hint or Sinqro's answer names another one
OVERFLOW = "overflow"  # too many orders waiting to be checked
UNVERIFIED = "unverified"  # Sinqro could not be asked (5xx, timeouts) max_attempts times
CONTRADICTED = "contradicted"  # Sinqro answers another status than the hint claimed
REASONS = (UNKNOWN_ORDER, OTHER_SELLING_POINT, OVERFLOW, UNVERIFIED, CONTRADICTED)

MAX_PENDING = 64
MIN_INTERVAL = 0.2  # seconds between two GETs for hints: at most 5 a second
MAX_ATTEMPTS = 5
# A sustained forgery must not fill the log (and the SD card): this many rejection lines
# per window, then one line that says how many more there were.
LOG_BURST = 10
LOG_WINDOW = 60.0


@dataclass
class _Pending:
    source: str
    claimed: str  # the status the hint claims ("" when it names none)
    attempts: int = 0
    not_before: float = 0.0


class HintChecker:
    """Checks hints with ``GET /orders/{id}`` and ingests Sinqro's answer.

    Counters: ``received``, ``coalesced`` (merged into a waiting hint), ``known`` (it
    claimed the status the journal already holds: not asked), ``applied`` (Sinqro's answer
    was ingested), ``rejected`` per reason (see :data:`REASONS`).
    """

    def __init__(
        self,
        api: SinqroApi,
        desk: OrderDesk,
        journal: Journal,
        reconciler: Reconciler,
        state: BoxState,
        *,
        retry_min: float = 1.0,
        retry_max: float = 60.0,
        on_unverified: Callable[[], None] | None = None,
        max_pending: int = MAX_PENDING,
        min_interval: float = MIN_INTERVAL,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.api = api
        self.desk = desk
        self.journal = journal
        self.reconciler = reconciler
        self.state = state
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.on_unverified = on_unverified
        self.max_pending = max_pending
        self._min_interval = min_interval
        self.max_attempts = max_attempts
        self.received = 0
        self.coalesced = 0
        self.applied = 0
        self.known = 0
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        state.set("link.hints_rejected", dict(self.rejected))
        # Insertion order is arrival order: the oldest ready hint is checked first.
        self._pending: dict[int, _Pending] = {}
        self._fetching: int | None = None
        self._again: _Pending | None = None
        self._wake = asyncio.Event()
        self._overflowing = 0
        self._last_get = -float("inf")
        self._log_window = -float("inf")
        self._logged = 0

    @property
    def min_interval(self) -> float:
        """Seconds between two GETs for hints; a new value applies at once."""
        return self._min_interval

    @min_interval.setter
    def min_interval(self, seconds: float) -> None:
        self._min_interval = seconds
        self._wake.set()

    @property
    def pending(self) -> int:
        """Orders waiting to be checked, or being checked now."""
        return len(self._pending) + (self._fetching is not None)

    def metrics(self) -> dict[str, int]:
        return {
            "hints": self.received,
            "hints_coalesced": self.coalesced,
            "hints_applied": self.applied,
            "hints_known": self.known,
        }

    def clear(self) -> None:
        """Forget the hints of an earlier session (another pairing, perhaps)."""
        self._pending.clear()
        self._again = None
        self._overflowing = 0

    def add(self, order_id: int, source: str, claimed: str = "") -> None:
        """A push source says ``order_id`` is now ``claimed``: check it with Sinqro (never
        blocks)."""
        self.received += 1
        waiting = self._pending.get(order_id)
        if waiting is not None:
            self.coalesced += 1
            waiting.claimed = claimed
            return
        if order_id == self._fetching:
            # The answer on its way may be older than what this hint tells of.
            if self._again is not None:
                self.coalesced += 1
            self._again = _Pending(source, claimed)
            return
        if len(self._pending) >= self.max_pending:
            if not self._overflowing:
                log.warning(
                    "%s hints: %d orders already wait to be checked with Sinqro; dropping"
                    " new ones until they are (the next refresh covers them)",
                    source,
                    self.max_pending,
                )
            self._overflowing += 1
            self._count(OVERFLOW)
            return
        if self._overflowing:
            log.warning("%s hints: %d dropped while the queue was full", source, self._overflowing)
            self._overflowing = 0
        self._pending[order_id] = _Pending(source, claimed)
        self._wake.set()

    def reject(self, reason: str, order_id: int, source: str, detail: str) -> None:
        """Drop a hint: counted by ``reason`` and logged (no payload: it may hold secrets;
        at most :data:`LOG_BURST` lines a :data:`LOG_WINDOW`, then a count)."""
        self._count(reason)
        now = asyncio.get_running_loop().time()
        if now - self._log_window >= LOG_WINDOW:
            if self._logged > LOG_BURST:
                log.warning(
                    "%d more hints rejected in the last %.0fs (edged_hints_rejected_total)",
                    self._logged - LOG_BURST,
                    now - self._log_window,
                )
            self._log_window = now
            self._logged = 0
        self._logged += 1
        if self._logged <= LOG_BURST:
            log.warning(
                "%s hint about order %s rejected (%s): %s", source, order_id, reason, detail
            )

    def _count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.state.set("link.hints_rejected", dict(self.rejected))

    async def run(self, selling_point_id: int) -> None:
        """Check hints for ``selling_point_id`` until cancelled. A 401 ends the session."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            ready = next((k for k, p in self._pending.items() if p.not_before <= now), None)
            if ready is None:
                self._wake.clear()
                wait = min((p.not_before for p in self._pending.values()), default=None)
                timeout = None if wait is None else max(0.0, wait - now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            pause = self._last_get + self.min_interval - now
            if pause > 0:
                # Woken by a new hint too, so what is picked is always the oldest ready.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
                continue
            hint = self._pending.pop(ready)
            self._fetching = ready
            try:
                self._last_get = loop.time()
                await self._check(ready, hint, selling_point_id)
            finally:
                self._fetching = None
                again, self._again = self._again, None
            if again is not None and ready not in self._pending:
                self._pending[ready] = again

    async def _check(self, order_id: int, hint: _Pending, sp: int) -> None:
        stored = await self.journal.get_order(order_id)
        if stored is not None and hint.claimed and stored.status == hint.claimed:
            # Nothing the box does not know already (the websocket told it, or Sinqro sent
            # the webhook again): no reason to ask. The status refresh reads it anyway.
            self.known += 1
            return
        started = self.reconciler.frame_mark()
        try:
            order = await self.api.get_order(order_id)
        except SinqroUnauthorized:
            raise
        except SinqroError as exc:
            if exc.code == errors.ORDER_NOT_FOUND:
                self.reject(UNKNOWN_ORDER, order_id, hint.source, "Sinqro does not know it")
            else:
                self._retry(order_id, hint, str(exc))
            return
        if order.id != order_id:
            self._retry(order_id, hint, f"Sinqro answered with order {order.id}")
            return
        if not await self._ours(order, sp):
            owner = order.selling_point_id
            self.reject(
                OTHER_SELLING_POINT,
                order_id,
                hint.source,
                f"Sinqro lists it for selling point {owner}, not {sp}"
                if owner is not None
                else f"Sinqro's answer names no selling point and the box never had it ({sp})",
            )
            return
        if self.reconciler.touched_since(order_id, started):
            # A websocket frame about it came while we asked: it is as new as this answer.
            return
        self.reconciler.frame_seen(order_id)
        try:
            await self.desk.ingest(order, hint.source, authoritative=True)
        except JournalError as exc:
            # Not stored, not lost: the sync that follows a store failure fetches it again.
            self.reconciler.store_failed(exc, order_id)
            if self.on_unverified is not None:
                self.on_unverified()
            return
        self.applied += 1
        if hint.claimed and hint.claimed != order.status:
            self.reject(
                CONTRADICTED,
                order_id,
                hint.source,
                f"it said {hint.claimed}, Sinqro says {order.status}; Sinqro's answer applied",
            )

    async def _ours(self, order: Order, sp: int) -> bool:
        """Sinqro's answer is the paired selling point's order.

        It must name this selling point (``sellingPoint.id``, doc 003). An answer that
        names none is taken as ours only for an order the journal already holds: the
        active-orders list of this selling point brings new ones either way.
        """
        if order.selling_point_id is not None:
            return order.selling_point_id == sp
        return await self.journal.get_order(order.id) is not None

    def _retry(self, order_id: int, hint: _Pending, why: str) -> None:
        hint.attempts += 1
        if hint.attempts >= self.max_attempts:
            self.reject(UNVERIFIED, order_id, hint.source, f"Sinqro could not be asked: {why}")
            if self.on_unverified is not None:
                self.on_unverified()
            return
        delay = backoff.delay(self.retry_min, self.retry_max, hint.attempts - 1)
        log.info(
            "%s hint about order %s not checked yet (%s); again in %.1fs",
            hint.source,
            order_id,
            why,
            delay,
        )
        hint.not_before = asyncio.get_running_loop().time() + delay
        if order_id not in self._pending:
            self._pending[order_id] = hint
