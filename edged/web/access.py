"""Who gets in: the first visit (the password, proven by the printed setup code), sign in,
sign out, the setup ticket and the page's own address.

Wrong passwords and setup codes are slowed down and then refused (:class:`AttemptLimiter`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edged.onboarding import PASSWORD_FILE as HOTSPOT_PASSWORD_FILE
from edged.onboarding import read_hotspot_password
from edged.web.guard import COOKIE
from edged.web.http import json_response, maybe_await, redirect, refusal
from edged.web.reach import default_mdns, page_urls, qr_svg
from edged.web.security import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    format_code,
    normalize_code,
    password_problem,
)

if TYPE_CHECKING:
    from edged.web.server import WebServer

log = logging.getLogger(__name__)


PRESS_WINDOW = 60.0  # seconds to press ACCEPT on the box after starting the proof
PROVEN_FOR = 600.0  # seconds a proven browser has to choose the password


def minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


class PressProof:
    """Proof of physical access by the box's own ACCEPT button (the printed code is the
    other way). A browser opens a 60 s window; the next short ACCEPT press inside it
    proves that browser, which may then set the password (first visit or a forgotten
    one). One window at a time: a newer start replaces an older one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sid: str | None = None
        self._deadline = 0.0
        self._proven: dict[str, float] = {}

    def start(self, sid: str) -> float:
        """Open the window for session ``sid``; returns its seconds."""
        self._sid = sid
        self._deadline = self.clock() + PRESS_WINDOW
        return PRESS_WINDOW

    @property
    def open(self) -> bool:
        return self._sid is not None and self.clock() < self._deadline

    def press(self) -> bool:
        """The ACCEPT button was pressed: ``True`` when it proved a browser (the panel then
        leaves the press out of order decisions)."""
        if not self.open or self._sid is None:
            return False
        self._proven = {k: v for k, v in self._proven.items() if v > self.clock()}
        self._proven[self._sid] = self.clock() + PROVEN_FOR
        self._sid = None
        return True

    def state(self, sid: str) -> tuple[str, float]:
        """``proven``, ``waiting`` (with seconds left), or ``idle`` for session ``sid``."""
        now = self.clock()
        if self._proven.get(sid, 0.0) > now:
            return ("proven", 0.0)
        if self._sid == sid and now < self._deadline:
            return ("waiting", self._deadline - now)
        return ("idle", 0.0)

    def use(self, sid: str) -> bool:
        """Spend ``sid``'s proof (once): ``True`` when it was proven and still fresh."""
        return self._proven.pop(sid, 0.0) > self.clock()


