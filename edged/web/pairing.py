"""Pairing: sign the box in with the restaurant's Sinqro user, pick the selling point when
the user manages several, and disconnect (after a confirmation)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from edged.decoding import parse_id
from edged.sinqro.errors import SinqroError
from edged.web.http import redirect
from edged.web.site import Site

log = logging.getLogger(__name__)


class PairingPages:
    """``/pairing`` and its forms."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/pairing", self.page)
        r.add_post("/pairing/login", self.login)
        r.add_post("/pairing/choose", self.choose)
        r.add_post("/pairing/logout", self.logout)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._render(request, {}, name=await self.selling_point_name())

    async def selling_point_name(self) -> str:
        """The paired selling point's name: the pairing's, else the one Sinqro writes in
        the orders it sent for it (a box paired by its config file knows only the id)."""
        pairing = self.site.services.pairing()
        if not pairing.paired or pairing.selling_point_name:
            return pairing.selling_point_name
        for order in await self.site.services.journal.list_orders(limit=20):
            point = order.payload.get("sellingPoint")
            if isinstance(point, dict) and parse_id(point.get("id")) == pairing.selling_point_id:
                name = point.get("name")
                if isinstance(name, str) and name.strip():
                    return name.strip()[:200]
        return ""

    def _render(
        self,
        request: web.Request,
        errors: Mapping[str, str],
        *,
        status: int = 200,
        name: str | None = None,
    ) -> web.Response:
        site = self.site
        session = site.guard.signed_in(request)
        pairing = site.services.pairing()
        return site.pages.render(
            request,
            "pairing.html",
            site.locale().gettext("Connection to Sinqro"),
            status=status,
            pairing=pairing,
            selling_point_name=pairing.selling_point_name if name is None else name,
            link=site.status.link_word(site.services.state.get("link")),
            selling_points=session.selling_points,
            errors=errors,
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        _ = site.locale().gettext
        session = site.guard.signed_in(request)
        form = await request.post()
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        errors: dict[str, str] = {}
        if not username:
            errors["username"] = _("Enter the Sinqro user.")
        if not password:
            errors["password"] = _("Enter the Sinqro password.")
        if errors:
            return self._render(request, errors, status=400)
        try:
            points = list(await site.services.login(username, password))
        except SinqroError as exc:
            log.warning("web: Sinqro login failed: %s", exc.code)
            if exc.code == "LOGIN_ERROR":
                message = _("Incorrect Sinqro user or password.")
                return self._render(request, {"password": message}, status=400)
            message = _("Sinqro could not be reached or refused: {reason}")
            return self._render(request, {"": message.format(reason=exc.message)}, status=502)
        if not points:
            message = _("This Sinqro user manages no selling point.")
            return self._render(request, {"": message}, status=400)
        if len(points) == 1:
            await site.services.choose_selling_point(points[0].id)
            log.info("web: box paired with selling point %s", points[0].id)
            return redirect("/pairing")
        session.selling_points = [(p.id, p.name, p.timezone) for p in points]
        return redirect("/pairing")

    async def choose(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        _ = site.locale().gettext
        session = site.guard.signed_in(request)
        form = await request.post()
        chosen = parse_id(form.get("selling_point_id")) or -1
        offered = {sp_id for sp_id, _name, _tz in session.selling_points}
        if chosen not in offered:
            message = _("Choose one of the listed selling points.")
            return self._render(request, {"selling_point_id": message}, status=400)
        try:
            await site.services.choose_selling_point(chosen)
        except (SinqroError, ValueError) as exc:
            reason = exc.message if isinstance(exc, SinqroError) else str(exc)
            message = _("Sinqro refused: {reason}").format(reason=reason)
            return self._render(request, {"": message}, status=502)
        session.selling_points = []
        log.info("web: box paired with selling point %s", chosen)
        return redirect("/pairing")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self.site.guard.signed_in(request)
        session.selling_points = []
        await self.site.services.logout()
        log.info("web: box logged out of Sinqro")
        return redirect("/pairing")
