"""The kitchen display (``/kitchen``): a screen on the pass, worked by touch, a USB bump bar
(keys as a keyboard) or the panel's buttons.

* ``GET /kitchen``: the page; ``GET /api/kitchen``: its tiles (accepted and in preparation,
  oldest first), the recall row (the last bumped, ready), the all-day counts and the
  selection. Each ask tells the :class:`~edged.flow.station.KitchenStation` that a
  display is on, which hands the panel's buttons to the display.
* ``POST /api/kitchen/select`` (``order_id`` or ``step``) moves the selection;
  ``POST /api/kitchen/bump`` (optional ``order_id``) queues the next status through the
  desk, like every decision (``{"ok": false, "code", "message"}`` when refused).

Open to the owner and to staff (the staff PIN; a kitchen screen signs in as a kept device).
The page follows the box through ``static/live.js``'s stream, so a display that lost the
box says so rather than showing old tiles as live.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edged.decoding import ascii_int
from edged.flow.refusals import CommandRefused
from edged.flow.station import KitchenStation, Tile, next_step
from edged.i18n import N_, Locale
from edged.i18n.words import STATUS_WORDS
from edged.web import board
from edged.web.http import json_response, refusal

if TYPE_CHECKING:
    from edged.web.board_api import Board
    from edged.web.live import Live
    from edged.web.site import Site

#: Paths a staff session may use besides the board's.
KITCHEN_PATHS = frozenset({"/kitchen", "/api/kitchen", "/api/kitchen/select", "/api/kitchen/bump"})
#: Minutes before the due time a tile turns amber (red once it is past).
AMBER_MINUTES = 5
BUMP_LABELS = {"preparation": N_("Start preparing"), "ready": N_("Ready")}
ALL_DAY_ROWS = 40


def all_day(tiles: list[Tile]) -> list[dict[str, Any]]:
    """Items across the tiles on the pass ("12 x Paella"), most first, then by name."""
    counts: Counter[str] = Counter()
    for tile in tiles:
        for line in board._lines(tile.order.payload.get("orderLines")):
            if line["label"]:
                counts[line["label"]] += line["quantity"] or 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
    return [{"label": k, "count": n} for k, n in ranked[:ALL_DAY_ROWS]]


def tile_json(tile: Tile, locale: Locale, selected: int | None) -> dict[str, Any]:
    """A tile: the board's order data, with the status the pass shows and its bump."""
    _ = locale.gettext
    item = board.order_json(tile.order, locale)
    step = next_step(tile.status)
    word = STATUS_WORDS.get(tile.status)
    item.update(
        {
            "status": tile.status,
            "status_text": _(word) if word else tile.status,
            "queued": tile.queued,
            "selected": tile.order.id == selected,
            "bump": step,
            "bump_text": _(BUMP_LABELS[step]) if step in BUMP_LABELS else "",
        }
    )
    return item


class Kitchen:
    """The kitchen display's page and API over the box's one station, on the narrow
    :class:`~edged.web.site.Site`, with the board (its body reader and its wait for Sinqro)
    and the live stream (to redraw every open page when the selection moves)."""

    def __init__(
        self, site: Site, board: Board, live: Live, station: KitchenStation | None = None
    ) -> None:
        self.site = site
        self.board = board
        services = site.services
        # A page without a daemon around it (tests of the page alone) makes its own.
        own = station or services.kitchen
        self.station = own or KitchenStation(services.desk, services.journal)
        # A selection moved by the buttons or another key: every open page redraws (an empty
        # batch of journal events is the stream's "refetch" without a notice).
        self.station.on_change = lambda: live.on_journal_events([])

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/kitchen", self.page)
        r.add_get("/api/kitchen", self.api_kitchen)
        r.add_post("/api/kitchen/select", self.api_select)
        r.add_post("/api/kitchen/bump", self.api_bump)

    async def page(self, request: web.Request) -> web.StreamResponse:
        _ = self.site.locale().gettext
        return self.site.pages.render(
            request,
            "kitchen.html",
            _("Kitchen"),
            scripts=("live.js", "cards.js", "kitchen.js"),
            page_class="kitchen",
            amber_minutes=AMBER_MINUTES,
        )

    async def api_kitchen(self, request: web.Request) -> web.StreamResponse:
        station = self.station
        station.seen()
        locale = self.site.locale()
        tiles, recall = await station.tiles()
        return json_response(
            {
                "now": time.time(),
                "status": self.site.status.status_json(),
                "selected": station.selected,
                "amber_minutes": AMBER_MINUTES,
                "tiles": [tile_json(t, locale, station.selected) for t in tiles],
                "recall": [tile_json(t, locale, None) for t in recall],
                "all_day": all_day(tiles),
            }
        )

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await self.board._body(request)

    async def api_select(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        station = self.station
        raw_id, raw_step = body.get("order_id"), body.get("step")
        if raw_id not in (None, ""):
            order_id = ascii_int(str(raw_id), max_digits=12)
            if order_id is None or not await station.select(order_id):
                return refusal("NOT_ON_PASS", "no such order on the kitchen display", 404)
        else:
            step = ascii_int(str(raw_step).lstrip("-"), max_digits=3) if raw_step else None
            if step is None:
                return refusal("BAD_STEP", "give order_id or step", 400)
            await station.move(-step if str(raw_step).startswith("-") else step)
        return json_response({"ok": True, "selected": station.selected})

    async def api_bump(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        raw = body.get("order_id")
        order_id = None
        if raw not in (None, ""):
            order_id = ascii_int(str(raw), max_digits=12)
            if order_id is None:
                return refusal("BAD_REQUEST", "order_id must be a number", 400)
        station = self.station
        try:
            command = await station.bump(order_id, source="kitchen")
        except CommandRefused as exc:
            return refusal(exc.code, exc.message, 409)
        desk = self.site.services.desk
        outcome = await desk.wait(command.id, self.board.action_wait)
        ok = outcome.state != "failed"
        return json_response(
            {
                "ok": ok,
                "command_id": command.id,
                "state": outcome.state,
                "code": outcome.code,
                "message": outcome.message,
                "selected": station.selected,
            },
            status=200 if ok else 409,
        )
