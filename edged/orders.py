"""The order flow: notifications into the journal, staff decisions into the outbox.

:class:`OrderDesk` is the one door for decisions. The buttons, the web page, the MQTT and
serial bridges and the CLI all call it; it validates the request against the journal and
writes it to the outbox. It never calls Sinqro itself.

:class:`OutboxSender` drains the outbox: it fetches fresh action tokens when it needs them,
posts with retry and backoff, and records each outcome as a ``command.done`` or
``command.failed`` event together with the order Sinqro returned. A command caught mid-send
by a crash or a timeout is never blindly sent again: the sender first reads the order and
closes the command if its effect is already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from edged.config import OrdersConfig
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError, StoredOrder, Tx, UpsertResult
from edged.pairing import Pairing
from edged.sinqro import errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import (
    CANCELLED_STATUSES,
    GONE,
    SETTABLE_STATUSES,
    WAITING,
    Order,
    OrderAction,
    parse_order,
)
from edged.state import BoxState

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


class CommandRefused(ValueError):
    """A decision that cannot be taken (unknown order, already decided, no comment...).

    ``code`` is a stable word for bridges and the web page (see docs/bridge-protocol.md).
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


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
        self.config = config
        self._waiters: dict[int, list[asyncio.Future[Outcome]]] = {}
        # One decision checked and queued at a time: two taps cannot both pass the check.
        self._deciding = asyncio.Lock()
        journal.add_listener(self._on_events)

    # -- orders coming in ------------------------------------------------------------------

    async def ingest(
        self, order: Order, source: str, *, authoritative: bool = False
    ) -> UpsertResult | None:
        """Store an order seen by websocket, poll or reconciliation.

        A report that would move an open order backwards (an accepted order "waiting"
        again) is stale unless it is ``authoritative``, Sinqro's answer to a direct
        ``GET /orders/{id}``: it is not applied (None) and the caller asks that GET.
        Auto-accept is keyed by order id, so a duplicate or a restart never accepts twice.
        """
        auto_accept = self.config.auto_accept
        delay = self.config.auto_accept_delay or None

        def store(tx: Tx) -> tuple[UpsertResult | None, tuple[int, int] | None]:
            if not authoritative:
                row = tx.execute(
                    "SELECT status FROM orders WHERE id = ? AND is_final = 0", (order.id,)
                ).fetchone()
                if row is not None and moves_back(row[0], order.status):
                    return None, None
            # One transaction: a crash or a full disk can never leave a new order stored
            # without its auto-accept (a later sync would no longer see it as new).
            result = tx.upsert_order(order)
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

        result, counts = await self.journal.transaction(store)
        if counts is not None:
            self.state.set("waiting_orders", counts[0])
            self.state.set("queued_commands", counts[1])
        if result is None:
            log.info("order %s: stale %s report (%s) set aside", order.id, source, order.status)
        elif result.new:
            log.info("order %s (%s, %s) stored from %s", order.id, order.type, order.code, source)
        elif result.status_changed:
            log.info("order %s is now %s (from %s)", order.id, order.status, source)
        return result

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


def effect_present(command: Command, order: Order) -> bool | None:
    """Is the command's effect already visible on ``order``?

    True: done (do not send again). False: still to do. None: moot, the order moved on
    in a way that makes the command impossible (e.g. accept after the client cancelled).
    """
    if order.status == GONE:
        return None
    if command.kind == "accept":
        if order.status == WAITING:
            return False
        return None if order.status in CANCELLED_STATUSES else True
    if command.kind == "cancel":
        if order.status in CANCELLED_STATUSES:
            return True
        return None if order.is_final else False
    if command.kind == "status":
        target = command.params.get("status")
        if order.status == target:
            return True
        return None if order.is_final else False
    return False