class Access:
    """First visit, sign in and out, the setup ticket."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.urls: list[str] = []
        self.press_proof = PressProof()
        self.hotspot_password_file = HOTSPOT_PASSWORD_FILE

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/", self.index)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login_submit)
        r.add_post("/logout", self.logout_submit)
        r.add_get("/setup", self.setup_page)
        r.add_post("/setup", self.setup_submit)
        r.add_post("/setup/press", self.press_start)
        r.add_get("/setup/press/state", self.press_state)
        r.add_get("/favicon.ico", self.favicon)

    # -- where the page is -----------------------------------------------------------------

    def mdns(self) -> str | None:
        return self.server.services.mdns_name or default_mdns()

    async def refresh_urls(self) -> list[str]:
        """The page's addresses now (the box may have moved networks since start)."""
        port = self.server.port or self.server.config.port
        self.urls = await asyncio.to_thread(
            page_urls,
            tls=self.server.tls,
            port=port,
            mdns=self.mdns(),
            bound=self.server.config.host,
        )
        return self.urls

    def footer(self) -> dict[str, Any]:
        """The footer's address as text and QR code (the first reachable address)."""
        url = self.urls[0] if self.urls else ""
        return {"url": url, "qr": qr_svg(url) if url else ""}

    # -- setup ticket ----------------------------------------------------------------------

    async def print_setup_ticket(self) -> None:
        """Make a fresh setup code and print it with the box's addresses and link states.

        Any older code stops working. The code is never logged (only in the demo).
        """
        server = self.server
        _ = server.locale().gettext
        code = await server.credentials.new_setup_code()
        # Physical proof beats any guessing so far: nobody can have tried this code yet.
        server.code_limiter.reset()
        urls = await self.refresh_urls()
        state = server.services.state
        pairing = server.services.pairing()
        lines = [server.services.config().box.name, _("SETUP"), "", *urls, ""]
        lines.append(_("Cloud: {state}").format(state=server.board.link_word(state.get("link"))))
        if pairing.paired:
            name = pairing.selling_point_name or str(pairing.selling_point_id)
            lines.append(_("Paired with: {name}").format(name=name))
        else:
            lines.append(_("Paired: no"))
        for name, health in sorted(state.printers().items()):
            word = server.board.printer_word(
                health.get("state") if isinstance(health, dict) else None
            )
            lines.append(_("Printer {name}: {state}").format(name=name, state=word))
        for key, label in (
            ("bridge.mqtt", _("POS link (MQTT)")),
            ("bridge.serial", _("POS link (serial)")),
        ):
            value = state.get(key)
            if value is not None and value != "disabled":
                lines.append(f"{label}: {server.board.part_word(str(value))}")
        hotspot = await asyncio.to_thread(read_hotspot_password, self.hotspot_password_file)
        if hotspot is not None:
            # The way in for a box without Ethernet: its own Wi-Fi while it has no network.
            lines += [
                "",
                _("No network? Join the box's Wi-Fi:"),
                _("Wi-Fi {name}, password {password}").format(
                    name=socket.gethostname().split(".")[0], password=hotspot
                ),
            ]
        lines += ["", _("Setup code:"), format_code(code), ""]
        big = [len(lines) - 2]
        lines.append(_("Open the page above and type the code to choose the password."))
        if urls:
            lines.append(_("Or scan:"))
        spooler = server.services.spooler
        if spooler is None:
            log.warning("web: no printer: the setup ticket could not be printed")
        else:
            try:
                await maybe_await(
                    spooler.request_text(lines, source="setup", qr=urls[0] if urls else "", big=big)
                )
                log.info("web: setup ticket printed")
            except Exception:
                log.exception("web: setup ticket could not be printed")
        if server.services.demo:
            log.warning("web: demo setup code: %s", format_code(code))

    # -- pages -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return redirect("/board")

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if not await self.server.credentials.has_password():
            return redirect("/setup")
        session = self.server.guard.session(request)
        if session is not None and session.authenticated:
            return redirect("/board")
        return self._login(request, "")

    def _login(self, request: web.Request, error: str, *, status: int = 200) -> web.Response:
        _ = self.server.locale().gettext
        return self.server.pages.render(
            request, "login.html", _("Sign in"), status=status, nav=False, error=error
        )

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        _ = server.locale().gettext
        client = server.guard.client_id(request)
        # Counted before the slow check: concurrent guesses cannot all slip through.
        wait = server.limiter.begin(client)
        if wait > 0:
            return self._too_many(request, wait, self._login)
        form = await request.post()
        password = str(form.get("password", ""))
        if await server.credentials.check_password(password):
            server.limiter.success(client)
            return server.guard.sign_in(request, "/board")
        log.warning("web: wrong admin password from %s", client)
        server.limiter.failure(client)
        return self._login(request, _("Wrong password."), status=401)

    def _too_many(
        self, request: web.Request, wait: float, page: Callable[..., web.Response]
    ) -> web.Response:
        _ = self.server.locale().gettext
        message = _("Too many wrong attempts. Try again in about {minutes} min.")
        response = page(request, message.format(minutes=minutes(wait)), status=429)
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response

    async def logout_submit(self, request: web.Request) -> web.StreamResponse:
        session = self.server.guard.session(request)
        if session is not None:
            self.server.sessions.drop(session.sid)
        response = redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # -- first visit and new password ------------------------------------------------------

    async def setup_page(self, request: web.Request) -> web.StreamResponse:
        return await self._setup(request, {})

    async def _setup(
        self, request: web.Request, errors: Mapping[str, str], *, status: int = 200, code: str = ""
    ) -> web.Response:
        _ = self.server.locale().gettext
        first = not await self.server.credentials.has_password()
        has_code = await self.server.credentials.has_setup_code()
        session = self.server.guard.session(request)
        proven = session is not None and self.press_proof.state(session.sid)[0] == "proven"
        return self.server.pages.render(
            request,
            "setup.html",
            _("First visit") if first else _("New password"),
            status=status,
            nav=False,
            first=first,
            has_code=has_code,
            proven=proven,
            window=int(PRESS_WINDOW),
            errors=errors,
            code=code[:40],
            scripts=("setup.js",),
        )

    async def press_start(self, request: web.Request) -> web.StreamResponse:
        """Open the ACCEPT-button window for this browser (CSRF-checked by the guard)."""
        session = self.server.guard.session(request)
        if session is None:
            return refusal("NO_SESSION", "reload the page", 400)
        seconds = self.press_proof.start(session.sid)
        log.info("web: waiting %.0f s for the ACCEPT button to prove access", seconds)
        return json_response({"ok": True, "state": "waiting", "seconds": seconds})

    async def press_state(self, request: web.Request) -> web.StreamResponse:
        session = self.server.guard.session(request)
        state, left = self.press_proof.state(session.sid) if session else ("idle", 0.0)
        return json_response({"ok": True, "state": state, "seconds": round(left)})

    def button_pressed(self) -> bool:
        """The box's ACCEPT button was pressed; ``True`` when that proved a browser."""
        proved = self.press_proof.press()
        if proved:
            log.info("web: ACCEPT button pressed: access proven")
        return proved

    async def setup_submit(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        _ = server.locale().gettext
        client = server.guard.client_id(request)
        form = await request.post()
        code = str(form.get("code", ""))
        password = str(form.get("password", ""))
        confirm = str(form.get("confirm", ""))
        # Every problem at once, and the code as typed: a person fixes all in one go.
        errors = self.password_errors(password, confirm)
        session = server.guard.session(request)
        proven = session is not None and self.press_proof.state(session.sid)[0] == "proven"
        status = 400
        if not proven and not normalize_code(code):
            errors["code"] = _("Type the setup code from the printed ticket, or press ACCEPT.")
        elif not proven:
            # Setup codes have their own throttle: guessing passwords never blocks them.
            wait = server.code_limiter.begin(client)
            if wait > 0:
                message = _("Too many wrong attempts. Try again in about {minutes} min.")
                response = await self._setup(
                    request, {"": message.format(minutes=minutes(wait))}, status=429, code=code
                )
                response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return response
            if await server.credentials.check_setup_code(code):
                server.code_limiter.success(client)
            else:
                log.warning("web: wrong setup code from %s", client)
                server.code_limiter.failure(client)
                errors["code"] = _("That setup code is not valid (or was used already).")
                status = 401
        if errors:
            return await self._setup(request, errors, status=status, code=code)
        if proven and (session is None or not self.press_proof.use(session.sid)):
            # The press proof ran out between the two looks: the code is needed after all.
            message = _("Type the setup code from the printed ticket, or press ACCEPT.")
            return await self._setup(request, {"code": message}, status=400, code=code)
        await server.credentials.set_password(password)
        # Whichever proof was used, a code printed earlier must not reset this password.
        await server.credentials.consume_setup_code()
        server.sessions.drop_all()
        target = "/board" if server.services.pairing().paired else "/pairing"
        return server.guard.sign_in(request, target)

    def password_errors(self, password: str, confirm: str) -> dict[str, str]:
        _ = self.server.locale().gettext
        problem = password_problem(password)
        errors: dict[str, str] = {}
        if problem and len(password) < MIN_PASSWORD:
            errors["password"] = _("Use at least {n} characters.").format(n=MIN_PASSWORD)
        elif problem:
            errors["password"] = _("Use at most {n} characters.").format(n=MAX_PASSWORD)
        if password != confirm:
            errors["confirm"] = _("The two passwords differ.")
        return errors
