"""Retry delays: one doubling rule and one jitter rule for every loop that tries again.

The Sinqro link and its polling, the outbox, the hints, the POS bridges, the MQTT
reconnects (:class:`edged.mqttclient.Redial`: bridge, fleet link, relay), the alert sinks
and the printers all wait the same way: the ``first`` delay, doubled after each failure
up to the ``cap``, then jittered.

The jitter is "equal jitter": a delay drawn uniformly between half the doubled delay and
the doubled delay. Why not full jitter (anywhere from zero)? A zero wait after a refusal
hammers a peer that just said no and makes ``first`` meaningless as a setting; why not a
factor around 1 (0.8-1.2 was used here before)? The cap is documented as the longest
wait, and it should be one. Half the range is still wide enough that a fleet of boxes
that lost the same broker at the same second does not come back in step.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "delay"]

# 2**64 times any delay is past every cap; stops an endless run of failures overflowing.
_MAX_DOUBLINGS = 64


def delay(first: float, cap: float, retry: int, rng: random.Random | None = None) -> float:
    """The jittered wait before try ``retry`` + 2: ``first`` doubled ``retry`` times (0 for
    the first retry), at most ``cap``, then between half that and all of it (drawn from
    ``rng`` when given, a seeded one in tests)."""
    base = min(cap, first * 2.0 ** min(max(retry, 0), _MAX_DOUBLINGS))
    return base * (rng or random).uniform(0.5, 1.0)


class Backoff:
    """The delays of one run of failures: :meth:`next` after each, :meth:`reset` once a
    try succeeded (or a connection stayed up long enough to count as good)."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return how long to wait before trying again."""
        wait = delay(self.first, self.cap, self.failures)
        self.failures += 1
        return wait

    def again(self) -> float:
        """How long to wait at the present count, without counting a failure."""
        return delay(self.first, self.cap, self.failures)

    def reset(self) -> None:
        """Start again from ``first``."""
        self.failures = 0
