"""The "Menu" area: the selling point's products and options as the box keeps them, and
"sold out" / "back on" with one tap (``/menu``, ``/api/menu``, ``/api/menu/availability``,
``/api/menu/changes/<id>``), for the owner and for staff (the staff PIN), like the board.

Every change is an outbox command queued by the catalog keeper (:mod:`edged.flow.catalog`),
the same the bridges and the command line queue; the page shows it as Sinqro has it:
``queued`` (not sent yet), ``retrying`` (tried, Sinqro or the link failed, tried again),
``done`` (Sinqro took it) or ``refused`` (with Sinqro's code and reason). Never "done" before
Sinqro said so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edged.decoding import PayloadError, decode_json, parse_id
from edged.flow.refusals import CommandRefused
from edged.i18n import Locale
from edged.journal.store import Command
from edged.sinqro.catalog import Catalog, CatalogOption, CatalogProduct
from edged.web.http import MAX_BODY, Stop, json_response, refusal

if TYPE_CHECKING:
    from edged.flow.catalog import CatalogKeeper
    from edged.web.pages import Pages
    from edged.web.services import WebServices

log = logging.getLogger(__name__)

KIND = "availability"
MAX_ITEMS = 500  # rows one answer lists (a search narrows it)
# "until" values the page offers; the keeper reads them (edged.flow.until).
UNTIL = ("closing", "1h", "2h", "")


def change_state(command: Command) -> str:
    """queued | retrying | done | refused: what the page says of one outbox command."""
    if command.state == "done":
        return "done"
    if command.state == "failed":
        return "refused"
    return "retrying" if command.attempts > 0 else "queued"


def change_json(command: Command) -> dict[str, Any]:
    """One availability change as the page shows it."""
    state = change_state(command)
    out: dict[str, Any] = {
        "command_id": command.id,
        "state": state,
        "available": bool(command.params.get("available")),
        "kind": str(command.params.get("item") or ""),
        "id": command.params.get("id"),
        "ok": state != "refused",
        "code": "",
        "message": "",
    }
    if state in ("refused", "retrying"):
        out["code"] = command.error_code or ""
        out["message"] = command.error or ""
    return out


class Menu:
    """The Menu page and its API, over the few parts of the page it needs (never the
    server): the daemon's services, the box's locale, page rendering, and how long a
    change waits for Sinqro before it answers "queued" (the board's wait)."""

    def __init__(
        self,
        services: WebServices,
        locale: Callable[[], Locale],
        pages: Pages,
        action_wait: Callable[[], float],
    ) -> None:
        self.services = services
        self.locale = locale
        self.pages = pages
        self.action_wait = action_wait

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/menu", self.page)
        r.add_get("/api/menu", self.api_menu)
        r.add_post("/api/menu/availability", self.api_availability)
        r.add_get("/api/menu/changes/{command_id:[0-9]+}", self.api_change)

    def keeper(self) -> CatalogKeeper:
        # The daemon's desk carries its catalog keeper (edged.assembly); a stand-in may not.
        keeper: CatalogKeeper | None = getattr(self.services.desk, "catalog", None)
        if keeper is None:
            message = self.locale().gettext("This box keeps no menu right now.")
            raise Stop(503, "NO_CATALOG", message)
        return keeper

    # -- the page --------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        _ = self.locale().gettext
        return self.pages.render(
            request,
            "menu.html",
            _("Menu"),
            scripts=("menu.js",),
            page_class="menu",
            choices=self.choices(self.locale()),
        )

    @staticmethod
    def choices(locale: Locale) -> list[tuple[str, str]]:
        """The "sold out until" choices, in the box's language."""
        _ = locale.gettext
        return [
            ("closing", _("Until closing")),
            ("1h", _("For 1 h")),
            ("2h", _("For 2 h")),
            ("", _("Until I turn it back")),
        ]

    # -- data ------------------------------------------------------------------------------

    async def api_menu(self, request: web.Request) -> web.StreamResponse:
        """Products and option categories, matching ``q`` (name or external id) and in
        ``category`` (``products``, or an option category's id) when given; each with its
        "back on at" time and the change on its way, if any."""
        services = self.services
        locale = self.locale()
        paired = bool(services.pairing().paired)
        query = request.query.get("q", "")[:100].casefold().strip()
        category = request.query.get("category", "")[:20]
        catalog = await self.keeper().catalog() if paired else Catalog()
        sp = services.pairing().selling_point_id
        timers = (
            {(t.kind, t.item_id): t.until for t in await services.journal.timers(sp)}
            if paired
            else {}
        )
        pending: dict[tuple[str, int], dict[str, Any]] = {}
        for command in await services.journal.pending_commands():
            if command.kind == KIND:
                change = change_json(command)
                pending[(change["kind"], int(change["id"] or 0))] = change

        def matches(item: CatalogProduct | CatalogOption) -> bool:
            return (
                not query or query in item.name.casefold() or query == item.external_id.casefold()
            )

        def item_json(kind: str, item: CatalogProduct | CatalogOption) -> dict[str, Any]:
            back_at = timers.get((kind, item.id))
            return {
                "kind": kind,
                "id": item.id,
                "name": item.name,
                "external_id": item.external_id,
                "available": item.available,
                "price": locale.money(item.price) if item.price is not None else "",
                "back_at": back_at,
                "back_at_text": locale.time(back_at) if back_at else "",
                "change": pending.get((kind, item.id)),
            }

        names = {p.id: p.name for p in catalog.products}
        products = []
        if category in ("", "products"):
            for product in catalog.products:
                if matches(product) or (
                    product.parent_id and matches_parent(product, names, query)
                ):
                    row = item_json("product", product)
                    row["variant_of"] = names.get(product.parent_id or 0, "")
                    products.append(row)
        categories = []
        for option_category in catalog.categories:
            if category not in ("", str(option_category.id)):
                continue
            options = [item_json("option", o) for o in option_category.options if matches(o)]
            if options or (not query and category):
                categories.append(
                    {"id": option_category.id, "name": option_category.name, "options": options}
                )
        return json_response(
            {
                "paired": paired,
                "now": time.time(),
                "q": query,
                "category": category,
                "sections": [{"id": "products", "name": locale.gettext("Products")}]
                + [{"id": str(c.id), "name": c.name} for c in catalog.categories],
                "products": products[:MAX_ITEMS],
                "categories": categories[:MAX_ITEMS],
                "unavailable": sum(1 for p in catalog.products if not p.available)
                + sum(1 for c in catalog.categories for o in c.options if not o.available),
            }
        )

    async def api_change(self, request: web.Request) -> web.StreamResponse:
        """One availability change's state now (the page asks until done or refused)."""
        command_id = parse_id(request.match_info["command_id"])
        command = await self.services.journal.get_command(command_id) if command_id else None
        if command is None or command.kind != KIND:
            return refusal("UNKNOWN_COMMAND", "no such change", 404)
        return json_response(change_json(command))

    # -- changes ---------------------------------------------------------------------------

    async def api_availability(self, request: web.Request) -> web.StreamResponse:
        """``{"kind": "product"|"option", "id": N, "available": bool, "until": ...}``:
        queued through the outbox; answered once Sinqro took it or refused it, or as
        ``queued`` after the board's wait."""
        body = await self._body(request)
        kind = body.get("kind")
        item_id = body.get("id")
        available = body.get("available")
        until = body.get("until") or ""
        if kind not in ("product", "option"):
            return refusal("BAD_REQUEST", "kind must be product or option", 400)
        if isinstance(item_id, bool) or not isinstance(item_id, (int, str)):
            return refusal("BAD_REQUEST", "id must be a number", 400)
        number = parse_id(str(item_id))
        if number is None:
            return refusal("BAD_REQUEST", "id must be a number", 400)
        if not isinstance(available, bool):
            return refusal("BAD_REQUEST", "available must be true or false", 400)
        if not isinstance(until, str) or until not in UNTIL:
            return refusal("BAD_UNTIL", "until: closing, 1h, 2h or empty", 400)
        keeper = self.keeper()
        try:
            command, back_at = await keeper.set_available(
                str(number),
                available,
                until=until or None,
                kind=kind,
                source="web",
            )
        except CommandRefused as exc:
            return refusal(exc.code, self._refusal_words(exc), 409)
        await self.services.desk.wait(command.id, self.action_wait())
        latest = await self.services.journal.get_command(command.id) or command
        answer = change_json(latest)
        answer["back_at"] = back_at
        answer["back_at_text"] = self.locale().time(back_at) if back_at else ""
        return json_response(answer, status=200 if answer["ok"] else 409)

    def _refusal_words(self, exc: CommandRefused) -> str:
        _ = self.locale().gettext
        words = {
            "NOT_PAIRED": _("The box is not connected to Sinqro: nothing can be changed."),
            "UNKNOWN_PRODUCT": _("This item is not in the menu the box keeps."),
            "AMBIGUOUS_PRODUCT": _("More than one item matches: choose it from the list."),
        }
        return words.get(exc.code, exc.message)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            data = decode_json(await request.read(), max_bytes=MAX_BODY, what="body")
        except PayloadError:
            raise Stop(400, "BAD_REQUEST", "body is not JSON") from None
        if not isinstance(data, dict):
            raise Stop(400, "BAD_REQUEST", "body must be an object")
        return data


def matches_parent(product: CatalogProduct, names: dict[int, str], query: str) -> bool:
    """A variant shows when its product's name matches."""
    return bool(query) and query in names.get(product.parent_id or 0, "").casefold()
