"""Setup (``/settings``): the printers and the other sections of the config, each a form
generated from its config dataclass and checked by the same code that checks the file."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from edged.bridges.settings import MqttConfig, SerialConfig
from edged.config import OrdersConfig
from edged.configtools import ConfigError, to_plain
from edged.i18n import N_
from edged.panel.settings import PanelConfig
from edged.printing.settings import PrinterConfig
from edged.web.forms import field_views, form_fields, parse_form, place_error
from edged.web.http import Stop, maybe_await, redirect

if TYPE_CHECKING:
    from edged.web.server import WebServer

log = logging.getLogger(__name__)

SECTIONS: dict[str, type[Any]] = {
    "orders": OrdersConfig,
    "panel": PanelConfig,
    "mqtt": MqttConfig,
    "serial": SerialConfig,
}
SECTION_TITLES = {
    "orders": N_("Orders"),
    "printers": N_("Printers"),
    "panel": N_("Panel (buzzer, light, buttons)"),
    "mqtt": N_("MQTT bridge"),
    "serial": N_("Serial bridge"),
}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


class SetupPages:
    """``/settings`` and its forms."""

    def __init__(self, server: WebServer) -> None:
        self.server = server

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/settings", self.page)
        r.add_post("/settings/printers/add", self.printer_add)
        r.add_post("/settings/printers/{index:\\d+}", self.printer_edit)
        r.add_post("/settings/printers/{index:\\d+}/remove", self.printer_remove)
        r.add_post("/settings/printers/{index:\\d+}/test", self.printer_test)
        r.add_post("/settings/{section}", self.section_submit)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._render(request)

    def _render(
        self,
        request: web.Request,
        *,
        section: str = "",
        errors: Mapping[str, str] | None = None,
        submitted: Mapping[str, list[str]] | None = None,
        status: int = 200,
    ) -> web.Response:
        server = self.server
        _ = server.locale().gettext
        config = server.services.config()
        saved = request.query.get("saved", "")
        health = server.services.state.printers()
        printers = []
        for i, printer in enumerate(config.printers):
            mine = section == f"printers[{i}]"
            state = health.get(printer.name, {})
            raw = state.get("state") if isinstance(state, dict) else None
            printers.append(
                {
                    "index": i,
                    "name": printer.name,
                    "state": raw or "unknown",
                    "state_word": server.board.printer_word(raw),
                    "detail": str(state.get("detail", "")) if isinstance(state, dict) else "",
                    "open": mine,
                    "error": (errors or {}).get("") if mine else None,
                    "fields": field_views(
                        PrinterConfig,
                        f"printers[{i}]",
                        printer,
                        errors=errors if mine else None,
                        submitted=submitted if mine else None,
                    ),
                }
            )
        adding = section == "printers[new]"
        new_printer = {
            "open": adding or not config.printers,
            "error": (errors or {}).get("") if adding else None,
            "fields": field_views(
                PrinterConfig,
                f"printers[{len(config.printers)}]",
                None,
                errors=errors if adding else None,
                submitted=submitted if adding else None,
            ),
        }
        sections = []
        for name, cls in SECTIONS.items():
            mine = section == name
            sections.append(
                {
                    "name": name,
                    "title": _(SECTION_TITLES[name]),
                    "open": mine or saved == name,
                    "error": (errors or {}).get("") if mine else None,
                    "fields": field_views(
                        cls,
                        name,
                        getattr(config, name),
                        errors=errors if mine else None,
                        submitted=submitted if mine else None,
                    ),
                }
            )
        return server.pages.render(
            request,
            "settings.html",
            _("Setup"),
            status=status,
            saved=_(SECTION_TITLES[saved]) if saved in SECTION_TITLES else "",
            printers=printers,
            new_printer=new_printer,
            sections=sections,
        )

    async def _apply(
        self,
        request: web.Request,
        changes: dict[str, Any],
        section: str,
        field_keys: Sequence[str],
        saved: str = "",
    ) -> web.StreamResponse:
        try:
            await self.server.services.apply_settings(changes)
        except ConfigError as exc:
            placed = place_error(exc.key, field_keys)
            log.info("web: settings refused: %s: %s", exc.key, exc.problem)
            submitted = await self._form_lists(request)
            errors = {placed or "": _sentence(exc.problem if placed else str(exc))}
            return self._render(
                request, section=section, errors=errors, submitted=submitted, status=400
            )
        log.info("web: settings saved: %s", ", ".join(sorted(changes)))
        target = saved or section
        return redirect(f"/settings?saved={quote(target)}#section-{target}")

    @staticmethod
    async def _form_lists(request: web.Request) -> dict[str, list[str]]:
        form = await request.post()
        return {k: [str(v) for v in form.getall(k)] for k in set(form.keys())}

    async def section_submit(self, request: web.Request) -> web.StreamResponse:
        section = request.match_info["section"]
        cls = SECTIONS.get(section)
        if cls is None:
            raise web.HTTPNotFound()
        form = await self._form_lists(request)
        table = parse_form(cls, section, form)
        keys = [f.key for f in form_fields(cls, section)]
        return await self._apply(request, {section: table}, section, keys)

    def _printer_list(self) -> list[dict[str, Any]]:
        plain = to_plain(self.server.services.config().printers, hide_secrets=False)
        assert isinstance(plain, list)
        return plain

    def _index(self, request: web.Request, printers: Sequence[Any]) -> int:
        index = int(request.match_info["index"])
        if index >= len(printers):
            raise web.HTTPNotFound()
        return index

    async def printer_add(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        prefix = f"printers[{len(printers)}]"
        form = await self._form_lists(request)
        printers.append(parse_form(PrinterConfig, prefix, form))
        keys = [f.key for f in form_fields(PrinterConfig, prefix)]
        return await self._apply(
            request, {"printers": printers}, "printers[new]", keys, saved="printers"
        )

    async def printer_edit(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        index = self._index(request, printers)
        prefix = f"printers[{index}]"
        form = await self._form_lists(request)
        printers[index] = {**printers[index], **parse_form(PrinterConfig, prefix, form)}
        keys = [f.key for f in form_fields(PrinterConfig, prefix)]
        return await self._apply(request, {"printers": printers}, prefix, keys, saved="printers")

    async def printer_remove(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        removed = printers.pop(self._index(request, printers))
        log.info("web: removing printer %s", removed.get("name"))
        return await self._apply(request, {"printers": printers}, "printers", [], saved="printers")

    async def printer_test(self, request: web.Request) -> web.StreamResponse:
        printers = self.server.services.config().printers
        index = self._index(request, printers)
        spooler = self.server.services.spooler
        if spooler is None:
            raise Stop(503, "NO_SPOOLER", "printing is not running")
        await maybe_await(spooler.request_test_print(printers[index].name, source="web"))
        return redirect("/settings?saved=printers#section-printers")
