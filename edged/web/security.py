"""Who may use the page: the admin password, the printed setup code, sessions, CSRF tokens
and the limiter that slows down guessing.

* The admin password and the setup code are stored only as salted scrypt hashes: the
  password beside the journal (``Journal.kept_get``, so a rebuilt journal keeps it), the
  code in the journal's ``kv`` table. Checks use a constant-time compare, and hashing
  runs on a thread because slow parameters are the point.
* The setup code is printed on the box's own printer, so knowing it proves physical access.
  It is single use; a code made while a password exists (a reset from the panel) expires.
* Sessions live in memory: a restart signs everyone out, which is fine for a box by the
  counter. Each session has its own CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edged.journal.store import Journal

log = logging.getLogger(__name__)

KV_ADMIN = "web.admin_password"
KV_SETUP_CODE = "web.setup_code"
# scrypt cost: the scrypt paper's interactive-login parameters, 2**14 * 8 * 128 bytes =
# 16 MiB per check (~0.05 s on a PC, a few tenths on a Pi). Stored hashes carry their own
# parameters, so raising these later still verifies old ones. Wrong guesses are also
# slowed and rate-limited by the login limiter.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD = 10
MAX_PASSWORD = 200
# Unambiguous alphabet for a code read off a paper ticket (no 0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
RESET_CODE_TTL = 3600.0


@dataclass(frozen=True)
class ScryptHash:
    """A salted scrypt hash with its parameters, serialisable to JSON."""

    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def to_json(self, **extra: object) -> str:
        return json.dumps(
            {
                "algo": "scrypt",
                "n": self.n,
                "r": self.r,
                "p": self.p,
                "salt": base64.b64encode(self.salt).decode(),
                "hash": base64.b64encode(self.digest).decode(),
                **extra,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> tuple[ScryptHash, dict[str, object]]:
        data = json.loads(text)
        return (
            cls(
                salt=base64.b64decode(data["salt"]),
                digest=base64.b64decode(data["hash"]),
                n=int(data["n"]),
                r=int(data["r"]),
                p=int(data["p"]),
            ),
            data,
        )


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1_048_576, dklen=32
    )


def hash_secret(secret: str, *, n: int = SCRYPT_N) -> ScryptHash:
    """Hash ``secret`` with a fresh 16-byte salt (blocking: call on a thread)."""
    salt = secrets.token_bytes(16)
    return ScryptHash(salt=salt, digest=_scrypt(secret, salt, n, SCRYPT_R, SCRYPT_P), n=n)


def verify_secret(secret: str, stored: ScryptHash) -> bool:
    """Constant-time check of ``secret`` against ``stored`` (blocking: call on a thread)."""
    digest = _scrypt(secret, stored.salt, stored.n, stored.r, stored.p)
    return hmac.compare_digest(digest, stored.digest)


def new_setup_code() -> str:
    """A fresh code, shown as ``ABCD-EFGH``; about 40 bits, guarded by the limiter."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalize_code(text: str) -> str:
    """What the user typed, forgiving of case, spaces and dashes."""
    return "".join(c for c in text.upper() if c.isalnum())


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable as the admin password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"use at most {MAX_PASSWORD} characters"
    return None


class Credentials:
    """The admin password and setup code, stored hashed (see the module docstring)."""

    def __init__(self, journal: Journal, *, scrypt_n: int = SCRYPT_N) -> None:
        self.journal = journal
        self.scrypt_n = scrypt_n

    async def has_password(self) -> bool:
        return await self.journal.kept_get(KV_ADMIN) is not None

    async def set_password(self, password: str) -> None:
        hashed = await asyncio.to_thread(hash_secret, password, n=self.scrypt_n)
        await self.journal.kept_set(KV_ADMIN, hashed.to_json(set_at=time.time()))
        log.info("web: admin password set")

    async def check_password(self, password: str) -> bool:
        raw = await self.journal.kept_get(KV_ADMIN)
        if raw is None:
            return False
        stored, _ = ScryptHash.from_json(raw)
        return await asyncio.to_thread(verify_secret, password, stored)

    async def has_setup_code(self) -> bool:
        raw = await self.journal.kv_get(KV_SETUP_CODE)
        if raw is None:
            return False
        _, data = ScryptHash.from_json(raw)
        expires = data.get("expires")
        return not isinstance(expires, (int, float)) or expires > time.time()

    async def new_setup_code(self) -> str:
        """Make, store (hashed) and return a fresh code; any older code stops working."""
        code = new_setup_code()
        hashed = await asyncio.to_thread(hash_secret, code, n=self.scrypt_n)
        expires = time.time() + RESET_CODE_TTL if await self.has_password() else None
        await self.journal.kv_set(KV_SETUP_CODE, hashed.to_json(expires=expires))
        return code

    async def check_setup_code(self, typed: str) -> bool:
        raw = await self.journal.kv_get(KV_SETUP_CODE)
        if raw is None:
            return False
        stored, data = ScryptHash.from_json(raw)
        expires = data.get("expires")
        if isinstance(expires, (int, float)) and expires <= time.time():
            return False
        return await asyncio.to_thread(verify_secret, normalize_code(typed), stored)

    async def consume_setup_code(self) -> None:
        await self.journal.kv_set(KV_SETUP_CODE, None)


