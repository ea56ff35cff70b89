"""The local web page: first-visit password, pairing, setup forms and the live order board.

One aiohttp server inside the daemon. Pages are plain HTML from ``templates/`` with a little
vanilla JavaScript from ``static/``; no build step.

Security, in order of the request's path through :meth:`WebServer._guard`:

* every response carries a strict Content-Security-Policy (scripts and styles from the box
  only) and no-cache headers;
* a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) identifies the browser;
  everything but ``/login``, ``/setup``, ``/health``, static files and (see below)
  ``/metrics`` needs a signed-in session;
* every state change (any method but GET/HEAD) needs the session's CSRF token, as the
  ``csrf`` form field or the ``X-CSRF-Token`` header, and a same-origin ``Origin`` if sent;
* wrong passwords and setup codes are slowed down and then refused (:class:`AttemptLimiter`).

``/metrics`` needs a signed-in session, or ``Authorization: Bearer <web.metrics_token>``,
unless ``web.metrics_public`` is set. ``/health`` is open and tells nothing secret.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from edged import __version__
from edged.bridges.settings import MqttConfig, SerialConfig
from edged.config import Config, OrdersConfig
from edged.configtools import ConfigError, to_plain
from edged.journal import events as ev
from edged.journal import recovery as journal_recovery
from edged.journal.events import Event
from edged.journal.store import StoredOrder
from edged.orders import CommandRefused
from edged.panel.settings import PanelConfig
from edged.printing.settings import PrinterConfig
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import MAX_ID, OrderAction, PayloadError, decode_json
from edged.web import board
from edged.web.forms import form_fields, parse_form, place_error, render_fields
from edged.web.metrics import CONTENT_TYPE, render_metrics
from edged.web.netinfo import local_addresses, mdns_name, url_host
from edged.web.render import Markup, join, render, tag
from edged.web.security import (
    AttemptLimiter,
    Credentials,
    Session,
    Sessions,
    csrf_ok,
    format_code,
    normalize_code,
    password_problem,
)
from edged.web.services import Metric, WebServices
from edged.web.settings import WebConfig

log = logging.getLogger(__name__)

COOKIE = "edged_session"
SESSION_KEY = web.RequestKey("session", Session)
PUBLIC_PATHS = frozenset({"/login", "/setup", "/health", "/metrics", "/favicon.ico"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ACTION_WAIT = 3.0  # seconds a button waits for Sinqro's answer before saying "queued"
ACTIONS_TTL = 20.0  # seconds Sinqro's order actions are reused for the board
KEEPALIVE = 15.0
# Largest request body (forms, JSON): a phone's setup form is a few kilobytes.
MAX_BODY = 64 * 1024
SECTIONS: dict[str, type[Any]] = {
    "orders": OrdersConfig,
    "panel": PanelConfig,
    "mqtt": MqttConfig,
    "serial": SerialConfig,
}
SECTION_TITLES = {
    "orders": "Orders",
    "printers": "Printers",
    "panel": "Panel (buzzer, LED, buttons)",
    "mqtt": "MQTT bridge",
    "serial": "Serial bridge",
}
STATUS_KEYS = ("link", "link.detail", "link.reconnects", "queued_commands", "waiting_orders")
STATUS_PREFIXES = ("printer.", "panel.", "bridge.")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class _Client:
    """One open live-update stream; flags coalesce bursts of events into one message."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.status = True
        self.board = True
        self.notices: deque[dict[str, Any]] = deque(maxlen=20)


