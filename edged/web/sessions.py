"""Browser sessions: who is signed in, kept across daemon restarts.

* A session is known by its token (the cookie); the box keeps only the token's SHA-256
  (:attr:`Session.key`), in memory and on disk, never the token. The CSRF token is derived
  from the session token (an HMAC), so it is stored nowhere either and a page that stayed
  open across a restart keeps sending the right one.
* Signed-in sessions are written to ``web-sessions.json`` beside the journal (mode 0600,
  written atomically: temporary file, fsync, rename), only when they change: a sign-in, a
  sign-out, a revocation, an expiry, and a session's last use at most every
  :data:`LAST_USE_EVERY` seconds. A sign-in form shown to nobody-yet stays in memory.
* "Keep this device signed in" makes a *device* session: months long, a persistent cookie,
  listed on the setup page by a name and its last use, revocable one by one. Signing out
  ends the session it is (device or not); a new password ends every session.
* A session signed in with the staff PIN has the role ``staff``: the board only (see
  :mod:`edged.web.guard`); a new staff PIN ends the staff sessions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.journal.opening import sync_directory

log = logging.getLogger(__name__)

FILE_NAME = "web-sessions.json"
# Last use is written this coarsely: a tablet polling all day costs one write in minutes.
LAST_USE_EVERY = 300.0
DEVICE_LIFETIME = 180 * 86400.0  # a counter tablet signs in twice a year
DEVICE_IDLE = 60 * 86400.0  # ...or again after two months unused
MAX_NAME = 60


def token_key(token: str) -> str:
    """What the box keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def csrf_for(token: str) -> str:
    """The session's CSRF token, derived from its (secret) session token."""
    mac = hmac.new(token.encode("utf-8", "replace"), b"edged csrf", hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def device_name(user_agent: str) -> str:
    """A default name for a device from its User-Agent ("Chrome on Android"); the owner
    gives a better one. Only a label: nothing is decided on it."""
    ua = user_agent[:512]
    browser = next(
        (
            name
            for pattern, name in (
                (r"Edg/", "Edge"),
                (r"OPR/|Opera", "Opera"),
                (r"Firefox/|FxiOS/", "Firefox"),
                (r"SamsungBrowser/", "Samsung Internet"),
                (r"Chrome/|CriOS/|Chromium/", "Chrome"),
                (r"Safari/", "Safari"),
            )
            if re.search(pattern, ua)
        ),
        "",
    )
    system = next(
        (
            name
            for pattern, name in (
                (r"iPad", "iPad"),
                (r"iPhone", "iPhone"),
                (r"Android", "Android"),
                (r"Windows", "Windows"),
                (r"Mac OS X|Macintosh", "Mac"),
                (r"CrOS", "ChromeOS"),
                (r"Linux", "Linux"),
            )
            if re.search(pattern, ua)
        ),
        "",
    )
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Browser"


def clean_name(text: str) -> str:
    """A device name as typed: printable, one line, short."""
    printable = "".join(c if c.isprintable() else " " for c in text[: MAX_NAME * 4])
    return " ".join(printable.split())[:MAX_NAME]


@dataclass
class Session:
    """A browser's session; ``authenticated`` once the admin signed in."""

    key: str
    csrf: str
    created: float
    last_seen: float
    authenticated: bool = False
    # Who asked for it (see client_key): anonymous sessions are capped per client.
    client: str = ""
    # Selling points offered after a Sinqro login, waiting for the picker.
    selling_points: list[tuple[int, str, str]] = field(default_factory=list)
    # Kept signed in: a named device with a long life and a persistent cookie.
    device: bool = False
    name: str = ""
    # When last_seen was last written (it is written coarsely).
    saved_seen: float = 0.0
    # "owner" (the password) or "staff" (the staff PIN: the board only).
    role: str = "owner"

    @property
    def ref(self) -> str:
        """The id the devices list shows and revokes by (a piece of the hash)."""
        return self.key[:16]

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "created": self.created,
            "last_seen": self.last_seen,
            "device": self.device,
            "name": self.name,
            "role": self.role,
        }

    @classmethod
    def from_record(cls, data: Any) -> Session | None:
        """A stored session, or None when the record is not one."""
        if not isinstance(data, dict):
            return None
        key, created, seen = data.get("key"), data.get("created"), data.get("last_seen")
        if not (isinstance(key, str) and re.fullmatch(r"[0-9a-f]{64}", key)):
            return None
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (created, seen)
        ):
            return None
        name = data.get("name")
        assert isinstance(created, (int, float)) and isinstance(seen, (int, float))
        return cls(
            key=key,
            csrf="",  # known again when its token comes back (csrf_for)
            created=float(created),
            last_seen=float(seen),
            authenticated=True,
            device=data.get("device") is True,
            name=clean_name(name) if isinstance(name, str) else "",
            saved_seen=float(seen),
            role="staff" if data.get("role") == "staff" else "owner",
        )


