"""The local web page: first visit, pairing, setup forms and the live order board.

One aiohttp server inside the daemon. Pages are Jinja templates from ``templates/`` with a
little vanilla JavaScript from ``static/``; no build step. This module builds one
:class:`~edged.web.site.Site` (services, locale, sign-in, rendering, status) and the areas
over it, and routes; each area lives in its own module and registers its own routes:

* :mod:`~edged.web.guard`: sessions, sign-in, CSRF and same-origin checks, headers;
* :mod:`~edged.web.status`: the box's status and the words for its states;
* :mod:`~edged.web.access`: first visit, sign in and out, the setup ticket;
* :mod:`~edged.web.pairing`: the link to the restaurant's Sinqro user;
* :mod:`~edged.web.setup`: printers and the other config sections;
* :mod:`~edged.web.board_api`: the order board and the decisions taken on it;
* :mod:`~edged.web.menu`: the menu, sold out and back on;
* :mod:`~edged.web.kitchen`: the kitchen display and its bumps;
* :mod:`~edged.web.live`: the server-sent event stream;
* :mod:`~edged.web.health`: ``/health`` and ``/metrics``;
* :mod:`~edged.web.limits`: the Host check, the connection cap and the request deadline.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from edged.i18n import Locale
from edged.journal.events import Event
from edged.web.access import Access
from edged.web.board_api import Board
from edged.web.guard import PUBLIC_PATHS
from edged.web.health import Health
from edged.web.http import MAX_BODY
from edged.web.kitchen import Kitchen
from edged.web.limits import GuardedSite, HostGuard, quiet_accept_storms, runner_options
from edged.web.live import Live
from edged.web.menu import Menu
from edged.web.netinfo import mdns_name
from edged.web.pairing import PairingPages
from edged.web.security import AttemptLimiter, Credentials
from edged.web.services import Metric, WebServices
from edged.web.sessions import Sessions
from edged.web.settings import WebConfig
from edged.web.setup import SECTIONS, SetupPages
from edged.web.site import Site

log = logging.getLogger(__name__)


class WebServer:
    """The page's HTTP server. ``await start()`` binds and serves; ``await stop()`` ends
    live streams and closes the listener. ``port`` is the bound port after ``start()``."""

    def __init__(
        self,
        config: WebConfig,
        services: WebServices,
        *,
        limiter: AttemptLimiter | None = None,
        code_limiter: AttemptLimiter | None = None,
        scrypt_n: int | None = None,
    ) -> None:
        self.config = config
        self.services = services
        self.site = Site(
            config, services, limiter=limiter, code_limiter=code_limiter, scrypt_n=scrypt_n
        )
        self.host_guard = HostGuard.for_box(config, services.mdns_name or mdns_name())
        self._sessions_loaded = False
        self._runner: web.AppRunner | None = None
        self._listening = False
        site = self.site
        self.live = Live(site)
        self.access = Access(site, self.live)
        self.pairing = PairingPages(site)
        self.setup = SetupPages(site, self.access)
        self.board = Board(site)
        self.menu = Menu(site.services, site.locale, site.pages, lambda: self.board.action_wait)
        self.kitchen = Kitchen(site, self.board, self.live)
        self.health = Health(site, self.board, self.live)
        self.app = self._build_app()

    @property
    def port(self) -> int:
        """The bound port after ``start()`` (0 before)."""
        return self.site.port

    @property
    def credentials(self) -> Credentials:
        """The admin password, the staff PIN and the setup code."""
        return self.site.credentials

    @property
    def sessions(self) -> Sessions:
        """The browsers signed in (or merely known)."""
        return self.site.sessions

    def locale(self) -> Locale:
        """The box's language and the selling point's time zone, as configured now."""
        return self.site.locale()

    @property
    def action_wait(self) -> float:
        """Seconds a board decision waits for Sinqro before answering "queued"."""
        return self.board.action_wait

    @action_wait.setter
    def action_wait(self, seconds: float) -> None:
        self.board.action_wait = seconds

    def _journal_events(self, new_events: list[Event]) -> None:
        # Cached Sinqro actions go first: the pages woken next refetch the board.
        self.board.forget_actions(new_events)
        self.live.on_journal_events(new_events)

    # -- lifecycle ---------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self.host_guard.middleware, self.site.guard.middleware],
            client_max_size=MAX_BODY,
        )
        r = app.router
        areas = (self.access, self.pairing, self.setup, self.board, self.menu, self.kitchen)
        for area in (*areas, self.health):
            area.routes(r)
        r.add_get("/events", self.live.events)
        static = Path(str(resources.files("edged.web").joinpath("static")))
        r.add_static("/static/", static, append_version=False)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.site.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def start(self) -> None:
        """Bind ``config.host:config.port`` and serve; print a setup ticket at first boot
        (no admin password and no setup code yet). Until ``stop()`` the live stream hears
        the journal and the box state; a start that fails leaves nothing listening."""
        self._listen(True)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    def _listen(self, on: bool) -> None:
        if on == self._listening:
            return
        journal, state = self.services.journal, self.services.state
        if on:
            journal.add_listener(self._journal_events)
            state.watch(self.live.on_state_change)
        else:
            journal.remove_listener(self._journal_events)
            state.unwatch(self.live.on_state_change)
        self._listening = on

    async def _start(self) -> None:
        self.live.closing = False
        if not self._sessions_loaded:
            await asyncio.to_thread(self.site.sessions.load)
            self._sessions_loaded = True
        self.access.staff_pin_set = await self.site.credentials.has_staff_pin()
        quiet_accept_storms()
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=2.0, **runner_options(self.config)
        )
        await runner.setup()
        ssl_context = await asyncio.to_thread(self._ssl_context)
        site = GuardedSite(runner, self.config, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.site.port = int(sockets[0].getsockname()[1]) if sockets else self.config.port
        log.info(
            "web: serving on %s://%s:%d",
            "https" if self.site.tls else "http",
            self.config.host,
            self.port,
        )
        await self.site.refresh_urls()
        if (
            self.services.config().printers
            and not await self.site.credentials.has_password()
            and not await self.site.credentials.has_setup_code()
        ):
            # First boot with a printer. Without one the ACCEPT button proves access; a
            # ticket queued for a printer added later would only print a stale code.
            await self.print_setup_ticket()

    async def stop(self) -> None:
        """End live streams and stop listening; safe to call twice."""
        self._listen(False)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            # The last uses not written yet (they are written coarsely).
            await self.site.sessions.save()
            log.info("web: stopped")

    async def run(self) -> None:
        """``start()`` (unless started already: the supervisor starts a part first), then
        serve until cancelled; ``stop()`` on the way out."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _on_shutdown(self, app: web.Application) -> None:
        self.live.close()

    # -- the parts other code calls ----------------------------------------------------------

    async def print_setup_ticket(self) -> None:
        """Print a fresh setup code (see :meth:`Access.print_setup_ticket`)."""
        await self.access.print_setup_ticket()

    def button_pressed(self) -> bool:
        """Both panel buttons were pressed together: ``True`` when that proved a browser's
        access (the first visit or a forgotten password), so the press does nothing else."""
        return self.access.button_pressed()

    def press_went_elsewhere(self, result: str, order_code: str) -> None:
        """A panel press that was no proof (``accepted`` order ``order_code``...): the
        page waiting for a proof says so."""
        self.access.press_went_elsewhere(result, order_code)

    def status_json(self) -> dict[str, Any]:
        """The status data the page shows (nothing secret)."""
        return self.site.status.status_json()

    async def collect_metrics(self) -> list[Metric]:
        """Every ``/metrics`` sample."""
        return await self.health.collect()


__all__ = ["PUBLIC_PATHS", "SECTIONS", "WebServer"]
