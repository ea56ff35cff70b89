"""Live, volatile state of the box: link, printers, panel, bridges.

The journal holds what must survive a restart; this holds what is only true *now* (is the
websocket up, is the printer out of paper, is the LED blinking). Producers call
:meth:`BoxState.set`; the web page, the LED and the bridges watch it.

Keys in use (values are JSON-friendly):

=========================  =========================================================================
``link``                   ``starting`` | ``online`` | ``polling`` | ``offline`` | ``unauthorized``
                           | ``not_paired``
``link.detail``            human text for the state above
``link.reconnects``        int, websocket reconnects since start
``queued_commands``        int, outbox entries waiting for Sinqro
``waiting_orders``         int, orders waiting for a decision
``printer.NAME``           ``{"state": online|offline|paper_out|cover_open|unknown, "detail": str}``
``panel.led``              LED state name (see README, LED table)
``panel.buzzer``           buzzer pattern name or ``quiet``
``bridge.mqtt``            ``disabled`` | ``connecting`` | ``online`` | ``offline``
``bridge.serial``          ``disabled`` | ``online`` | ``offline``
``box.id``                 the box id (edged/fleet/identity.py)
``alerts.open``            open alert incidents: ``[{"incident", "rule", "title", "since"}]``
``part.NAME``              ``{"state": starting|running|failed|disabled|stopped, "error": str,
                           "restarts": int, "since": unix time}`` (see :mod:`edged.parts`)
``outbox.retrying``        ``{order id: reason}``: orders whose next command waits for its retry
``link.unread_orders``     int, open orders the last refresh could not read
``link.hints_rejected``    int, pushed hints that named another selling point
``journal``                ``ok`` | ``recovered`` (rebuilt after damage or loss, until dismissed
                           on the page) | ``failing`` (storage fails: disk full, I/O error)
``journal.detail``         human text for the state above
``journal.recovered``      ``{"at", "reason", "kept_as"}`` while ``recovered``, else ``None``
``journal.unstored``       codes of the orders the journal could not store yet (rung and printed
                           from memory, see :mod:`edged.journal.unstored`)
``fleet.rollout``          the staged update's state on this box, or ``None``
                           (:mod:`edged.fleet.updater`)
=========================  =========================================================================

Keys are typed (:data:`Key`): a fixed key is one of the :data:`FixedKey` literals, a
printer's or a part's is made by :func:`printer_key` / :func:`part_key`, so a misspelt key
is a type error, not a value nobody reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, NewType

log = logging.getLogger(__name__)

FixedKey = Literal[
    "link",
    "link.detail",
    "link.reconnects",
    "link.unread_orders",
    "link.hints_rejected",
    "queued_commands",
    "waiting_orders",
    "panel.led",
    "panel.buzzer",
    "bridge.mqtt",
    "bridge.serial",
    "box.id",
    "alerts.open",
    "outbox.retrying",
    "journal",
    "journal.detail",
    "journal.recovered",
    "journal.unstored",
    "fleet.rollout",
]
PrinterKey = NewType("PrinterKey", str)
PartKey = NewType("PartKey", str)
Key = FixedKey | PrinterKey | PartKey
PRINTER = "printer."
PART = "part."

Watcher = Callable[[Key, Any], None]


def printer_key(name: str) -> PrinterKey:
    """The key of printer ``name``'s health."""
    return PrinterKey(PRINTER + name)


def part_key(name: str) -> PartKey:
    """The key of part ``name``'s state (:mod:`edged.parts`)."""
    return PartKey(PART + name)


class BoxState:
    """A small observable dict. Not thread-safe: use it from the event loop."""

    def __init__(self) -> None:
        self._values: dict[Key, Any] = {
            "link": "starting",
            "link.detail": "",
            "link.reconnects": 0,
            "queued_commands": 0,
            "waiting_orders": 0,
        }
        self._version = 0
        self._changed: asyncio.Event | None = None
        self._watchers: list[Watcher] = []

    def get(self, key: Key, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: Key, value: Any) -> None:
        """Set ``key``; watchers run synchronously, only when the value really changed."""
        if self._values.get(key, _MISSING) == value:
            return
        self._values[key] = value
        self._version += 1
        if self._changed is not None:
            changed, self._changed = self._changed, None
            changed.set()
        for watcher in list(self._watchers):
            try:
                watcher(key, value)
            except Exception:
                log.exception("state watcher failed for %s", key)

    def delete(self, key: Key) -> None:
        """Forget ``key`` (a removed printer); watchers see it set to None."""
        if key not in self._values:
            return
        del self._values[key]
        self._version += 1
        if self._changed is not None:
            changed, self._changed = self._changed, None
            changed.set()
        for watcher in list(self._watchers):
            try:
                watcher(key, None)
            except Exception:
                log.exception("state watcher failed for %s", key)

    def snapshot(self) -> dict[str, Any]:
        """Every key and its value, as plain text keys (for pages and messages)."""
        return {key: value for key, value in self._values.items()}

    def current_keys(self) -> list[Key]:
        """The keys set now."""
        return list(self._values)

    def printers(self) -> dict[str, dict[str, Any]]:
        """Each printer's health, by printer name."""
        n = len(PRINTER)
        return {k[n:]: v for k, v in self._values.items() if k.startswith(PRINTER)}

    @property
    def version(self) -> int:
        return self._version

    def watch(self, fn: Watcher) -> None:
        """Call ``fn(key, value)`` after every change."""
        self._watchers.append(fn)

    def unwatch(self, fn: Watcher) -> None:
        """Stop calling ``fn`` (a stopped part's watcher); unknown ``fn`` is ignored."""
        if fn in self._watchers:
            self._watchers.remove(fn)

    async def wait_changed(self, version: int, timeout: float | None = None) -> int:
        """Wait until the state moved past ``version``; returns the new version."""
        while self._version <= version:
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                break
        return self._version


_MISSING = object()
