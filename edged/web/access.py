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
from typing import Any

from aiohttp import web

from edged.onboarding import PASSWORD_FILE as HOTSPOT_PASSWORD_FILE
from edged.onboarding import read_hotspot_password
from edged.state import FixedKey
from edged.web.guard import COOKIE
from edged.web.http import json_response, maybe_await, redirect, refusal
from edged.web.live import Live
from edged.web.security import (
    MAX_PASSWORD,
    MAX_PIN,
    MIN_PASSWORD,
    MIN_PIN,
    format_code,
    normalize_code,
    password_problem,
    pin_problem,
)
from edged.web.sessions import clean_name, device_name
from edged.web.site import Site

log = logging.getLogger(__name__)


PRESS_WINDOW = 60.0  # seconds to press both buttons on the box after starting the proof
PROVEN_FOR = 600.0  # seconds a proven browser has to choose the password
# Panel results the waiting page tells of: a press that went to an order (it decided or
# tried to decide one), or a brief both press that only silenced the buzzer.
ORDER_RESULTS = frozenset({"accepted", "cancelled", "queued", "refused", "silenced"})


def minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


class PressProof:
    """Proof of physical access by the box's own buttons (the printed code is the other
    way): both buttons held together, then let go (the panel's ``proof`` gesture), which no
    order decision uses. A browser opens a 60 s window; the next proof gesture inside it
    proves that browser, which may then set the password (first visit or a forgotten
    one). A press that went to an order meanwhile proves nothing and is remembered, so the
    page can say so. One window at a time, and a window open for one browser is not taken
    over by another (it would be proven by a person looking at the first)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._key: str | None = None
        self._deadline = 0.0
        self._proven: dict[str, float] = {}
        self._other: dict[str, str] | None = None

    def start(self, key: str) -> float | None:
        """Open the window for session ``key``; returns its seconds, or None while another
        browser's window is open."""
        if self.open and self._key != key:
            return None
        self._key = key
        self._deadline = self.clock() + PRESS_WINDOW
        self._other = None
        return PRESS_WINDOW

    @property
    def open(self) -> bool:
        return self._key is not None and self.clock() < self._deadline

    def press(self) -> bool:
        """Both buttons were pressed together: ``True`` when that proved a browser (the
        panel then leaves the press out of everything else)."""
        if not self.open or self._key is None:
            return False
        self._proven = {k: v for k, v in self._proven.items() if v > self.clock()}
        self._proven[self._key] = self.clock() + PROVEN_FOR
        self._key = None
        return True

    def busy_for(self) -> float:
        """Seconds another browser's window stays open (0: none is)."""
        return max(0.0, self._deadline - self.clock()) if self.open else 0.0

    def went_elsewhere(self, result: str, order_code: str) -> None:
        """A press while the window is open that was no proof (e.g. it accepted an order)."""
        if self.open and result in ORDER_RESULTS:
            self._other = {"result": result, "code": order_code}

    def state(self, key: str) -> tuple[str, float, dict[str, str] | None]:
        """``proven``, ``waiting`` (with seconds left) or ``idle`` for session ``key``, and
        the last press in its window that went to an order instead."""
        now = self.clock()
        if self._proven.get(key, 0.0) > now:
            return ("proven", 0.0, None)
        if self._key == key and now < self._deadline:
            return ("waiting", self._deadline - now, self._other)
        return ("idle", 0.0, None)

    def use(self, key: str) -> bool:
        """Spend ``key``'s proof (once): ``True`` when it was proven and still fresh."""
        return self._proven.pop(key, 0.0) > self.clock()


