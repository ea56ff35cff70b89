"""How alerts travel to one sink: a queue per sink, in order, retried with backoff, and for
sinks people read, a rate limit that groups instead of dropping.

A sink with a ``limit`` (:class:`RateLimit`: the webhooks) gets a token bucket: ``burst``
messages at once, then one every ``every`` seconds. While it waits for a token its alerts
keep queueing; the next message then carries *all* of them, folded into one (the monitor's
``fold``: "12 orders waiting, oldest 9 min"). Nothing is silently lost: a folded message
lists what it holds, and the queue is kept in the journal like any other. A sink without a
limit (the fleet topic, read by machines) gets every alert as it is, one by one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edged import backoff
from edged.fleet.settings import AlertsConfig

log = logging.getLogger(__name__)

MAX_QUEUED = 200  # per sink; the oldest undelivered alert goes first when full

Fold = Callable[[list[dict[str, Any]]], dict[str, Any]]


class DeliveryError(Exception):
    """A sink could not take an alert. ``retry``: worth trying again later."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class AlertSink(Protocol):
    """Somewhere alerts go (the fleet topic, a webhook). ``deliver`` raises DeliveryError.
    A sink may have a ``limit`` (:class:`RateLimit`); without one it is not limited."""

    name: str

    async def deliver(self, alert: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RateLimit:
    """``burst`` messages at once, then one per ``every`` seconds (0: no limit)."""

    burst: int = 3
    every: float = 60.0


class TokenBucket:
    """The classic bucket: holds up to ``burst`` tokens, gains one every ``every`` seconds.

    :meth:`wait` says how long until the next token, so the courier sleeps exactly that
    long while alerts pile up to be folded (a library's ``async with limiter`` would not
    say it)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.tokens = float(limit.burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        if self.limit.every > 0:
            gained = (now - self._at) / self.limit.every
            self.tokens = min(float(self.limit.burst), self.tokens + gained)
        else:
            self.tokens = float(self.limit.burst)
        self._at = now

    def wait(self) -> float:
        """Seconds until a token is there (0: now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.limit.every

    def take(self) -> None:
        self._refill()
        self.tokens -= 1


class Courier:
    """One sink's queue: in order, retried with backoff, dropped only after ``give_up``;
    rate-limited and folded when the sink has a ``limit``."""

    def __init__(
        self,
        sink: AlertSink,
        config: AlertsConfig,
        changed: Callable[[], None],
        *,
        fold: Fold | None = None,
    ) -> None:
        self.sink = sink
        self.config = config
        self.changed = changed
        self.queue: list[dict[str, Any]] = []  # {"queued": unix time, "alert": {...}}
        self.delivered = 0  # alerts, folded ones included
        self.messages = 0  # what the sink received
        self.dropped = 0
        self.attempts = 0
        limit = getattr(sink, "limit", None)
        limited = isinstance(limit, RateLimit) and limit.every > 0
        self.bucket = TokenBucket(limit) if limited and isinstance(limit, RateLimit) else None
        self.fold = fold if self.bucket is not None else None
        self._wake = asyncio.Event()

    def put(self, alert: dict[str, Any], queued: float) -> None:
        if len(self.queue) >= MAX_QUEUED:
            lost = self.queue.pop(0)
            self.dropped += 1
            log.error("alerts: %s queue full; dropped %s", self.sink.name, lost["alert"]["id"])
        self.queue.append({"queued": queued, "alert": alert})
        self._wake.set()
        self.changed()

    def _next(self) -> tuple[dict[str, Any], int]:
        """The message to send now and how many queued alerts it carries."""
        if self.fold is None or len(self.queue) == 1:
            return self.queue[0]["alert"], 1
        batch = [entry["alert"] for entry in self.queue]
        return self.fold(batch), len(batch)

    async def run(self) -> None:
        failures = 0
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.bucket is not None:
                pause = self.bucket.wait()
                if pause > 0:
                    # Held back: whatever queues meanwhile goes out folded in one message.
                    await asyncio.sleep(pause)
                    continue
            message, count = self._next()
            batch = self.queue[:count]
            self.attempts += 1
            try:
                try:
                    await self.sink.deliver(message)
                except DeliveryError:
                    raise
                except Exception as exc:
                    log.exception("alerts: %s failed unexpectedly", self.sink.name)
                    raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
            except DeliveryError as exc:
                too_old = time.time() - self.queue[0]["queued"] > self.config.give_up_after
                if not exc.retry or too_old:
                    why = "gave up" if exc.retry else "refused"
                    log.error("alerts: %s %s %s: %s", self.sink.name, why, message["id"], exc)
                    self._done(batch, dropped=True)
                    failures = 0
                    continue
                failures += 1
                delay = backoff.delay(self.config.retry_min, self.config.retry_max, failures - 1)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.config.retry_max))
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "alerts: %s not delivered (%s); retrying in %.0fs",
                        self.sink.name,
                        exc,
                        delay,
                    )
                await asyncio.sleep(delay)
                continue
            if self.bucket is not None:
                # Only what reached the sink counts: failed tries are paced by the backoff.
                self.bucket.take()
            if failures:
                log.info("alerts: %s delivering again", self.sink.name)
            failures = 0
            if count > 1:
                log.info("alerts: %s took %d alerts in one message", self.sink.name, count)
            self._done(batch, dropped=False)

    def _done(self, batch: list[dict[str, Any]], *, dropped: bool) -> None:
        # By identity: a full queue may have lost its head to put() meanwhile.
        sent = {id(entry) for entry in batch}
        self.queue = [entry for entry in self.queue if id(entry) not in sent]
        if dropped:
            self.dropped += len(batch)
        else:
            self.delivered += len(batch)
            self.messages += 1
        self.changed()
