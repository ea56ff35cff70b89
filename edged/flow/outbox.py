"""The outbox sender: staff decisions from the journal's outbox out to Sinqro.

:class:`OutboxSender` drains the outbox that :class:`edged.flow.desk.OrderDesk` fills, per
order: it fetches fresh action tokens when it needs them (:func:`pick_action`), posts with
retry and backoff, and records each outcome as a ``command.done`` or ``command.failed``
event together with the order Sinqro returned. A command caught mid-send by a crash or a
timeout is never blindly sent again: the sender first reads the order and closes the
command if its effect is already there (:func:`effect_present`).

Which commands may have gone out needs no commit of its own before each send: a command
this process already tried (or one with recorded attempts) is read back first, and so is
every command that was in the outbox before this sender started, which an earlier process
may have sent just before it died. The outbox's ids only grow (AUTOINCREMENT), so "before"
is an id at or below the largest one seen at start. A crash between a send and its
outcome therefore costs one ``GET`` of the order after the restart, never a second send,
and the order's way to Sinqro spares the card one fsync per decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edged import backoff
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError
from edged.sinqro import errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import CANCELLED_STATUSES, GONE, WAITING, Order, OrderAction, parse_order
from edged.state import BoxState

log = logging.getLogger(__name__)
# Commands about the catalog, not an order: nothing to read back, and setting the same
# availability or catalog twice is the same (so a lost answer is simply sent again).
ORDERLESS = ("catalog", "availability")


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


# Seconds before the first retry of an order (or of a paused outbox); doubles to retry_max.
FIRST_RETRY = 0.5
# Orders whose commands are tried at the same time; the rest wait their turn, not a backoff.
MAX_PARALLEL = 4


@dataclass
class _Retry:
    """One order's backoff: when its next command may be tried, and why it waits."""

    at: float
    failures: int
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
        self._pause_failures = 0
        # Commands with an id up to this one were in the outbox before this sender started
        # (None until it has looked): an earlier process may have sent them.
        self._inherited_upto: int | None = None
        self._tried: set[int] = set()  # sends this process started
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
        self._pause_failures = 0
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
        if self._inherited_upto is None:
            self._inherited_upto = await self.journal.last_command_id()
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
            self._pause_failures = 0
            return
        reason, lost_answer = failure
        self.retries += 1
        previous = self._retry.get(order_id)
        failures = previous.failures if previous else 0
        wait = backoff.delay(FIRST_RETRY, self.config.retry_max, failures)
        if lost_answer:
            # The answer was lost, not necessarily the request: give Sinqro time to
            # finish applying it before the retry reads the order.
            wait = max(wait, self.settle)
        at = asyncio.get_running_loop().time() + wait
        self._retry[order_id] = _Retry(at, failures + 1, reason)
        log.warning("order %s: retrying in %.1fs: %s", order_id, wait, reason)
        self._publish_retrying()

    def _pause(self, reason: str) -> float:
        """Hold every order back (box-wide cause); returns the wait."""
        wait = backoff.delay(FIRST_RETRY, self.config.retry_max, self._pause_failures)
        self._pause_failures += 1
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
        present = effect_present(command, parse_order(stored.payload))
        if present is True:
            log.info(
                "command %d: order %s is already %s; closing it",
                command.id,
                command.order_id,
                stored.status,
            )
            await self._finish(command, ok=True, order=parse_order(stored.payload))
            return True
        if present is None:
            await self._finish(
                command, ok=False, code="ORDER_MOVED_ON", message=f"order is {stored.status}"
            )
            return True
        return False

    def _may_have_gone_out(self, command: Command) -> bool:
        """Could an earlier send of ``command`` have reached Sinqro?"""
        inherited = self._inherited_upto is None or command.id <= self._inherited_upto
        return command.attempts > 0 or command.id in self._tried or inherited

    async def _deliver(self, command: Command) -> tuple[str, bool] | None:
        """Try one command. None when it is closed (done or failed for good); else why it
        waits and whether the answer of a send was lost. Raises :class:`_Paused` for a
        box-wide cause."""
        sending = False
        if command.kind not in ORDERLESS and await self._already_decided(command):
            return None
        try:
            if command.kind not in ORDERLESS and self._may_have_gone_out(command):
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
            # No commit before the send (see the module's docstring): from here on this
            # process reads the order back before any further send of this command.
            self._tried.add(command.id)
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
            if sending and command.kind not in ORDERLESS and await self._already_applied(command):
                return None
            log.warning("command %d refused by Sinqro: %s", command.id, exc)
            await self._finish(command, ok=False, code=exc.code, message=exc.message, sent=sending)
            return None
        await self._finish(command, ok=True, order=order, sent=True)
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
        if command.kind == "availability":
            sp = int(params["selling_point_id"])
            available = bool(params["available"])
            if params["item"] == "option":
                await self.api.set_option_available(
                    sp, int(params["category_id"]), int(params["id"]), available
                )
            else:
                await self.api.set_product_available(sp, int(params["id"]), available)
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
        sent: bool = False,
    ) -> None:
        if ok:
            self.sent += 1
            log.info("command %d (%s order %s) done", command.id, command.kind, command.order_id)
        else:
            self.failed += 1
        counts = await self.journal.finish_command(
            command, ok=ok, order=order, error_code=code, error=message, sent=sent
        )
        self._tried.discard(command.id)  # closed: never sent again
        # No await between the commit and these: whoever the outcome woke sees them set.
        self.state.set("queued_commands", counts["queued_commands"])
        self.state.set("waiting_orders", counts["waiting_orders"])
