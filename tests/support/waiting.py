"""The one way tests wait: poll a condition until it holds, bounded, and fail naming it.

Tests wait on state, never on the clock: ``within`` is a generous bound for a busy machine,
not a speed check (speed goals live in benchmarks/). ``eventually`` is for async tests and
takes plain or async conditions; ``eventually_blocking`` is the same rule for plain code
(tests that drive a daemon process, helper threads).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

# What a caller names in ``ignoring``: exceptions that mean "not yet" (a daemon that is still
# starting refuses connections), not a failure of the condition.
Ignored = tuple[type[BaseException], ...]


def _timed_out(within: float, what: str) -> AssertionError:
    return AssertionError(f"timed out after {within}s waiting for {what}")


async def eventually(
    condition: Callable[[], Any],
    *,
    within: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
    ignoring: Ignored = (),
) -> Any:
    """Poll ``condition`` (plain or async) until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` once ``within`` seconds have passed; an exception
    of a type in ``ignoring`` counts as a falsy answer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except ignoring:
            result = None
        if result:
            return result
        if loop.time() > deadline:
            raise _timed_out(within, what)
        await asyncio.sleep(interval)


def eventually_blocking(
    condition: Callable[[], Any],
    *,
    within: float = 5.0,
    interval: float = 0.05,
    what: str = "condition",
    ignoring: Ignored = (),
) -> Any:
    """:func:`eventually` for plain code: the same rule, sleeping between tries."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = condition()
        except ignoring:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(within, what)
        time.sleep(interval)
