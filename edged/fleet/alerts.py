"""Alerts off the box: incidents found by rules, told once each, and told when resolved.

Rules (``[alerts]``, 0 switches one off):

===================  ======================================================================
``order_waiting``    an order has waited longer than ``order_waiting_after`` s for a decision
``link_down``        the Sinqro link is offline or refused for ``link_down_after`` s
``printer_down``     a printer is offline, out of paper or open for ``printer_down_after`` s
``decision_stuck``   a decision has not reached Sinqro after ``decision_stuck_after`` s
``decision_refused`` Sinqro refused a decision (open until the order moves on)
===================  ======================================================================

An incident is opened once, when its condition has held for the rule's time, and resolved
once, when the condition is gone; each sends one message to every sink (the fleet topic,
webhooks). Each sink has its own queue, delivered in order with retries and backoff, so a
webhook that answers 503 for an hour delays nothing else and loses nothing
(:mod:`~edged.fleet.courier`); a webhook is also rate-limited, and what waits for it is
folded into one message (:meth:`AlertMonitor.fold`: "12 orders waiting, oldest 9 min").
Open incidents and undelivered messages are kept in the journal's ``kv`` table (written
only when they change), so a restart neither repeats nor loses an alert. Open incidents are
also in BoxState (``alerts.open``) for the page and ``/health``.

A condition whose truth is not known (the link still ``starting`` after a restart, a printer
not reported yet) neither opens nor resolves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from edged.fleet import alert_text
from edged.fleet.courier import AlertSink, Courier, DeliveryError
from edged.fleet.settings import AlertsConfig
from edged.i18n import Language, Locale
from edged.i18n.words import status_word, type_word
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, JournalError, StoredOrder
from edged.state import Key

__all__ = ["AlertMonitor", "AlertSink", "DeliveryError", "Incident"]

log = logging.getLogger(__name__)

KV_KEY = "alerts"
STATE_KEY: Final = "alerts.open"
VERSION = 1
LINK_DOWN = frozenset({"offline", "unauthorized"})
LINK_UNKNOWN = frozenset({"starting", None})
PRINTER_DOWN = frozenset({"offline", "paper_out", "cover_open"})
# Refusals that only mean the order had already moved on: nothing to tell.
MOOT_CODES = frozenset({"ORDER_MOVED_ON"})
RECHECK = 30.0  # seconds between checks when nothing wakes the monitor
SUBJECT_KEYS = ("order_id", "code", "type", "printer", "problem", "count", "kind")


class StateLike(Protocol):
    def snapshot(self) -> dict[str, Any]: ...

    def set(self, key: Key, value: Any) -> None: ...

    def watch(self, fn: Callable[[str, Any], None]) -> None: ...

    def unwatch(self, fn: Callable[[str, Any], None]) -> None: ...


class JournalLike(Protocol):
    def add_listener(self, fn: Callable[[list[Event]], None]) -> None: ...

    def remove_listener(self, fn: Callable[[list[Event]], None]) -> None: ...

    async def waiting_times(self) -> list[tuple[int, str, str, float]]: ...

    async def pending_commands(self) -> list[Command]: ...

    async def get_order(self, order_id: int) -> StoredOrder | None: ...

    async def kv_get(self, key: str) -> str | None: ...

    async def kv_set(self, key: str, value: str | None) -> None: ...


@dataclass
class Incident:
    """Something wrong, for long enough. ``since``: when the condition began."""

    key: str
    rule: str
    since: float
    values: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass
class _Condition:
    key: str
    rule: str
    since: float
    after: float
    values: dict[str, Any]


class AlertMonitor:
    """Watches the rules and hands each incident's messages to the sinks."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        journal: JournalLike,
        state: StateLike,
        sinks: list[AlertSink],
        box_id: str,
        box_name: str,
        language: Language,
        selling_point: Callable[[], tuple[int, str, str]],
        printers: Callable[[], list[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``selling_point()`` gives ``(id, name, timezone)`` of the pairing; ``printers()``
        the configured printer names (an incident of a printer no longer configured ends)."""
        self.config = config
        self.journal = journal
        self.state = state
        self.box_id = box_id
        self.box_name = box_name
        self.language = language
        self.selling_point = selling_point
        self.printers = printers
        self.clock = clock
        self.couriers = {
            sink.name: Courier(sink, config, self._changed, fold=self.fold) for sink in sinks
        }
        self.open: dict[str, Incident] = {}
        self.opened = 0
        self.resolved = 0
        self._since: dict[str, float] = {}
        # order id -> what was refused, and the order's status at that moment.
        self._refused: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._saved = ""

    # -- inputs ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """The box state and the journal's events reach the rules while inside (``run``
        is inside; a test may check rules without running the monitor)."""
        self.state.watch(self._on_state)
        self.journal.add_listener(self._on_events)
        try:
            yield
        finally:
            self.journal.remove_listener(self._on_events)
            self.state.unwatch(self._on_state)

    def _on_state(self, key: str, value: Any) -> None:
        if key in ("link", "waiting_orders", "queued_commands") or key.startswith("printer."):
            self._wake.set()

    def _on_events(self, events: list[Event]) -> None:
        """Journal events (decisions refused or done, orders moving on), right after commit."""
        for event in events:
            order_id = event.order_id
            if order_id is None:
                continue
            data = ev.payload(event)
            if isinstance(data, ev.CommandFailed) and self.config.decision_refused:
                code, kind = data.code, data.kind
                if code not in MOOT_CODES and kind != "catalog":
                    self._refused[order_id] = {
                        "at": event.ts,
                        "kind": kind,
                        "detail": f"{code} {data.message}".strip()[:200],
                    }
                    self._wake.set()
            elif event.kind == ev.COMMAND_DONE and order_id in self._refused:
                self._refused.pop(order_id)
                self._wake.set()
            elif event.kind in (ev.ORDER_STATUS, ev.ORDER_NEW):
                self._wake.set()

    def open_incidents(self) -> list[str]:
        return sorted(self.open)

    def metrics(self) -> dict[str, int]:
        out = {"open": len(self.open), "opened": self.opened, "resolved": self.resolved}
        for name, courier in self.couriers.items():
            out[f"{name}.queued"] = len(courier.queue)
            out[f"{name}.delivered"] = courier.delivered
            out[f"{name}.dropped"] = courier.dropped
        return out

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        with self.listening():
            await self._run()

    async def _run(self) -> None:
        await self._load()
        try:
            async with asyncio.TaskGroup() as group:
                for name, courier in self.couriers.items():
                    group.create_task(courier.run(), name=f"alerts-{name}")
                group.create_task(self._save_loop(), name="alerts-save")
                group.create_task(self._watch(), name="alerts-watch")
        finally:
            # Stopped (or restarted with new settings): keep what changed since the last
            # save, so the next monitor neither repeats nor loses a message.
            with contextlib.suppress(JournalError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._save_now()

    async def _watch(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self.evaluate()
            except JournalError as exc:
                log.warning("alerts: journal unavailable: %s", exc)
                next_due = None
            except Exception:
                # Alerts must never take order intake down with them.
                log.exception("alerts: rule check failed; trying again later")
                next_due = None
            timeout = RECHECK if next_due is None else min(RECHECK, next_due - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, timeout)):
                    await self._wake.wait()

    # -- rules -------------------------------------------------------------------------------

    async def evaluate(self) -> float | None:
        """Open and resolve incidents; returns when the next one may fall due."""
        now = self.clock()
        conditions, unknown = await self._conditions(now)
        for key in list(self._since):
            if key not in conditions and key not in unknown:
                del self._since[key]
        for cond in conditions.values():
            if cond.key not in self.open and now >= cond.since + cond.after:
                await self._open(cond, now)
        for key in list(self.open):
            if key not in conditions and key not in unknown:
                await self._resolve(key, now)
        self._publish_state()
        pending = [c.since + c.after for c in conditions.values() if c.key not in self.open]
        return min(pending, default=None)

    async def _conditions(self, now: float) -> tuple[dict[str, _Condition], set[str]]:
        cfg = self.config
        found: dict[str, _Condition] = {}
        unknown: set[str] = set()

        def held(key: str, rule: str, after: float, values: dict[str, Any]) -> None:
            since = self._since.setdefault(key, self.open[key].since if key in self.open else now)
            found[key] = _Condition(key, rule, since, after, values)

        if cfg.order_waiting_after > 0:
            for order_id, code, kind, first_seen in await self.journal.waiting_times():
                key = f"order_waiting:{order_id}"
                values = {"order_id": order_id, "code": code or str(order_id), "type": kind}
                found[key] = _Condition(
                    key, "order_waiting", first_seen, cfg.order_waiting_after, values
                )
        snapshot = self.state.snapshot()
        link = snapshot.get("link")
        if link in LINK_UNKNOWN:
            unknown.add("link_down")
        elif cfg.link_down_after > 0 and link in LINK_DOWN:
            held("link_down", "link_down", cfg.link_down_after, {"link": str(link)})
        if cfg.printer_down_after > 0:
            configured = set(self.printers()) if self.printers is not None else None
            for key in [k for k in self.open if k.startswith("printer_down:")]:
                name = key[len("printer_down:") :]
                health = snapshot.get(f"printer.{name}")
                gone = configured is not None and name not in configured
                unreported = not isinstance(health, Mapping) or health.get("state") in (
                    None,
                    "unknown",
                )
                if unreported and not gone:
                    unknown.add(key)
            for name, health in sorted(_printers(snapshot).items()):
                problem = health.get("state")
                if problem in PRINTER_DOWN:
                    values = {
                        "printer": name,
                        "problem": str(problem),
                        "detail": str(health.get("detail") or "")[:200],
                    }
                    held(f"printer_down:{name}", "printer_down", cfg.printer_down_after, values)
        if cfg.decision_stuck_after > 0:
            pending = await self.journal.pending_commands()
            if pending:
                oldest = min(pending, key=lambda c: c.created)
                values = {"count": len(pending), "detail": (oldest.error or "")[:200]}
                found["decision_stuck"] = _Condition(
                    "decision_stuck",
                    "decision_stuck",
                    oldest.created,
                    cfg.decision_stuck_after,
                    values,
                )
        for order_id, refusal in list(self._refused.items()):
            stored = await self.journal.get_order(order_id)
            status = stored.status if stored is not None else "gone"
            refusal.setdefault("status", status)
            if stored is None or stored.is_final or status != refusal["status"]:
                self._refused.pop(order_id)  # the order moved on: resolved below
                continue
            key = f"decision_refused:{order_id}"
            values = {
                "order_id": order_id,
                "code": stored.code or str(order_id),
                "kind": refusal["kind"],
                "detail": refusal["detail"],
            }
            found[key] = _Condition(key, "decision_refused", refusal["at"], 0.0, values)
        return found, unknown

    # -- incidents ---------------------------------------------------------------------------

    async def _open(self, cond: _Condition, now: float) -> None:
        incident = Incident(cond.key, cond.rule, cond.since, dict(cond.values))
        alert = self._alert(incident, "open", now, {})
        incident.title = alert["title"]
        self.open[cond.key] = incident
        self.opened += 1
        log.warning("alert: %s", alert["message"])
        self._send(alert, now)

    async def _resolve(self, key: str, now: float) -> None:
        incident = self.open.pop(key)
        extra: dict[str, Any] = {}
        if incident.rule in ("order_waiting", "decision_refused"):
            stored = await self.journal.get_order(int(incident.values["order_id"]))
            extra["status"] = stored.status if stored is not None else "gone"
        elif incident.rule == "link_down":
            extra["link"] = self.state.snapshot().get("link", "online")
        alert = self._alert(incident, "resolved", now, extra)
        self.resolved += 1
        log.info("alert resolved: %s", alert["message"])
        self._send(alert, now)

    def _alert(
        self, incident: Incident, state: str, now: float, extra: dict[str, Any]
    ) -> dict[str, Any]:
        sp_id, sp_name, timezone = self.selling_point()
        locale = Locale(self.language, timezone)
        # The incident keeps codes (machines read them in "subject"); people read words.
        values = {**incident.values, **extra}
        if "type" in values:
            values["type"] = type_word(str(values["type"]), locale)
        if "status" in values:
            values["status"] = status_word(str(values["status"]), locale)
        for key in ("problem", "kind", "link"):
            if key in values:
                values[key] = alert_text.word(locale, str(values[key]), str(values[key]))
        values["detail"] = values.get("detail") or values.get("link", "")
        values["since"] = alert_text.clock(locale, incident.since, now)
        values["minutes"] = max(0, round((now - incident.since) / 60))
        title, message = alert_text.render(locale, incident.rule, state, values)
        alert: dict[str, Any] = {
            "v": VERSION,
            "id": f"{self.box_id}:{incident.key}:{int(incident.since)}:{state}",
            "state": state,
            "incident": incident.key,
            "rule": incident.rule,
            "box_id": self.box_id,
            "box_name": self.box_name,
            "selling_point": {"id": sp_id, "name": sp_name} if sp_id else None,
            "since": alert_text.iso(locale, incident.since),
            "at": alert_text.iso(locale, now),
            "title": f"{self.box_name}: {title}",
            "message": message,
            "subject": {k: incident.values[k] for k in SUBJECT_KEYS if k in incident.values},
        }
        if state == "resolved":
            alert["duration"] = round(now - incident.since, 1)
        return alert

    def fold(self, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """One message for many queued alerts (a rate-limited webhook): a summary in the
        box's language, and every alert it carries under ``alerts``."""
        now = self.clock()
        sp_id, sp_name, timezone = self.selling_point()
        locale = Locale(self.language, timezone)
        title, message = alert_text.digest(locale, alerts, now)
        ids = "\n".join(str(a.get("id")) for a in alerts)
        return {
            "v": VERSION,
            "id": f"{self.box_id}:digest:{hashlib.sha256(ids.encode()).hexdigest()[:16]}",
            "state": "digest",
            "incident": "digest",
            "rule": "digest",
            "box_id": self.box_id,
            "box_name": self.box_name,
            "selling_point": {"id": sp_id, "name": sp_name} if sp_id else None,
            "at": alert_text.iso(locale, now),
            "title": f"{self.box_name}: {title}",
            "message": message,
            "subject": {"count": len(alerts)},
            "alerts": alerts,
        }

    def _send(self, alert: dict[str, Any], now: float) -> None:
        for courier in self.couriers.values():
            courier.put(alert, now)
        self._changed()

    def _publish_state(self) -> None:
        rows = [
            {"incident": i.key, "rule": i.rule, "title": i.title, "since": i.since}
            for i in sorted(self.open.values(), key=lambda i: (i.since, i.key))
        ]
        self.state.set(STATE_KEY, rows)

    # -- persistence -------------------------------------------------------------------------

    def _changed(self) -> None:
        self._dirty.set()

    def _document(self) -> str:
        return json.dumps(
            {
                "open": [asdict(i) for i in self.open.values()],
                "refused": {str(k): v for k, v in self._refused.items()},
                "queues": {name: c.queue for name, c in self.couriers.items() if c.queue},
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._save_now()
            except JournalError as exc:  # disk full: keep going from memory, retry later
                log.warning("alerts: cannot keep the alert state: %s", exc)
                await asyncio.sleep(self.config.retry_min)
                self._dirty.set()

    async def _save_now(self) -> None:
        """Write the open incidents and queues to the journal, if they changed."""
        document = self._document()
        if document == self._saved:
            return
        empty = not (self.open or self._refused or any(c.queue for c in self.couriers.values()))
        await self.journal.kv_set(KV_KEY, None if empty else document)
        self._saved = document

    async def _load(self) -> None:
        try:
            raw = await self.journal.kv_get(KV_KEY)
        except JournalError as exc:
            log.warning("alerts: cannot read the alert state: %s", exc)
            return
        if not raw:
            self._saved = self._document()
            return
        try:
            doc = json.loads(raw)
            for item in doc.get("open", []):
                incident = Incident(**item)
                self.open[incident.key] = incident
            for key, refusal in doc.get("refused", {}).items():
                self._refused[int(key)] = dict(refusal)
            for name, queue in doc.get("queues", {}).items():
                if name in self.couriers:
                    self.couriers[name].queue.extend(queue)
        except (ValueError, TypeError, AttributeError) as exc:
            log.error("alerts: ignoring an unreadable alert state: %s", exc)
            self.open.clear()
            self._refused.clear()
        self._saved = raw
        if self.open:
            log.info("alerts: %d incident(s) still open: %s", len(self.open), sorted(self.open))


def _printers(snapshot: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        k[8:]: v for k, v in snapshot.items() if k.startswith("printer.") and isinstance(v, Mapping)
    }
