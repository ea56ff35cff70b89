"""The catalog on the box, and sold out in one tap.

:class:`CatalogKeeper` keeps the paired selling point's catalog (products with variants,
option categories with options): read from Sinqro when the box is paired, on demand
(:meth:`CatalogKeeper.refresh`) and at a slow interval, and kept in the journal only when
it changed (the card is spared). :meth:`CatalogKeeper.set_available` turns "sold out" or
"back on" into an outbox command (kind ``availability``): queued offline, sent once by the
outbox sender, refused with Sinqro's reason. Sold out "until closing" or "for 1 h" leaves
a timer in the journal; the keeper puts the item back on at that time itself, with a
command of its own. Times are read through a :class:`~edged.clock.Clock` for sleeping and a
wall-clock function for "now", so tests move both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from edged.clock import Clock, RealClock
from edged.flow.pairing import Pairing
from edged.flow.refusals import CommandRefused
from edged.flow.until import UntilError, until_time
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError
from edged.sinqro.api import SinqroApi
from edged.sinqro.catalog import Catalog, CatalogOption, CatalogProduct
from edged.sinqro.errors import SinqroError
from edged.state import BoxState

log = logging.getLogger(__name__)

REFRESH_EVERY = 15 * 60.0  # seconds; sold out is set from the box, so this only catches
# what changed elsewhere (Sinqro's back office, another device)
TIMER_TICK = 20.0  # seconds between looks at the timers
MAX_CHANGES = 50  # changed items named in one catalog.changed event

Item = CatalogProduct | CatalogOption


def _kind(item: Item) -> str:
    return "product" if isinstance(item, CatalogProduct) else "option"


def _with(catalog: Catalog, kind: str, item_id: int, available: bool) -> Catalog:
    """``catalog`` with one item's availability set."""
    if kind == "product":
        products = tuple(
            replace(p, available=available) if p.id == item_id else p for p in catalog.products
        )
        return Catalog(products, catalog.categories)
    categories = tuple(
        replace(
            c,
            options=tuple(
                replace(o, available=available) if o.id == item_id else o for o in c.options
            ),
        )
        for c in catalog.categories
    )
    return Catalog(catalog.products, categories)


def _summary(old: Catalog | None, new: Catalog) -> dict[str, Any]:
    """What a ``catalog.changed`` event says: counts and the items whose availability moved."""
    items: dict[tuple[str, int], bool] = {("product", p.id): p.available for p in new.products}
    items.update((("option", o.id), o.available) for c in new.categories for o in c.options)
    before: dict[tuple[str, int], bool] = {}
    if old is not None:
        before = {("product", p.id): p.available for p in old.products}
        before.update((("option", o.id), o.available) for c in old.categories for o in c.options)
    changed = [
        {"kind": kind, "id": item_id, "available": available}
        for (kind, item_id), available in sorted(items.items())
        if before.get((kind, item_id), True) != available
    ]
    return {
        "products": len(new.products),
        "unavailable": sum(1 for available in items.values() if not available),
        "changed": changed[:MAX_CHANGES],
    }


