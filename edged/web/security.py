"""Who may use the page: the admin password, the printed setup code, sessions, CSRF tokens
and the limiter that slows down guessing.

* The admin password, the staff PIN (it runs the board only) and the setup code are
  stored only as salted scrypt hashes: password and PIN beside the journal
  (``Journal.kept_get``, so a rebuilt journal keeps them), the code in the journal's
  ``kv`` table. Checks use a constant-time compare, and hashing
  runs on a thread because slow parameters are the point.
* The setup code is printed on the box's own printer, so knowing it proves physical access.
  It is single use; a code made while a password exists (a reset from the panel) expires.
* Sessions (kept across restarts, hashed at rest) are :mod:`edged.web.sessions`; each has
  its own CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from edged.journal.store import Journal
from edged.web.sessions import Session

log = logging.getLogger(__name__)

KV_ADMIN = "web.admin_password"
KV_STAFF_PIN = "web.staff_pin"
KV_SETUP_CODE = "web.setup_code"
# scrypt cost: the scrypt paper's interactive-login parameters, 2**14 * 8 * 128 bytes =
# 16 MiB per check (~0.05 s on a PC, a few tenths on a Pi). Stored hashes carry their own
# parameters, so raising these later still verifies old ones. Wrong guesses are also
# slowed and rate-limited by the login limiter.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
# A stored hash asking for more is damaged, not stronger (2**20 * 8 * 128 = 1 GiB).
MAX_SCRYPT_N = 2**18
# scrypt checks at a time: each takes 16 MiB and a core for a moment.
CONCURRENT_CHECKS = 1
MIN_PASSWORD = 10
MAX_PASSWORD = 200
# The staff PIN runs the board only; long enough that the limiter and scrypt hold it.
MIN_PIN = 6
MAX_PIN = 12
# Unambiguous alphabet for a code read off a paper ticket (no 0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
RESET_CODE_TTL = 3600.0
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


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
        """Read a stored hash; ValueError when the row is damaged or its cost is absurd."""
        try:
            data = json.loads(text)
            salt = base64.b64decode(data["salt"], validate=True)
            digest = base64.b64decode(data["hash"], validate=True)
            n, r, p = (data[k] for k in ("n", "r", "p"))
        except (TypeError, ValueError, KeyError, RecursionError) as exc:
            raise ValueError(f"unreadable stored hash: {type(exc).__name__}") from None
        costs_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p))
        if not costs_ok or not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0):
            raise ValueError("unreadable stored hash: bad cost")
        if not (1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
            raise ValueError("unreadable stored hash: bad cost")
        return cls(salt=salt, digest=digest, n=n, r=r, p=p), data


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
    """What the user typed, forgiving of case, spaces and dashes (ASCII only; the code
    alphabet is ASCII, and a long paste is no code)."""
    return "".join(c for c in text[:64].upper() if c in _CODE_CHARS)


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable as the admin password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"use at most {MAX_PASSWORD} characters"
    return None


def pin_problem(pin: str) -> str | None:
    """Why ``pin`` is not acceptable as the staff PIN, or None."""
    if not (pin.isascii() and pin.isdigit()) or not MIN_PIN <= len(pin) <= MAX_PIN:
        return f"use {MIN_PIN} to {MAX_PIN} digits"
    return None


class Credentials:
    """The admin password, the staff PIN and the setup code, stored hashed (see the
    module docstring)."""

    def __init__(self, journal: Journal, *, scrypt_n: int = SCRYPT_N) -> None:
        self.journal = journal
        self.scrypt_n = scrypt_n
        # Guesses from many clients queue here instead of filling memory and the cores.
        self._checks = asyncio.Semaphore(CONCURRENT_CHECKS)

    async def _verify(self, secret: str, raw: str, what: str) -> bool:
        try:
            stored, _ = ScryptHash.from_json(raw)
        except ValueError as exc:
            log.error("web: the stored %s cannot be read (%s); use a new setup code", what, exc)
            return False
        async with self._checks:
            return await asyncio.to_thread(verify_secret, secret, stored)

    @staticmethod
    def _expired(raw: str) -> bool:
        try:
            expires = json.loads(raw).get("expires")
        except (ValueError, AttributeError, RecursionError):
            return True
        return isinstance(expires, (int, float)) and expires <= time.time()

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
        return await self._verify(password, raw, "admin password")

    async def has_staff_pin(self) -> bool:
        return await self.journal.kept_get(KV_STAFF_PIN) is not None

    async def set_staff_pin(self, pin: str | None) -> None:
        """Set the staff PIN (``None``: staff can no longer sign in)."""
        if pin is None:
            await self.journal.kept_set(KV_STAFF_PIN, None)
            log.info("web: staff PIN removed")
            return
        hashed = await asyncio.to_thread(hash_secret, pin, n=self.scrypt_n)
        await self.journal.kept_set(KV_STAFF_PIN, hashed.to_json(set_at=time.time()))
        log.info("web: staff PIN set")

    async def check_staff_pin(self, pin: str) -> bool:
        raw = await self.journal.kept_get(KV_STAFF_PIN)
        if raw is None or pin_problem(pin):
            return False
        return await self._verify(pin, raw, "staff PIN")

    async def has_setup_code(self) -> bool:
        raw = await self.journal.kv_get(KV_SETUP_CODE)
        return raw is not None and not self._expired(raw)

    async def new_setup_code(self) -> str:
        """Make, store (hashed) and return a fresh code; any older code stops working."""
        code = new_setup_code()
        hashed = await asyncio.to_thread(hash_secret, code, n=self.scrypt_n)
        expires = time.time() + RESET_CODE_TTL if await self.has_password() else None
        await self.journal.kv_set(KV_SETUP_CODE, hashed.to_json(expires=expires))
        return code

    async def check_setup_code(self, typed: str) -> bool:
        raw = await self.journal.kv_get(KV_SETUP_CODE)
        if raw is None or self._expired(raw):
            return False
        return await self._verify(normalize_code(typed), raw, "setup code")

    async def consume_setup_code(self) -> None:
        await self.journal.kv_set(KV_SETUP_CODE, None)


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf, supplied or "")


def client_key(remote: str | None) -> str:
    """Who is guessing: an IPv4 address, or the /64 an IPv6 address belongs to (one LAN
    device can take any address of its /64)."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Attempts:
    failures: int = 0
    last: float = 0.0
    next_allowed: float = 0.0


