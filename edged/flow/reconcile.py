"""Reconciliation: what Sinqro's REST API says about the orders, into the journal.

:class:`Reconciler` owns one *sync*: fetch the active orders, ingest each, then GET every
order the journal still holds open but Sinqro no longer lists, to learn its final status.
The link (:mod:`edged.flow.intake`) decides when a sync runs (at start and after
every (re)connect, every ``poll_interval`` while nothing is pushed, every
``status_refresh_interval`` while it is) and feeds the reconciler the frames it hears, so
that a REST answer that started before a websocket frame about the same order is older than
that frame and is not applied over it.

It also owns the checks that follow from a sync: an open order Sinqro answers
ORDER_NOT_FOUND for twice, ``gone_after`` seconds apart, or that belongs to another selling
point, is closed locally as ``gone``; a report that would move an order back, or reopen a
final one, is set aside and read again with a direct ``GET /orders/{id}``
(:meth:`Reconciler.verify_loop`), whose answer is applied even then (logged). One
order that trips a bug is skipped and counted, never the rest of the sync; a journal error
is box-wide, propagates, and is counted in :attr:`Reconciler.store_failures` so the link
retries with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from edged.decoding import parse_id
from edged.flow.desk import OrderDesk
from edged.journal.store import Journal, JournalError, UpsertResult
from edged.sinqro import errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError, SinqroUnauthorized
from edged.sinqro.models import Order
from edged.sinqro.settings import SinqroConfig
from edged.state import BoxState

log = logging.getLogger(__name__)

INGEST_GROUP = 64  # orders of one sync stored side by side (see _ingest_all)


class Reconciler:
    """REST syncs, stale-report checks and ``gone`` orders for the paired selling point.

    Counters for metrics: ``polls`` (REST syncs while nothing was pushed), ``reconciles``,
    ``refreshes``, ``unread_orders`` (open orders the last sync could not read),
    ``gone_orders``, ``stale_reports``, ``verified_reports`` (set aside, then Sinqro's
    answer applied); ``store_failures`` counts journal errors in a row.
    """

    def __init__(
        self,
        config: SinqroConfig,
        api: SinqroApi,
        desk: OrderDesk,
        journal: Journal,
        state: BoxState,
    ) -> None:
        self.config = config
        self.api = api
        self.desk = desk
        self.journal = journal
        self.state = state
        self.polls = 0
        self.reconciles = 0
        self.refreshes = 0
        self.unread_orders = 0
        self.gone_orders = 0
        self.stale_reports = 0
        self.verified_reports = 0
        self.store_failures = 0
        # Frame sequence and, per order, the sequence of the last frame about it: a REST
        # answer requested before that frame must not overwrite it.
        self._frame_seq = 0
        self._touched: dict[int, int] = {}
        # Per open order: when Sinqro first answered ORDER_NOT_FOUND (loop time).
        self._missing: dict[int, float] = {}
        # Orders whose stale report was set aside, to be read with a direct GET.
        self._verify: asyncio.Queue[int] = asyncio.Queue()
        self._verifying: set[int] = set()

    def metrics(self) -> dict[str, int]:
        return {
            "polls": self.polls,
            "reconciles": self.reconciles,
            "refreshes": self.refreshes,
            "unread_orders": self.unread_orders,
            "gone_orders": self.gone_orders,
            "stale_reports": self.stale_reports,
            "verified_reports": self.verified_reports,
        }

    def frame_seen(self, order_id: int) -> None:
        """A pushed frame about ``order_id`` is being applied: REST answers asked for
        before now are older than it."""
        self._frame_seq += 1
        self._touched[order_id] = self._frame_seq

    def frame_mark(self) -> int:
        """Where the frame sequence is now: pass it to :meth:`touched_since` after a GET."""
        return self._frame_seq

    def touched_since(self, order_id: int, mark: int) -> bool:
        """A frame about ``order_id`` was applied after ``mark``: an answer asked for
        before it is older than that frame."""
        return self._touched.get(order_id, 0) > mark

    async def _ingest_one(
        self, order: Order, reason: str, *, authoritative: bool = False
    ) -> UpsertResult | Literal[False] | None:
        """``desk.ingest`` for one order of a sync; False when it failed unexpectedly.

        One order that trips a bug must not stop the rest of the sync (nor, by ending the
        link part, every sync after it). A journal error is box-wide and propagates.
        """
        try:
            return await self.desk.ingest(order, reason, authoritative=authoritative)
        except (JournalError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("order %s from the %s could not be stored; skipped", order.id, reason)
            return False

    async def sync(self, sp: int, reason: str) -> None:
        """One active-orders call, then a GET for every open order Sinqro no longer lists.

        Every open order is visited even when some GETs fail; the number that could not be
        read is logged and kept in :attr:`unread_orders`. An order Sinqro answers
        ORDER_NOT_FOUND for twice, ``gone_after`` seconds apart, and an order of another
        selling point (after re-pairing), are closed locally as ``gone``. A sync that ends
        without an error clears :attr:`store_failures`.
        """
        started = self._frame_seq
        if reason == "reconcile":
            self.reconciles += 1
        elif reason == "refresh":
            self.refreshes += 1
        else:
            self.polls += 1
        active = await self.api.active_orders(sp)
        listed: set[int] = set()
        unread = 0
        fresh = []
        for order in active:
            if order.selling_point_id not in (None, sp):
                continue
            listed.add(order.id)
            self._missing.pop(order.id, None)
            if self._touched.get(order.id, 0) > started:
                continue  # a websocket frame about it came after this answer was asked for
            fresh.append(order)
        for order, result in zip(fresh, await self._ingest_all(fresh, reason), strict=True):
            if result is None:
                self.stale(order.id)
            elif result is False:
                unread += 1
        open_orders = await self.journal.open_orders()
        for stored in open_orders:
            if stored.id in listed:
                continue
            owner = _selling_point_of(stored.payload)
            if owner is not None and owner != sp:
                await self._close_gone(stored.id, f"order of selling point {owner}, not {sp}")
                continue
            try:
                order = await self.api.get_order(stored.id)
            except SinqroUnauthorized:
                raise
            except SinqroError as exc:
                if exc.code == errors.ORDER_NOT_FOUND:
                    await self._not_found(stored.id)
                else:
                    unread += 1
                    log.debug("order %s not refreshed: %s", stored.id, exc)
                continue
            self._missing.pop(stored.id, None)
            if self._touched.get(order.id, 0) > started:
                continue
            if await self._ingest_one(order, reason, authoritative=True) is False:
                unread += 1
        if unread != self.unread_orders:
            if unread:
                log.warning(
                    "Sinqro %s: %d of %d open orders could not be read; next try later",
                    reason,
                    unread,
                    len(open_orders),
                )
            else:
                log.info("Sinqro %s: every open order read again", reason)
        self.unread_orders = unread
        self.state.set("link.unread_orders", unread)
        # Marks older than this sync can no longer race with anything.
        self._touched = {k: v for k, v in self._touched.items() if v > started}
        still_open = {o.id for o in open_orders}
        self._missing = {k: v for k, v in self._missing.items() if k in still_open}
        if self.store_failures:
            log.info("journal: storing orders again")
            self.store_failures = 0

    async def _not_found(self, order_id: int) -> None:
        now = asyncio.get_running_loop().time()
        first = self._missing.get(order_id)
        if first is None:
            self._missing[order_id] = now
            log.warning("open order %s is unknown to Sinqro; asking again later", order_id)
        elif now - first >= self.config.gone_after:
            await self._close_gone(order_id, "unknown to Sinqro (ORDER_NOT_FOUND)")

    async def _close_gone(self, order_id: int, reason: str) -> None:
        self._missing.pop(order_id, None)
        if await self.desk.close_gone(order_id, reason):
            self.gone_orders += 1

    def stale(self, order_id: int) -> None:
        """A report would move the order back: read it with a direct GET before believing."""
        self.stale_reports += 1
        if order_id not in self._verifying:
            self._verifying.add(order_id)
            self._verify.put_nowait(order_id)

    async def verify_loop(self) -> None:
        """Apply Sinqro's answer to ``GET /orders/{id}`` for each order set aside as stale."""
        while True:
            order_id = await self._verify.get()
            self._verifying.discard(order_id)
            started = self.frame_mark()
            try:
                order = await self.api.get_order(order_id)
            except SinqroUnauthorized:
                raise
            except SinqroError as exc:
                # The journal keeps the newer status; the next refresh asks again.
                log.warning("order %s: stale report not checked: %s", order_id, exc)
                continue
            if self.touched_since(order_id, started):
                continue
            try:
                # Sinqro's own answer: it may move the order back, or reopen a final one.
                await self.desk.ingest(order, "verify", authoritative=True)
            except JournalError as exc:
                self.store_failed(exc, order_id)
            else:
                self.verified_reports += 1

    async def _ingest_all(
        self, orders: list[Order], reason: str
    ) -> list[UpsertResult | Literal[False] | None]:
        """:meth:`_ingest_one` side by side, so the journal stores orders that wait together
        in one commit (a catch-up of many orders shares its fsyncs); a journal error is
        raised once all have been tried. Returns what each ingest returned."""
        done: list[UpsertResult | Literal[False] | None] = []
        for first in range(0, len(orders), INGEST_GROUP):
            chunk = orders[first : first + INGEST_GROUP]
            results = await asyncio.gather(
                *(self._ingest_one(order, reason) for order in chunk), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                done.append(result)
        return done

    def store_failed(self, exc: JournalError, order_id: int | None) -> None:
        """The journal could not store what Sinqro sent: logged once per run of failures;
        the link retries the sync with backoff while :attr:`store_failures` is set."""
        self.store_failures += 1
        if self.store_failures == 1:
            what = f"order {order_id}" if order_id is not None else "what Sinqro sent"
            log.error(
                "journal cannot store %s: %s; retrying, Sinqro keeps it until then", what, exc
            )


def _selling_point_of(payload: dict[str, object]) -> int | None:
    sp = payload.get("sellingPoint")
    return parse_id(sp.get("id")) if isinstance(sp, dict) else None