class CatalogKeeper:
    """The paired selling point's catalog, its refreshes and its availability changes.

    Without ``api`` (the command line) it reads the stored copy and queues changes only;
    the daemon's keeper sends nothing itself either: the outbox sender does."""

    def __init__(
        self,
        journal: Journal,
        api: SinqroApi | None,
        state: BoxState,
        pairing: Callable[[], Pairing],
        *,
        clock: Clock | None = None,
        now: Callable[[], float] = time.time,
        refresh_every: float = REFRESH_EVERY,
        timer_tick: float = TIMER_TICK,
        default_timezone: str = "",
    ) -> None:
        self.journal = journal
        self.api = api
        self.state = state
        self.pairing = pairing
        self.clock = clock or RealClock()
        self.now = now
        self.refresh_every = refresh_every
        self.timer_tick = timer_tick
        self.default_timezone = default_timezone
        self._catalogs: dict[int, Catalog] = {}
        self._wake = asyncio.Event()
        self._done: asyncio.Queue[int] = asyncio.Queue()
        self._applying = asyncio.Lock()
        self.refreshes = 0
        self.writes = 0
        # True while the loop waits for its next tick or wake (tests move the clock then).
        self.idle = False

    # -- reading ---------------------------------------------------------------------------

    async def catalog(self, selling_point_id: int | None = None) -> Catalog:
        """The catalog as last read (from the journal after a restart); empty before any.
        Changes Sinqro took are in it as soon as their command reads done."""
        await self._apply_done()
        return await self._stored(selling_point_id)

    async def _stored(self, selling_point_id: int | None = None) -> Catalog:
        sp = selling_point_id or self.pairing().selling_point_id
        if sp not in self._catalogs:
            self._catalogs[sp] = Catalog.from_json(await self.journal.load_catalog(sp))
        return self._catalogs[sp]

    async def refresh(self, selling_point_id: int | None = None) -> bool:
        """Read the catalog from Sinqro now; True when it differed and was stored. Sinqro's
        errors are raised (the stored copy stays as it was)."""
        sp = selling_point_id or self.pairing().selling_point_id
        if sp <= 0:
            raise CommandRefused("NOT_PAIRED", "the box is not paired to a selling point")
        if self.api is None:
            raise CommandRefused("NO_LINK", "this process has no Sinqro client")
        old = await self.catalog(sp)
        new = await self.api.catalog(sp)
        written = await self._keep(sp, old, new)
        self.refreshes += 1
        return written

    async def _keep(self, sp: int, old: Catalog | None, new: Catalog) -> bool:
        written = await self.journal.store_catalog(sp, new.to_json(), _summary(old, new))
        self._catalogs[sp] = new
        if written:
            self.writes += 1
            log.info("catalog of selling point %d changed (%d products)", sp, len(new.products))
        return written

    # -- sold out / back on ----------------------------------------------------------------

    async def resolve(self, key: str, kind: str | None = None) -> Item:
        """The one product or option (only one ``kind`` of them when given) ``key`` names
        (id, external id or name)."""
        found = [i for i in (await self.catalog()).find(key) if kind in (None, _kind(i))]
        if not found:
            raise CommandRefused("UNKNOWN_PRODUCT", f"no product or option {key!r} in the catalog")
        if len(found) > 1:
            names = ", ".join(f"{i.name} ({i.id})" for i in found[:5])
            raise CommandRefused("AMBIGUOUS_PRODUCT", f"{key!r} could be: {names}")
        return found[0]

    async def set_available(
        self,
        key: str,
        available: bool,
        *,
        until: str | None = None,
        kind: str | None = None,
        source: str,
        request_key: str | None = None,
    ) -> tuple[Command, float | None]:
        """Queue "sold out" (``available`` False, optionally ``until`` a time: ``closing``,
        ``1h``, ``2h``, ``HH:MM``) or "back on" for the item ``key`` names. Returns the
        outbox command and the unix time it comes back on (None: until turned back)."""
        pairing = self.pairing()
        if not pairing.paired:
            raise CommandRefused("NOT_PAIRED", "the box is not paired to a selling point")
        item = await self.resolve(key, kind)
        back_at: float | None = None
        if not available and until:
            try:
                back_at = until_time(until, self.now(), pairing.timezone or self.default_timezone)
            except UntilError as exc:
                raise CommandRefused("BAD_UNTIL", str(exc)) from None
        command = await self._enqueue(
            pairing.selling_point_id, item, available, source, request_key
        )
        await self.journal.set_timer(
            pairing.selling_point_id,
            _kind(item),
            item.id,
            item.category_id if isinstance(item, CatalogOption) else None,
            back_at,
        )
        self._wake.set()
        return command, back_at

    async def _enqueue(
        self, sp: int, item: Item, available: bool, source: str, request_key: str | None
    ) -> Command:
        params: dict[str, Any] = {
            "selling_point_id": sp,
            "item": _kind(item),
            "id": item.id,
            "name": item.name,
            "available": available,
        }
        if isinstance(item, CatalogOption):
            params["category_id"] = item.category_id
        command, created = await self.journal.enqueue_command(
            0, "availability", params, source=source, key=request_key
        )
        if created:
            log.info(
                "command %d queued: %s %s %s from %s",
                command.id,
                _kind(item),
                item.id,
                "available" if available else "sold out",
                source,
            )
        return command

    # -- the loop --------------------------------------------------------------------------

    def _on_events(self, new_events: list[Event]) -> None:
        for event in new_events:
            data = ev.payload(event)
            if isinstance(data, ev.CommandDone) and data.kind == "availability":
                self._done.put_nowait(data.command_id)
                self._wake.set()
            elif event.kind == ev.LINK_PAIRED:
                self._wake.set()

    async def run(self) -> None:
        """Refresh when paired and every ``refresh_every``; put items back on when their
        time comes; apply each availability change Sinqro took to the stored copy."""
        self.journal.add_listener(self._on_events)
        next_refresh = 0.0
        refreshed_for = 0
        try:
            while True:
                self._wake.clear()
                pairing = self.pairing()
                with contextlib.suppress(JournalError):
                    await self._apply_done()
                    if pairing.paired:
                        await self._fire_timers(pairing.selling_point_id)
                if pairing.paired and (
                    refreshed_for != pairing.selling_point_id
                    or self.clock.monotonic() >= next_refresh
                ):
                    try:
                        await self.refresh(pairing.selling_point_id)
                        refreshed_for = pairing.selling_point_id
                        next_refresh = self.clock.monotonic() + self.refresh_every
                    except (SinqroError, JournalError) as exc:
                        log.warning("catalog refresh failed: %s", exc)
                        next_refresh = self.clock.monotonic() + min(60.0, self.refresh_every)
                        refreshed_for = pairing.selling_point_id
                wake: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
                tick: asyncio.Future[Any] = self.clock.timer(self.timer_tick)
                self.idle = not self._wake.is_set()
                try:
                    await asyncio.wait({wake, tick}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    self.idle = False
                    wake.cancel()
                    tick.cancel()
        finally:
            self.journal.remove_listener(self._on_events)

    async def _apply_done(self) -> None:
        # One at a time: the loop and a reader may both find changes waiting, and each
        # change is a read-modify-write of the stored copy.
        async with self._applying:
            while not self._done.empty():
                command = await self.journal.get_command(self._done.get_nowait())
                if command is None:
                    continue
                p = command.params
                sp = int(p["selling_point_id"])
                old = await self._stored(sp)
                await self._keep(
                    sp, old, _with(old, str(p["item"]), int(p["id"]), bool(p["available"]))
                )

    async def _fire_timers(self, sp: int) -> None:
        now = self.now()
        for timer in await self.journal.timers(sp):
            if timer.until > now:
                break
            item: Item | None = (
                (await self.catalog(sp)).product(timer.item_id)
                if timer.kind == "product"
                else (await self.catalog(sp)).option(timer.item_id)
            )
            if item is not None:
                # The key makes a crash between the two writes harmless: queued once.
                await self._enqueue(
                    sp,
                    item,
                    True,
                    "timer",
                    f"timer:{sp}:{timer.kind}:{timer.item_id}:{timer.until}",
                )
            await self.journal.set_timer(sp, timer.kind, timer.item_id, None, None)
