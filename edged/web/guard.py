"""The guard every request passes first: session cookie, sign-in, CSRF token, same origin,
and the hardening headers on the way out.

* a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) identifies the browser;
  a device kept signed in gets a persistent one (``Max-Age``), any other a session cookie;
  everything but :data:`PUBLIC_PATHS` and static files needs a signed-in session;
* every state change (any method but GET/HEAD/OPTIONS) needs the session's CSRF token, as the
  ``csrf`` form field or the ``X-CSRF-Token`` header, and a same-origin ``Origin`` if sent;
* a staff session (the staff PIN) reaches only the board and the menu (:data:`STAFF_PATHS`):
  never the settings, the pairing or the devices list.

A request that meets a journal that cannot store or read right now (disk full, failing
card) is answered 503 "the box cannot store right now", in the box's language, never 500:
nothing was stored, and trying again later may work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from edged.i18n import Locale
from edged.journal.writer import JournalError
from edged.web.http import Stop, harden, redirect, refusal, wants_json
from edged.web.kitchen import KITCHEN_PATHS
from edged.web.security import client_key, csrf_ok
from edged.web.sessions import DEVICE_LIFETIME, Session, Sessions

log = logging.getLogger(__name__)

COOKIE = "edged_session"
SESSION_KEY = web.RequestKey("session", Session)
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/setup",
        "/setup/press",
        "/setup/press/state",
        "/health",
        "/metrics",
        "/favicon.ico",
    }
)
# What a staff session may use: the board, its data and decisions, and signing out.
STAFF_PATHS = frozenset(
    {"/", "/board", "/api/status", "/api/board", "/api/history", "/api/panel/press", "/events"}
    | {"/menu", "/api/menu"}
    | {"/logout"}
    | KITCHEN_PATHS
)
STAFF_PREFIXES = ("/api/orders/", "/api/menu/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_AFTER = "5"  # seconds a client waits before it tries a journal that failed again
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Guard:
    """Sessions and the middleware for one server: ``sessions`` are its signed-in browsers,
    ``locale`` gives the box's language now, ``secure`` says whether cookies go over TLS
    only (read at each sign-in)."""

    def __init__(
        self, sessions: Sessions, locale: Callable[[], Locale], secure: Callable[[], bool]
    ) -> None:
        self.sessions = sessions
        self.locale = locale
        self.secure = secure
        self.requests = 0  # every request seen, for /metrics

    def session(self, request: web.Request) -> Session | None:
        session = request.get(SESSION_KEY)
        return session if isinstance(session, Session) else None

    def signed_in(self, request: web.Request) -> Session:
        """The signed-in session (the middleware let only those through to this handler)."""
        session = self.session(request)
        if session is None:
            raise Stop(401, "UNAUTHENTICATED", "sign in first")
        return session

    def ensure_session(self, request: web.Request, response: web.StreamResponse) -> Session:
        session = self.session(request)
        if session is None:
            token, session = self.sessions.new(client=self.client_id(request))
            request[SESSION_KEY] = session
            self.set_cookie(response, token, session)
        return session

    def set_cookie(self, response: web.StreamResponse, token: str, session: Session) -> None:
        # A device kept signed in outlives the browser; any other sign-in ends with it.
        max_age = int(DEVICE_LIFETIME) if session.device else None
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=self.secure(),
            path="/",
            max_age=max_age,
        )

    async def sign_in(
        self,
        request: web.Request,
        location: str,
        *,
        device: bool = False,
        name: str = "",
        role: str = "owner",
    ) -> web.StreamResponse:
        """A fresh signed-in session (an id planted before sign-in is worth nothing),
        written to the sessions file before the answer; ``device``: kept signed in."""
        old = self.session(request)
        if old is not None:
            self.sessions.drop(old)
        token, session = self.sessions.new(authenticated=True, device=device, name=name, role=role)
        await self.sessions.save()
        response = redirect(location)
        self.set_cookie(response, token, session)
        return response

    @staticmethod
    def client_id(request: web.Request) -> str:
        """Who is asking: an IPv4 address or an IPv6 /64 (see :func:`client_key`)."""
        return client_key(request.remote)

    @staticmethod
    def origin_ok(request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            return False
        return bool(netloc) and netloc == request.host

    def cannot_store(self, request: web.Request) -> web.Response:
        """503: the journal cannot store (or read) right now; said in the box's language."""
        message = self.locale().gettext(
            "The box cannot store right now: its storage is failing. Nothing was saved; "
            "try again in a moment."
        )
        if wants_json(request) or request.method not in SAFE_METHODS:
            response = refusal("JOURNAL_UNAVAILABLE", message, 503)
        else:
            response = web.Response(text=message, status=503)
        response.headers["Retry-After"] = RETRY_AFTER
        return response

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            request[SESSION_KEY] = session
        path = request.path
        public = path in PUBLIC_PATHS or path.startswith("/static/")
        try:
            if not public and (session is None or not session.authenticated):
                if request.method in SAFE_METHODS and not wants_json(request):
                    response: web.StreamResponse = redirect("/login")
                    harden(response, path)
                    return response
                raise Stop(401, "UNAUTHENTICATED", "sign in first")
            if (
                not public
                and session is not None
                and session.role == "staff"
                and not (path in STAFF_PATHS or path.startswith(STAFF_PREFIXES))
            ):
                if request.method in SAFE_METHODS and not wants_json(request):
                    response = redirect("/board")
                    harden(response, path)
                    return response
                raise Stop(403, "OWNER_ONLY", "only the owner's password may do this")
            if request.method not in SAFE_METHODS:
                supplied = request.headers.get("X-CSRF-Token")
                if supplied is None and request.content_type in (
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ):
                    form = await request.post()
                    value = form.get("csrf")
                    supplied = value if isinstance(value, str) else None
                if session is None or not csrf_ok(session, supplied) or not self.origin_ok(request):
                    log.warning("web: refused %s %s: bad CSRF token", request.method, path)
                    raise Stop(403, "CSRF", "missing or wrong CSRF token; reload the page")
            response = await handler(request)
        except Stop as stop:
            response = stop.response
        except JournalError as exc:
            log.error("web: %s %s: the journal cannot store: %s", request.method, path, exc)
            response = self.cannot_store(request)
        except web.HTTPException as exc:
            harden(exc, path)
            raise
        harden(response, path)
        return response