def pick_action(actions: list[OrderAction], kind: str, delay: int | None) -> OrderAction | None:
    """The action token for ``kind`` (ACCEPT/CANCEL).

    A delayed accept is asked for with ``?delayMinutes=N`` (docs/sinqro-assumptions.md):
    the ACCEPT whose ``delayMinutes`` is N, else the one ACCEPT that states no delay (the
    reference's OrderAction example answers ``delayMinutes: null``: the token returned for
    that query is the delayed accept). None when neither exists or the choice is ambiguous;
    the sender then uses the documented status route with ``delayMinutes``.
    """
    matching = [a for a in actions if a.action_type == kind]
    if kind == "ACCEPT" and delay:
        for action in matching:
            if action.delay_minutes is not None and int(action.delay_minutes) == delay:
                return action
        undated = [a for a in matching if not a.delay_minutes]
        return undated[0] if len(undated) == 1 else None
    plain = [a for a in matching if not a.delay_minutes]
    candidates = plain or matching
    return candidates[0] if candidates else None


# Orders whose commands are tried at the same time; the rest wait their turn, not a backoff.
MAX_PARALLEL = 4


@dataclass
class _Retry:
    """One order's backoff: when its next command may be tried, and why it waits."""

    at: float
    backoff: float
    reason: str


class _Paused(Exception):
    """A box-wide cause (token refused, journal unavailable): every order waits."""