class WebServer:
    """The page's HTTP server. ``await start()`` binds and serves; ``await stop()`` ends
    live streams and closes the listener. ``port`` is the bound port after ``start()``."""

    def __init__(
        self,
        config: WebConfig,
        services: WebServices,
        *,
        limiter: AttemptLimiter | None = None,
        scrypt_n: int | None = None,
    ) -> None:
        self.config = config
        self.services = services
        self.limiter = limiter or AttemptLimiter()
        self.credentials = (
            Credentials(services.journal, scrypt_n=scrypt_n)
            if scrypt_n
            else Credentials(services.journal)
        )
        self.sessions = Sessions(
            idle=config.session_idle_minutes * 60.0, lifetime=config.session_max_hours * 3600.0
        )
        self.port = 0
        self.tls = bool(config.tls_cert and config.tls_key)
        self._runner: web.AppRunner | None = None
        self._clients: set[_Client] = set()
        self._closing = False
        self._listening = False
        self._actions: dict[int, tuple[str, float, list[dict[str, Any]] | None]] = {}
        self.action_wait = ACTION_WAIT
        self.requests = 0
        self.action_latency_sum = 0.0
        self.action_count = 0
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login_submit)
        r.add_post("/logout", self.logout_submit)
        r.add_get("/setup", self.setup_page)
        r.add_post("/setup", self.setup_submit)
        r.add_get("/board", self.board_page)
        r.add_get("/pairing", self.pairing_page)
        r.add_post("/pairing/login", self.pairing_login)
        r.add_post("/pairing/choose", self.pairing_choose)
        r.add_post("/pairing/logout", self.pairing_logout)
        r.add_post("/journal/dismiss", self.journal_dismiss)
        r.add_get("/settings", self.settings_page)
        r.add_post("/settings/printers/add", self.printer_add)
        r.add_post("/settings/printers/{index:\\d+}", self.printer_edit)
        r.add_post("/settings/printers/{index:\\d+}/remove", self.printer_remove)
        r.add_post("/settings/printers/{index:\\d+}/test", self.printer_test)
        r.add_post("/settings/{section}", self.settings_submit)
        r.add_get("/api/status", self.api_status)
        r.add_get("/api/board", self.api_board)
        r.add_get("/api/history", self.api_history)
        r.add_post("/api/orders/{order_id:\\d+}/accept", self.api_accept)
        r.add_post("/api/orders/{order_id:\\d+}/cancel", self.api_cancel)
        r.add_post("/api/orders/{order_id:\\d+}/status", self.api_status_change)
        r.add_post("/api/orders/{order_id:\\d+}/reprint", self.api_reprint)
        r.add_post("/api/orders/{order_id:\\d+}/ack", self.api_ack)
        r.add_post("/api/panel/press", self.api_panel_press)
        r.add_get("/events", self.events)
        r.add_get("/health", self.health)
        r.add_get("/metrics", self.metrics)
        r.add_get("/favicon.ico", self.favicon)
        static = Path(str(resources.files("edged.web").joinpath("static")))
        r.add_static("/static/", static, append_version=False)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def start(self) -> None:
        """Bind ``config.host:config.port`` and serve; print a setup ticket at first boot
        (no admin password and no setup code yet)."""
        if not self._listening:
            self.services.journal.add_listener(self._on_journal_events)
            self.services.state.watch(self._on_state_change)
            self._listening = True
        self._closing = False
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        ssl_context = await asyncio.to_thread(self._ssl_context)
        site = web.TCPSite(runner, self.config.host, self.config.port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.config.port
        log.info(
            "web: serving on %s://%s:%d",
            "https" if self.tls else "http",
            self.config.host,
            self.port,
        )
        if not await self.credentials.has_password() and not (
            await self.credentials.has_setup_code()
        ):
            await self.print_setup_ticket()

    async def stop(self) -> None:
        """End live streams and stop listening; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("web: stopped")

    async def run(self) -> None:
        """``start()``, then serve until cancelled; ``stop()`` on the way out."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True
        for client in list(self._clients):
            client.wake.set()

    # -- setup ticket ------------------------------------------------------------------------

    def _mdns(self) -> str | None:
        return self.services.mdns_name or mdns_name()

    async def print_setup_ticket(self) -> None:
        """Make a fresh setup code and print it with the box's addresses and link states.

        Any older code stops working. The code is never logged (only in the demo).
        """
        code = await self.credentials.new_setup_code()
        addresses = await asyncio.to_thread(local_addresses)
        scheme = "https" if self.tls else "http"
        port = self.port or self.config.port
        suffix = "" if port in (80, 443) else f":{port}"
        state = self.services.state
        pairing = self.services.pairing()
        lines = [self.services.box_name, "SETUP", ""]
        mdns = self._mdns()
        if mdns:
            lines.append(f"{scheme}://{mdns}{suffix}/")
        lines += [f"{scheme}://{url_host(a)}{suffix}/" for a in addresses]
        lines += [
            "",
            f"Cloud: {state.get('link', 'unknown')}",
            "Paired: " + (pairing.selling_point_name or str(pairing.selling_point_id))
            if pairing.paired
            else "Paired: no",
        ]
        for name, health in sorted(state.printers().items()):
            lines.append(f"Printer {name}: {health.get('state', 'unknown')}")
        for key in ("bridge.mqtt", "bridge.serial"):
            if state.get(key) is not None:
                lines.append(f"{key.split('.')[1].upper()}: {state.get(key)}")
        lines += ["", f"Setup code: {format_code(code)}", "", "Use it once to set the password."]
        spooler = self.services.spooler
        if spooler is None:
            log.warning("web: no printer: the setup ticket could not be printed")
        else:
            try:
                await _maybe_await(spooler.request_text(lines, source="setup"))
                log.info("web: setup ticket printed")
            except Exception:
                log.exception("web: setup ticket could not be printed")
        if self.services.demo:
            log.warning("web: demo setup code: %s", format_code(code))

    # -- plumbing: sessions, guard, pages ----------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        session = request.get(SESSION_KEY)
        return session if isinstance(session, Session) else None

    def _ensure_session(self, request: web.Request, response: web.StreamResponse) -> Session:
        session = self._session(request)
        if session is None:
            session = self.sessions.new()
            request[SESSION_KEY] = session
            self._set_cookie(response, session)
        return session

    def _set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.sid,
            httponly=True,
            samesite="Strict",
            secure=self.tls,
            path="/",
        )

    @staticmethod
    def _client_id(request: web.Request) -> str:
        return request.remote or "unknown"

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            return False
        return bool(netloc) and netloc == request.host

    @web.middleware
    async def _guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.requests += 1
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            request[SESSION_KEY] = session
        path = request.path
        public = path in PUBLIC_PATHS or path.startswith("/static/")
        try:
            if not public and (session is None or not session.authenticated):
                if request.method in SAFE_METHODS and not _wants_json(request):
                    response: web.StreamResponse = _redirect("/login")
                    _harden(response, path)
                    return response
                raise _Stop(401, "UNAUTHENTICATED", "sign in first")
            if request.method not in SAFE_METHODS:
                supplied = request.headers.get("X-CSRF-Token")
                if supplied is None and request.content_type in (
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ):
                    form = await request.post()
                    value = form.get("csrf")
                    supplied = value if isinstance(value, str) else None
                if (
                    session is None
                    or not csrf_ok(session, supplied)
                    or not self._origin_ok(request)
                ):
                    log.warning("web: refused %s %s: bad CSRF token", request.method, path)
                    raise _Stop(403, "CSRF", "missing or wrong CSRF token; reload the page")
            response = await handler(request)
        except _Stop as stop:
            response = stop.response
        except web.HTTPException as exc:
            _harden(exc, path)
            raise
        _harden(response, path)
        return response

    def _page(
        self,
        request: web.Request,
        title: str,
        content: Markup,
        *,
        status: int = 200,
        nav: bool = True,
        scripts: Sequence[str] = (),
    ) -> web.Response:
        response = web.Response(status=status, content_type="text/html", charset="utf-8")
        session = self._ensure_session(request, response)
        signed_in = session.authenticated
        links = [("/board", "Board"), ("/pairing", "Pairing"), ("/settings", "Setup")]
        nav_html = Markup("")
        if nav and signed_in:
            items = [
                tag("a", label, href=href, aria_current="page" if href == request.path else None)
                for href, label in links
            ]
            items.append(
                tag(
                    "form",
                    join([_csrf_field(session), tag("button", "Sign out", type="submit")]),
                    method="post",
                    action="/logout",
                    class_="inline",
                )
            )
            nav_html = tag("nav", join(items))
        mdns = self._mdns()
        footer_parts = [f"{self.services.box_name} · edged {__version__}"]
        if mdns:
            footer_parts.append(mdns)
        response.text = render(
            "base.html",
            title=title,
            box_name=self.services.box_name,
            csrf=session.csrf,
            nav=nav_html,
            status_bar=(
                join([self._journal_banner(session), self._status_bar()])
                if signed_in
                else Markup("")
            ),
            content=content,
            footer=" · ".join(footer_parts),
            scripts=join(tag("script", "", src=f"/static/{s}", defer=True) for s in scripts),
        )
        return response

    # -- status ------------------------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The status bar's data: link, queue, printers, panel, bridges (nothing secret)."""
        snapshot = self.services.state.snapshot()
        values = {
            k: v for k, v in snapshot.items() if k in STATUS_KEYS or k.startswith(STATUS_PREFIXES)
        }
        pairing = self.services.pairing().public()
        return {
            "state": values,
            "pairing": pairing,
            "printers": self.services.state.printers(),
            "virtual_panel": self._virtual_panel() is not None,
        }

    def _status_bar(self) -> Markup:
        status = self.status_json()
        state = status["state"]
        link = str(state.get("link", "unknown"))
        items = [
            _pill("Cloud", link, "ok" if link == "online" else "warn", "st-link"),
            _pill(
                "Queued",
                str(state.get("queued_commands", 0)),
                "warn" if state.get("queued_commands") else "ok",
                "st-queued",
            ),
        ]
        for name, health in sorted(status["printers"].items()):
            value = str(health.get("state", "unknown")) if isinstance(health, dict) else "unknown"
            items.append(_pill(f"Printer {name}", value, "ok" if value == "online" else "warn"))
        for key, label in (
            ("panel.led", "LED"),
            ("panel.buzzer", "Buzzer"),
            ("bridge.mqtt", "MQTT"),
            ("bridge.serial", "Serial"),
        ):
            if key in state:
                value = str(state[key])
                bad = value in ("offline",)
                items.append(_pill(label, value, "warn" if bad else "ok"))
        return tag("div", join(items), class_="status-bar", id="status-bar", aria_live="polite")

    def _journal_banner(self, session: Session) -> Markup:
        """A warning above everything while the journal was rebuilt or cannot write."""
        state = self.services.state
        status = state.get("journal", "ok")
        if status == "failing":
            text = (
                "The order journal cannot be written (disk full or failing). Orders Sinqro "
                "sends are fetched again once it works; check the box's storage."
            )
            return tag("div", tag("p", text), class_="notice warn", role="alert", id="journal")
        if status != "recovered":
            return Markup("")
        recovered = state.get("journal.recovered") or {}
        text = (
            "The order journal was damaged and has been rebuilt. Open orders were fetched "
            "again from Sinqro and print again; pairing and password were kept. Damaged "
            f"copy: {recovered.get('kept_as', '?')}."
        )
        form = tag(
            "form",
            join([_csrf_field(session), tag("button", "Dismiss", type="submit")]),
            method="post",
            action="/journal/dismiss",
            class_="inline",
        )
        body = join([tag("p", text), form])
        return tag("div", body, class_="notice warn", role="alert", id="journal")

    async def journal_dismiss(self, request: web.Request) -> web.StreamResponse:
        await journal_recovery.dismiss(self.services.journal, self.services.state)
        return _redirect("/board")

    def _virtual_panel(self) -> Any:
        panel = self.services.panel
        return panel if panel is not None and hasattr(panel, "virtual_press") else None

    # -- events ------------------------------------------------------------------------------

    def _on_journal_events(self, new_events: list[Event]) -> None:
        touched = {e.order_id for e in new_events if e.order_id is not None}
        for order_id in touched:
            cached = self._actions.get(order_id)
            if cached is not None and any(
                e.kind in (ev.ORDER_STATUS, ev.COMMAND_DONE) and e.order_id == order_id
                for e in new_events
            ):
                self._actions.pop(order_id, None)
        notices = [
            {
                "kind": "failed",
                "order_id": e.order_id,
                "code": str(e.data.get("code", "")),
                "message": str(e.data.get("message", "")),
            }
            for e in new_events
            if e.kind == ev.COMMAND_FAILED
        ]
        status = any(e.kind.startswith(("print", "link")) for e in new_events)
        for client in self._clients:
            client.board = True
            client.status = client.status or status
            client.notices.extend(notices)
            client.wake.set()

    def _on_state_change(self, key: str, value: Any) -> None:
        if key not in STATUS_KEYS and not key.startswith(STATUS_PREFIXES):
            return
        for client in self._clients:
            client.status = True
            client.wake.set()

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``status`` (the bar's data), ``board`` (refetch), ``notice``."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        _harden(response, request.path)
        await response.prepare(request)
        client = _Client()
        client.wake.set()  # the current status and board at once
        self._clients.add(client)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        await client.wake.wait()
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if self._closing:
                    break
                # Let a burst of events settle into one message.
                await asyncio.sleep(0.05)
                client.wake.clear()
                if client.status:
                    client.status = False
                    await response.write(_sse("status", self.status_json()))
                if client.board:
                    client.board = False
                    await response.write(_sse("board", {}))
                while client.notices:
                    await response.write(_sse("notice", client.notices.popleft()))
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._clients.discard(client)
        return response

    # -- first visit, sign in, sign out ------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return _redirect("/board")

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if not await self.credentials.has_password():
            return _redirect("/setup")
        session = self._session(request)
        if session is not None and session.authenticated:
            return _redirect("/board")
        return self._login(request, "")

    def _login(self, request: web.Request, error: str, *, status: int = 200) -> web.Response:
        response = web.Response()  # only to create the session before rendering
        session = self._ensure_session(request, response)
        content = render(
            "login.html",
            csrf=session.csrf,
            error=tag("p", error, class_="form-error", role="alert") if error else "",
        )
        page = self._page(request, "Sign in", content, status=status, nav=False)
        if response.cookies:
            self._set_cookie(page, session)
        return page

    async def _refused(self, request: web.Request) -> float:
        return self.limiter.retry_after(self._client_id(request))

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        wait = await self._refused(request)
        if wait > 0:
            return self._too_many(request, wait, self._login)
        form = await request.post()
        password = str(form.get("password", ""))
        if await self.credentials.check_password(password):
            self.limiter.success(self._client_id(request))
            return self._signed_in(request, "/board")
        log.warning("web: wrong admin password from %s", self._client_id(request))
        await self.limiter.failure(self._client_id(request))
        return self._login(request, "Wrong password.", status=401)

    def _too_many(
        self, request: web.Request, wait: float, page: Callable[..., web.Response]
    ) -> web.Response:
        self.limiter.refused += 1
        response = page(
            request,
            f"Too many wrong attempts. Try again in about {_minutes(wait)} min.",
            status=429,
        )
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response

    def _signed_in(self, request: web.Request, location: str) -> web.StreamResponse:
        old = self._session(request)
        if old is not None:
            self.sessions.drop(old.sid)
        # A fresh id at sign-in: a session id planted before sign-in is worth nothing.
        session = self.sessions.new(authenticated=True)
        response = _redirect(location)
        self._set_cookie(response, session)
        return response

    async def logout_submit(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is not None:
            self.sessions.drop(session.sid)
        response = _redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    async def setup_page(self, request: web.Request) -> web.StreamResponse:
        return await self._setup(request, {})

    async def _setup(
        self, request: web.Request, errors: Mapping[str, str], *, status: int = 200
    ) -> web.Response:
        first = not await self.credentials.has_password()
        has_code = await self.credentials.has_setup_code()
        response = web.Response()
        session = self._ensure_session(request, response)
        intro = (
            "Welcome. The box printed a setup ticket on its printer. Enter the setup code from "
            "that ticket and choose the password for this page."
            if first
            else "To set a new password, hold both panel buttons for 5 seconds: the box prints "
            "a setup ticket with a fresh code."
        )
        if not has_code:
            intro += " No setup code is active right now: hold both buttons for 5 seconds."
        content = render(
            "setup.html",
            csrf=session.csrf,
            intro=intro,
            form_error=_error_p(errors.get("")),
            code_error=_error_p(errors.get("code"), "code-error"),
            password_error=_error_p(errors.get("password"), "password-error"),
            confirm_error=_error_p(errors.get("confirm"), "confirm-error"),
            signin_link=Markup("")
            if first
            else tag("p", tag("a", "Back to sign in", href="/login")),
        )
        page = self._page(
            request, "First visit" if first else "New password", content, status=status, nav=False
        )
        if response.cookies:
            self._set_cookie(page, session)
        return page

    async def setup_submit(self, request: web.Request) -> web.StreamResponse:
        wait = await self._refused(request)
        if wait > 0:
            self.limiter.refused += 1
            response = await self._setup(
                request,
                {"": f"Too many wrong attempts. Try again in about {_minutes(wait)} min."},
                status=429,
            )
            response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
            return response
        form = await request.post()
        code = str(form.get("code", ""))
        password = str(form.get("password", ""))
        confirm = str(form.get("confirm", ""))
        errors: dict[str, str] = {}
        problem = password_problem(password)
        if problem:
            errors["password"] = f"Password: {problem}."
        elif password != confirm:
            errors["confirm"] = "The two passwords differ."
        if errors:
            return await self._setup(request, errors, status=400)
        if not normalize_code(code) or not await self.credentials.check_setup_code(code):
            log.warning("web: wrong setup code from %s", self._client_id(request))
            await self.limiter.failure(self._client_id(request))
            return await self._setup(
                request, {"code": "That setup code is not valid (or was used already)."}, status=401
            )
        self.limiter.success(self._client_id(request))
        await self.credentials.set_password(password)
        await self.credentials.consume_setup_code()
        self.sessions.drop_all()
        return self._signed_in(request, "/board" if self.services.pairing().paired else "/pairing")

    # -- pairing -----------------------------------------------------------------------------

    async def pairing_page(self, request: web.Request) -> web.StreamResponse:
        return self._pairing(request, {})

    def _pairing(
        self, request: web.Request, errors: Mapping[str, str], *, status: int = 200
    ) -> web.Response:
        session = self._session(request)
        assert session is not None
        pairing = self.services.pairing()
        parts: list[Markup] = []
        csrf = _csrf_field(session)
        if pairing.paired:
            parts.append(
                render(
                    "paired.html",
                    csrf=session.csrf,
                    selling_point=pairing.selling_point_name or f"#{pairing.selling_point_id}",
                    selling_point_id=pairing.selling_point_id,
                    username=pairing.username or "(from the config file)",
                    link=self.services.state.get("link", "unknown"),
                )
            )
        elif session.selling_points:
            options = [
                tag(
                    "li",
                    tag(
                        "label",
                        join(
                            [
                                tag(
                                    "input",
                                    type="radio",
                                    name="selling_point_id",
                                    value=str(sp_id),
                                    required=True,
                                    checked=i == 0,
                                ),
                                tag("span", name or f"#{sp_id}"),
                                tag("small", tz),
                            ]
                        ),
                    ),
                )
                for i, (sp_id, name, tz) in enumerate(session.selling_points)
            ]
            parts.append(
                tag(
                    "form",
                    join(
                        [
                            csrf,
                            tag("h2", "Choose the selling point"),
                            tag(
                                "p",
                                "This Sinqro user manages several selling points. Which one "
                                "does this box serve?",
                            ),
                            _error_p(errors.get("selling_point_id")),
                            tag("ul", join(options), class_="picker"),
                            tag("button", "Link this box", type="submit", class_="primary"),
                        ]
                    ),
                    method="post",
                    action="/pairing/choose",
                    id="picker",
                )
            )
        else:
            parts.append(
                render(
                    "pairing_login.html",
                    csrf=session.csrf,
                    form_error=_error_p(errors.get("")),
                    username_error=_error_p(errors.get("username"), "username-error"),
                    password_error=_error_p(errors.get("password"), "password-error"),
                )
            )
        return self._page(request, "Pairing", join(parts), status=status)

    async def pairing_login(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        assert session is not None
        form = await request.post()
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        if not username or not password:
            key = "username" if not username else "password"
            return self._pairing(request, {key: "Required."}, status=400)
        try:
            points = list(await self.services.login(username, password))
        except SinqroError as exc:
            log.warning("web: Sinqro login failed: %s", exc.code)
            if exc.code == "LOGIN_ERROR":
                return self._pairing(
                    request, {"password": "Incorrect Sinqro user or password."}, status=400
                )
            return self._pairing(
                request, {"": f"Sinqro could not be reached or refused: {exc.message}"}, status=502
            )
        if not points:
            return self._pairing(
                request, {"": "This Sinqro user manages no selling point."}, status=400
            )
        if len(points) == 1:
            await self.services.choose_selling_point(points[0].id)
            log.info("web: box paired with selling point %s", points[0].id)
            return _redirect("/pairing")
        session.selling_points = [(p.id, p.name, p.timezone) for p in points]
        return _redirect("/pairing")

    async def pairing_choose(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        assert session is not None
        form = await request.post()
        try:
            chosen = int(str(form.get("selling_point_id", "")))
        except ValueError:
            chosen = -1
        offered = {sp_id for sp_id, _, _ in session.selling_points}
        if chosen not in offered:
            return self._pairing(
                request,
                {"selling_point_id": "Choose one of the listed selling points."},
                status=400,
            )
        try:
            await self.services.choose_selling_point(chosen)
        except (SinqroError, ValueError) as exc:
            message = exc.message if isinstance(exc, SinqroError) else str(exc)
            return self._pairing(request, {"": f"Sinqro refused: {message}"}, status=502)
        session.selling_points = []
        log.info("web: box paired with selling point %s", chosen)
        return _redirect("/pairing")

    async def pairing_logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is not None:
            session.selling_points = []
        await self.services.logout()
        log.info("web: box logged out of Sinqro")
        return _redirect("/pairing")

    # -- settings ----------------------------------------------------------------------------

    async def settings_page(self, request: web.Request) -> web.StreamResponse:
        return self._settings(request)

    def _settings(
        self,
        request: web.Request,
        *,
        section: str = "",
        errors: Mapping[str, str] | None = None,
        submitted: Mapping[str, list[str]] | None = None,
        status: int = 200,
    ) -> web.Response:
        session = self._session(request)
        assert session is not None
        config = self.services.config()
        saved = request.query.get("saved", "")
        parts: list[Markup] = []
        if saved in SECTION_TITLES:
            parts.append(
                tag(
                    "p",
                    f"{SECTION_TITLES[saved]}: saved and applied.",
                    class_="notice ok",
                    role="status",
                )
            )
        parts.append(self._printers_html(session, config, section, errors, submitted))
        for name, cls in SECTIONS.items():
            mine = section == name
            current = getattr(config, name)
            form_error = (errors or {}).get("") if mine else None
            form = tag(
                "form",
                join(
                    [
                        _csrf_field(session),
                        _error_p(form_error),
                        render_fields(
                            cls,
                            name,
                            current,
                            errors=errors if mine else None,
                            submitted=submitted if mine else None,
                        ),
                        tag("button", "Save", type="submit", class_="primary"),
                    ]
                ),
                method="post",
                action=f"/settings/{name}",
                novalidate=True,
            )
            # Folded by default so the page stays short on a phone; open where the user is.
            parts.append(
                tag(
                    "details",
                    join([tag("summary", tag("h2", SECTION_TITLES[name])), form]),
                    id=f"section-{name}",
                    class_="card",
                    open=mine or saved == name,
                )
            )
        return self._page(request, "Setup", join(parts), status=status)

    def _printers_html(
        self,
        session: Session,
        config: Config,
        section: str,
        errors: Mapping[str, str] | None,
        submitted: Mapping[str, list[str]] | None,
    ) -> Markup:
        health = self.services.state.printers()
        csrf = _csrf_field(session)
        items: list[Markup] = []
        for i, printer in enumerate(config.printers):
            mine = section == f"printers[{i}]"
            state = health.get(printer.name, {})
            value = str(state.get("state", "unknown")) if isinstance(state, dict) else "unknown"
            detail = str(state.get("detail", "")) if isinstance(state, dict) else ""
            items.append(
                tag(
                    "details",
                    join(
                        [
                            tag(
                                "summary",
                                join(
                                    [
                                        tag("strong", printer.name),
                                        " ",
                                        _pill("", value, "ok" if value == "online" else "warn"),
                                        tag("small", detail),
                                    ]
                                ),
                            ),
                            _printer_form(
                                csrf,
                                f"printers[{i}]",
                                printer,
                                (errors, submitted) if mine else None,
                                button="Save",
                                action=f"/settings/printers/{i}",
                            ),
                            tag(
                                "div",
                                join(
                                    [
                                        tag(
                                            "form",
                                            join([csrf, tag("button", "Test print")]),
                                            method="post",
                                            action=f"/settings/printers/{i}/test",
                                            class_="inline",
                                        ),
                                        tag(
                                            "form",
                                            join([csrf, tag("button", "Remove", class_="danger")]),
                                            method="post",
                                            action=f"/settings/printers/{i}/remove",
                                            class_="inline",
                                        ),
                                    ]
                                ),
                                class_="row",
                            ),
                        ]
                    ),
                    class_="printer",
                    open=mine,
                )
            )
        new_index = len(config.printers)
        adding = section == "printers[new]"
        add_form = tag(
            "details",
            join(
                [
                    tag("summary", "Add a printer"),
                    _printer_form(
                        csrf,
                        f"printers[{new_index}]",
                        None,
                        (errors, submitted) if adding else None,
                        button="Add",
                        action="/settings/printers/add",
                    ),
                ]
            ),
            class_="printer",
            open=adding or not config.printers,
        )
        empty = tag("p", "No printer yet.") if not config.printers else Markup("")
        return tag(
            "section",
            join([tag("h2", "Printers"), empty, *items, add_form]),
            id="section-printers",
            class_="card",
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
            await self.services.apply_settings(changes)
        except ConfigError as exc:
            placed = place_error(exc.key, field_keys)
            log.info("web: settings refused: %s: %s", exc.key, exc.problem)
            form = await request.post()
            submitted = {k: [str(v) for v in form.getall(k)] for k in set(form.keys())}
            errors = {placed or "": _sentence(exc.problem if placed else str(exc))}
            return self._settings(
                request, section=section, errors=errors, submitted=submitted, status=400
            )
        log.info("web: settings saved: %s", ", ".join(sorted(changes)))
        return _redirect(f"/settings?saved={quote(saved or section)}#section-{saved or section}")

    async def _form_lists(self, request: web.Request) -> dict[str, list[str]]:
        form = await request.post()
        return {k: [str(v) for v in form.getall(k)] for k in set(form.keys())}

    async def settings_submit(self, request: web.Request) -> web.StreamResponse:
        section = request.match_info["section"]
        cls = SECTIONS.get(section)
        if cls is None:
            raise web.HTTPNotFound()
        form = await self._form_lists(request)
        table = parse_form(cls, section, form)
        keys = [f.key for f in form_fields(cls, section)]
        return await self._apply(request, {section: table}, section, keys)

    def _printer_list(self) -> list[dict[str, Any]]:
        plain = to_plain(self.services.config().printers, hide_secrets=False)
        assert isinstance(plain, list)
        return plain

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
        index = int(request.match_info["index"])
        printers = self._printer_list()
        if index >= len(printers):
            raise web.HTTPNotFound()
        prefix = f"printers[{index}]"
        form = await self._form_lists(request)
        printers[index] = {**printers[index], **parse_form(PrinterConfig, prefix, form)}
        keys = [f.key for f in form_fields(PrinterConfig, prefix)]
        return await self._apply(request, {"printers": printers}, prefix, keys, saved="printers")

    async def printer_remove(self, request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["index"])
        printers = self._printer_list()
        if index >= len(printers):
            raise web.HTTPNotFound()
        removed = printers.pop(index)
        log.info("web: removing printer %s", removed.get("name"))
        return await self._apply(request, {"printers": printers}, "printers", [], saved="printers")

    async def printer_test(self, request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["index"])
        printers = self.services.config().printers
        if index >= len(printers):
            raise web.HTTPNotFound()
        spooler = self.services.spooler
        if spooler is None:
            raise _Stop(503, "NO_SPOOLER", "printing is not running")
        await _maybe_await(spooler.request_test_print(printers[index].name, source="web"))
        return _redirect("/settings?saved=printers#section-printers")

    # -- board -------------------------------------------------------------------------------

    async def board_page(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        assert session is not None
        content = render("board.html")
        return self._page(request, "Orders", content, scripts=["board.js"])

    async def _actions_for(self, order: StoredOrder) -> tuple[list[dict[str, Any]], bool]:
        """Buttons for a waiting order; ``True`` when they come from Sinqro itself."""
        orders_config = self.services.config().orders
        delays = [orders_config.default_delay, orders_config.long_press_delay]
        cached = self._actions.get(order.id)
        now = time.monotonic()
        if cached is not None and cached[0] == order.status and now - cached[1] < ACTIONS_TTL:
            buttons = cached[2]
        else:
            buttons = None
            try:
                async with asyncio.timeout(3.0):
                    actions: Sequence[OrderAction] = await self.services.order_actions(order.id)
                buttons = board.action_buttons(actions, fallback_delays=delays)
            except (SinqroError, TimeoutError, OSError) as exc:
                log.info("web: order %s actions not available: %s", order.id, exc)
            self._actions[order.id] = (order.status, now, buttons)
        if buttons is None:
            return board.offline_buttons(delays), False
        return buttons, True

    async def api_board(self, request: web.Request) -> web.StreamResponse:
        journal = self.services.journal
        open_orders = await journal.open_orders()
        pending = await journal.pending_commands()
        by_order: dict[int, list[Any]] = {}
        for command in pending:
            by_order.setdefault(command.order_id, []).append(command)
        waiting = [o for o in open_orders if o.is_waiting]
        active = [o for o in open_orders if not o.is_waiting]
        button_sets = await asyncio.gather(*(self._actions_for(o) for o in waiting))
        waiting_json = []
        for order, (buttons, live) in zip(waiting, button_sets, strict=True):
            item = board.order_json(order, by_order.get(order.id, ()))
            item["actions"] = buttons
            item["actions_live"] = live
            waiting_json.append(item)
        active_json = [board.order_json(o, by_order.get(o.id, ())) for o in reversed(active)]
        config = self.services.config()
        return _json(
            {
                "status": self.status_json(),
                "waiting": waiting_json,
                "active": active_json,
                "printers": [p.name for p in config.printers],
                "can_reprint": self.services.spooler is not None,
            }
        )

    async def api_history(self, request: web.Request) -> web.StreamResponse:
        search = request.query.get("q", "")[:100]
        midnight = time.mktime((*time.localtime()[:3], 0, 0, 0, 0, 0, -1))
        orders = await self.services.journal.list_orders(since=midnight, search=search, limit=200)
        return _json({"orders": [board.order_json(o) for o in orders], "q": search})

    async def api_status(self, request: web.Request) -> web.StreamResponse:
        return _json(self.status_json())

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            # The bounded decoder: "[[[[..." is a 400 here, not a RecursionError.
            try:
                data = decode_json(await request.read(), max_bytes=MAX_BODY, what="body")
            except PayloadError:
                raise _Stop(400, "BAD_REQUEST", "body is not JSON") from None
            if not isinstance(data, dict):
                raise _Stop(400, "BAD_REQUEST", "body must be an object")
            return data
        form = await request.post()
        return {k: str(v) for k, v in form.items()}

    async def _decide(
        self, request: web.Request, queue: Callable[[], Awaitable[Any]]
    ) -> web.Response:
        started = time.monotonic()
        try:
            command = await queue()
        except CommandRefused as exc:
            return _json({"ok": False, "code": exc.code, "message": exc.message}, status=409)
        outcome = await self.services.desk.wait(command.id, self.action_wait)
        self.action_count += 1
        self.action_latency_sum += time.monotonic() - started
        ok = outcome.state != "failed"
        return _json(
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
        order_id = _path_order_id(request)
        body = await self._body(request)
        raw = body.get("delay")
        delay: int | None
        # Whole minutes only: a JSON true or 10.7 is a client bug, not a delay.
        if raw in (None, "") or (isinstance(raw, str) and raw.strip() == "0"):
            delay = None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            delay = raw or None
        elif isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 4:
            delay = int(raw.strip()) or None
        else:
            return _json(
                {"ok": False, "code": "BAD_DELAY", "message": "delay must be whole minutes"}, 400
            )
        return await self._decide(
            request, lambda: self.services.desk.accept(order_id, delay, source="web")
        )

    async def api_cancel(self, request: web.Request) -> web.StreamResponse:
        order_id = _path_order_id(request)
        body = await self._body(request)
        comment = str(body.get("comment") or "").strip()
        if not comment:
            return _json(
                {
                    "ok": False,
                    "code": "ORDER_CANCELLATION_COMMENT_IS_REQUIRED",
                    "message": "A cancellation comment is required.",
                },
                status=400,
            )
        return await self._decide(
            request, lambda: self.services.desk.cancel(order_id, comment, source="web")
        )

    async def api_status_change(self, request: web.Request) -> web.StreamResponse:
        order_id = _path_order_id(request)
        body = await self._body(request)
        status = str(body.get("status") or "")
        order = await self.services.journal.get_order(order_id)
        if order is None:
            return _json({"ok": False, "code": "UNKNOWN_ORDER", "message": "no such order"}, 404)
        if order.is_waiting or status not in board.next_statuses(order.type, order.status):
            return _json(
                {
                    "ok": False,
                    "code": "BAD_STATUS",
                    "message": f"{status or 'that status'} does not apply to this order now",
                },
                status=409,
            )
        return await self._decide(
            request, lambda: self.services.desk.set_status(order_id, status, source="web")
        )

    async def api_reprint(self, request: web.Request) -> web.StreamResponse:
        order_id = _path_order_id(request)
        body = await self._body(request)
        printer = str(body.get("printer") or "") or None
        spooler = self.services.spooler
        if spooler is None:
            return _json({"ok": False, "code": "NO_SPOOLER", "message": "no printer"}, 503)
        if await self.services.journal.get_order(order_id) is None:
            return _json({"ok": False, "code": "UNKNOWN_ORDER", "message": "no such order"}, 404)
        names = [p.name for p in self.services.config().printers]
        if printer is not None and printer not in names:
            return _json(
                {"ok": False, "code": "UNKNOWN_PRINTER", "message": "no such printer"}, 400
            )
        await _maybe_await(spooler.request_reprint(order_id, printer, source="web"))
        return _json({"ok": True})

    async def api_ack(self, request: web.Request) -> web.StreamResponse:
        order_id = _path_order_id(request)
        try:
            done = await self.services.desk.acknowledge(order_id, source="web")
        except CommandRefused as exc:
            return _json({"ok": False, "code": exc.code, "message": exc.message}, 404)
        return _json({"ok": True, "acknowledged": done})

    async def api_panel_press(self, request: web.Request) -> web.StreamResponse:
        panel = self._virtual_panel()
        if panel is None:
            return _json({"ok": False, "code": "NO_PANEL", "message": "no virtual panel"}, 404)
        body = await self._body(request)
        button = str(body.get("button") or "")
        try:
            seconds = float(body.get("seconds") or 0.1)
        except (TypeError, ValueError, OverflowError):  # OverflowError: 400 digits
            seconds = -1.0
        if button not in ("accept", "cancel", "both") or not 0 < seconds <= 10:
            return _json({"ok": False, "code": "BAD_PRESS", "message": "bad button or time"}, 400)
        result = await _maybe_await(panel.virtual_press(button, seconds))
        return _json({"ok": True, "result": str(result)})

    # -- health and metrics ------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.StreamResponse:
        journal_ok = "ok"
        try:
            async with asyncio.timeout(2.0):
                await self.services.journal.ping()
            self.services.journal.check()  # writes failing (disk full, I/O error)
        except Exception as exc:  # any failure is the answer here
            journal_ok = f"error: {type(exc).__name__}"
        state = self.services.state
        printers = {
            name: (h.get("state", "unknown") if isinstance(h, dict) else "unknown")
            for name, h in state.printers().items()
        }
        body = {
            "ok": journal_ok == "ok",
            "version": __version__,
            "link": state.get("link", "unknown"),
            "paired": self.services.pairing().paired,
            "journal": journal_ok,
            # ok | recovered (rebuilt after damage, until dismissed) | failing
            "journal_state": state.get("journal", "ok"),
            "queued_commands": state.get("queued_commands", 0),
            "waiting_orders": state.get("waiting_orders", 0),
            "printers": printers,
        }
        return _json(body, status=200 if body["ok"] else 503)

    def _metrics_allowed(self, request: web.Request) -> bool:
        if self.config.metrics_public:
            return True
        session = self._session(request)
        if session is not None and session.authenticated:
            return True
        token = self.config.metrics_token
        header = request.headers.get("Authorization", "")
        if token and header.startswith("Bearer "):
            return hmac.compare_digest(header[7:].encode(), token.encode())
        return False

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        if not self._metrics_allowed(request):
            raise _Stop(401, "UNAUTHENTICATED", "sign in or send the metrics bearer token")
        samples = await self.collect_metrics()
        return web.Response(
            body=render_metrics(samples).encode("utf-8"),
            headers={"Content-Type": CONTENT_TYPE},
        )

    async def collect_metrics(self) -> list[Metric]:
        """The box's own samples plus the composition root's (``services.metrics``)."""
        state = self.services.state
        counts = await self.services.journal.counts()
        link = str(state.get("link", "unknown"))
        samples = [
            Metric("edged_orders", counts["orders"], "Orders in the journal"),
            Metric("edged_open_orders", counts["open_orders"], "Orders not final yet"),
            Metric("edged_waiting_orders", counts["waiting_orders"], "Orders waiting for staff"),
            Metric("edged_queued_commands", counts["queued_commands"], "Outbox depth"),
            Metric("edged_journal_events", counts["events"], "Rows in the event log"),
            Metric(
                "edged_journal_write_failures_total",
                self.services.journal.write_failures,
                "Journal writes that failed",
                "counter",
            ),
            Metric(
                "edged_link_reconnects_total",
                float(state.get("link.reconnects", 0) or 0),
                "Websocket reconnects since start",
                "counter",
            ),
        ]
        for name in ("starting", "online", "polling", "offline", "unauthorized", "not_paired"):
            samples.append(
                Metric(
                    "edged_link_state",
                    float(link == name),
                    "Cloud link state",
                    labels={"state": name},
                )
            )
        for name, health in sorted(state.printers().items()):
            value = health.get("state", "unknown") if isinstance(health, dict) else "unknown"
            samples.append(
                Metric(
                    "edged_printer_online",
                    float(value == "online"),
                    "Printer is online",
                    labels={"printer": name},
                )
            )
        samples += [
            Metric("edged_web_requests_total", self.requests, "HTTP requests", "counter"),
            Metric(
                "edged_web_auth_failures_total",
                self.limiter.failed,
                "Wrong passwords and setup codes",
                "counter",
            ),
            Metric(
                "edged_web_auth_refused_total",
                self.limiter.refused,
                "Sign-in attempts refused by the rate limit",
                "counter",
            ),
            Metric("edged_web_live_clients", len(self._clients), "Open live-update streams"),
            Metric(
                "edged_web_decision_seconds_sum",
                self.action_latency_sum,
                "Time from a board button to Sinqro's answer (or the wait limit)",
                "counter",
            ),
            Metric(
                "edged_web_decision_seconds_count",
                self.action_count,
                "Board decisions",
                "counter",
            ),
        ]
        if self.services.metrics is not None:
            try:
                samples += list(self.services.metrics())
            except Exception:
                log.exception("web: metrics provider failed")
        return samples


# -- helpers ---------------------------------------------------------------------------------


def _path_order_id(request: web.Request) -> int:
    """The ``{order_id}`` of the path; beyond SQLite's 64-bit INTEGER no order can exist."""
    order_id = int(request.match_info["order_id"])
    if order_id > MAX_ID:
        raise _Stop(404, "UNKNOWN_ORDER", "no such order")
    return order_id


def _wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith("/api/")
        or request.path == "/events"
        or "application/json" in request.headers.get("Accept", "")
    )


def _dumps(data: Any) -> str:
    """JSON with ``<``, ``>`` and ``&`` as escapes: no markup even if a browser sniffs."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=_dumps(data),
        status=status,
        content_type="application/json",
    )


class _Stop(Exception):
    """Ends a request early with a JSON error (the guard turns it into the response)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = _json({"ok": False, "code": code, "message": message}, status)


def _redirect(location: str) -> web.Response:
    """303 See Other, as a plain response so cookies set on it are sent."""
    return web.Response(status=303, headers={"Location": location})


def _harden(response: web.StreamResponse, path: str) -> None:
    if response.prepared:
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # "same-origin", not "no-referrer": with no-referrer Chromium sends "Origin: null".
    headers.setdefault("Referrer-Policy", "same-origin")
    if not path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


def _printer_form(
    csrf: Markup,
    prefix: str,
    printer: PrinterConfig | None,
    problems: tuple[Mapping[str, str] | None, Mapping[str, list[str]] | None] | None,
    *,
    button: str,
    action: str,
) -> Markup:
    """One printer's form; ``problems`` (errors, submitted values) only for the form the
    user just sent, so its errors show beside its own fields."""
    errors, submitted = problems if problems is not None else (None, None)
    return tag(
        "form",
        join(
            [
                csrf,
                _error_p((errors or {}).get("")),
                render_fields(PrinterConfig, prefix, printer, errors=errors, submitted=submitted),
                tag("button", button, type="submit", class_="primary"),
            ]
        ),
        method="post",
        action=action,
        novalidate=True,
    )


def _csrf_field(session: Session) -> Markup:
    return tag("input", type="hidden", name="csrf", value=session.csrf)


def _error_p(message: str | None, id_: str | None = None) -> Markup:
    if not message:
        return Markup("")
    return tag("p", message, class_="field-error form-error", role="alert", id=id_)


def _pill(label: str, value: str, tone: str, id_: str | None = None) -> Markup:
    parts = [tag("span", label, class_="pill-label")] if label else []
    parts.append(tag("span", value, class_="pill-value"))
    return tag("span", join(parts), class_=f"pill {tone}", id=id_)


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


__all__ = ["WebServer"]