class Sessions:
    """Sessions with idle and absolute expiry; signed-in ones kept in ``path``.

    Anonymous sessions (a sign-in or setup form that was shown) and signed-in ones are
    capped separately, so a flood of ``GET /login`` can never push a signed-in session
    out; and each client may hold only :attr:`MAX_ANONYMOUS_PER_CLIENT` anonymous ones, so
    a flood from one client pushes out its own, not the owner's half-finished sign-in.

    Changes mark the file dirty; :meth:`save` writes it (callers that revoke await it
    before they answer, so a revoked session never comes back with a restart), and a use
    due for its coarse last-use write saves in the background.
    """

    MAX_AUTHENTICATED = 64
    MAX_ANONYMOUS = 512
    MAX_ANONYMOUS_PER_CLIENT = 8

    def __init__(
        self,
        *,
        idle: float,
        lifetime: float,
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.path = path
        self.clock = clock
        self._by_key: dict[str, Session] = {}
        self._dirty = False
        self._lock = asyncio.Lock()
        self._saving: asyncio.Task[None] | None = None
        self.writes = 0

    # -- the file ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the kept sessions (blocking; at start). A damaged file signs everyone out."""
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = data["sessions"]
            if not isinstance(records, list):
                raise TypeError("sessions is not a list")
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
            log.error("web: %s cannot be read (%s); everyone signs in again", self.path, exc)
            return
        now = self.clock()
        for record in records:
            session = Session.from_record(record)
            if session is None:
                log.warning("web: a damaged entry in %s was dropped", self.path.name)
                self._dirty = True
            elif self._expired(session, now):
                self._dirty = True
            else:
                self._by_key[session.key] = session

    async def save(self) -> None:
        """Write the signed-in sessions if anything changed since the last write."""
        if self.path is None:
            self._dirty = False
            return
        async with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            kept = [s for s in self._by_key.values() if s.authenticated]
            for s in kept:
                s.saved_seen = s.last_seen
            text = json.dumps({"version": 1, "sessions": [s.record() for s in kept]}, indent=1)
            try:
                await asyncio.to_thread(self._write, text + "\n")
                self.writes += 1
            except OSError as exc:
                self._dirty = True
                log.error("web: cannot write %s: %s", self.path.name, exc)

    def _write(self, text: str) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older file of another mode is not kept
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        sync_directory(self.path.parent)

    def _changed(self) -> None:
        self._dirty = True

    def _save_soon(self) -> None:
        """A background save (a coarse last use); at most one at a time."""
        if self._saving is not None and not self._saving.done():
            return
        with contextlib.suppress(RuntimeError):  # no loop: the next save writes it
            self._saving = asyncio.get_running_loop().create_task(self.save())

    # -- sessions ----------------------------------------------------------------------------

    def new(
        self,
        *,
        authenticated: bool = False,
        client: str = "",
        device: bool = False,
        name: str = "",
        role: str = "owner",
    ) -> tuple[str, Session]:
        """A fresh session: its token (for the cookie, kept nowhere) and the session."""
        self._prune(authenticated, client)
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(
            key=token_key(token),
            csrf=csrf_for(token),
            created=now,
            last_seen=now,
            authenticated=authenticated,
            client=client,
            device=device and authenticated,
            name=clean_name(name) if device else "",
            saved_seen=now,
            role="staff" if role == "staff" else "owner",
        )
        self._by_key[session.key] = session
        if authenticated:
            self._changed()
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 256:
            return None
        key = token_key(token)
        session = self._by_key.get(key)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            self._forget(key)
            return None
        if not session.csrf:
            session.csrf = csrf_for(token)
        session.last_seen = now
        if session.authenticated and now - session.saved_seen >= LAST_USE_EVERY:
            self._changed()
            self._save_soon()
        return session

    def devices(self) -> list[Session]:
        """The devices kept signed in, most recently used first."""
        now = self.clock()
        alive = [s for s in self._by_key.values() if s.device and not self._expired(s, now)]
        return sorted(alive, key=lambda s: -s.last_seen)

    def revoke(self, ref: str) -> Session | None:
        """End the device session listed as ``ref``; the one ended, or None."""
        for session in self.devices():
            if hmac.compare_digest(session.ref, ref):
                self._forget(session.key)
                return session
        return None

    def rename(self, ref: str, name: str) -> bool:
        for session in self.devices():
            if hmac.compare_digest(session.ref, ref):
                session.name = clean_name(name) or session.name
                self._changed()
                return True
        return False

    def drop(self, session: Session) -> None:
        self._forget(session.key)

    def drop_role(self, role: str) -> set[str]:
        """End every session of ``role`` (the staff PIN changed); their keys."""
        ended = {k for k, s in self._by_key.items() if s.authenticated and s.role == role}
        for key in ended:
            self._forget(key)
        return ended

    def drop_all(self) -> None:
        """Sign everyone out, devices too (the password changed)."""
        if any(s.authenticated for s in self._by_key.values()):
            self._changed()
        self._by_key.clear()

    def _forget(self, key: str) -> None:
        session = self._by_key.pop(key, None)
        if session is not None and session.authenticated:
            self._changed()

    def _expired(self, session: Session, now: float) -> bool:
        if session.device:
            idle, lifetime = DEVICE_IDLE, DEVICE_LIFETIME
        else:
            idle, lifetime = self.idle, self.lifetime
        return now - session.last_seen > idle or now - session.created > lifetime

    def _prune(self, authenticated: bool, client: str) -> None:
        now = self.clock()
        for key, s in list(self._by_key.items()):
            if self._expired(s, now):
                self._forget(key)
        if authenticated:
            mine = [s for s in self._by_key.values() if s.authenticated]
            limit = self.MAX_AUTHENTICATED
        else:
            anonymous = [s for s in self._by_key.values() if not s.authenticated]
            mine = [s for s in anonymous if s.client == client]
            limit = self.MAX_ANONYMOUS_PER_CLIENT
            if len(mine) < limit and len(anonymous) >= self.MAX_ANONYMOUS:
                # Full: the client holding the most anonymous sessions gives one up.
                counts: dict[str, int] = {}
                for s in anonymous:
                    counts[s.client] = counts.get(s.client, 0) + 1
                greediest = max(counts, key=lambda c: counts[c])
                mine = [s for s in anonymous if s.client == greediest]
                limit = len(mine)
        while len(mine) >= limit and mine:
            oldest = min(mine, key=lambda s: s.last_seen)
            mine.remove(oldest)
            self._forget(oldest.key)
