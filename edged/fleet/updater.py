"""Staged updates on the box: the release manifest read as a claim, the wave waited for,
the bundle fetched, and the install handed to root (docs/fleet.md "Staged updates").

The fleet link passes every message of ``<prefix>/releaseManifest`` to
:meth:`Updater.offer`. :meth:`Updater.run` checks it (:mod:`edged.fleet.manifest`: the
signature against ``fleet.update_signers``, every field) and then, each ``update_recheck``
seconds and whenever something changes, decides:

* a manifest from a key the signers file does not hold is **ignored**, one whose text does not
  match its signature (or whose fields are wrong) **refused**; either is logged and reported,
  and the manifest the box held before stays what it acts on;
* a version older than the running one is **refused** unless the signed manifest says
  ``allow_downgrade``; the running version is **current**;
* a halted rollout (``halted`` in the manifest) starts no more installs;
* otherwise the box waits for its wave's start (:func:`~edged.fleet.manifest.wave_of`, from
  its id), the maintenance window in the selling point's time zone, and no waiting order;
  then fetches the bundle over HTTPS (at most the manifest's ``size`` and
  ``update_max_bytes``, its sha256 checked while it streams) and hands it over.

The hand-over (:class:`FileHandover`) writes the bundle and a request into
``<state_dir>/update/``; root's ``edged-update.path`` starts ``edged-update.service``
(``image/apply-fleet-update``), which copies both into a root-only directory and verifies
everything again itself before ``update-edged`` runs. The result comes back the way every
update's does: update-edged's line in ``box-events.jsonl`` (with ``release`` and ``wave``),
read by :class:`~edged.fleet.box_events.BoxEvents`. A release tried once (installed, rolled
back or refused) is never tried again on this box.

What the box reports (``fleet.rollout`` in the live state, ``rollout`` in ``info``):
``{"release", "wave", "state", "reason", ...}``, ``state`` one of ``waiting``,
``fetching``, ``installing``, ``installed``, ``failed``, ``refused``, ``ignored``,
``halted``, ``current``, ``fetch_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from edged.fleet.box_events import BoxEvents
from edged.fleet.manifest import Manifest, ManifestError, compare, read, wave_of
from edged.fleet.settings import FleetConfig
from edged.i18n import box_zone

log = logging.getLogger(__name__)

REQUEST_DIR = "update"
REQUEST = "request.json"
BUNDLE = "bundle"
MAX_REQUEST_BYTES = 96 * 1024  # apply-fleet-update refuses larger: the message is 64 KiB


@dataclass(frozen=True)
class UpdateRequest:
    """What is handed to root: the signed message as received, the box's wave, the bundle."""

    manifest: Manifest
    message: bytes
    wave: int
    bundle: Path


class Handover(Protocol):
    """Gives a fetched, checked bundle to the install (root's, or a test's double)."""

    async def __call__(self, request: UpdateRequest) -> None: ...


class FileHandover:
    """The real hand-over: ``request.json`` beside the bundle in ``<state_dir>/update``,
    written whole and renamed into place, which starts root's ``edged-update.path``."""

    def __init__(self, state_dir: Path, box_id: str) -> None:
        self.directory = Path(state_dir) / REQUEST_DIR
        self.box_id = box_id

    async def __call__(self, request: UpdateRequest) -> None:
        body = json.dumps(
            {
                "v": 1,
                "box_id": self.box_id,
                "wave": request.wave,
                "message": request.message.decode(),
            }
        ).encode()
        await asyncio.to_thread(_write_whole, self.directory / REQUEST, body)


def _write_whole(path: Path, body: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class FetchError(Exception):
    """The bundle could not be fetched whole and matching the manifest."""


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file or None)


