"""The live link to Sinqro: notification websocket, REST polling and reconciliation.

:class:`NotificationLink` keeps the websocket open and feeds every order it hears of into
:meth:`OrderDesk.ingest`, which stores it before anything else happens. REST covers what the
websocket cannot:

* at start and after every (re)connect, *reconcile*: fetch the active orders, ingest each,
  and GET every order the journal still holds open but Sinqro no longer lists, to learn its
  final status. An order that arrived while the box was offline is never missed;
* while the websocket is down, do the same every ``poll_interval`` seconds;
* while it is up, do the same every ``status_refresh_interval`` seconds (doc 000: refresh
  each service's status every 60 s until it is final).

The journal de-duplicates, so the same order from websocket and REST is one order. A REST
answer that started before a websocket frame about the same order is older than that frame
and is not applied over it.

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
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal, Protocol

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    WebSocketException,
)
from websockets.frames import CloseCode

from edged.config import SinqroConfig
from edged.decoding import digest
from edged.journal.store import Journal, JournalError, UpsertResult
from edged.orders import OrderDesk
from edged.pairing import Pairing
from edged.sinqro import endpoints, errors
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError, SinqroUnauthorized
from edged.sinqro.models import Order, PayloadError, parse_id, parse_notification
from edged.state import BoxState

log = logging.getLogger(__name__)
# The websockets library logs handshake headers (our tokens) at DEBUG: never let it.
_ws_log = logging.getLogger(__name__ + ".websocket")
_ws_log.setLevel(logging.INFO)

CLOSE_TIMEOUT = 2.0
# A connection that stayed up this long resets the reconnect backoff.
STABLE_AFTER = 30.0
LOG_SNIPPET = 200
INGEST_GROUP = 64  # orders of one sync stored side by side (see _ingest_all)


class PushSource(Protocol):
    """Another way notifications arrive besides the websocket (``edged relay`` over MQTT).

    ``run`` stays connected for one selling point and reports to the link through
    :meth:`NotificationLink.source_up`, ``source_down`` and ``source_frame``.
    """

    name: str

    def run(self, selling_point_id: int, sink: Any) -> Coroutine[Any, Any, None]: ...


class _Kicked(Exception):
    """The pairing changed: end the session and start again at once."""


class NotificationLink:
    """Websocket + polling link for the paired selling point. Run :meth:`run` as a task.

    Counters for metrics: ``frames`` (received), ``bad_frames`` (rejected),
    ``ignored_frames`` (another selling point's), ``reconnects``, ``polls`` (REST syncs while
    the websocket was down), ``reconciles``, ``refreshes``.
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
        self.polls = 0
        self.reconciles = 0
        self.refreshes = 0
        self._connects = 0
        self._kick = asyncio.Event()
        self._sync_wanted = asyncio.Event()
        self._sync_reason = "reconcile"
        self._ws_up = False
        self._ws_reason = ""
        self._rest_ok: bool | None = None
        self._rest_error = ""
        self._rest_failures = 0
        self._store_failures = 0
        # Frame sequence and, per order, the sequence of the last frame about it: a REST
        # answer requested before that frame must not overwrite it.
        self._frame_seq = 0
        self._touched: dict[int, int] = {}
        # Per open order: when Sinqro first answered ORDER_NOT_FOUND (loop time).
        self._missing: dict[int, float] = {}
        # Orders whose stale report was set aside, to be read with a direct GET.
        self._verify: asyncio.Queue[int] = asyncio.Queue()
        self._verifying: set[int] = set()
        self.unread_orders = 0
        self.gone_orders = 0
        self.stale_reports = 0

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
            "polls": self.polls,
            "reconciles": self.reconciles,
            "refreshes": self.refreshes,
            "unread_orders": self.unread_orders,
            "gone_orders": self.gone_orders,
            "stale_reports": self.stale_reports,
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
                tg.create_task(self._sync_loop(pairing), name="sinqro-sync")
                tg.create_task(self._verify_loop(), name="sinqro-verify")
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
        base = min(self.config.reconnect_max, self.config.reconnect_min * 2**failures)
        return float(base * random.uniform(0.5, 1.0))

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
        """One notification from a push source: parsed and stored like a websocket frame."""
        await self._on_frame_safely(message, selling_point_id, source=name)

    async def _on_frame_safely(
        self, message: str | bytes, sp: int, source: str = "websocket"
    ) -> None:
        """The last line of defence: a frame that trips an unexpected error is logged with
        its digest and dropped; the link stays up and the next frame is taken."""
        try:
            await self._on_frame(message, sp, source=source)
        except Exception:
            self.bad_frames += 1
            log.exception("dropped %s frame %s after an unexpected error", source, digest(message))

    async def _on_frame(self, message: str | bytes, sp: int, source: str = "websocket") -> None:
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
            self.ignored_frames += 1
            log.warning("ignored a %s frame for selling point %s", note.event, frame_sp)
            return
        self._frame_seq += 1
        self._touched[note.order.id] = self._frame_seq
        log.debug("frame %s for order %s (%s)", note.event, note.order.id, note.order.status)
        try:
            applied = await self.desk.ingest(note.order, source)
            if applied is None:
                self._stale(note.order.id)
        except JournalError as exc:
            # Not stored, not lost: Sinqro still lists it, the sync fetches it again.
            self._store_failed(exc, note.order.id)
            self._request_sync("poll")

    # -- REST ------------------------------------------------------------------------------

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
            if self._store_failures:
                interval = min(interval, self._backoff(self._store_failures))
            try:
                async with asyncio.timeout(interval):
                    await self._sync_wanted.wait()
                reason = self._sync_reason
            except TimeoutError:
                reason = "refresh" if self._pushed else "poll"
            self._sync_wanted.clear()
            try:
                await self._sync(pairing.selling_point_id, reason)
            except SinqroUnauthorized:
                raise
            except JournalError as exc:
                self._store_failed(exc, None)
            except SinqroError as exc:
                self._rest_failures += 1
                if self._rest_ok is not False or str(exc) != self._rest_error:
                    log.warning("Sinqro REST %s failed: %s", reason, exc)
                self._rest_ok = False
                self._rest_error = str(exc)
            else:
                if self._store_failures:
                    log.info("journal: storing orders again")
                    self._store_failures = 0
                was = self._rest_ok
                self._rest_ok = True
                self._rest_failures = 0
                if was is False:
                    log.info("Sinqro REST reachable again")
                    self._call_on_online()
            self._update_link()

    async def _ingest_one(
        self, order: Order, reason: str, *, authoritative: bool = False
    ) -> UpsertResult | Literal[False] | None:
        """``desk.ingest`` for one order of a sync; False when it failed unexpectedly.

        One order that trips a bug must not stop the rest of the sync (nor, by ending the
        link part, every sync after it). A journal error is box-wide and propagates.
        """
        try:
            return await self.desk.ingest(order, reason, authoritative=authoritative)
        except (JournalError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("order %s from the %s could not be stored; skipped", order.id, reason)
            return False

    async def _sync(self, sp: int, reason: str) -> None:
        """One active-orders call, then a GET for every open order Sinqro no longer lists.

        Every open order is visited even when some GETs fail; the number that could not be
        read is logged and kept in :attr:`unread_orders`. An order Sinqro answers
        ORDER_NOT_FOUND for twice, ``gone_after`` seconds apart, and an order of another
        selling point (after re-pairing), are closed locally as ``gone``.
        """
        started = self._frame_seq
        if reason == "reconcile":
            self.reconciles += 1
        elif reason == "refresh":
            self.refreshes += 1
        else:
            self.polls += 1
        active = await self.api.active_orders(sp)
        listed: set[int] = set()
        unread = 0
        fresh = []
        for order in active:
            if order.selling_point_id not in (None, sp):
                continue
            listed.add(order.id)
            self._missing.pop(order.id, None)
            if self._touched.get(order.id, 0) > started:
                continue  # a websocket frame about it came after this answer was asked for
            fresh.append(order)
        for order, result in zip(fresh, await self._ingest_all(fresh, reason), strict=True):
            if result is None:
                self._stale(order.id)
            elif result is False:
                unread += 1
        open_orders = await self.journal.open_orders()
        for stored in open_orders:
            if stored.id in listed:
                continue
            owner = _selling_point_of(stored.payload)
            if owner is not None and owner != sp:
                await self._close_gone(stored.id, f"order of selling point {owner}, not {sp}")
                continue
            try:
                order = await self.api.get_order(stored.id)
            except SinqroUnauthorized:
                raise
            except SinqroError as exc:
                if exc.code == errors.ORDER_NOT_FOUND:
                    await self._not_found(stored.id)
                else:
                    unread += 1
                    log.debug("order %s not refreshed: %s", stored.id, exc)
                continue
            self._missing.pop(stored.id, None)
            if self._touched.get(order.id, 0) > started:
                continue
            if await self._ingest_one(order, reason, authoritative=True) is False:
                unread += 1
        if unread != self.unread_orders:
            if unread:
                log.warning(
                    "Sinqro %s: %d of %d open orders could not be read; next try later",
                    reason,
                    unread,
                    len(open_orders),
                )
            else:
                log.info("Sinqro %s: every open order read again", reason)
        self.unread_orders = unread
        self.state.set("link.unread_orders", unread)
        # Marks older than this sync can no longer race with anything.
        self._touched = {k: v for k, v in self._touched.items() if v > started}
        still_open = {o.id for o in open_orders}
        self._missing = {k: v for k, v in self._missing.items() if k in still_open}

    async def _not_found(self, order_id: int) -> None:
        now = asyncio.get_running_loop().time()
        first = self._missing.get(order_id)
        if first is None:
            self._missing[order_id] = now
            log.warning("open order %s is unknown to Sinqro; asking again later", order_id)
        elif now - first >= self.config.gone_after:
            await self._close_gone(order_id, "unknown to Sinqro (ORDER_NOT_FOUND)")

    async def _close_gone(self, order_id: int, reason: str) -> None:
        self._missing.pop(order_id, None)
        if await self.desk.close_gone(order_id, reason):
            self.gone_orders += 1

    def _stale(self, order_id: int) -> None:
        """A report would move the order back: read it with a direct GET before believing."""
        self.stale_reports += 1
        if order_id not in self._verifying:
            self._verifying.add(order_id)
            self._verify.put_nowait(order_id)

    async def _verify_loop(self) -> None:
        """Apply Sinqro's answer to ``GET /orders/{id}`` for each order set aside as stale."""
        while True:
            order_id = await self._verify.get()
            self._verifying.discard(order_id)
            started = self._frame_seq
            try:
                order = await self.api.get_order(order_id)
            except SinqroUnauthorized:
                raise
            except SinqroError as exc:
                # The journal keeps the newer status; the next refresh asks again.
                log.warning("order %s: stale report not checked: %s", order_id, exc)
                continue
            if self._touched.get(order_id, 0) > started:
                continue
            try:
                await self.desk.ingest(order, "verify", authoritative=True)
            except JournalError as exc:
                self._store_failed(exc, order_id)

    async def _ingest_all(
        self, orders: list[Order], reason: str
    ) -> list[UpsertResult | Literal[False] | None]:
        """:meth:`_ingest_one` side by side, so the journal stores orders that wait together
        in one commit (a catch-up of many orders shares its fsyncs); a journal error is
        raised once all have been tried. Returns what each ingest returned."""
        done: list[UpsertResult | Literal[False] | None] = []
        for first in range(0, len(orders), INGEST_GROUP):
            chunk = orders[first : first + INGEST_GROUP]
            results = await asyncio.gather(
                *(self._ingest_one(order, reason) for order in chunk), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                done.append(result)
        return done

    def _store_failed(self, exc: JournalError, order_id: int | None) -> None:
        self._store_failures += 1
        if self._store_failures == 1:
            what = f"order {order_id}" if order_id is not None else "what Sinqro sent"
            log.error(
                "journal cannot store %s: %s; retrying, Sinqro keeps it until then", what, exc
            )

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


def _selling_point_of(payload: dict[str, object]) -> int | None:
    sp = payload.get("sellingPoint")
    return parse_id(sp.get("id")) if isinstance(sp, dict) else None
