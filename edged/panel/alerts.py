"""Which orders make the buzzer ring, followed from journal events and the journal itself.

An order rings while it waits for a decision, nobody acknowledged it and no decision for
it is queued or done. Journal events (``order.new``, ``order.status``,
``order.acknowledged``, ``command.*``) update the set at once, on the loop, for low
latency; a reconcile with the journal (waiting orders and pending commands) keeps it
true when events were missed (another process wrote, the panel started late).

A reconcile query runs on the journal thread while events keep arriving, so it must not
undo what a newer event said: each order remembers the sequence number of the last event
applied to it, and a reconcile only decides orders whose last event is not newer than the
point where its query started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command
from edged.sinqro.models import WAITING

log = logging.getLogger(__name__)

DECISIONS = ("accept", "cancel")


@dataclass
class AlertTracker:
    """The set of ringing orders and what the buzzer should play for them."""

    now: Callable[[], float]
    escalate_after: float
    auto_accept: bool = False
    #: The ringing set changed; ``added`` when an order started ringing.
    on_change: Callable[[bool], None] = lambda added: None
    #: An auto-accept command finished: ``(order_id, ok)``.
    on_auto_result: Callable[[int, bool], None] = lambda order_id, ok: None
    #: A new order arrived while auto-accept is on (one short ring).
    on_auto_new: Callable[[int], None] = lambda order_id: None

    ringing: dict[int, float] = field(default_factory=dict)  # order id -> rings since
    fresh: bool = False  # a new order arrived: play ``new_order`` before ``waiting``
    _event_seq: dict[int, int] = field(default_factory=dict)
    _first_seen: dict[int, float] = field(default_factory=dict)
    _decided: set[int] = field(default_factory=set)  # a decision is done (status may lag)
    _auto_quiet: set[int] = field(default_factory=set)  # auto-accept on its way

    # -- queries ---------------------------------------------------------------------------

    def alert(self) -> str | None:
        """``new_order`` | ``waiting`` | ``escalated`` | None (quiet)."""
        if not self.ringing:
            return None
        if self.fresh:
            return "new_order"
        if self.now() - min(self.ringing.values()) >= self.escalate_after:
            return "escalated"
        return "waiting"

    def until_escalation(self) -> float | None:
        """Seconds until the alert escalates (None: no ringing order, or already)."""
        if not self.ringing:
            return None
        left = min(self.ringing.values()) + self.escalate_after - self.now()
        return left if left > 0 else None

    @property
    def decided(self) -> frozenset[int]:
        """Orders whose decision is done while their status may still read waiting."""
        return frozenset(self._decided)

    def take_fresh(self) -> None:
        """The ``new_order`` pattern was started; from now on it is ``waiting``."""
        self.fresh = False

    # -- changes ---------------------------------------------------------------------------

    def _add(self, order_id: int, *, fresh: bool) -> bool:
        if order_id in self.ringing:
            return False
        self.ringing[order_id] = self._first_seen.setdefault(order_id, self.now())
        if fresh:
            self.fresh = True
        log.debug("panel: order %s rings", order_id)
        return True

    def _drop(self, order_id: int) -> bool:
        if self.ringing.pop(order_id, None) is None:
            return False
        if not self.ringing:
            self.fresh = False
        log.debug("panel: order %s stops ringing", order_id)
        return True

    def apply(self, events: list[Event]) -> bool:
        """Update from committed journal events. True when something relevant happened."""
        relevant = False
        changed = False
        added = False
        for event in events:
            order_id = event.order_id
            data = ev.payload(event)
            if order_id is None:
                continue
            if isinstance(data, ev.OrderNew):
                relevant = True
                self._event_seq[order_id] = event.seq
                if data.status == WAITING:
                    self._first_seen[order_id] = self.now()
                    if self.auto_accept:
                        self._auto_quiet.add(order_id)
                        self.on_auto_new(order_id)
                    elif self._add(order_id, fresh=True):
                        changed = added = True
            elif isinstance(data, ev.OrderStatus):
                relevant = True
                self._event_seq[order_id] = event.seq
                if data.status != WAITING:
                    self._forget(order_id)
                    changed |= self._drop(order_id)
            elif event.kind == ev.ORDER_ACKNOWLEDGED or (
                isinstance(data, ev.CommandQueued) and data.kind in DECISIONS
            ):
                relevant = True
                self._event_seq[order_id] = event.seq
                changed |= self._drop(order_id)
            elif isinstance(data, ev.CommandDone) and data.kind in DECISIONS:
                relevant = True
                self._event_seq[order_id] = event.seq
                self._decided.add(order_id)
                changed |= self._drop(order_id)
                if data.source == "auto":
                    self.on_auto_result(order_id, True)
            elif isinstance(data, ev.CommandFailed) and data.kind in DECISIONS:
                # The order needs a person again; the reconcile puts it back if it waits.
                relevant = True
                self._decided.discard(order_id)
                self._auto_quiet.discard(order_id)
                if data.source == "auto":
                    self.on_auto_result(order_id, False)
        if changed:
            self.on_change(added)
        return relevant

    def _forget(self, order_id: int) -> None:
        self._decided.discard(order_id)
        self._auto_quiet.discard(order_id)
        self._first_seen.pop(order_id, None)

    def reconcile(
        self, start_seq: int, waiting: list[tuple[int, bool]], pending: list[Command]
    ) -> None:
        """Align with the journal as read after ``start_seq`` was the last event.

        ``waiting`` is ``(order id, acknowledged)`` per waiting order (Journal.waiting_refs).
        """
        pending_ids = {c.order_id for c in pending if c.kind in DECISIONS}
        waiting_ids = {order_id for order_id, _ in waiting}
        should = {
            order_id
            for order_id, acknowledged in waiting
            if not acknowledged
            and order_id not in pending_ids
            and order_id not in self._decided
            and order_id not in self._auto_quiet
        }
        changed = False
        added = False
        for order_id in set(self.ringing) | should:
            if self._event_seq.get(order_id, 0) > start_seq:
                continue  # a newer event already decided this one
            if order_id in should:
                # Not seen as new since start: announce it once too.
                if self._add(order_id, fresh=order_id not in self._first_seen):
                    changed = added = True
            else:
                changed |= self._drop(order_id)
        # Orders that stopped waiting need no memory any more.
        known = set(self._first_seen) | self._decided | self._auto_quiet | set(self._event_seq)
        for order_id in known:
            if order_id not in waiting_ids and self._event_seq.get(order_id, 0) <= start_seq:
                self._forget(order_id)
                self._event_seq.pop(order_id, None)
        if changed:
            self.on_change(added)