async def fetch_bundle(
    manifest: Manifest, target: Path, *, max_bytes: int, ca_file: str = "", timeout: float = 60
) -> None:
    """Download the bundle to ``target`` over HTTPS: at most ``min(size, max_bytes)`` bytes,
    exactly ``size``, with the manifest's sha256; FetchError otherwise (nothing left)."""
    limit = min(manifest.size, max_bytes)
    if manifest.size > max_bytes:
        raise FetchError(f"the bundle is {manifest.size} bytes, over update_max_bytes")
    target.parent.mkdir(mode=0o750, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    got = 0
    try:
        async with (
            httpx.AsyncClient(
                verify=_ssl_context(ca_file),
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream("GET", manifest.bundle_url) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"the bundle's server answered {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"the bundle's server offers {declared} bytes, over {limit}")
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    got += len(chunk)
                    if got > limit:
                        raise FetchError(f"the bundle is larger than {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        if got != manifest.size:
            raise FetchError(f"the bundle has {got} bytes, the manifest says {manifest.size}")
        if digest.hexdigest() != manifest.sha256:
            raise FetchError("the bundle's sha256 is not the manifest's")
        os.replace(part, target)
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"cannot fetch the bundle: {type(exc).__name__}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


class Updater:
    """Acts on the fleet's release manifest for one box (see the module docstring)."""

    def __init__(
        self,
        config: FleetConfig,
        *,
        box_id: str,
        running_version: str,
        state_dir: Path,
        events: BoxEvents,
        waiting_orders: Callable[[], int],
        timezone: Callable[[], str],
        report: Callable[[dict[str, Any] | None], None],
        handover: Handover | None = None,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[Manifest, Path], Awaitable[None]] | None = None,
    ) -> None:
        """``report`` receives the box's rollout state whenever it changes; ``clock`` is
        the wall clock (UTC seconds) the waves and the window are read against."""
        self.config = config
        self.box_id = box_id
        self.running_version = running_version
        self.state_dir = Path(state_dir)
        self.events = events
        self.waiting_orders = waiting_orders
        self.timezone = timezone
        self.report = report
        self.handover: Handover = handover or FileHandover(self.state_dir, box_id)
        self.clock = clock
        self.fetch = fetch or self._fetch
        self.manifest: Manifest | None = None
        self.message = b""
        self.signer = ""
        self.status: dict[str, Any] | None = None
        self.problem: dict[str, Any] | None = None  # the last message refused or ignored
        self._pending: bytes | None = None
        self._wake = asyncio.Event()
        self._handed: str | None = None
        self._fetch_failures = 0
        self._next_fetch = 0.0
        self.decisions = 0  # steps taken (for tests and metrics)

    async def _fetch(self, manifest: Manifest, target: Path) -> None:
        await fetch_bundle(
            manifest,
            target,
            max_bytes=self.config.update_max_bytes,
            ca_file=self.config.update_ca_file,
        )

    def offer(self, payload: bytes) -> None:
        """A message from the manifest topic (checked in :meth:`run`, not here)."""
        self._pending = payload
        self._wake.set()

    def poke(self) -> None:
        """Decide again now (a test moved the clock, an order was answered)."""
        self._wake.set()

    async def run(self) -> None:
        """Check what arrives and act on it until cancelled."""
        while True:
            payload, self._pending = self._pending, None
            if payload is not None:
                await self._take(payload)
            try:
                await self._step()
            except Exception:  # one bad step must not end updates for good
                log.exception("fleet updates: deciding on the release failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.update_recheck):
                    await self._wake.wait()
            self._wake.clear()

    async def _take(self, payload: bytes) -> None:
        if not payload:  # the retained manifest was cleared
            self.manifest, self.message, self.problem = None, b"", None
            return
        signers = self.config.update_signers
        try:
            manifest, _text, signer = await asyncio.to_thread(read, payload, signers)
        except ManifestError as exc:
            state = "ignored" if exc.code in ("unknown_signer", "unreadable") else "refused"
            log.warning("fleet updates: release manifest %s: %s", state, exc)
            self.problem = {"state": state, "code": exc.code, "reason": str(exc)}
            return
        if manifest.unknown_keys:
            log.warning(
                "fleet updates: release %s: unknown keys ignored: %s",
                manifest.version,
                ", ".join(manifest.unknown_keys),
            )
        if manifest.version != getattr(self.manifest, "version", None):
            self._fetch_failures = 0
            self._next_fetch = 0.0
        self.manifest, self.message, self.signer, self.problem = manifest, payload, signer, None
        log.info("fleet updates: release manifest %s signed by %s", manifest.version, signer)

    def _outcome(self, version: str) -> tuple[str, str] | None:
        """This release's result on this box, from update-edged's record."""
        updates = self.events.updates() or {}
        for slot, state in (
            ("last_update", "installed"),
            ("last_rollback", "failed"),
            ("last_refused", "refused"),
        ):
            event = updates.get(slot)
            if isinstance(event, dict) and event.get("release") == version:
                return state, str(event.get("reason", ""))
        return None

    def _set(self, status: dict[str, Any] | None) -> None:
        if status is not None and self.problem is not None:
            status = {**status, "last_message": self.problem}
        elif status is None and self.problem is not None:
            status = {"release": None, **self.problem, "last_message": self.problem}
        if status != self.status:
            self.status = status
            self.report(status)

    async def _step(self) -> None:
        self.decisions += 1
        m = self.manifest
        if m is None:
            self._set(None)
            return
        wave = wave_of(self.box_id, m.waves)
        base: dict[str, Any] = {"release": m.version, "wave": wave, "signer": self.signer}
        if m.unknown_keys:
            base["unknown_keys"] = list(m.unknown_keys)
        now = datetime.fromtimestamp(self.clock(), UTC)
        order = compare(self.running_version, m.version)
        outcome = self._outcome(m.version)
        if outcome is not None:
            self._set({**base, "state": outcome[0], "reason": outcome[1]})
        elif order == "same":
            self._set({**base, "state": "current", "reason": ""})
        elif order == "invalid":
            self._set({**base, "state": "refused", "reason": "not a version number"})
        elif order == "older" and not m.allow_downgrade:
            why = f"{m.version} is older than {self.running_version} and allow_downgrade is off"
            self._set({**base, "state": "refused", "reason": why})
        elif m.halted is not None:
            self._set({**base, "state": "halted", "reason": m.halted.get("reason", "")})
        elif self._handed == m.version:
            self._set({**base, "state": "installing", "reason": ""})
        elif now < m.waves[wave].start:
            self._set({**base, "state": "waiting", "reason": "wave_start"})
        elif not m.in_window(now, box_zone(self.timezone())):
            self._set({**base, "state": "waiting", "reason": "window"})
        elif m.never_while_order_waits and self.waiting_orders() > 0:
            self._set({**base, "state": "waiting", "reason": "order_waiting"})
        elif time.monotonic() < self._next_fetch:
            pass  # fetch_failed stays until the retry
        else:
            await self._install(m, wave, base)

    async def _install(self, m: Manifest, wave: int, base: dict[str, Any]) -> None:
        self._set({**base, "state": "fetching", "reason": ""})
        target = self.state_dir / REQUEST_DIR / BUNDLE
        try:
            await self.fetch(m, target)
        except (FetchError, OSError) as exc:
            self._fetch_failures += 1
            delay = min(3600.0, self.config.update_recheck * 2**self._fetch_failures)
            self._next_fetch = time.monotonic() + delay
            log.warning("fleet updates: release %s: %s (again in %.0f s)", m.version, exc, delay)
            self._set({**base, "state": "fetch_failed", "reason": str(exc)[:200]})
            return
        log.info("fleet updates: release %s (wave %d) fetched; handing it to root", m.version, wave)
        await self.handover(UpdateRequest(m, self.message, wave, target))
        self._handed = m.version
        self._set({**base, "state": "installing", "reason": ""})
