"""Play buzzer and LED patterns on outputs, on a :class:`~edged.clock.Clock`.

Each player is one long-lived task. A change (a new alert, an answer to play, a new LED
state) wakes it through a :class:`Signal`, so a silenced alert stops mid-beep instead of
finishing its rhythm.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping

from edged.clock import Clock, wait_first
from edged.panel.gpio import BuzzerOutput, LedOutput
from edged.panel.patterns import LED_PATTERNS, BuzzerPattern

log = logging.getLogger(__name__)


class Signal:
    """A level-triggered wake-up for one waiting task, without extra tasks."""

    def __init__(self) -> None:
        self._fired = False
        self._future: asyncio.Future[None] | None = None

    def fire(self) -> None:
        self._fired = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def consume(self) -> bool:
        """Was it fired since the last call? Clears it."""
        fired, self._fired = self._fired, False
        return fired

    async def wait(self, clock: Clock, seconds: float | None) -> bool:
        """Wait for :meth:`fire` or ``seconds``; True when fired (left set for consume)."""
        if self._fired:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._future = future
        try:
            await wait_first(clock, future, seconds)
        finally:
            self._future = None
            if not future.done():
                future.cancel()
        return self._fired


class BuzzerPlayer:
    """Plays answers (one-shot, in order, never cut) and the current alert (cut on change)."""

    def __init__(
        self,
        output: BuzzerOutput,
        clock: Clock,
        table: Mapping[str, BuzzerPattern],
        alert: Callable[[], str | None],
        *,
        alert_started: Callable[[str], None] = lambda name: None,
        until_change: Callable[[], float | None] = lambda: None,
        publish: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.output = output
        self.clock = clock
        self.table = table
        self._alert = alert
        self._alert_started = alert_started
        self._until_change = until_change
        self._publish = publish
        self._answers: deque[str] = deque(maxlen=8)
        self._signal = Signal()
        self._answering = False
        self.playing = "quiet"

    def poke(self, *, fast: bool = False) -> None:
        """The alert may have changed: re-evaluate now.

        ``fast``: when silent, start the alert's first tone right here instead of on the
        player task's next turn (a new order is heard a few loop turns sooner).
        """
        if fast and not self._answering and not self.output.on:
            alert = self._alert()
            if alert is not None:
                self.output.tone(self.table[alert].steps[0][0])
        self._signal.fire()

    def answer(self, name: str) -> None:
        """Queue a one-shot pattern (confirm, queued, refused, error, tick)."""
        if name not in self.table:
            raise ValueError(f"unknown buzzer pattern {name!r}")
        self._answers.append(name)
        self._signal.fire()

    def _set_playing(self, name: str) -> None:
        if name != self.playing:
            self.playing = name
            self._publish(name)

    async def run(self) -> None:
        try:
            while True:
                self._signal.consume()
                if self._answers:
                    name = self._answers.popleft()
                    self._set_playing(name)
                    self._answering = True
                    try:
                        await self._play(self.table[name], interruptible=False)
                    finally:
                        self._answering = False
                    continue
                alert = self._alert()
                if alert is None:
                    self._set_playing("quiet")
                    await self._signal.wait(self.clock, None)
                    continue
                pattern = self.table[alert]
                self._set_playing(alert)
                self._alert_started(alert)
                if not await self._play(pattern, interruptible=True):
                    continue
                gap = pattern.repeat_after
                if gap is None:
                    gap = self.table["waiting"].repeat_after or 5.0
                change = self._until_change()
                if change is not None:
                    gap = min(gap, change)
                await self._signal.wait(self.clock, gap)
        finally:
            self.output.off()
            self._set_playing("quiet")

    async def _play(self, pattern: BuzzerPattern, *, interruptible: bool) -> bool:
        """Play once; False when a change cut it short."""
        try:
            for hz, seconds in pattern.steps:
                self.output.tone(hz)
                if interruptible:
                    if await self._signal.wait(self.clock, seconds):
                        return False
                else:
                    await self.clock.sleep(seconds)
            return True
        finally:
            self.output.off()


class LedPlayer:
    """Blinks the LED in the pattern of the current state."""

    def __init__(self, output: LedOutput, clock: Clock, state: str = "starting") -> None:
        self.output = output
        self.clock = clock
        self.state = state
        self._signal = Signal()

    def show(self, state: str) -> None:
        if state not in LED_PATTERNS:
            raise ValueError(f"unknown LED state {state!r}")
        if state != self.state:
            self.state = state
            self._signal.fire()

    async def run(self) -> None:
        try:
            while True:
                self._signal.consume()
                pattern = LED_PATTERNS[self.state]
                for on, seconds in pattern.steps:
                    self.output.set(on)
                    if await self._signal.wait(self.clock, seconds):
                        break
        finally:
            self.output.set(False)
