"""The run loop every POS bridge shares: connect, serve, and on any drop connect again.

A bridge gives a *session* (one connection, from opening it to losing it) and the errors
that mean "the link died"; :func:`keep_linked` runs sessions forever, waits between them
with :mod:`edged.backoff`, and shows the bridge as ``bridge.<name>`` in the box state
(``online`` once the session says so, ``offline`` between sessions and after a stop).
A session that got through (:attr:`Link.reached`, or one that ended without an error)
resets the backoff: the next drop is retried quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from edged.backoff import Backoff
from edged.journal.follower import Follower
from edged.journal.store import JournalError
from edged.state import BoxState

log = logging.getLogger(__name__)

__all__ = ["BackoffPace", "Link", "Pace", "keep_linked"]


class Pace(Protocol):
    """How long a bridge waits before dialling again (:class:`edged.mqttclient.Redial`,
    which also moves on to the next broker, or :class:`BackoffPace`)."""

    def connected(self) -> None:
        """The session got through: the next loss starts from the shortest wait."""

    def lost(self) -> float:
        """The session ended: the wait before the next one, in seconds."""


class BackoffPace:
    """The plain :class:`~edged.backoff.Backoff` as a :class:`Pace` (one endpoint)."""

    def __init__(self, first: float, cap: float) -> None:
        self._backoff = Backoff(first, cap)

    def connected(self) -> None:
        self._backoff.reset()

    def lost(self) -> float:
        return self._backoff.next()


@dataclass
class Link:
    """One bridge's view of its run loop."""

    name: Literal["mqtt", "serial"]  # the log prefix and the ``bridge.<name>`` state key
    where: str  # what it connects to now, for the logs (broker URL, serial port)
    state: BoxState
    reconnects: int = 0
    reached: bool = False  # this session got through: the next drop retries quickly

    def online(self) -> None:
        """The session is serving the other side: show it (and reset the backoff)."""
        self.reached = True
        self.show("online")

    def show(self, value: str) -> None:
        self.state.set("bridge.mqtt" if self.name == "mqtt" else "bridge.serial", value)


async def keep_linked(
    link: Link,
    session: Callable[[], Awaitable[None]],
    *,
    follower: Follower,
    prune: Callable[[], Awaitable[object]],
    link_errors: tuple[type[BaseException], ...],
    pace: Pace,
    starting: str = "offline",
) -> None:
    """Run ``session`` again and again until cancelled.

    Before the first session the bridge's journal cursor is read and its old command ids
    pruned (a journal error there is not fatal: pruning waits for the next start). A
    session ending in one of ``link_errors`` is logged as a warning, a journal error as an
    error; anything else is a bug and ends the loop (the supervisor restarts the part).
    """
    link.show(starting)
    await follower.start()
    with contextlib.suppress(JournalError):
        await prune()
    try:
        while True:
            link.reached = False
            try:
                await session()
            except link_errors as exc:
                log.warning("%s bridge: %s: %s", link.name, link.where, exc)
            except JournalError as exc:
                log.error("%s bridge: journal: %s", link.name, exc)
            else:
                link.reached = True
            if link.reached:
                pace.connected()
            link.show("offline")
            link.reconnects += 1
            await asyncio.sleep(pace.lost())
    finally:
        link.show("offline")
