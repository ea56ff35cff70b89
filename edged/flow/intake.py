"""The live link to Sinqro: the notification websocket, push sources and when to sync.

:class:`NotificationLink` keeps the websocket open and feeds every order it hears of into
:meth:`OrderDesk.ingest`, which stores it before anything else happens. REST covers what the
websocket cannot; the link decides when, and :class:`~edged.flow.reconcile.Reconciler`
does the sync itself:

* at start and after every (re)connect, *reconcile*: fetch the active orders, ingest each,
  and GET every order the journal still holds open but Sinqro no longer lists, to learn its
  final status. An order that arrived while the box was offline is never missed;
* while the websocket is down, do the same every ``poll_interval`` seconds;
* while it is up, do the same every ``status_refresh_interval`` seconds (doc 000: refresh
  each service's status every 60 s until it is final).

The journal de-duplicates, so the same order from websocket and REST is one order. Every
frame is shown to the reconciler first, so a REST answer that started before it is not
applied over it.

Only frames of Sinqro's own websocket are applied as they come. A message from a push source
(``edged relay`` over the fleet broker) did not come from Sinqro's connection: it is a
*hint*, checked with ``GET /orders/{id}`` by :class:`~edged.flow.hints.HintChecker`, and
only Sinqro's answer is stored.

Bad frames (malformed JSON, unknown event, wrong types, oversize) are logged, counted and
dropped; the link stays up. When the journal cannot store an order (disk full), the error
is logged and the next sync, retried with backoff, fetches it again: Sinqro keeps listing
it as active, so nothing is lost and the link stays up. A 401 anywhere sets
``link=unauthorized`` and the link then waits ``reconnect_max`` seconds, or for
:meth:`reconnect_now`, before trying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal, Protocol

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    WebSocketException,
)
from websockets.frames import CloseCode

from edged import backoff
from edged.decoding import PayloadError, digest
from edged.flow.desk import OrderDesk
from edged.flow.hints import OTHER_SELLING_POINT, HintChecker
from edged.flow.pairing import Pairing
from edged.flow.reconcile import Reconciler
from edged.journal.store import Journal, JournalError
from edged.sinqro import endpoints
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError, SinqroUnauthorized
from edged.sinqro.models import parse_notification
from edged.sinqro.settings import SinqroConfig
from edged.state import BoxState

log = logging.getLogger(__name__)
# The websockets library logs handshake headers (our tokens) at DEBUG: never let it.
_ws_log = logging.getLogger(__name__ + ".websocket")
_ws_log.setLevel(logging.INFO)

CLOSE_TIMEOUT = 2.0
# A connection that stayed up this long resets the reconnect backoff.
STABLE_AFTER = 30.0
LOG_SNIPPET = 200


class PushSource(Protocol):
    """Another way notifications arrive besides the websocket (``edged relay`` over MQTT).

    ``run`` stays connected for one selling point and reports to the link through
    :meth:`NotificationLink.source_up`, ``source_down`` and ``source_frame``. What it
    delivers is a hint, checked with Sinqro before anything is stored.
    """

    name: str

    def run(self, selling_point_id: int, sink: Any) -> Coroutine[Any, Any, None]: ...


class _Kicked(Exception):
    """The pairing changed: end the session and start again at once."""


class NotificationLink:
    """Websocket + polling link for the paired selling point. Run :meth:`run` as a task.

    Counters for metrics: ``frames`` (received), ``bad_frames`` (rejected),
    ``ignored_frames`` (another selling point's), ``reconnects``; the sync's own counters
    are :attr:`reconciler`'s, the hint checker's :attr:`hints`', and :meth:`metrics` holds
    them all.
    """

    def __init__(
        self,
        config: SinqroConfig,
        api: SinqroApi,
        desk: OrderDesk,
        journal: Journal,
        state: BoxState,
        pairing: Callable[[], Pairing],
        *,
        on_online: Callable[[], None] | None = None,
        push_sources: Sequence[PushSource] = (),
        websocket: bool = True,
    ) -> None:
        """``push_sources`` run beside the websocket, or instead of it with
        ``websocket=False``; their messages take the websocket's path."""
        self.config = config
        self.api = api
        self.desk = desk
        self.journal = journal
        self.state = state
        self.pairing = pairing
        self.on_online = on_online
        self.push_sources = tuple(push_sources)
        self.websocket = websocket
        self._sources_up: set[str] = set()
        self._source_reason = ""
        self.frames = 0
        self.bad_frames = 0
        self.ignored_frames = 0
        self.reconnects = 0
        self.reconciler = Reconciler(config, api, desk, journal, state)
        self.hints = HintChecker(
            api,
            desk,
            journal,
            self.reconciler,
            state,
            retry_min=config.reconnect_min,
            retry_max=config.reconnect_max,
            on_unverified=lambda: self._request_sync("poll"),
        )
        self._connects = 0
        self._kick = asyncio.Event()
        self._sync_wanted = asyncio.Event()
        self._sync_reason = "reconcile"
        self._ws_up = False
        self._ws_reason = ""
        self._rest_ok: bool | None = None
        self._rest_error = ""
        self._rest_failures = 0

    # -- public ----------------------------------------------------------------------------

    def reconnect_now(self) -> None:
        """The pairing changed (or the user asks): drop the link and start again now."""
        self._kick.set()

    @property
    def websocket_up(self) -> bool:
        return self._ws_up

    @property
    def _pushed(self) -> bool:
        """Notifications arrive by themselves (websocket or a push source)."""
        return self._ws_up or bool(self._sources_up)

    def metrics(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "ignored_frames": self.ignored_frames,
            "reconnects": self.reconnects,
            **self.reconciler.metrics(),
            **self.hints.metrics(),
        }

    async def run(self) -> None:
        """Keep the link up until cancelled."""
        try:
            while True:
                self._kick.clear()
                pairing = self.pairing()
                if not pairing.paired:
                    self._set_link("not_paired", "no Sinqro account linked: pair the box")
                    await self._kick.wait()
                    continue
                self.api.user_token = pairing.user_token
                outcome = await self._session(pairing)
                if outcome == "unauthorized":
                    self._set_link(
                        "unauthorized", "Sinqro refused the user token: pair the box again"
                    )
                    log.warning(
                        "Sinqro refused the user token; next try in %.0fs or on re-pairing",
                        self.config.reconnect_max,
                    )
                    await self._wait_kick(self.config.reconnect_max)
                else:
                    log.info("Sinqro pairing changed; reconnecting")
        finally:
            self._ws_up = False
            self._sources_up.clear()
            self.state.set("link", "offline")
            self.state.set("link.detail", "link stopped")

    # -- session ---------------------------------------------------------------------------

    async def _session(self, pairing: Pairing) -> Literal["kicked", "unauthorized"]:
        self._ws_up = False
        self._sources_up.clear()
        self._rest_ok = None
        self._rest_failures = 0
        kicked = unauthorized = False
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch_kick(), name="sinqro-link-kick")
                if self.websocket:
                    tg.create_task(self._websocket_loop(pairing), name="sinqro-websocket")
                for source in self.push_sources:
                    sp = pairing.selling_point_id
                    tg.create_task(source.run(sp, self), name=f"sinqro-{source.name}")
                if self.push_sources:
                    self.hints.clear()
                    sp = pairing.selling_point_id
                    tg.create_task(self.hints.run(sp), name="sinqro-hints")
                tg.create_task(self._sync_loop(pairing), name="sinqro-sync")
                tg.create_task(self.reconciler.verify_loop(), name="sinqro-verify")
        except* _Kicked:
            kicked = True
        except* SinqroUnauthorized:
            unauthorized = True
        finally:
            self._ws_up = False
            self._sources_up.clear()
        return "unauthorized" if unauthorized and not kicked else "kicked"

    async def _watch_kick(self) -> None:
        await self._kick.wait()
        raise _Kicked

    async def _wait_kick(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._kick.wait()

    def _backoff(self, failures: int) -> float:
        return backoff.delay(self.config.reconnect_min, self.config.reconnect_max, failures)

    # -- websocket -------------------------------------------------------------------------

    async def _websocket_loop(self, pairing: Pairing) -> None:
        sp = pairing.selling_point_id
        url = endpoints.websocket_url(self.config.websocket_url, sp)
        headers = {
            endpoints.SERVER_TOKEN_HEADER: self.config.server_token,
            endpoints.USER_TOKEN_HEADER: pairing.user_token,
        }
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            opened_at: float | None = None
            oversize = False
            try:
                async with connect(
                    url,
                    additional_headers=headers,
                    user_agent_header="edged",
                    open_timeout=self.config.request_timeout,
                    ping_interval=self.config.ping_interval,
                    ping_timeout=self.config.ping_timeout,
                    close_timeout=CLOSE_TIMEOUT,
                    max_size=self.config.max_frame_bytes,
                    logger=_ws_log,
                ) as ws:
                    opened_at = loop.time()
                    self._ws_opened()
                    async for message in ws:
                        await self._on_frame_safely(message, sp)
                reason = "closed by Sinqro"
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401:
                    raise SinqroUnauthorized() from None
                reason = f"websocket refused: HTTP {status}"
            except ConnectionClosed as exc:
                sent = exc.sent.code if exc.sent is not None else None
                if sent == CloseCode.MESSAGE_TOO_BIG:
                    # The library drops the connection on an oversize frame; count it like
                    # any bad frame and reconnect at once: reconcile fetches what it held.
                    oversize = True
                    self.frames += 1
                    self.bad_frames += 1
                    log.warning(
                        "ignored a websocket frame over %d bytes; reconnecting",
                        self.config.max_frame_bytes,
                    )
                reason = f"websocket closed: {exc}"
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"websocket unreachable: {type(exc).__name__}: {exc}"
            if opened_at is not None:
                self._ws_closed(reason)
                if loop.time() - opened_at >= max(STABLE_AFTER, self.config.reconnect_max):
                    failures = 0
            else:
                self._ws_failed(reason)
            if oversize:
                continue
            delay = self._backoff(failures)
            failures += 1
            log.debug("websocket: next attempt in %.2fs", delay)
            await asyncio.sleep(delay)

    def _ws_opened(self) -> None:
        self._connects += 1
        if self._connects > 1:
            self.reconnects += 1
            self.state.set("link.reconnects", self.reconnects)
        self._ws_up = True
        self._ws_reason = ""
        log.info("Sinqro websocket connected")
        self._update_link()
        self._call_on_online()
        self._request_sync("reconcile")

    def _ws_closed(self, reason: str) -> None:
        self._ws_up = False
        self._ws_reason = reason
        log.warning("Sinqro %s; polling every %.0fs meanwhile", reason, self.config.poll_interval)
        self._update_link()
        # Look at once: the gap may have hidden an order or a status change.
        self._request_sync("poll")

    def _ws_failed(self, reason: str) -> None:
        if reason != self._ws_reason:
            log.warning("Sinqro %s", reason)
        self._ws_reason = reason
        self._update_link()

    # -- push sources (edged relay) --------------------------------------------------------

    def source_up(self, name: str) -> None:
        """A push source is subscribed: reconcile, as after a websocket (re)connect."""
        self._sources_up.add(name)
        self._source_reason = ""
        log.info("Sinqro notifications arrive through %s", name)
        self._update_link()
        self._call_on_online()
        self._request_sync("reconcile")

    def source_down(self, name: str, reason: str) -> None:
        was_up = name in self._sources_up
        self._sources_up.discard(name)
        if was_up or reason != self._source_reason:
            log.warning("Sinqro %s: %s", name, reason)
        self._source_reason = reason
        self._update_link()
        if was_up:
            self._request_sync("poll")

    async def source_frame(self, name: str, message: str | bytes, selling_point_id: int) -> None:
        """One notification from a push source: parsed like a websocket frame, then only a
        hint: the order is fetched from Sinqro and Sinqro's answer is stored."""
        await self._on_frame_safely(message, selling_point_id, source=name, hint=True)

    async def _on_frame_safely(
        self, message: str | bytes, sp: int, source: str = "websocket", *, hint: bool = False
    ) -> None:
        """The last line of defence: a frame that trips an unexpected error is logged with
        its digest and dropped; the link stays up and the next frame is taken."""
        try:
            if hint:
                await self._on_frame(message, sp, source=source, hint=True)
            else:  # as before, for code that wraps _on_frame (benchmarks/suite.py)
                await self._on_frame(message, sp, source=source)
        except Exception:
            self.bad_frames += 1
            log.exception("dropped %s frame %s after an unexpected error", source, digest(message))

    async def _on_frame(
        self, message: str | bytes, sp: int, source: str = "websocket", *, hint: bool = False
    ) -> None:
        """One frame; with ``hint`` (it did not come from Sinqro's own websocket) only the
        order it names is taken, to be checked with Sinqro."""
        self.frames += 1
        try:
            note = parse_notification(message, max_bytes=self.config.max_frame_bytes)
        except PayloadError as exc:
            self.bad_frames += 1
            log.warning("ignored a %s frame: %s", source, str(exc)[:LOG_SNIPPET])
            log.debug("ignored frame begins %r", message[:LOG_SNIPPET])
            return
        frame_sp = note.selling_point_id
        if frame_sp is None:
            frame_sp = note.order.selling_point_id
        if frame_sp is not None and frame_sp != sp:
            if hint:
                why = f"it names selling point {frame_sp}, not {sp}"
                self.hints.reject(OTHER_SELLING_POINT, note.order.id, source, why)
                return
            self.ignored_frames += 1
            log.warning("ignored a %s frame for selling point %s", note.event, frame_sp)
            return
        if hint:
            # Not Sinqro's own connection: a claim to check, never stored as it came.
            log.debug("%s hint %s about order %s", source, note.event, note.order.id)
            self.hints.add(note.order.id, source, note.order.status)
            return
        self.reconciler.frame_seen(note.order.id)
        log.debug("frame %s for order %s (%s)", note.event, note.order.id, note.order.status)
        try:
            applied = await self.desk.ingest(note.order, source)
            if applied is None:
                self.reconciler.stale(note.order.id)
        except JournalError as exc:
            # Not stored, not lost: Sinqro still lists it, the sync fetches it again.
            self.reconciler.store_failed(exc, note.order.id)
            self._request_sync("poll")

    # -- when to sync (the Reconciler syncs) -----------------------------------------------

    def _request_sync(self, reason: str) -> None:
        # A reconcile asked for while a poll is pending stays a reconcile.
        if not self._sync_wanted.is_set() or reason == "reconcile":
            self._sync_reason = reason
        self._sync_wanted.set()

    async def _sync_loop(self, pairing: Pairing) -> None:
        self._request_sync("reconcile")
        while True:
            if self._pushed:
                interval = self.config.status_refresh_interval
            else:
                interval = self.config.poll_interval
            if self._rest_ok is False:
                interval = min(interval, self._backoff(self._rest_failures))
            if self.reconciler.store_failures:
                interval = min(interval, self._backoff(self.reconciler.store_failures))
            try:
                async with asyncio.timeout(interval):
                    await self._sync_wanted.wait()
                reason = self._sync_reason
            except TimeoutError:
                reason = "refresh" if self._pushed else "poll"
            self._sync_wanted.clear()
            try:
                await self.reconciler.sync(pairing.selling_point_id, reason)
            except SinqroUnauthorized:
                raise
            except JournalError as exc:
                self.reconciler.store_failed(exc, None)
            except SinqroError as exc:
                self._rest_failures += 1
                if self._rest_ok is not False or str(exc) != self._rest_error:
                    log.warning("Sinqro REST %s failed: %s", reason, exc)
                self._rest_ok = False
                self._rest_error = str(exc)
            else:
                was = self._rest_ok
                self._rest_ok = True
                self._rest_failures = 0
                if was is False:
                    log.info("Sinqro REST reachable again")
                    self._call_on_online()
            self._update_link()

    # -- state -----------------------------------------------------------------------------

    def _update_link(self) -> None:
        if self._pushed:
            pushing = (["websocket"] if self._ws_up else []) + sorted(self._sources_up)
            detail = " and ".join(pushing) + " connected"
            if self._rest_ok is False:
                detail += f"; REST failing: {self._rest_error}"
            self._set_link("online", detail)
        elif self._rest_ok:
            not_up = "websocket" if self.websocket else "relay"
            why = self._ws_reason or self._source_reason or f"{not_up} not connected"
            self._set_link("polling", f"{why}; polling every {self.config.poll_interval:g}s")
        elif self._rest_ok is False:
            self._set_link("offline", f"Sinqro unreachable: {self._rest_error}")

    def _set_link(self, value: str, detail: str) -> None:
        previous = self.state.get("link")
        if previous != value:
            log.info("Sinqro link: %s (%s)", value, detail)
        self.state.set("link", value)
        self.state.set("link.detail", detail)
        if value in ("online", "polling") and previous not in ("online", "polling"):
            self._call_on_online()

    def _call_on_online(self) -> None:
        if self.on_online is None:
            return
        try:
            self.on_online()
        except Exception:
            log.exception("on_online callback failed")