class Access:
    """First visit, sign in and out, the setup ticket."""

    def __init__(self, site: Site, live: Live) -> None:
        self.site = site
        self.live = live  # a sign-in that ends closes its streams
        self.press_proof = PressProof()
        self.hotspot_password_file = HOTSPOT_PASSWORD_FILE
        # A staff PIN exists (read at start, kept current by staff_pin_submit).
        self.staff_pin_set = False

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
        r.add_post("/devices/revoke", self.device_revoke)
        r.add_post("/devices/rename", self.device_rename)
        r.add_post("/staff-pin", self.staff_pin_submit)

    # -- setup ticket ----------------------------------------------------------------------

    async def print_setup_ticket(self) -> None:
        """Make a fresh setup code and print it with the box's addresses and link states.

        Any older code stops working. The code is never logged (only in the demo).
        """
        site = self.site
        _ = site.locale().gettext
        code = await site.credentials.new_setup_code()
        # Physical proof beats any guessing so far: nobody can have tried this code yet.
        site.code_limiter.reset()
        urls = await site.refresh_urls()
        state = site.services.state
        pairing = site.services.pairing()
        lines = [site.services.config().box.name, _("SETUP"), "", *urls, ""]
        lines.append(_("Cloud: {state}").format(state=site.status.link_word(state.get("link"))))
        if pairing.paired:
            name = pairing.selling_point_name or str(pairing.selling_point_id)
            lines.append(_("Paired with: {name}").format(name=name))
        else:
            lines.append(_("Paired: no"))
        for name, health in sorted(state.printers().items()):
            word = site.status.printer_word(
                health.get("state") if isinstance(health, dict) else None
            )
            lines.append(_("Printer {name}: {state}").format(name=name, state=word))
        bridges: tuple[tuple[FixedKey, str], ...] = (
            ("bridge.mqtt", _("POS link (MQTT)")),
            ("bridge.serial", _("POS link (serial)")),
        )
        for key, label in bridges:
            value = state.get(key)
            if value is not None and value != "disabled":
                lines.append(f"{label}: {site.status.part_word(str(value))}")
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
        spooler = site.services.spooler
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
        if site.services.demo:
            log.warning("web: demo setup code: %s", format_code(code))

    # -- pages -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return redirect("/board")

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if not await self.site.credentials.has_password():
            return redirect("/setup")
        session = self.site.guard.session(request)
        if session is not None and session.authenticated:
            return redirect("/board")
        return self._login(request, "")

    def _login(self, request: web.Request, error: str, *, status: int = 200) -> web.Response:
        _ = self.site.locale().gettext
        return self.site.pages.render(
            request,
            "login.html",
            _("Sign in"),
            status=status,
            nav=False,
            error=error,
            staff_pin=self.staff_pin_set,
        )

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        _ = site.locale().gettext
        client = site.guard.client_id(request)
        # Counted before the slow check: concurrent guesses cannot all slip through.
        wait = site.limiter.begin(client)
        if wait > 0:
            return self._too_many(request, wait, self._login)
        form = await request.post()
        password = str(form.get("password", ""))
        role = None
        if await site.credentials.check_password(password):
            role = "owner"
        elif await site.credentials.check_staff_pin(password):
            role = "staff"
        if role is not None:
            site.limiter.success(client)
            if form.get("keep") != "on":
                return await site.guard.sign_in(request, "/board", role=role)
            name = clean_name(str(form.get("device_name", ""))) or device_name(
                request.headers.get("User-Agent", "")
            )
            log.info("web: device %r kept signed in (%s)", name, role)
            return await site.guard.sign_in(request, "/board", device=True, name=name, role=role)
        log.warning("web: wrong admin password from %s", client)
        site.limiter.failure(client)
        return self._login(request, _("Wrong password."), status=401)

    def _too_many(
        self, request: web.Request, wait: float, page: Callable[..., web.Response]
    ) -> web.Response:
        _ = self.site.locale().gettext
        message = _("Too many wrong attempts. Try again in about {minutes} min.")
        response = page(request, message.format(minutes=minutes(wait)), status=429)
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response

    async def logout_submit(self, request: web.Request) -> web.StreamResponse:
        session = self.site.guard.session(request)
        if session is not None:
            # A device kept signed in is revoked with it; written before the answer.
            self.site.sessions.drop(session)
            await self.site.sessions.save()
            self.live.end_sessions({session.key})
        response = redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # -- first visit and new password ------------------------------------------------------

    async def setup_page(self, request: web.Request) -> web.StreamResponse:
        return await self._setup(request, {})

    async def _setup(
        self, request: web.Request, errors: Mapping[str, str], *, status: int = 200, code: str = ""
    ) -> web.Response:
        _ = self.site.locale().gettext
        first = not await self.site.credentials.has_password()
        has_code = await self.site.credentials.has_setup_code()
        session = self.site.guard.session(request)
        proven = session is not None and self.press_proof.state(session.key)[0] == "proven"
        return self.site.pages.render(
            request,
            "setup.html",
            _("First visit") if first else _("New password"),
            status=status,
            nav=False,
            first=first,
            has_code=has_code,
            proven=proven,
            window=int(PRESS_WINDOW),
            waiting_orders=self.waiting_orders(),
            errors=errors,
            code=code[:40],
            scripts=("setup.js",),
        )

    def waiting_orders(self) -> int:
        return int(self.site.services.state.get("waiting_orders") or 0)

    async def press_start(self, request: web.Request) -> web.StreamResponse:
        """Open the both-buttons window for this browser (CSRF-checked by the guard)."""
        session = self.site.guard.session(request)
        if session is None:
            return refusal("NO_SESSION", "reload the page", 400)
        seconds = self.press_proof.start(session.key)
        if seconds is None:
            left = round(self.press_proof.busy_for())
            log.warning("web: a proof of access was asked while another browser waits")
            return json_response(
                {"ok": False, "code": "PROOF_BUSY", "state": "busy", "seconds": left}, 409
            )
        log.info("web: waiting %.0f s for both panel buttons to prove access", seconds)
        return await self.press_state(request)

    async def press_state(self, request: web.Request) -> web.StreamResponse:
        """Where this browser's proof is, what a press in its window did instead, and how
        many orders wait (the page warns that one button alone would decide one)."""
        session = self.site.guard.session(request)
        state, left, other = self.press_proof.state(session.key) if session else ("idle", 0, None)
        _ = self.site.locale().gettext
        went = ""
        if other is not None:
            went = {
                "accepted": _("That press accepted order #{code}: it proves nothing."),
                "cancelled": _("That press cancelled order #{code}: it proves nothing."),
                "queued": _("That press decided order #{code} (queued): it proves nothing."),
                "refused": _(
                    "That press went to order #{code} and was refused: it proves nothing."
                ),
                "silenced": _(
                    "That press only silenced the buzzer. Hold both buttons until the click, "
                    "then let go."
                ),
            }[other["result"]].format(code=other["code"] or "?")
        return json_response(
            {
                "ok": True,
                "state": state,
                "seconds": round(left),
                "waiting_orders": self.waiting_orders(),
                "went_elsewhere": went,
            }
        )

    def button_pressed(self) -> bool:
        """Both panel buttons were held, then let go; ``True`` when that proved a browser."""
        proved = self.press_proof.press()
        if proved:
            log.info("web: both panel buttons held: proof of access for the waiting browser")
        return proved

    def press_went_elsewhere(self, result: str, order_code: str) -> None:
        """A panel press that was no proof of access (the panel reports each one)."""
        if self.press_proof.open and result in ORDER_RESULTS:
            log.info(
                "web: a panel press (%s, order %s) was no proof of access",
                result,
                order_code or "-",
            )
        self.press_proof.went_elsewhere(result, order_code)

    async def setup_submit(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        _ = site.locale().gettext
        client = site.guard.client_id(request)
        form = await request.post()
        code = str(form.get("code", ""))
        password = str(form.get("password", ""))
        confirm = str(form.get("confirm", ""))
        # Every problem at once, and the code as typed: a person fixes all in one go.
        errors = self.password_errors(password, confirm)
        session = site.guard.session(request)
        proven = session is not None and self.press_proof.state(session.key)[0] == "proven"
        status = 400
        if not proven and not normalize_code(code):
            errors["code"] = _("Type the setup code from the printed ticket, or press ACCEPT.")
        elif not proven:
            # Setup codes have their own throttle: guessing passwords never blocks them.
            wait = site.code_limiter.begin(client)
            if wait > 0:
                message = _("Too many wrong attempts. Try again in about {minutes} min.")
                response = await self._setup(
                    request, {"": message.format(minutes=minutes(wait))}, status=429, code=code
                )
                response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return response
            if await site.credentials.check_setup_code(code):
                site.code_limiter.success(client)
            else:
                log.warning("web: wrong setup code from %s", client)
                site.code_limiter.failure(client)
                errors["code"] = _("That setup code is not valid (or was used already).")
                status = 401
        if errors:
            return await self._setup(request, errors, status=status, code=code)
        if proven and (session is None or not self.press_proof.use(session.key)):
            # The press proof ran out between the two looks: the code is needed after all.
            message = _("Type the setup code from the printed ticket, or press ACCEPT.")
            return await self._setup(request, {"code": message}, status=400, code=code)
        await site.credentials.set_password(password)
        # Whichever proof was used, a code printed earlier must not reset this password.
        await site.credentials.consume_setup_code()
        # A new password ends every sign-in, devices kept signed in too.
        site.sessions.drop_all()
        self.live.end_sessions(None)
        target = "/board" if site.services.pairing().paired else "/pairing"
        return await site.guard.sign_in(request, target)

    def password_errors(self, password: str, confirm: str) -> dict[str, str]:
        _ = self.site.locale().gettext
        problem = password_problem(password)
        errors: dict[str, str] = {}
        if problem and len(password) < MIN_PASSWORD:
            errors["password"] = _("Use at least {n} characters.").format(n=MIN_PASSWORD)
        elif problem:
            errors["password"] = _("Use at most {n} characters.").format(n=MAX_PASSWORD)
        if password != confirm:
            errors["confirm"] = _("The two passwords differ.")
        return errors

    # -- devices kept signed in ------------------------------------------------------------

    def devices(self, request: web.Request) -> dict[str, Any]:
        """The setup page's devices section: the devices kept signed in (name, last use,
        this one, staff or owner) and the staff PIN's state."""
        _ = self.site.locale().gettext
        locale = self.site.locale()
        mine = self.site.guard.session(request)
        notices = {"set": _("Staff PIN saved."), "removed": _("Staff PIN removed.")}
        errors = {
            "digits": _("Use {min} to {max} digits.").format(min=MIN_PIN, max=MAX_PIN),
            "differ": _("The two PINs differ."),
        }
        return {
            "list": [
                {
                    "ref": s.ref,
                    "name": s.name,
                    "last_used": locale.day_datetime(s.last_seen),
                    "signed_in": locale.date(s.created),
                    "this": mine is not None and mine.key == s.key,
                    "staff": s.role == "staff",
                }
                for s in self.site.sessions.devices()
            ],
            "revoked": request.query.get("revoked") == "1",
            "pin_set": self.staff_pin_set,
            "pin_notice": notices.get(request.query.get("pin", ""), ""),
            "pin_error": errors.get(request.query.get("pin_error", ""), ""),
        }

    async def device_revoke(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        revoked = self.site.sessions.revoke(str(form.get("ref", ""))[:64])
        if revoked is None:
            return redirect("/settings#section-devices")
        # Written before the answer: a revoked device never comes back with a restart.
        await self.site.sessions.save()
        self.live.end_sessions({revoked.key})
        log.info("web: device %r signed out from the page", revoked.name)
        mine = self.site.guard.session(request)
        if mine is not None and mine.key == revoked.key:
            response = redirect("/login")
            response.del_cookie(COOKIE, path="/")
            return response
        return redirect("/settings?revoked=1#section-devices")

    async def device_rename(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if self.site.sessions.rename(str(form.get("ref", ""))[:64], str(form.get("name", ""))):
            await self.site.sessions.save()
        return redirect("/settings#section-devices")

    async def staff_pin_submit(self, request: web.Request) -> web.StreamResponse:
        """Set or remove the staff PIN (the owner only: the guard keeps staff out). Either
        way the staff sessions end: whoever knew the old PIN signs in again."""
        site = self.site
        form = await request.post()
        if form.get("remove"):
            await site.credentials.set_staff_pin(None)
            self.staff_pin_set = False
            outcome = "pin=removed"
        else:
            pin, confirm = str(form.get("pin", "")), str(form.get("confirm", ""))
            if pin_problem(pin):
                return redirect("/settings?pin_error=digits#section-devices")
            if pin != confirm:
                return redirect("/settings?pin_error=differ#section-devices")
            await site.credentials.set_staff_pin(pin)
            self.staff_pin_set = True
            outcome = "pin=set"
        ended = site.sessions.drop_role("staff")
        await site.sessions.save()
        self.live.end_sessions(ended)
        return redirect(f"/settings?{outcome}#section-devices")
