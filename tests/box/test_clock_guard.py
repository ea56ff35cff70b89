"""The wall-clock guard: Sinqro's time plus the monotonic clock until NTP has answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edged.clock import WallClock, system_clock_synchronized

SINQRO_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
STALE_WALL = datetime(2025, 5, 31, 23, 10, 0, tzinfo=UTC).timestamp()  # fake-hwclock's guess


class Box:
    """A Pi after a power cut: the wall clock is hours behind, NTP not reached yet."""

    def __init__(self) -> None:
        self.mono = 500.0
        self.wall = STALE_WALL
        self.synced: bool | None = False
        self.probes = 0

    def probe(self) -> bool | None:
        self.probes += 1
        return self.synced

    def clock(self, probe_every: float = 10.0) -> WallClock:
        return WallClock(
            probe=self.probe,
            monotonic=lambda: self.mono,
            wall=lambda: self.wall,
            probe_every=probe_every,
        )

    def tick(self, seconds: float, *, wall_jump: float = 0.0) -> None:
        self.mono += seconds
        self.wall += seconds + wall_jump


def test_unsynchronised_without_sinqro_time_is_not_trusted() -> None:
    box = Box()
    clock = box.clock()
    reading = clock.reading()
    assert reading.source == "unsynchronized" and not reading.trusted
    assert reading.now.timestamp() == STALE_WALL
    assert clock.seconds_until(SINQRO_NOW) is None  # no "due in", no LATE on a wrong clock


def test_estimate_from_sinqro_time_and_the_monotonic_clock() -> None:
    box = Box()
    clock = box.clock()
    clock.observe(SINQRO_NOW)
    box.tick(90, wall_jump=3600)  # the wall clock jumps; the estimate does not follow it
    reading = clock.reading()
    assert reading.source == "sinqro" and reading.trusted
    assert reading.now == SINQRO_NOW + timedelta(seconds=90)
    due = SINQRO_NOW + timedelta(minutes=20)
    assert clock.seconds_until(due) == 20 * 60 - 90
    # A later statement from Sinqro moves the anchor.
    clock.observe(SINQRO_NOW.timestamp() + 200)
    box.tick(5)
    assert clock.now().timestamp() == SINQRO_NOW.timestamp() + 205


def test_synchronised_clock_wins_and_stays() -> None:
    box = Box()
    clock = box.clock(probe_every=10)
    clock.observe(SINQRO_NOW)
    assert not clock.synchronized()
    box.synced = True
    box.tick(3)
    assert not clock.synchronized()  # probed again only after probe_every
    box.tick(10)
    box.wall = SINQRO_NOW.timestamp() + 13.5  # NTP stepped the clock
    assert clock.synchronized()
    reading = clock.reading()
    assert reading.source == "system"
    assert reading.now.timestamp() == SINQRO_NOW.timestamp() + 13.5
    probes = box.probes
    box.synced = False  # once synchronised, the probe is not asked again
    box.tick(100)
    assert clock.synchronized() and box.probes == probes


def test_unknown_state_counts_as_not_synchronised() -> None:
    box = Box()
    box.synced = None
    clock = box.clock()
    assert not clock.synchronized()
    assert clock.reading().source == "unsynchronized"


def test_timesyncd_flag_file(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    flag.touch()
    assert system_clock_synchronized(flag) is True


def test_kernel_state_is_read_without_the_flag(tmp_path: Path) -> None:
    # No timesyncd flag: the answer comes from adjtimex, a bool on any Linux that allows it.
    assert system_clock_synchronized(tmp_path / "absent") in (True, False)