class AttemptLimiter:
    """Per-client throttle of password and setup-code guesses, with growing delays.

    :meth:`begin` is called *before* the slow check and counts the attempt at once, so a
    burst of concurrent guesses from one client gets one check each delay, not one each;
    :meth:`success` forgets the client. After ``free`` attempts a client waits ``delay``
    seconds before its next one, twice as long after each further failure, up to
    ``max_delay``; ``window`` seconds without an attempt forget its failures. There is no
    box-wide lockout: one client's failures never slow another, so a guesser cannot lock
    the owner out. (A guesser with many addresses is held back by the scrypt cost: checks
    run one at a time, see :class:`Credentials`.)
    """

    MAX_CLIENTS = 10_000

    def __init__(
        self,
        *,
        free: int = 3,
        delay: float = 1.0,
        max_delay: float = 300.0,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.delay = delay
        self.max_delay = max_delay
        self.window = window
        self.clock = clock
        self._clients: dict[str, _Attempts] = {}
        self.refused = 0
        self.failed = 0

    def begin(self, client: str) -> float:
        """0 when ``client`` may try now (the attempt is counted as a failure until
        :meth:`success`); else the seconds it must wait, and nothing is counted."""
        now = self.clock()
        entry = self._clients.get(client)
        if entry is not None and now - entry.last > self.window:
            entry = None
        if entry is None:
            self._forget_old(now)
            entry = self._clients[client] = _Attempts()
        if now < entry.next_allowed:
            self.refused += 1
            return entry.next_allowed - now
        entry.failures += 1
        entry.last = now
        entry.next_allowed = now + self.wait_after(entry.failures)
        return 0.0

    def wait_after(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` failed ones."""
        if failures < self.free:
            return 0.0
        return float(min(self.max_delay, self.delay * 2 ** (failures - self.free)))

    def failure(self, client: str) -> None:
        """The attempt :meth:`begin` let through failed (counted already; this is the
        statistic)."""
        self.failed += 1

    def success(self, client: str) -> None:
        self._clients.pop(client, None)

    def reset(self) -> None:
        """Forget every client (a fresh setup code was printed: no one has guessed it)."""
        self._clients.clear()

    def _forget_old(self, now: float) -> None:
        for key, entry in list(self._clients.items()):
            if now - entry.last > self.window:
                del self._clients[key]
        while len(self._clients) >= self.MAX_CLIENTS:
            del self._clients[min(self._clients, key=lambda k: self._clients[k].last)]
