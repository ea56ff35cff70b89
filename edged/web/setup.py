"""Setup (``/settings``): the printers and the other sections of the config, each a form
generated from its config dataclass and checked by the same code that checks the file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from edged.bridges.settings import MqttConfig, SerialConfig
from edged.config import Config
from edged.configtools import ConfigError, to_plain
from edged.flow.settings import OrdersConfig
from edged.i18n import LANGUAGES, N_
from edged.panel.settings import PanelConfig
from edged.printing import discover
from edged.printing.settings import PrinterConfig, parse_uri, uri_from_address
from edged.web.access import Access
from edged.web.forms import field_problems, field_views, form_fields, parse_form, place_error
from edged.web.http import Stop, json_response, maybe_await, redirect
from edged.web.services import Applied
from edged.web.site import Site

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

    def __init__(self, site: Site, access: Access) -> None:
        self.site = site
        self.access = access  # the signed-in devices the settings page lists
        self._last_applied: Applied | None = None

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/settings", self.page)
        r.add_get("/api/printers/found", self.found)
        r.add_post("/settings/language", self.language)
        r.add_post("/settings/printers/add", self.printer_add)
        r.add_post("/settings/printers/{index:[0-9]{1,4}}", self.printer_edit)
        r.add_post("/settings/printers/{index:[0-9]{1,4}}/remove", self.printer_remove)
        r.add_post("/settings/printers/{index:[0-9]{1,4}}/test", self.printer_test)
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
        site = self.site
        locale = site.locale()
        _ = locale.gettext
        config = site.services.config()
        saved = request.query.get("saved", "")
        health = site.services.state.printers()
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
                    "state_word": site.status.printer_word(raw),
                    "detail": str(state.get("detail", "")) if isinstance(state, dict) else "",
                    "open": mine,
                    "error": (errors or {}).get("") if mine else None,
                    "fields": field_views(
                        PrinterConfig,
                        f"printers[{i}]",
                        printer,
                        errors=errors if mine else None,
                        submitted=submitted if mine else None,
                        locale=locale,
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
                locale=locale,
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
                        locale=locale,
                    ),
                }
            )
        return site.pages.render(
            request,
            "settings.html",
            _("Setup"),
            status=status,
            saved=_(SECTION_TITLES[saved]) if saved in SECTION_TITLES else "",
            applied=self._applied_report() if saved in SECTION_TITLES else None,
            tested=request.query.get("tested", ""),
            printers=printers,
            new_printer=new_printer,
            sections=sections,
            devices=self.access.devices(request),
        )

    def _applied_report(self) -> dict[str, Any] | None:
        """What the last save did, per restarted part, in words (shown once)."""
        applied, self._last_applied = self._last_applied, None
        if applied is None or not (applied.parts or applied.needs_restart):
            return None
        failed = {k: v for k, v in applied.parts.items() if v not in ("applied", "restarting")}
        return {
            "done": [k for k in applied.parts if k not in failed],
            "failed": failed,
            "later": list(applied.needs_restart),
        }

    async def _apply(
        self,
        request: web.Request,
        changes: dict[str, Any],
        section: str,
        field_keys: Sequence[str],
        saved: str = "",
        problems: Mapping[str, str] | None = None,
        then: str = "",
    ) -> web.StreamResponse:
        if problems:
            log.info("web: settings refused: %s", ", ".join(sorted(problems)))
            submitted = await self._form_lists(request)
            return self._render(
                request, section=section, errors=problems, submitted=submitted, status=400
            )
        try:
            result = await self.site.services.apply_settings(changes)
        except ConfigError as exc:
            placed = place_error(exc.key, field_keys)
            log.info("web: settings refused: %s: %s", exc.key, exc.problem)
            submitted = await self._form_lists(request)
            errors = {placed or "": _sentence(exc.problem if placed else str(exc))}
            return self._render(
                request, section=section, errors=errors, submitted=submitted, status=400
            )
        log.info("web: settings saved: %s", ", ".join(sorted(changes)))
        # What happened to each part, shown once on the page the redirect leads to.
        self._last_applied = None if isinstance(result, Config) else result
        target = saved or section
        return redirect(f"/settings?saved={quote(target)}{then}#section-{target}")

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
        table = parse_form(cls, section, form, self.site.locale())
        keys = [f.key for f in form_fields(cls, section)]
        problems = field_problems(cls, section, form, self.site.locale())
        return await self._apply(request, {section: table}, section, keys, problems=problems)

    def _printer_list(self) -> list[dict[str, Any]]:
        plain = to_plain(self.site.services.config().printers, hide_secrets=False)
        assert isinstance(plain, list)
        return plain

    def _index(self, request: web.Request, printers: Sequence[Any]) -> int:
        index = int(request.match_info["index"])
        if index >= len(printers):
            raise web.HTTPNotFound()
        return index

    async def _printer_form(
        self, request: web.Request, prefix: str
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, list[str]]]:
        """The printer table from the form (address as typed, made a URI) and every
        field's problem at once."""
        form = await self._form_lists(request)
        uri_key = f"{prefix}.uri"
        if form.get(uri_key):
            form[uri_key] = [uri_from_address(form[uri_key][-1])]
        table = parse_form(PrinterConfig, prefix, form, self.site.locale())
        problems = field_problems(PrinterConfig, prefix, form, self.site.locale())
        if uri_key not in problems and table.get("uri"):
            try:
                parse_uri(table["uri"])
            except ValueError:
                problems[uri_key] = self.site.locale().gettext(
                    "Not a printer address: type an IP address like 192.168.1.50, "
                    "or pick a printer found below."
                )
        return table, problems, form

    async def printer_add(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        prefix = f"printers[{len(printers)}]"
        table, problems, form = await self._printer_form(request, prefix)
        names = {p.get("name") for p in printers}
        # A field left blank takes its default (order types, cut, slips...), not "empty".
        table = {k: v for k, v in table.items() if v not in ("", [])}
        if table.get("name") in names:
            problems[f"{prefix}.name"] = self.site.locale().gettext(
                "Another printer has this name already."
            )
        printers.append(table)
        keys = [f.key for f in form_fields(PrinterConfig, prefix)]
        then = ""
        if form.get("test") and not problems:
            then = "&tested=" + quote(str(table.get("name", "")))
        response = await self._apply(
            request,
            {"printers": printers},
            "printers[new]",
            keys,
            saved="printers",
            problems=problems,
            then=then,
        )
        if then and response.status == 303:
            # Through the journal: the spooler restarted with the new printer prints it.
            await self._test_print(str(table["name"]))
        return response

    async def found(self, request: web.Request) -> web.StreamResponse:
        """Printers found on the box: USB, serial adapters and mDNS-advertised ones."""
        _ = self.site.locale().gettext
        local = await asyncio.to_thread(discover.local_devices)
        network, problem = await discover.network_printers()
        configured = {p.uri for p in self.site.services.config().printers}
        found = [
            {"name": f.name, "address": f.address, "via": f.via}
            for f in [*network, *local]
            if f.address not in configured
        ]
        message = (
            _("Network printers could not be searched: {reason}.").format(reason=problem)
            if problem
            else ""
        )
        return json_response({"ok": True, "printers": found, "message": message})

    async def printer_edit(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        index = self._index(request, printers)
        prefix = f"printers[{index}]"
        table, problems, _form = await self._printer_form(request, prefix)
        printers[index] = {**printers[index], **table}
        keys = [f.key for f in form_fields(PrinterConfig, prefix)]
        return await self._apply(
            request, {"printers": printers}, prefix, keys, saved="printers", problems=problems
        )

    async def printer_remove(self, request: web.Request) -> web.StreamResponse:
        printers = self._printer_list()
        removed = printers.pop(self._index(request, printers))
        log.info("web: removing printer %s", removed.get("name"))
        return await self._apply(request, {"printers": printers}, "printers", [], saved="printers")

    async def _test_print(self, name: str) -> bool:
        """Ask for a test page; ``False`` when the box has no printing at all."""
        spooler = self.site.services.spooler
        if spooler is None:
            log.info("web: no printing: no test page for %s", name)
            return False
        await maybe_await(spooler.request_test_print(name, source="web"))
        return True

    async def printer_test(self, request: web.Request) -> web.StreamResponse:
        printers = self.site.services.config().printers
        index = self._index(request, printers)
        name = printers[index].name
        if not await self._test_print(name):
            raise Stop(503, "NO_SPOOLER", "printing is not running")
        return redirect(f"/settings?tested={quote(name)}#section-printers")

    async def language(self, request: web.Request) -> web.StreamResponse:
        """The box's language, chosen on the page (saved like any other setting)."""
        form = await request.post()
        language = str(form.get("language", ""))
        if language not in LANGUAGES:
            raise Stop(400, "BAD_LANGUAGE", "unknown language")
        try:
            await self.site.services.apply_settings({"box": {"language": language}})
        except ConfigError as exc:
            raise Stop(400, "BAD_LANGUAGE", str(exc)) from None
        log.info("web: language set to %s", language)
        back = str(form.get("back", "/settings"))
        return redirect(back if back.startswith("/") and not back.startswith("//") else "/")
