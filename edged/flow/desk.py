"""The order flow: notifications into the journal, staff decisions into the outbox.

:class:`OrderDesk` is the one door for decisions. The buttons, the web page, the MQTT and
serial bridges and the CLI all call it; it validates the request against the journal and
writes it to the outbox. It never calls Sinqro itself: :class:`edged.flow.outbox.OutboxSender`
delivers what it queued, and the desk hands callers the outcome when it lands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edged.flow.refusals import CommandRefused
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError, StoredOrder, Tx, UpsertResult
from edged.journal.unstored import UnstoredOrders
from edged.sinqro import errors
from edged.sinqro.models import GONE, SETTABLE_STATUSES, WAITING, Order, parse_order
from edged.state import BoxState

if TYPE_CHECKING:  # the keeper imports this module
    from edged.flow.catalog import CatalogKeeper

log = logging.getLogger(__name__)

MAX_COMMENT = 500
# How far along its life an open order is; a report that would move it back is stale.
_PROGRESS = {
    WAITING: 0,
    "accepted": 1,
    "reservation_accepted": 1,
    "preparation": 2,
    "ready": 3,
    "delivering": 4,
    "delivered": 5,
}


def moves_back(stored: str, reported: str) -> bool:
    """Would ``reported`` move an order that is ``stored`` backwards? Unknown codes never do."""
    old, new = _PROGRESS.get(stored), _PROGRESS.get(reported)
    return old is not None and new is not None and new < old


@dataclass(frozen=True)
class Outcome:
    """How a command ended, as far as the caller waited.

    ``queued`` means Sinqro has not answered yet (offline, or slower than the wait): the
    command is safe in the outbox and will be delivered.
    """

    command_id: int
    state: Literal["done", "failed", "queued"]
    code: str = ""
    message: str = ""
    status: str = ""


class OrderDesk:
    """Entry point for order notifications and for every staff decision."""

    def __init__(self, journal: Journal, state: BoxState, config: OrdersConfig) -> None:
        self.journal = journal
        self.state = state
        # The catalog keeper, set by the daemon once built: bridges reach "sold out" here.
        self.catalog: CatalogKeeper | None = None
        self.config = config
        self._waiters: dict[int, list[asyncio.Future[Outcome]]] = {}
        # One decision checked and queued at a time: two taps cannot both pass the check.
        self._deciding = asyncio.Lock()
        # Orders the journal could not store yet: still rung and printed, stored later.
        self.unstored: UnstoredOrders[Order] = UnstoredOrders(
            lambda order: self.ingest(order, "unstored"), state=state
        )
        journal.add_listener(self._on_events)

    # -- orders coming in ------------------------------------------------------------------

    async def ingest(
        self, order: Order, source: str, *, authoritative: bool = False
    ) -> UpsertResult | None:
        """Store an order seen by websocket, poll or reconciliation.

        A report that would move an open order backwards (an accepted order "waiting"
        again), or reopen a final one, is stale unless it is ``authoritative``, Sinqro's
        answer to a direct ``GET /orders/{id}``: it is not applied (None) and the caller
        asks that GET. That answer alone may reopen a final order (logged, and its
        ``order.status`` event says ``reopened``). Notifications that did not come from
        Sinqro's own connection never get here unchecked: they are hints
        (:mod:`edged.flow.hints`), and only Sinqro's answer to them is ingested.
        Auto-accept is keyed by order id, so a duplicate or a restart never accepts twice.
        """
        auto_accept = self.config.auto_accept
        delay = self.config.auto_accept_delay or None

        def store(tx: Tx) -> tuple[UpsertResult | None, tuple[int, int] | None]:
            if not authoritative:
                row = tx.execute(
                    "SELECT status, is_final FROM orders WHERE id = ?", (order.id,)
                ).fetchone()
                if row is not None:
                    reopens = bool(row[1]) and not order.is_final
                    if reopens or (not row[1] and moves_back(row[0], order.status)):
                        return None, None
            # One transaction: a crash or a full disk can never leave a new order stored
            # without its auto-accept (a later sync would no longer see it as new).
            result = tx.upsert_order(order, reopen=authoritative)
            if result.new and order.status == WAITING and auto_accept:
                tx.enqueue_command(
                    order.id,
                    "accept",
                    {"delay": delay},
                    source="auto",
                    key=f"auto-accept:{order.id}",
                )
            counts = tx.live_counts() if result.new or result.status_changed else None
            return result, counts

        try:
            result, counts = await self.journal.transaction(store)
        except JournalError as exc:
            await self._hold(order, exc)
            raise
        self.unstored.note_stored(order.id)
        if counts is not None:
            self.state.set("waiting_orders", counts[0])
            self.state.set("queued_commands", counts[1])
        if result is None:
            log.info("order %s: stale %s report (%s) set aside", order.id, source, order.status)
        elif result.new:
            log.info("order %s (%s, %s) stored from %s", order.id, order.type, order.code, source)
        elif any(
            isinstance(p := ev.payload(e), ev.OrderStatus) and p.reopened for e in result.events
        ):
            first = ev.payload(result.events[0])
            previous = first.previous if isinstance(first, ev.OrderStatus) else None
            log.warning(
                "order %s reopened by Sinqro's answer: %s on the box, %s at Sinqro (from %s)",
                order.id,
                previous,
                order.status,
                source,
            )
        elif result.status_changed:
            log.info("order %s is now %s (from %s)", order.id, order.status, source)
        return result

    async def _hold(self, order: Order, error: JournalError) -> None:
        """The journal could not store ``order``: unless it is stored already (as far as
        this process or a read of the journal can tell), hold it (edged/journal/unstored)."""
        if self.unstored.known(order.id):
            return
        if not order.is_final and not self.unstored.is_held(order.id):
            try:
                stored = await self.journal.get_order(order.id) is not None
            except JournalError:
                stored = False  # cannot tell: better a marked ticket than none
            if stored:
                self.unstored.note_stored(order.id)
                return
        self.unstored.hold(order, error)

    async def close_gone(self, order_id: int, reason: str) -> bool:
        """Close an open order Sinqro no longer knows, locally, with the final status
        ``gone``: its ``order.status`` event stops the alert and tells the board, the
        bridges and the printers. Its queued commands fail (they can never be delivered).
        False when the order is not open."""

        def run(tx: Tx) -> tuple[int, int] | None:
            stored = tx.get_order(order_id)
            if stored is None or stored.is_final:
                return None
            pending = tx.execute(
                "SELECT * FROM outbox WHERE order_id = ? AND state IN ('queued', 'sending')",
                (order_id,),
            ).fetchall()
            for row in pending:
                command = Command.from_row(row)
                tx.execute(
                    "UPDATE outbox SET state = 'failed', error_code = ?, error = ?, updated = ?"
                    " WHERE id = ?",
                    (errors.ORDER_NOT_FOUND, reason, tx.now, command.id),
                )
                tx.append_event(
                    ev.COMMAND_FAILED,
                    order_id,
                    {
                        "command_id": command.id,
                        "kind": command.kind,
                        "source": command.source,
                        "code": errors.ORDER_NOT_FOUND,
                        "message": reason,
                    },
                )
            payload = dict(stored.payload)
            payload["status"] = {"code": GONE, "name": reason, "isFinalStatus": True}
            tx.upsert_order(parse_order(payload))
            return tx.live_counts()

        counts = await self.journal.transaction(run)
        if counts is None:
            return False
        self.state.set("waiting_orders", counts[0])
        self.state.set("queued_commands", counts[1])
        log.warning("order %s closed locally (%s): %s", order_id, GONE, reason)
        return True

    async def refresh_counts(self) -> None:
        counts = await self.journal.counts()
        self.state.set("waiting_orders", counts["waiting_orders"])
        self.state.set("queued_commands", counts["queued_commands"])

    async def oldest_waiting(self) -> StoredOrder | None:
        """The order the physical buttons act on."""
        waiting = await self.journal.waiting_orders()
        return waiting[0] if waiting else None

    # -- decisions -------------------------------------------------------------------------

    async def _decidable(self, order_id: int) -> StoredOrder:
        order = await self.journal.get_order(order_id)
        if order is None:
            raise CommandRefused("UNKNOWN_ORDER", f"order {order_id} is not in the journal")
        if order.is_final:
            raise CommandRefused("ORDER_FINAL", f"order {order_id} is already {order.status}")
        return order

    async def accept(
        self, order_id: int, delay: int | None = None, *, source: str, key: str | None = None
    ) -> Command:
        """Queue an accept; ``delay`` in minutes picks Sinqro's matching delayed action."""
        order = await self._decidable(order_id)
        if order.status != WAITING:
            raise CommandRefused("NOT_WAITING", f"order {order_id} is {order.status}, not waiting")
        if delay is not None and not 0 <= delay <= 240:
            raise CommandRefused("BAD_DELAY", "delay must be between 0 and 240 minutes")
        async with self._deciding:
            await self._no_decision_queued(order_id, key)
            return await self._enqueue(order_id, "accept", {"delay": delay or None}, source, key)

    async def cancel(
        self, order_id: int, comment: str, *, source: str, key: str | None = None
    ) -> Command:
        """Queue a cancel; Sinqro requires a comment (ORDER_CANCELLATION_COMMENT_IS_REQUIRED)."""
        comment = (comment or "").strip()
        if not comment:
            raise CommandRefused(
                errors.ORDER_CANCELLATION_COMMENT_IS_REQUIRED, "a cancellation comment is required"
            )
        if len(comment) > MAX_COMMENT:
            raise CommandRefused("BAD_COMMENT", f"comment longer than {MAX_COMMENT} characters")
        await self._decidable(order_id)
        async with self._deciding:
            await self._no_decision_queued(order_id, key)
            return await self._enqueue(order_id, "cancel", {"comment": comment}, source, key)

    async def _no_decision_queued(self, order_id: int, key: str | None) -> None:
        """Refuse a second accept or cancel while one for the same order is still queued.

        Only one decision can reach Sinqro; a second one queued behind it would be closed
        unsent once the first lands. Refusing it here tells its source at once (page,
        buzzer, bridge error). The same idempotency ``key`` again is a retry, not a second
        decision: the outbox hands back the first command.
        """
        for command in await self.journal.pending_commands():
            if command.order_id != order_id or command.kind not in ("accept", "cancel"):
                continue
            if key is not None and command.key == key:
                return
            raise CommandRefused(
                "DECISION_QUEUED",
                f"order {order_id} already has a decision queued ({command.kind}, command "
                f"{command.id}); it is sent when Sinqro answers",
            )

    async def set_status(
        self, order_id: int, status: str, *, reason: str = "", source: str, key: str | None = None
    ) -> Command:
        """Queue a status change by ``orderStatusTypeCode`` (preparation, ready, ...)."""
        if status not in SETTABLE_STATUSES:
            raise CommandRefused(
                "BAD_STATUS", f"status must be one of {', '.join(SETTABLE_STATUSES)}"
            )
        reason = (reason or "").strip()
        if status == "cancelled_by_sp" and not reason:
            raise CommandRefused(
                errors.ORDER_CANCELLATION_COMMENT_IS_REQUIRED, "cancelled_by_sp needs a reason"
            )
        if len(reason) > MAX_COMMENT:
            raise CommandRefused("BAD_COMMENT", f"reason longer than {MAX_COMMENT} characters")
        await self._decidable(order_id)
        params = {"status": status, "reason": reason}
        return await self._enqueue(order_id, "status", params, source, key)

    async def push_catalog(
        self, catalog: dict[str, Any], *, source: str, key: str | None = None
    ) -> Command:
        """Queue a bulk catalog push (``PATCH .../menus/collectionRaw``); validated by caller."""
        return await self._enqueue(0, "catalog", {"catalog": catalog}, source, key)

    async def acknowledge(self, order_id: int | None, *, source: str) -> list[int]:
        """Silence the alert of one order, or of every waiting order when ``order_id`` is None.
        Local only: Sinqro is not told. Returns the order ids acknowledged."""
        if order_id is not None:
            if await self.journal.get_order(order_id) is None:
                raise CommandRefused("UNKNOWN_ORDER", f"order {order_id} is not in the journal")
            ids = [order_id]
        else:
            ids = [o.id for o in await self.journal.waiting_orders() if not o.acknowledged]
        return [i for i in ids if await self.journal.acknowledge(i, source)]

    async def _enqueue(
        self, order_id: int, kind: str, params: dict[str, Any], source: str, key: str | None
    ) -> Command:
        command, created = await self.journal.enqueue_command(
            order_id, kind, params, source=source, key=key
        )
        if created:
            log.info("command %d queued: %s order %s from %s", command.id, kind, order_id, source)
            self.state.set("queued_commands", self.state.get("queued_commands", 0) + 1)
        return command

    # -- results ---------------------------------------------------------------------------

    async def wait(self, command_id: int, timeout: float) -> Outcome:
        """Wait up to ``timeout`` seconds for a command's outcome."""
        command = await self.journal.get_command(command_id)
        if command is None:
            raise CommandRefused("UNKNOWN_COMMAND", f"no command {command_id}")
        if command.state in ("done", "failed"):
            return _outcome(command)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(command_id, []).append(future)
        try:
            # Re-check: the outcome may have landed while we registered.
            command = await self.journal.get_command(command_id)
            if command is not None and command.state in ("done", "failed"):
                return _outcome(command)
            async with asyncio.timeout(timeout):  # not wait_for: it can drop a stop on 3.11
                return await asyncio.shield(future)
        except TimeoutError:
            return Outcome(command_id, "queued")
        finally:
            waiters = self._waiters.get(command_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(command_id, None)

    def _on_events(self, new_events: list[Event]) -> None:
        for event in new_events:
            data = ev.payload(event)
            if isinstance(data, ev.CommandDone):
                outcome = Outcome(data.command_id, "done", status=data.status)
            elif isinstance(data, ev.CommandFailed):
                outcome = Outcome(data.command_id, "failed", code=data.code, message=data.message)
            else:
                continue
            for future in self._waiters.pop(outcome.command_id, []):
                if not future.done():
                    future.set_result(outcome)


def _outcome(command: Command) -> Outcome:
    if command.state == "done":
        return Outcome(command.id, "done")
    if command.state == "failed":
        return Outcome(command.id, "failed", command.error_code or "", command.error or "")
    return Outcome(command.id, "queued")
