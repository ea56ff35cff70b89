"""Time as a seam: the real asyncio clock, a controllable one for tests, and a guard for the
wall clock.

Timing rules (buzzer rhythms, repeats, escalation, long presses, debounce) read the time and
sleep through a :class:`Clock`, so tests can drive them step by step with :class:`FakeClock`
instead of waiting for real seconds.

Besides ``monotonic()`` and ``sleep()``, a clock hands out *timers*: futures that resolve
after a delay. A timer's deadline is fixed when it is created (not when some task first
runs), which is what makes :meth:`FakeClock.advance` deterministic. Cancel a timer you no
longer need.

:class:`WallClock` answers "what time is it" for people (LATE banners, "due in", the board):
a Pi has no battery-backed clock, so after a power cut its wall clock is hours off until NTP
answers. Until the system says the clock is synchronised, it estimates now from the last
time Sinqro stated (an HTTP ``Date`` header, a frame's timestamp) plus the monotonic clock.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import errno
import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "Clock",
    "ClockReading",
    "FakeClock",
    "RealClock",
    "WallClock",
    "system_clock_synchronized",
    "wait_first",
]

log = logging.getLogger(__name__)


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


# -- the wall clock ----------------------------------------------------------------------------

#: Created by systemd-timesyncd once it has synchronised the clock (until the next boot).
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
_TIME_ERROR = 5  # ntp_adjtime(3): the clock is not synchronised
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h): 11 longs after modes, a timeval, 10 more fields and
    # padding; only ``modes`` (0: read only) and ``status`` are used here.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def system_clock_synchronized(flag: Path = TIMESYNC_FLAG) -> bool | None:
    """Whether the kernel's clock is synchronised to a time source; None when unknown.

    systemd-timesyncd's flag file first (readable inside the unit's sandbox), then the
    kernel's own NTP state through ``adjtimex`` (chrony and ntpd keep it). The unit's
    ``ProtectClock=`` refuses even a read-only ``adjtimex``: that is "unknown".
    """
    if flag.exists():
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        if ctypes.get_errno() not in (errno.EPERM, errno.ENOSYS):
            log.debug("adjtimex: %s", os.strerror(ctypes.get_errno()))
        return None
    return state != _TIME_ERROR and not timex.status & _STA_UNSYNC


@dataclasses.dataclass(frozen=True)
class ClockReading:
    """One answer of :meth:`WallClock.reading`.

    ``source`` says how far to trust ``now``: ``system`` (the wall clock is synchronised),
    ``sinqro`` (estimated from Sinqro's last stated time and the monotonic clock; good to a
    second or two), ``unsynchronized`` (the wall clock as it is, possibly hours off: do not
    call anything LATE on it).
    """

    now: datetime
    source: Literal["system", "sinqro", "unsynchronized"]

    @property
    def trusted(self) -> bool:
        return self.source != "unsynchronized"


class WallClock:
    """The time of day for people, guarded against a wall clock that is not set yet.

    ``observe()`` each time Sinqro states the time (the ``Date`` header of a REST answer, a
    frame's server timestamp). ``now()`` is the system's wall clock once it is synchronised,
    before that Sinqro's last stated time plus the monotonic time since, and the plain wall
    clock when neither is known. Once synchronised it stays so: the probe is then no longer
    asked. Safe to call from the event loop: the probe runs at most every ``probe_every`` s.
    """

    def __init__(
        self,
        *,
        probe: Callable[[], bool | None] = system_clock_synchronized,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        probe_every: float = 10.0,
    ) -> None:
        self._probe = probe
        self._monotonic = monotonic
        self._wall = wall
        self._probe_every = probe_every
        self._synchronized: bool | None = None
        self._probed_at: float | None = None
        self._anchor: tuple[float, float] | None = None  # (server epoch, monotonic then)

    def synchronized(self) -> bool:
        """True once the system says its clock is synchronised (unknown counts as not)."""
        if self._synchronized:
            return True
        now = self._monotonic()
        if self._probed_at is None or now - self._probed_at >= self._probe_every:
            self._probed_at = now
            was = self._synchronized
            self._synchronized = self._probe()
            if self._synchronized and not was:
                log.info("clock: the wall clock is synchronised")
        return bool(self._synchronized)

    def observe(self, server_time: datetime | float) -> None:
        """Sinqro says it is ``server_time`` now (an aware datetime or a Unix time)."""
        epoch = server_time.timestamp() if isinstance(server_time, datetime) else server_time
        first = self._anchor is None
        self._anchor = (float(epoch), self._monotonic())
        if first and not self.synchronized():
            log.info(
                "clock: not synchronised yet; using Sinqro's time (wall clock off by %+.0f s)",
                self._wall() - epoch,
            )

    def reading(self) -> ClockReading:
        """Now, and how it was obtained."""
        if self.synchronized():
            return ClockReading(datetime.fromtimestamp(self._wall(), UTC), "system")
        if self._anchor is not None:
            epoch, at = self._anchor
            estimate = epoch + (self._monotonic() - at)
            return ClockReading(datetime.fromtimestamp(estimate, UTC), "sinqro")
        return ClockReading(datetime.fromtimestamp(self._wall(), UTC), "unsynchronized")

    def now(self) -> datetime:
        """The best estimate of now, as an aware UTC datetime."""
        return self.reading().now

    def seconds_until(self, when: datetime) -> float | None:
        """Seconds from now until ``when`` (negative when past), or None when the time of
        day is not known well enough to say ("due in" and LATE are then left off)."""
        reading = self.reading()
        if not reading.trusted:
            return None
        return (when - reading.now).total_seconds()
