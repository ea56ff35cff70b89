"""Time as a seam: the real asyncio clock, and a controllable one for tests.

Timing rules (buzzer rhythms, repeats, escalation, long presses, debounce) read the time and
sleep through a :class:`Clock`, so tests can drive them step by step with :class:`FakeClock`
instead of waiting for real seconds.

Besides ``monotonic()`` and ``sleep()``, a clock hands out *timers*: futures that resolve
after a delay. A timer's deadline is fixed when it is created (not when some task first
runs), which is what makes :meth:`FakeClock.advance` deterministic. Cancel a timer you no
longer need.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock", "wait_first"]


class Clock(Protocol):
    """What timing code needs from time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...

    def timer(self, seconds: float) -> asyncio.Future[None]:
        """A future that resolves after ``seconds``; cancel it to drop the timer."""
        ...


class RealClock:
    """The event loop's clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timer(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(0.0, seconds), _resolve, future)
        future.add_done_callback(lambda _: handle.cancel())
        return future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FakeClock:
    """A clock that only moves when told to.

    ``await clock.advance(2.5)`` moves time forward, resolving every timer that falls due
    in order of deadline, and lets the woken tasks run (and set new timers) before moving
    on, so a rhythm of many short steps plays out exactly as it would in real time.
    """

    #: Loop turns given to woken tasks after each step. Enough for a chain of
    #: future -> task -> future hand-offs; work waiting on threads needs its own wait.
    SETTLE_TURNS = 20

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self.timer(seconds)

    def timer(self, seconds: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            future.set_result(None)
        else:
            heapq.heappush(self._timers, (self._now + seconds, next(self._seq), future))
        return future

    @property
    def pending(self) -> int:
        """Timers not yet due (and not cancelled)."""
        return sum(1 for _, _, f in self._timers if not f.done())

    def next_deadline(self) -> float | None:
        """When the next live timer falls due, if any."""
        self._drop_dead()
        return self._timers[0][0] if self._timers else None

    def _drop_dead(self) -> None:
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)

    async def settle(self) -> None:
        """Let ready tasks run without moving time."""
        for _ in range(self.SETTLE_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._now + seconds
        await self.settle()
        while True:
            self._drop_dead()
            if not self._timers or self._timers[0][0] > target:
                break
            deadline = self._timers[0][0]
            self._now = max(self._now, deadline)
            while self._timers and self._timers[0][0] <= deadline:
                _, _, future = heapq.heappop(self._timers)
                _resolve(future)
            await self.settle()
        self._now = target
        await self.settle()


async def wait_first(
    clock: Clock, wake: asyncio.Future[None] | None, seconds: float | None
) -> bool:
    """Wait until ``wake`` resolves or ``seconds`` pass (None: no limit).

    Returns True when woken. The timer is always cleaned up; ``wake`` is left alone.
    """
    if wake is not None and wake.done():
        return True
    waits: set[asyncio.Future[None]] = set()
    timer = clock.timer(seconds) if seconds is not None else None
    if timer is not None:
        waits.add(timer)
    if wake is not None:
        waits.add(wake)
    if not waits:
        raise ValueError("wait_first needs something to wait for")
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if timer is not None:
            timer.cancel()
    return wake is not None and wake.done()