class OutboxSender:
    """Delivers outbox commands to Sinqro, per order.

    Commands of one order go out one at a time, in the order they were queued. Orders are
    independent: a command that cannot be delivered backs off on its own (``retrying``,
    with its reason in the state key ``outbox.retrying`` and the command's ``error``),
    while every other order's commands go out at once. Only a box-wide cause pauses all:
    not paired, the link offline, the token refused, the journal unavailable.
    """

    def __init__(
        self,
        journal: Journal,
        api: SinqroApi,
        state: BoxState,
        config: OrdersConfig,
        pairing: Callable[[], Pairing],
        *,
        settle: float = 0.0,
    ) -> None:
        self.journal = journal
        self.api = api
        # Seconds to wait before checking a command whose answer was lost (the request
        # timeout is a good value: a request still in flight lands within it).
        self.settle = settle
        self.state = state
        self.config = config
        self.pairing = pairing
        self._wake = asyncio.Event()
        self._retry: dict[int, _Retry] = {}
        self._busy: set[int] = set()
        self._paused_until = 0.0
        self._pause_backoff = 0.0
        self.sent = 0
        self.failed = 0
        self.retries = 0

    def _on_events(self, new_events: list[Event]) -> None:
        if any(e.kind == ev.COMMAND_QUEUED for e in new_events):
            self._wake.set()

    def kick(self) -> None:
        """Try every order now (the link came back, the box was paired...)."""
        self._retry.clear()
        self._paused_until = 0.0
        self._pause_backoff = 0.0
        self._publish_retrying()
        self._wake.set()

    def retrying(self) -> dict[int, str]:
        """Orders whose next command waits for its own retry, with the reason."""
        return {order_id: r.reason for order_id, r in self._retry.items()}

    async def run(self) -> None:
        """Drain the outbox until cancelled; one task per order being delivered."""
        self.journal.add_listener(self._on_events)
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    self._wake.clear()
                    try:
                        wait = await self._dispatch(tg)
                    except JournalError as exc:
                        wait = self._pause(f"journal unavailable: {exc}")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
        finally:
            self.journal.remove_listener(self._on_events)
            self._busy.clear()

    async def _dispatch(self, tg: asyncio.TaskGroup) -> float:
        """Start the commands that may go now; returns how long to wait at most."""
        now = asyncio.get_running_loop().time()
        if not self.pairing().paired or self.state.get("link") == "offline":
            return 1.0  # kick() wakes us when the link or the pairing comes back
        if now < self._paused_until:
            return self._paused_until - now
        pending = await self.journal.pending_commands()
        self.state.set("queued_commands", len(pending))
        heads: dict[int, Command] = {}
        for command in pending:
            heads.setdefault(command.order_id, command)
        stale = [order_id for order_id in self._retry if order_id not in heads]
        for order_id in stale:
            del self._retry[order_id]
        if stale:
            self._publish_retrying()
        # The journal watcher also wakes us for commands written by the CLI.
        next_at = now + 1.0
        for order_id, command in heads.items():
            if order_id in self._busy:
                continue
            retry = self._retry.get(order_id)
            if retry is not None and retry.at > now:
                next_at = min(next_at, retry.at)
                continue
            if len(self._busy) >= MAX_PARALLEL:
                break
            self._busy.add(order_id)
            tg.create_task(self._attempt(command), name=f"outbox-order-{order_id}")
        return max(0.0, next_at - now)

    async def _attempt(self, command: Command) -> None:
        """Deliver one order's next command; a failure stays with that order."""
        order_id = command.order_id
        try:
            failure = await self._deliver(command)
        except _Paused as exc:
            self._pause(str(exc))
            failure = None
        except JournalError as exc:
            # Disk full: the outcome cannot be recorded. Keep the command and try again
            # later; a re-send first reads the order, so it is never doubled.
            self._pause(f"journal unavailable: {exc}")
            failure = None
        except Exception as exc:  # one order's odd answer must not stop the others
            log.exception("command %d (order %s) failed unexpectedly", command.id, order_id)
            failure = (f"internal error: {type(exc).__name__}", False)
        finally:
            self._busy.discard(order_id)
            self._wake.set()
        if failure is None:
            if self._retry.pop(order_id, None) is not None:
                self._publish_retrying()
            self._pause_backoff = 0.0
            return
        reason, lost_answer = failure
        self.retries += 1
        previous = self._retry.get(order_id)
        backoff = min(self.config.retry_max, max(0.5, previous.backoff * 2 if previous else 0.5))
        if lost_answer:
            # The answer was lost, not necessarily the request: give Sinqro time to
            # finish applying it before the retry reads the order.
            backoff = max(backoff, self.settle)
        wait = backoff * random.uniform(0.8, 1.2)
        self._retry[order_id] = _Retry(asyncio.get_running_loop().time() + wait, backoff, reason)
        log.warning("order %s: retrying in %.1fs: %s", order_id, wait, reason)
        self._publish_retrying()

    def _pause(self, reason: str) -> float:
        """Hold every order back (box-wide cause); returns the wait."""
        self._pause_backoff = min(self.config.retry_max, max(0.5, self._pause_backoff * 2))
        wait = self._pause_backoff * random.uniform(0.8, 1.2)
        self._paused_until = asyncio.get_running_loop().time() + wait
        log.warning("outbox paused for %.1fs: %s", wait, reason)
        return wait

    def _publish_retrying(self) -> None:
        self.state.set("outbox.retrying", {str(k): r.reason for k, r in self._retry.items()})

    async def _already_applied(self, command: Command) -> bool:
        """After a refusal, look once more: an earlier, lost attempt may have landed."""
        try:
            current = await self.api.get_order(command.order_id)
        except SinqroError:
            return False
        if effect_present(command, current) is not True:
            return False
        log.info("command %d was refused, but its effect is there; closing it", command.id)
        await self._finish(command, ok=True, order=current)
        return True

    async def _already_decided(self, command: Command) -> bool:
        """Close a command whose effect the journal already shows, without a request.

        Two accepts for one order can both be queued while it waits (a button press and a
        POS terminal, or the same decision through two bridges). Once the first is done the
        order is accepted, and Sinqro's ACCEPT action then means "next step": sending the
        second would move the order on to ``preparation``. The journal holds the order as
        Sinqro returned it with the first command's answer, so it is checked first.
        """
        stored = await self.journal.get_order(command.order_id)
        if stored is None:
            return False
        present = effect_present(command, stored.order)
        if present is True:
            log.info(
                "command %d: order %s is already %s; closing it",
                command.id,
                command.order_id,
                stored.status,
            )
            await self._finish(command, ok=True, order=stored.order)
            return True
        if present is None:
            await self._finish(
                command, ok=False, code="ORDER_MOVED_ON", message=f"order is {stored.status}"
            )
            return True
        return False

    async def _deliver(self, command: Command) -> tuple[str, bool] | None:
        """Try one command. None when it is closed (done or failed for good); else why it
        waits and whether the answer of a send was lost. Raises :class:`_Paused` for a
        box-wide cause."""
        sending = False
        if command.kind != "catalog" and await self._already_decided(command):
            return None
        try:
            if command.attempts > 0 and command.kind != "catalog":
                # It may have reached Sinqro before the crash or timeout: look first.
                current = await self.api.get_order(command.order_id)
                present = effect_present(command, current)
                if present is True:
                    log.info("command %d was already applied; closing it", command.id)
                    await self._finish(command, ok=True, order=current)
                    return None
                if present is None:
                    await self._finish(
                        command,
                        ok=False,
                        order=current,
                        code="ORDER_MOVED_ON",
                        message=f"order is {current.status}",
                    )
                    return None
            await self.journal.mark_sending(command.id)
            sending = True
            order = await self._send(command)
        except SinqroError as exc:
            if exc.code == errors.UNAUTHORIZED:
                await self.journal.requeue_command(command.id, str(exc))
                raise _Paused(f"Sinqro refused the token: {exc}") from None
            if exc.transient:
                log.warning("command %d not delivered yet: %s", command.id, exc)
                await self.journal.requeue_command(command.id, str(exc))
                return str(exc), sending
            if sending and command.kind != "catalog" and await self._already_applied(command):
                return None
            log.warning("command %d refused by Sinqro: %s", command.id, exc)
            await self._finish(command, ok=False, code=exc.code, message=exc.message)
            return None
        await self._finish(command, ok=True, order=order)
        return None

    async def _send(self, command: Command) -> Order | None:
        params = command.params
        if command.kind in ("accept", "cancel"):
            kind = "ACCEPT" if command.kind == "accept" else "CANCEL"
            delay = params.get("delay") if command.kind == "accept" else None
            actions = await self.api.order_actions(command.order_id, delay_minutes=delay)
            action = pick_action(actions, kind, delay)
            if action is None and kind == "ACCEPT" and delay:
                # The documented alternative: NewOrderStatus with delayMinutes.
                return await self.api.set_status(
                    self.pairing().selling_point_id,
                    command.order_id,
                    "accepted",
                    delay_minutes=delay,
                )
            if action is None:
                raise SinqroError(
                    errors.NO_MATCHING_ACTION,
                    f"Sinqro offers no {kind} action"
                    + (f" with a {delay} minute delay" if delay else ""),
                )
            comment = params.get("comment") if command.kind == "cancel" else None
            return await self.api.post_action(
                command.order_id, action.token, cancellation_comment=comment
            )
        if command.kind == "status":
            return await self.api.set_status(
                self.pairing().selling_point_id,
                command.order_id,
                params["status"],
                cancellation_reason=params.get("reason") or None,
            )
        if command.kind == "catalog":
            await self.api.patch_menu_collection_raw(
                self.pairing().selling_point_id, params["catalog"]
            )
            return None
        raise SinqroError("BAD_COMMAND", f"unknown command kind {command.kind!r}")

    async def _finish(
        self,
        command: Command,
        *,
        ok: bool,
        order: Order | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        if ok:
            self.sent += 1
            log.info("command %d (%s order %s) done", command.id, command.kind, command.order_id)
        else:
            self.failed += 1
        counts = await self.journal.finish_command(
            command, ok=ok, order=order, error_code=code, error=message
        )
        # No await between the commit and these: whoever the outcome woke sees them set.
        self.state.set("queued_commands", counts["queued_commands"])
        self.state.set("waiting_orders", counts["waiting_orders"])
