"""The kitchen display's station: which orders are on the pass, which tile is selected,
and the bump that moves the selected order along.

One :class:`KitchenStation` per box, shared by every way of working the display: the
``/kitchen`` page (a touch or a USB bump bar, keys as a keyboard) and the panel's buttons
while the display is on. The selection lives here, not in a browser, so the page and the
buttons always point at the same tile.

A bump is a status change queued through :class:`~edged.flow.desk.OrderDesk` like every
other decision: it is a journal command, survives a crash and reaches Sinqro once (the
desk's idempotency key is the order and the status it moves to, so the same bump from two
sources is one command). The next status counts a status already queued: a tile bumped
twice while Sinqro is away goes to preparation, then to ready, each once.

Nothing here is written to disk: the selection is a pointer into the journal's open orders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edged.flow.refusals import CommandRefused
from edged.journal.store import Command, Journal, StoredOrder

log = logging.getLogger(__name__)

#: The steps a tile goes through on the pass: each bump moves it one on.
KITCHEN_STEPS = ("accepted", "preparation", "ready")
#: Order types the kitchen cooks for (a plain reservation has nothing to prepare).
KITCHEN_TYPES = frozenset({"delivery", "collection", "insitu", "inside"})
#: A display that has not asked for its tiles this long is off (the page asks every few
#: seconds and on every change while it is open).
DISPLAY_TIMEOUT = 30.0
RECALL = 8  # the last bumped orders kept in the recall row
SOURCE = "kitchen"


class StatusDesk(Protocol):
    """The part of :class:`~edged.flow.desk.OrderDesk` a bump needs."""

    async def set_status(
        self, order_id: int, status: str, *, reason: str = "", source: str, key: str | None = None
    ) -> Command: ...


@dataclass(frozen=True)
class Tile:
    """An order on the pass and the status it shows (a queued bump counts)."""

    order: StoredOrder
    status: str
    queued: bool


def next_step(status: str) -> str | None:
    """The status a bump moves an order in ``status`` to, or ``None`` past ready."""
    if status not in KITCHEN_STEPS or status == KITCHEN_STEPS[-1]:
        return None
    return KITCHEN_STEPS[KITCHEN_STEPS.index(status) + 1]


class KitchenStation:
    """The pass: tiles oldest first, a selection and the bump."""

    def __init__(
        self,
        desk: StatusDesk,
        journal: Journal,
        *,
        now: Callable[[], float] = time.monotonic,
        display_timeout: float = DISPLAY_TIMEOUT,
    ) -> None:
        self.desk = desk
        self.journal = journal
        self.now = now
        self.display_timeout = display_timeout
        self.selected: int | None = None
        self._seen: float | None = None
        self._lock = asyncio.Lock()
        # Told when the selection moved (the page redraws); never told of orders.
        self.on_change: Callable[[], None] | None = None

    # -- the display -----------------------------------------------------------------------

    def seen(self) -> None:
        """A display asked for its tiles: the display is on for a while."""
        self._seen = self.now()

    @property
    def display_on(self) -> bool:
        """A kitchen display is open (it asked for its tiles lately)."""
        return self._seen is not None and self.now() - self._seen < self.display_timeout

    # -- tiles -----------------------------------------------------------------------------

    async def _read(self) -> tuple[list[Tile], list[Tile]]:
        orders = await self.journal.open_orders()
        queued: dict[int, str] = {}
        for command in await self.journal.pending_commands():
            status = command.params.get("status")
            if command.kind == "status" and isinstance(status, str):
                queued[command.order_id] = status  # the last queued one is where it goes
        tiles: list[Tile] = []
        done: list[Tile] = []
        for order in orders:
            if order.is_waiting or order.is_final or order.type not in KITCHEN_TYPES:
                continue
            status = queued.get(order.id, order.status)
            tile = Tile(order, status, order.id in queued)
            if status in KITCHEN_STEPS[:-1]:
                tiles.append(tile)
            elif status == KITCHEN_STEPS[-1]:
                done.append(tile)
        # open_orders() is oldest first already; recall shows the latest bumped first.
        done.sort(key=lambda t: (t.order.updated, t.order.id), reverse=True)
        return tiles, done[:RECALL]

    def _keep_selection(self, tiles: list[Tile]) -> None:
        ids = [t.order.id for t in tiles]
        if self.selected not in ids:
            self.selected = ids[0] if ids else None

    async def tiles(self) -> tuple[list[Tile], list[Tile]]:
        """The tiles on the pass (oldest first) and the recall row (latest bumped first);
        the selection is kept on a tile that is still there, else the oldest."""
        tiles, recall = await self._read()
        self._keep_selection(tiles)
        return tiles, recall

    # -- selection and bump ----------------------------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("kitchen: the change listener failed")

    async def select(self, order_id: int) -> bool:
        """Select the tile of ``order_id``; ``False`` when it is not on the pass."""
        tiles, _recall = await self._read()
        if order_id not in {t.order.id for t in tiles}:
            return False
        if self.selected != order_id:
            self.selected = order_id
            self._changed()
        return True

    async def move(self, step: int = 1) -> int | None:
        """Move the selection ``step`` tiles on (wrapping); the newly selected order id."""
        tiles, _recall = await self._read()
        self._keep_selection(tiles)
        if not tiles:
            return None
        ids = [t.order.id for t in tiles]
        here = ids.index(self.selected) if self.selected in ids else 0
        self.selected = ids[(here + step) % len(ids)]
        self._changed()
        return self.selected

    async def bump(self, order_id: int | None = None, *, source: str = SOURCE) -> Command:
        """Queue the next status of ``order_id`` (default: the selected tile) through the
        desk. Raises :class:`CommandRefused` when there is nothing to bump."""
        async with self._lock:
            tiles, _recall = await self._read()
            self._keep_selection(tiles)
            target = self.selected if order_id is None else order_id
            tile = next((t for t in tiles if t.order.id == target), None)
            if tile is None:
                raise CommandRefused("NOT_ON_PASS", "no such order on the kitchen display")
            status = next_step(tile.status)
            if status is None:
                raise CommandRefused("NOT_ON_PASS", "the order is ready already")
            key = f"kitchen:{tile.order.id}:{status}"
            command = await self.desk.set_status(tile.order.id, status, source=source, key=key)
            log.info("kitchen: order %s bumped to %s from %s", tile.order.code, status, source)
            if status == KITCHEN_STEPS[-1]:
                # The tile leaves the pass: the selection goes to the next one at once.
                remaining = [t for t in tiles if t.order.id != tile.order.id]
                self._keep_selection(remaining)
                self._changed()
            return command