@dataclass
class Session:
    """A browser's session; ``authenticated`` once the admin signed in."""

    sid: str
    csrf: str
    created: float
    last_seen: float
    authenticated: bool = False
    # Selling points offered after a Sinqro login, waiting for the picker.
    selling_points: list[tuple[int, str, str]] = field(default_factory=list)


class Sessions:
    """In-memory sessions with idle and absolute expiry."""

    MAX = 1000

    def __init__(
        self, *, idle: float, lifetime: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def new(self, *, authenticated: bool = False) -> Session:
        self._prune()
        now = self.clock()
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            authenticated=authenticated,
        )
        self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle or now - session.created > self.lifetime:
            self._by_id.pop(sid, None)
            return None
        session.last_seen = now
        return session

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def drop_all(self) -> None:
        """Sign everyone out (the password changed)."""
        self._by_id.clear()

    def _prune(self) -> None:
        now = self.clock()
        for sid, s in list(self._by_id.items()):
            if now - s.last_seen > self.idle or now - s.created > self.lifetime:
                del self._by_id[sid]
        # Anonymous sessions are cheap to make; never let them grow without bound.
        while len(self._by_id) >= self.MAX:
            oldest = min(self._by_id.values(), key=lambda s: (s.authenticated, s.last_seen))
            del self._by_id[oldest.sid]


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf, supplied or "")


class AttemptLimiter:
    """Slows down and then refuses guessing of passwords and setup codes.

    Every failure from a client makes its next answer slower (0.5 s, 1 s, 2 s ... up to
    ``max_delay``); after ``per_client`` failures within ``window`` seconds the client is
    refused outright until the window has passed, and ``overall`` failures from everyone
    together lock the door for all (a guesser with many addresses).
    """

    def __init__(
        self,
        *,
        per_client: int = 5,
        overall: int = 30,
        window: float = 300.0,
        max_delay: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window = window
        self.max_delay = max_delay
        self.clock = clock
        self.sleep = sleep
        self._failures: dict[str, list[float]] = {}
        self.refused = 0
        self.failed = 0

    def _recent(self, client: str) -> list[float]:
        cutoff = self.clock() - self.window
        times = [t for t in self._failures.get(client, []) if t > cutoff]
        if times:
            self._failures[client] = times
        else:
            self._failures.pop(client, None)
        return times

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        now = self.clock()
        mine = self._recent(client)
        everyone = sorted(t for c in list(self._failures) for t in self._recent(c))
        waits = []
        if len(mine) >= self.per_client:
            waits.append(mine[-self.per_client] + self.window - now)
        if len(everyone) >= self.overall:
            waits.append(everyone[-self.overall] + self.window - now)
        return max([0.0, *waits])

    def delay_for(self, client: str) -> float:
        """The slow-down applied to ``client``'s next answer after its failures so far."""
        count = len(self._recent(client))
        return 0.0 if count == 0 else min(self.max_delay, 0.5 * 2 ** (count - 1))

    async def failure(self, client: str) -> None:
        """Record a failure and wait the growing delay before the caller answers."""
        self.failed += 1
        self._failures.setdefault(client, []).append(self.clock())
        await self.sleep(self.delay_for(client))

    def success(self, client: str) -> None:
        self._failures.pop(client, None)
