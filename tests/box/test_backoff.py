"""The one retry rule: doubling from the first delay to the cap, equal jitter."""

from __future__ import annotations

import random

import pytest

from edged import backoff
from edged.backoff import Backoff


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(24)


def test_each_delay_is_between_half_and_all_of_the_doubled_delay() -> None:
    for retry, full in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]):
        waits = [backoff.delay(0.5, 10.0, retry) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits), (retry, min(waits), max(waits))
        # Jittered: a fleet of boxes does not come back in step.
        assert len(set(waits)) > 100


def test_the_cap_is_the_longest_wait_even_after_endless_failures() -> None:
    assert backoff.delay(1.0, 30.0, 10**6) <= 30.0
    assert backoff.delay(1.0, 30.0, -3) <= 1.0


def test_a_run_of_failures_doubles_and_a_reset_starts_again() -> None:
    b = Backoff(1.0, 60.0)
    first, second, third = b.next(), b.next(), b.next()
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 2.0 <= third <= 4.0
    assert b.failures == 3
    assert 4.0 <= b.again() <= 8.0 and b.failures == 3
    b.reset()
    assert 0.5 <= b.next() <= 1.0
