"""ACCEPT / CANCEL presses into intents: debounce, short and long presses, both together.

All of this runs on the event loop and measures time on the panel's
:class:`~edged.clock.Clock`. Edges come in from gpiozero threads (handed over with
``call_soon_threadsafe`` by the controller) or from virtual presses.

Debounce: every edge restarts a ``bounce_time`` timer; when it runs out the level is read
and, if it differs from the last stable level, that is one press or release, dated at the
first edge of the burst. A button already down when the panel starts never acts.

A *gesture* starts when a button goes down and ends when every button is up again.

============================  ==========================================================
gesture                        intent
============================  ==========================================================
ACCEPT < ``accept_hold``       ``accept`` (on release)
ACCEPT >= ``accept_hold``      ``accept_long`` (on release; a ``tick`` at the threshold)
CANCEL < ``cancel_hold``       ``silence`` (on release): acknowledge, never cancel
CANCEL >= ``cancel_hold``      ``cancel`` (on release; a ``tick`` at the threshold)
both down at once              ``both`` (at once): acknowledge all; single-button
                               intents are dropped for the rest of the gesture
both held :func:`proof_hold`   ``tick`` at the threshold; let go before ``setup_hold``:
                               ``proof`` (the web page's proof of physical access)
both held ``setup_hold``       ``setup`` (while held)
held >= ``max_hold``           ``stuck``: nothing is done
============================  ==========================================================

The proof is a deliberate hold, not the brief both-buttons press staff use to silence the
buzzer, so a routine press never proves a browser that happens to be waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from edged.clock import Clock
from edged.panel.settings import PanelConfig

log = logging.getLogger(__name__)

ButtonName = Literal["accept", "cancel"]
BUTTONS: tuple[ButtonName, ButtonName] = ("accept", "cancel")
Intent = Literal[
    "accept", "accept_long", "silence", "cancel", "both", "proof", "setup", "stuck", "tick"
]
# Both buttons held this long, then let go: the proof of access (below the setup hold).
PROOF_HOLD = 2.0


def proof_hold(config: PanelConfig) -> float:
    """Seconds both buttons are held for the proof of access (always below the setup hold)."""
    return min(PROOF_HOLD, config.setup_hold / 2)


_ids = itertools.count(1)


@dataclass
class Gesture:
    """From the first button down to the last button up."""

    started: float
    id: int = field(default_factory=lambda: next(_ids))
    both: bool = False
    acted: bool = False
    setup: bool = False
    proof_ready: bool = False
    intents: list[Intent] = field(default_factory=list)


class ButtonLogic:
    """Turns raw edges into :data:`Intent` calls to ``emit(gesture, intent)``."""

    def __init__(
        self,
        clock: Clock,
        config: PanelConfig,
        read: Callable[[ButtonName], bool],
        emit: Callable[[Gesture, Intent], None],
        ended: Callable[[Gesture], None],
    ) -> None:
        self.clock = clock
        self.config = config
        self._read = read
        self._emit = emit
        self._ended = ended
        self.stable: dict[ButtonName, bool] = {"accept": False, "cancel": False}
        self.gesture: Gesture | None = None
        self._first_edge: dict[ButtonName, float | None] = {"accept": None, "cancel": None}
        self._down_at: dict[ButtonName, float] = {}
        self._settle: dict[ButtonName, asyncio.Future[None] | None] = {
            "accept": None,
            "cancel": None,
        }
        self._hold: dict[ButtonName, asyncio.Future[None] | None] = {
            "accept": None,
            "cancel": None,
        }
        self._setup: asyncio.Future[None] | None = None
        self._proof: asyncio.Future[None] | None = None
        self.edges = 0

    def close(self) -> None:
        """Drop every timer (the panel stops)."""
        for timers in (self._settle, self._hold):
            for name in BUTTONS:
                timer = timers[name]
                if timer is not None:
                    timer.cancel()
                timers[name] = None
        self._cancel_both_timers()

    def _cancel_both_timers(self) -> None:
        for timer in (self._setup, self._proof):
            if timer is not None:
                timer.cancel()
        self._setup = self._proof = None

    # -- edges and debounce ----------------------------------------------------------------

    def edge(self, name: ButtonName, level: bool) -> None:
        """A raw edge (on the loop). ``level`` is informative; the pin is read on settle."""
        self.edges += 1
        if self._first_edge[name] is None:
            self._first_edge[name] = self.clock.monotonic()
        old = self._settle[name]
        if old is not None:
            old.cancel()
        timer = self.clock.timer(self.config.bounce_time)
        timer.add_done_callback(partial(self._settled, name))
        self._settle[name] = timer

    def _settled(self, name: ButtonName, timer: asyncio.Future[None]) -> None:
        if timer.cancelled() or self._settle[name] is not timer:
            return
        self._settle[name] = None
        at = self._first_edge[name]
        self._first_edge[name] = None
        level = self._read(name)
        if at is None or level == self.stable[name]:
            return  # a bounce that came back where it started
        self.stable[name] = level
        if level:
            self._pressed(name, at)
        else:
            self._released(name, at)

    # -- gestures --------------------------------------------------------------------------

    def _fire(self, gesture: Gesture, intent: Intent) -> None:
        gesture.intents.append(intent)
        log.info("panel: button %s", intent)
        self._emit(gesture, intent)

    def _pressed(self, name: ButtonName, at: float) -> None:
        if self.gesture is None:
            self.gesture = Gesture(started=at)
        gesture = self.gesture
        self._down_at[name] = at
        if all(self.stable[b] for b in BUTTONS):
            for b in BUTTONS:
                self._cancel_hold(b)
            if not gesture.both and not gesture.acted:
                gesture.both = True
                self._fire(gesture, "both")
            if gesture.both and not gesture.setup:
                self._start_setup_timer(gesture, at)
            return
        if gesture.both or gesture.acted:
            return
        threshold = self.config.accept_hold if name == "accept" else self.config.cancel_hold
        timer = self.clock.timer(threshold - (self.clock.monotonic() - at))
        timer.add_done_callback(partial(self._hold_reached, name, gesture))
        self._hold[name] = timer

    def _start_setup_timer(self, gesture: Gesture, at: float) -> None:
        self._cancel_both_timers()
        held = self.clock.monotonic() - at
        timer = self.clock.timer(self.config.setup_hold - held)
        timer.add_done_callback(partial(self._setup_reached, gesture))
        self._setup = timer
        proof = self.clock.timer(proof_hold(self.config) - held)
        proof.add_done_callback(partial(self._proof_reached, gesture))
        self._proof = proof

    def _proof_reached(self, gesture: Gesture, timer: asyncio.Future[None]) -> None:
        if timer.cancelled() or self._proof is not timer:
            return
        self._proof = None
        if self.gesture is gesture and all(self.stable[b] for b in BUTTONS):
            gesture.proof_ready = True
            self._fire(gesture, "tick")  # let go now for the proof

    def _hold_reached(
        self, name: ButtonName, gesture: Gesture, timer: asyncio.Future[None]
    ) -> None:
        if timer.cancelled() or self._hold[name] is not timer:
            return
        self._hold[name] = None
        if self.gesture is gesture and self.stable[name] and not gesture.both:
            self._fire(gesture, "tick")

    def _setup_reached(self, gesture: Gesture, timer: asyncio.Future[None]) -> None:
        if timer.cancelled() or self._setup is not timer:
            return
        self._setup = None
        if self.gesture is gesture and all(self.stable[b] for b in BUTTONS):
            gesture.setup = True
            self._fire(gesture, "setup")

    def _cancel_hold(self, name: ButtonName) -> None:
        timer = self._hold[name]
        if timer is not None:
            timer.cancel()
            self._hold[name] = None

    def _released(self, name: ButtonName, at: float) -> None:
        gesture = self.gesture
        down = self._down_at.pop(name, None)
        self._cancel_hold(name)
        self._cancel_both_timers()
        if gesture is None or down is None:
            return
        if gesture.both and gesture.proof_ready and not gesture.setup and not gesture.acted:
            gesture.acted = True
            self._fire(gesture, "proof")
        if not gesture.both and not gesture.acted:
            held = at - down
            intent: Intent
            if held >= self.config.max_hold:
                log.warning("panel: %s held %.1f s; taken as a stuck button", name, held)
                intent = "stuck"
            elif name == "accept":
                intent = "accept_long" if held >= self.config.accept_hold else "accept"
            else:
                intent = "cancel" if held >= self.config.cancel_hold else "silence"
            gesture.acted = True
            self._fire(gesture, intent)
        if not any(self.stable[b] for b in BUTTONS):
            self.gesture = None
            self._ended(gesture)
