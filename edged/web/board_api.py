"""The order board: its page, its data (``/api/board``, ``/api/history``) and the decisions
staff take on it (accept, cancel, status steps, reprint, silence, virtual panel presses).

Every decision goes through the order desk, the one door all sources share; a refusal comes
back as ``{"ok": false, "code", "message"}`` for the page to say out loud.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from edged.decoding import PayloadError, ascii_int, decimal, decode_json
from edged.flow.refusals import CommandRefused
from edged.i18n import Locale
from edged.i18n.words import TYPE_WORDS
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import StoredOrder
from edged.printing.jobs import PrintRefused
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import OrderAction
from edged.web import board
from edged.web.http import MAX_BODY, Stop, json_response, maybe_await, path_order_id, refusal
from edged.web.metrics import DECISION_BUCKETS, Histogram
from edged.web.site import Site

log = logging.getLogger(__name__)

ACTION_WAIT = 3.0  # seconds a button waits for Sinqro's answer before saying "queued"
ACTIONS_TTL = 20.0  # seconds Sinqro's order actions are reused for the board
FAILED_TTL = 3.0  # seconds an unanswered ask for actions is not asked again
# The virtual panel's buttons, by the names the page sends.
PRESSES: dict[str, Literal["accept", "cancel", "both"]] = {
    "accept": "accept",
    "cancel": "cancel",
    "both": "both",
}


class Board:
    """The board page and its API."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.action_wait = ACTION_WAIT
        self.decision_seconds = Histogram(DECISION_BUCKETS)
        self._actions: dict[int, tuple[str, float, list[OrderAction] | None]] = {}
        # The accept delays Sinqro offered last: the one source of the buttons' shape, so
        # they look the same whether Sinqro answers now, later or not at all.
        self._delays: tuple[int, ...] = ()

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/board", self.page)
        r.add_get("/api/status", self.api_status)
        r.add_get("/api/board", self.api_board)
        r.add_get("/api/history", self.api_history)
        r.add_post("/api/orders/{order_id:[0-9]+}/accept", self.api_accept)
        r.add_post("/api/orders/{order_id:[0-9]+}/cancel", self.api_cancel)
        r.add_post("/api/orders/{order_id:[0-9]+}/status", self.api_status_change)
        r.add_post("/api/orders/{order_id:[0-9]+}/reprint", self.api_reprint)
        r.add_post("/api/orders/{order_id:[0-9]+}/ack", self.api_ack)
        r.add_post("/api/panel/press", self.api_panel_press)

    # -- page and data ---------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        _ = self.site.locale().gettext
        return self.site.pages.render(
            request,
            "board.html",
            _("Orders"),
            scripts=("live.js", "cards.js", "board.js"),
            page_class="board",
            order_types=[(k, _(v)) for k, v in TYPE_WORDS.items()],
            retention_days=self.site.services.config().journal.retention_days,
            # The virtual panel's long press holds a little longer than the panel needs.
            hold_seconds=round(self.site.services.config().panel.accept_hold + 0.3, 1),
        )

    def forget_actions(self, new_events: list[Event]) -> None:
        """Drop cached Sinqro actions of orders whose status moved or whose command ended."""
        for e in new_events:
            if e.order_id is not None and e.kind in (ev.ORDER_STATUS, ev.COMMAND_DONE):
                self._actions.pop(e.order_id, None)

    async def _actions_for(
        self, order: StoredOrder, locale: Locale
    ) -> tuple[list[dict[str, Any]], bool]:
        """Buttons for a waiting order; ``True`` when they come from Sinqro itself."""
        services = self.site.services
        cached = self._actions.get(order.id)
        now = time.monotonic()
        fresh = cached is not None and cached[0] == order.status
        if fresh and cached is not None:
            ttl = ACTIONS_TTL if cached[2] is not None else FAILED_TTL
            fresh = now - cached[1] < ttl
        if fresh and cached is not None:
            actions = cached[2]
        else:
            actions = None
            try:
                async with asyncio.timeout(3.0):
                    actions = list(await services.order_actions(order.id))
            except (SinqroError, TimeoutError, OSError) as exc:
                log.info("web: order %s actions not available: %s", order.id, exc)
            self._actions[order.id] = (order.status, now, actions)
            if actions is not None and (offered := board.offered_delays(actions)):
                self._delays = offered
        delays = self.delays()
        if actions is None:
            return board.offline_buttons(delays, locale), False
        return board.action_buttons(actions, locale, fallback_delays=delays), True

    def delays(self) -> tuple[int, ...]:
        """Accept delays for the buttons: Sinqro's last offer, else the box's own."""
        if self._delays:
            return self._delays
        orders_config = self.site.services.config().orders
        return tuple(d for d in (orders_config.default_delay, orders_config.long_press_delay) if d)

    async def api_board(self, request: web.Request) -> web.StreamResponse:
        services = self.site.services
        locale = self.site.locale()
        journal = services.journal
        open_orders = await journal.open_orders()
        pending = await journal.pending_commands()
        by_order: dict[int, list[Any]] = {}
        for command in pending:
            by_order.setdefault(command.order_id, []).append(command)
        waiting = [o for o in open_orders if o.is_waiting]
        active = [o for o in open_orders if not o.is_waiting]
        paired = bool(services.pairing().paired)
        if paired:
            button_sets = await asyncio.gather(*(self._actions_for(o, locale) for o in waiting))
        else:
            # Nothing can reach Sinqro until the box is connected again: no buttons to
            # queue decisions that would wait for a pairing nobody may ever make.
            button_sets = [([], False) for _o in waiting]
        waiting_json = []
        for order, (buttons, live) in zip(waiting, button_sets, strict=True):
            item = board.order_json(order, locale, by_order.get(order.id, ()))
            item["actions"] = buttons
            item["actions_live"] = live
            waiting_json.append(item)
        active_json = [
            board.order_json(o, locale, by_order.get(o.id, ())) for o in reversed(active)
        ]
        config = services.config()
        return json_response(
            {
                "now": time.time(),
                "paired": paired,
                "status": self.site.status.status_json(),
                "waiting": board.waiting_order(waiting_json),
                "active": active_json,
                "printers": [p.name for p in config.printers],
                "can_reprint": services.spooler is not None,
                "long_press": {
                    "seconds": config.panel.accept_hold,
                    "delay": config.orders.long_press_delay,
                },
            }
        )

    async def api_history(self, request: web.Request) -> web.StreamResponse:
        """Orders the journal still keeps: today's by default, ``days=N`` back (at most
        the journal's retention, ``all``), matching ``q`` (code, name, phone, comment...)."""
        search = request.query.get("q", "")[:100]
        locale = self.site.locale()
        retention = self.site.services.config().journal.retention_days
        raw_days = request.query.get("days", "1")
        days = retention if raw_days == "all" else (ascii_int(raw_days, max_digits=4) or 1)
        days = max(1, min(days, retention))
        # Today is the selling point's today; "N days" are today and the N-1 before it.
        midnight = locale.local(time.time()).replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight.timestamp() - (days - 1) * 86400
        orders = await self.site.services.journal.list_orders(since=since, search=search, limit=200)
        return json_response(
            {
                "orders": [board.order_json(o, locale) for o in orders],
                "q": search,
                "days": days,
                "limit": 200,
            }
        )

    async def api_status(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.site.status.status_json())

    # -- decisions -------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            # The bounded decoder: "[[[[..." is a 400 here, not a RecursionError.
            try:
                data = decode_json(await request.read(), max_bytes=MAX_BODY, what="body")
            except PayloadError:
                raise Stop(400, "BAD_REQUEST", "body is not JSON") from None
            if not isinstance(data, dict):
                raise Stop(400, "BAD_REQUEST", "body must be an object")
            return data
        form = await request.post()
        return {k: str(v) for k, v in form.items()}

    async def _decide(self, queue: Callable[[], Awaitable[Any]]) -> web.Response:
        started = time.monotonic()
        try:
            command = await queue()
        except CommandRefused as exc:
            return refusal(exc.code, exc.message, 409)
        outcome = await self.site.services.desk.wait(command.id, self.action_wait)
        self.decision_seconds.observe(time.monotonic() - started)
        ok = outcome.state != "failed"
        return json_response(
            {
                "ok": ok,
                "command_id": command.id,
                "state": outcome.state,
                "code": outcome.code,
                "message": outcome.message,
            },
            status=200 if ok else 409,
        )

    async def api_accept(self, request: web.Request) -> web.StreamResponse:
        order_id = path_order_id(request)
        body = await self._body(request)
        raw = body.get("delay")
        delay: int | None
        # Whole minutes only: a JSON true or 10.7 is a client bug, not a delay.
        if raw in (None, "") or (isinstance(raw, str) and raw.strip() == "0"):
            delay = None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            delay = raw or None
        elif isinstance(raw, str) and (minutes := ascii_int(raw, max_digits=4)) is not None:
            delay = minutes or None
        else:
            return refusal("BAD_DELAY", "delay must be whole minutes", 400)
        desk = self.site.services.desk
        return await self._decide(lambda: desk.accept(order_id, delay, source="web"))

    async def api_cancel(self, request: web.Request) -> web.StreamResponse:
        order_id = path_order_id(request)
        body = await self._body(request)
        comment = str(body.get("comment") or "").strip()
        if not comment:
            message = self.site.locale().gettext("A cancellation comment is required.")
            return refusal("ORDER_CANCELLATION_COMMENT_IS_REQUIRED", message, 400)
        desk = self.site.services.desk
        return await self._decide(lambda: desk.cancel(order_id, comment, source="web"))

    async def api_status_change(self, request: web.Request) -> web.StreamResponse:
        order_id = path_order_id(request)
        body = await self._body(request)
        status = str(body.get("status") or "")
        services = self.site.services
        order = await services.journal.get_order(order_id)
        if order is None:
            return refusal("UNKNOWN_ORDER", "no such order", 404)
        if order.is_waiting or status not in board.next_statuses(order.type, order.status):
            message = f"{status or 'that status'} does not apply to this order now"
            return refusal("BAD_STATUS", message, 409)
        desk = services.desk
        return await self._decide(lambda: desk.set_status(order_id, status, source="web"))

    async def api_reprint(self, request: web.Request) -> web.StreamResponse:
        order_id = path_order_id(request)
        body = await self._body(request)
        printer = str(body.get("printer") or "") or None
        services = self.site.services
        spooler = services.spooler
        if spooler is None:
            return refusal("NO_SPOOLER", "no printer", 503)
        if await services.journal.get_order(order_id) is None:
            return refusal("UNKNOWN_ORDER", "no such order", 404)
        names = [p.name for p in services.config().printers]
        if printer is not None and printer not in names:
            return refusal("UNKNOWN_PRINTER", "no such printer", 400)
        try:
            await maybe_await(spooler.request_reprint(order_id, printer, source="web"))
        except PrintRefused as exc:
            return refusal("REPRINT_LIMIT", str(exc), 429)
        return json_response({"ok": True})

    async def api_ack(self, request: web.Request) -> web.StreamResponse:
        order_id = path_order_id(request)
        try:
            done = await self.site.services.desk.acknowledge(order_id, source="web")
        except CommandRefused as exc:
            return refusal(exc.code, exc.message, 404)
        return json_response({"ok": True, "acknowledged": done})

    async def api_panel_press(self, request: web.Request) -> web.StreamResponse:
        panel = self.site.status.virtual_panel()
        if panel is None:
            return refusal("NO_PANEL", "no virtual panel", 404)
        body = await self._body(request)
        button = PRESSES.get(str(body.get("button") or ""))
        seconds = decimal(body.get("seconds") or 0.1) or -1.0
        if button is None or not 0 < seconds <= 10:
            return refusal("BAD_PRESS", "bad button or time", 400)
        result = await maybe_await(panel.virtual_press(button, seconds))
        return json_response({"ok": True, "result": str(result)})
