"""Composition root: the daemon's lifecycle, its pairing, and settings applied live.

:class:`App` holds the box's one journal, state and order desk, and the supervisor
(:mod:`edged.parts`) that runs the parts; the parts running now are read from the
supervisor (:attr:`App.link`, :attr:`App.web`...). The only place that picks real or
virtual parts from the config is :mod:`edged.assembly`, which builds them and reads what it
needs from the App through its narrow :class:`~edged.assembly.Root`.

Start-up order matters and is what systemd's READY=1 promises:

1. the journal is open (migrated, WAL, writer thread up);
2. the supervisor builds and starts every part (Sinqro link, outbox sender, spooler,
   panel, bridges, web page, fleet link, alerts);
3. READY=1 and a STATUS line; then WATCHDOG=1 while the loop and the journal answer.

A part that fails is shown failed and restarted with backoff by the supervisor; order
intake, the buzzer and the other parts go on. Only the journal (the watchdog stops) or the
supervisor failing ends the process for systemd. A saved setting (web page) or SIGHUP
(``systemctl reload edged``, the files read again) restarts only the parts whose config
sections changed. SIGTERM/SIGINT stop everything: each part finishes or records its
in-flight work in ``finally`` blocks, then the journal checkpoints and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edged import redaction, sdnotify
from edged.assembly import AlertsPart, Assembly
from edged.config import Config, load_config, save_web_settings
from edged.configtools import ConfigError
from edged.fleet.identity import BoxIdentity, resolve_identity
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.outbox import OutboxSender
from edged.flow.pairing import Pairing, load_pairing, save_pairing
from edged.journal import recovery as journal_recovery
from edged.journal.store import Journal
from edged.parts import Supervisor
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import OrderAction, SellingPoint
from edged.state import BoxState

if TYPE_CHECKING:  # the optional parts are imported only when configured
    from edged.fleet.alerts import AlertMonitor
    from edged.fleet.link import FleetLink
    from edged.panel.controller import Panel
    from edged.web.server import WebServer
    from edged.web.services import Metric

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0
# The link's counters on /metrics, as edged_link_<key>_total (reconnects: the page has it).
LINK_COUNTERS = {
    "frames": "Websocket frames received",
    "bad_frames": "Websocket frames rejected",
    "ignored_frames": "Websocket frames of another selling point",
    "polls": "REST syncs while the websocket was down",
    "reconciles": "Reconciles after a (re)connect",
    "refreshes": "Status refreshes while the websocket was up",
    "gone_orders": "Open orders closed as gone (unknown to Sinqro, or another selling point)",
    "stale_reports": "Reports set aside because they would move an order back",
    "hints": "Push-source notifications (relay), each only a hint checked with Sinqro",
    "hints_applied": "Hints whose order was fetched from Sinqro and applied",
    "hints_known": "Hints claiming the status the box already had (not asked)",
}


class StopRequested(Exception):
    """Raised inside the task group to unwind it on SIGTERM/SIGINT."""


@dataclass
class Extras:
    """Optional tasks the caller adds (the demo's simulator and terminal view)."""

    tasks: list[tuple[str, Callable[[App], Coroutine[Any, Any, None]]]] = field(
        default_factory=list
    )


@dataclass(frozen=True)
class ApplyResult:
    """What saving settings did: the config now in force and, per restarted part,
    ``applied``, ``restarting`` or the error of the part that could not start. Sections no
    part is built from (journal, logging) are listed under ``needs restart``."""

    config: Config
    parts: dict[str, str]
    needs_restart: tuple[str, ...] = ()


class App:
    """The daemon. ``await App(config).run()`` until a signal or a fatal error."""

    def __init__(self, config: Config, *, extras: Extras | None = None) -> None:
        redaction.remember_config(config)
        self.config = config
        self.extras = extras or Extras()
        self.state = BoxState()
        self.started = time.monotonic()
        self.pairing = Pairing()
        self.ready = asyncio.Event()
        # Set in run(); typed here so the web page and the demo can reach them.
        self.journal: Journal
        self.desk: OrderDesk
        self.identity: BoxIdentity
        # Builds the parts; the supervisor runs them and holds the instances running now.
        self.assembly = Assembly(self)
        # Tests: called with a part's name before each start (to inject start failures).
        self.start_hook: Callable[[str], None] | None = None
        self.supervisor = Supervisor(
            config, self.state, self.assembly.specs(), start_hook=self._start_hook
        )
        self._stop = asyncio.Event()
        self._applying = asyncio.Lock()
        self._pending_login: tuple[str, str, list[SellingPoint]] | None = None
        # The demo shows the one-time setup code in the terminal; a real box never logs it.
        self.demo = False

    # -- the parts running now ---------------------------------------------------------------

    @property
    def api(self) -> SinqroApi:
        """The Sinqro REST client of the ``[sinqro]`` settings in force."""
        return self.assembly.api

    @property
    def sender(self) -> OutboxSender:
        """The outbox sender of the ``[sinqro]`` settings in force."""
        return self.assembly.sender

    @property
    def link(self) -> NotificationLink | None:
        """The notification link running now (None while it is being rebuilt)."""
        return self.supervisor.part("sinqro-link", NotificationLink)

    @property
    def panel(self) -> Panel | None:
        """The panel running now."""
        part = self.supervisor.instance("panel")
        if part is None:
            return None
        from edged.panel.controller import Panel  # loaded already: the part is one

        return part if isinstance(part, Panel) else None

    @property
    def web(self) -> WebServer | None:
        """The web page running now (None when ``[web]`` is off)."""
        part = self.supervisor.instance("web")
        if part is None:
            return None
        from edged.web.server import WebServer  # loaded already: the part is one

        return part if isinstance(part, WebServer) else None

    @property
    def fleet(self) -> FleetLink | None:
        """The fleet link running now (None when ``[fleet]`` is off)."""
        part = self.supervisor.instance("fleet")
        if part is None:
            return None
        from edged.fleet.link import FleetLink  # loaded already: the part is one

        return part if isinstance(part, FleetLink) else None

    @property
    def alerts(self) -> AlertMonitor | None:
        """The alert monitor running now."""
        part = self.supervisor.part("alerts", AlertsPart)
        return part.monitor if part is not None else None

    # -- pairing (used by the web page) ------------------------------------------------------

    def current_pairing(self) -> Pairing:
        return self.pairing

    async def set_pairing(self, pairing: Pairing) -> None:
        """Store a new pairing and move the link over to it at once."""
        await save_pairing(self.journal, pairing)
        redaction.remember(pairing.user_token)
        self.pairing = pairing
        self.api.user_token = pairing.user_token
        link = self.link
        if link is not None:  # else the link being built reads the new pairing
            link.reconnect_now()
        self.sender.kick()

    async def login(self, username: str, password: str) -> list[SellingPoint]:
        """Log in to Sinqro; the token is kept aside until a selling point is chosen."""
        token = await self.api.login(username, password)
        probe = SinqroApi(
            self.config.sinqro.base_url,
            self.config.sinqro.server_token,
            token,
            timeout=self.config.sinqro.request_timeout,
        )
        try:
            points = await probe.selling_points()
        finally:
            await probe.aclose()
        self._pending_login = (username, token, points)
        return points

    async def choose_selling_point(self, selling_point_id: int) -> Pairing:
        if self._pending_login is None:
            raise ValueError("log in first")
        username, token, points = self._pending_login
        chosen = next((p for p in points if p.id == selling_point_id), None)
        if chosen is None:
            raise ValueError(f"selling point {selling_point_id} is not one of this user's")
        self._pending_login = None
        pairing = Pairing(
            user_token=token,
            selling_point_id=chosen.id,
            selling_point_name=chosen.name,
            username=username,
            timezone=chosen.timezone,
        )
        await self.set_pairing(pairing)
        return pairing

    async def logout(self) -> None:
        """Tell Sinqro (best effort) and forget the token; the box stops taking orders."""
        with contextlib.suppress(Exception):
            await self.api.logout()
        await self.set_pairing(Pairing())

    def metrics(self) -> list[Metric]:
        """Samples of the link and the outbox for ``/metrics`` (the web page adds its own)."""
        from edged.web.services import Metric

        out: list[Metric] = []
        current = self.link
        if current is not None:
            out += self._link_metrics(current)
        out += [
            Metric(
                "edged_command_retries_total",
                float(self.sender.retries),
                "Command attempts that will be retried (per-order backoff)",
                "counter",
            ),
            Metric(
                "edged_orders_retrying",
                float(len(self.sender.retrying())),
                "Orders whose next command waits for its own retry",
            ),
        ]
        out += self._fleet_metrics()
        for name, health in sorted(self.supervisor.health().items()):
            labels = {"part": name}
            failed = float(health["state"] == "failed")
            out.append(
                Metric("edged_part_failed", failed, "Part failed, restarting", labels=labels)
            )
            restarts = float(health["restarts"])
            out.append(
                Metric("edged_part_restarts_total", restarts, "Part restarts", "counter", labels)
            )
        return out

    @staticmethod
    def _link_metrics(current: NotificationLink) -> list[Metric]:
        from edged.web.services import Metric

        link = current.metrics()
        out = [
            Metric(f"edged_link_{key}_total", float(link[key]), doc, "counter")
            for key, doc in LINK_COUNTERS.items()
        ]
        out += [
            Metric(
                "edged_hints_rejected_total",
                float(count),
                "Hints Sinqro did not bear out, by reason (unknown order, other selling point,"
                " contradicted status, queue full, unverified)",
                "counter",
                {"reason": reason},
            )
            for reason, count in sorted(current.hints.rejected.items())
        ]
        out.append(
            Metric(
                "edged_link_unread_orders",
                float(link["unread_orders"]),
                "Open orders the last refresh could not read",
            )
        )
        return out

    def _fleet_metrics(self) -> list[Metric]:
        from edged.web.services import Metric

        out: list[Metric] = []
        monitor = self.alerts
        if monitor is not None:
            alerts = monitor.metrics()
            out.append(Metric("edged_alerts_open", float(alerts["open"]), "Open alert incidents"))
            for name, courier in sorted(monitor.couriers.items()):
                labels = {"sink": name}
                out.append(
                    Metric(
                        "edged_alerts_queued",
                        float(len(courier.queue)),
                        "Undelivered alerts",
                        labels=labels,
                    )
                )
                out.append(
                    Metric(
                        "edged_alerts_delivered_total",
                        float(courier.delivered),
                        "Alerts delivered",
                        "counter",
                        labels,
                    )
                )
        fleet = self.fleet
        if fleet is not None:
            out.append(
                Metric("edged_fleet_connected", float(fleet.connected), "Fleet broker connected")
            )
        return out

    async def order_actions(self, order_id: int) -> list[OrderAction]:
        return await self.api.order_actions(order_id)

    async def apply_settings(self, changes: dict[str, Any]) -> ApplyResult:
        """Validate and save settings from the web page, then apply them: the parts whose
        sections changed restart within a moment; queued work is in the journal."""
        # Off the loop: the save fsyncs the file and its directory.
        new = await asyncio.to_thread(save_web_settings, self.config, changes)
        return await self._use(new)

    async def reload(self) -> ApplyResult:
        """SIGHUP (``systemctl reload edged``): read the config files again and apply."""
        new = await asyncio.to_thread(load_config, self.config.source)
        return await self._use(new)

    async def _use(self, new: Config) -> ApplyResult:
        async with self._applying:
            old = self.config
            redaction.remember_config(new)
            self.config = new
            self.desk.config = new.orders
            self.sender.config = new.orders
            panel = self.panel
            if panel is not None:
                panel.language = new.box.language
            self.assembly.plan_printer_moves(old, new)
            parts = await self.supervisor.apply(new)
            fixed = ("journal", "logging")
            later = tuple(s for s in fixed if getattr(old, s) != getattr(new, s))
            return ApplyResult(new, parts, later)

    def part_health(self) -> dict[str, dict[str, Any]]:
        """Every part's state (``running``, ``failed``...), for /health, the page, MQTT."""
        return self.supervisor.health()

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        cfg = self.config
        # Fixed for the process: a changed box.id applies when edged restarts.
        self.identity = resolve_identity(
            configured=cfg.box.id,
            serial_file=cfg.box.serial_file,
            machine_id_file=cfg.box.machine_id_file,
            state_dir=cfg.state_dir,
        )
        self.state.set("box.id", self.identity.box_id)
        log.info("box id %s (from %s)", self.identity.box_id, self.identity.source)
        # heal: a damaged journal is moved aside and replaced (edged/journal/opening.py).
        self.journal = await Journal.open(cfg.journal_path, heal=True)
        self.pairing = await load_pairing(self.journal, cfg.sinqro)
        redaction.remember(self.pairing.user_token)
        await journal_recovery.report(
            self.journal, self.state, cfg.box.language, self.pairing.timezone
        )
        self.desk = OrderDesk(self.journal, self.state, cfg.orders)
        await self.desk.refresh_counts()
        self.assembly.build_link(cfg)

    def _start_hook(self, name: str) -> None:
        if self.start_hook is not None:
            self.start_hook(name)

    async def _housekeeping(self) -> None:
        """Prune old final orders and consumed events, hourly."""
        while True:
            try:
                pruned = await self.journal.prune(self.config.journal.retention_days)
                if any(pruned.values()):
                    log.info("journal pruned: %s", pruned)
            except Exception as exc:  # a full disk must not end the box
                log.warning("journal prune failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY)

    async def _status_lines(self) -> None:
        """Keep systemd's STATUS= line true."""
        version = -1
        while True:
            version = await self.state.wait_changed(version, timeout=30)
            s = self.state
            sdnotify.status(
                f"link {s.get('link')}, {s.get('waiting_orders', 0)} waiting, "
                f"{s.get('queued_commands', 0)} queued"
            )

    def request_stop(self) -> None:
        if not self._stop.is_set():
            # Tell systemd at once; finishing in-flight work follows within TimeoutStopSec.
            sdnotify.stopping("finishing in-flight work")
        self._stop.set()

    async def _wait_stop(self) -> None:
        await self._stop.wait()
        raise StopRequested

    def request_reload(self) -> None:
        """SIGHUP: read the config files again and restart the parts that changed."""
        asyncio.get_running_loop().create_task(self._reload_logged(), name="reload")

    async def _reload_logged(self) -> None:
        try:
            result = await self.reload()
        except ConfigError as exc:
            log.error("reload refused, the config in force stays: %s", exc)
            return
        except OSError as exc:
            log.error("reload failed, the config in force stays: %s", exc)
            return
        if not result.parts and not result.needs_restart:
            log.info("reload: nothing changed")
        for section in result.needs_restart:
            log.warning("reload: [%s] changed; it applies when edged restarts", section)

    async def run(self) -> int:
        """Run until stopped. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        await self._open()
        code = 0
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._wait_stop(), name="stop")
                tg.create_task(self.supervisor.run(), name="supervisor")
                await self.supervisor.started()
                for name, factory in self.extras.tasks:
                    tg.create_task(factory(self), name=name)
                tg.create_task(self._housekeeping(), name="housekeeping")
                tg.create_task(self._status_lines(), name="status")
                interval = sdnotify.watchdog_interval()
                if interval:
                    tg.create_task(
                        sdnotify.watchdog_loop(self.journal.ping, interval), name="watchdog"
                    )
                sdnotify.ready(f"journal open, {len(self.config.printers)} printer(s)")
                self.ready.set()
                log.info("edged ready (journal %s)", self.config.journal_path)
        except* StopRequested:
            log.info("edged stopping")
        except* Exception as group:
            for exc in group.exceptions:
                log.critical("edged failed: %r", exc, exc_info=exc)
            code = 1
        finally:
            await self._close()
        return code

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self.api.aclose()
        if hasattr(self, "desk"):  # orders held unstored come again from Sinqro
            await self.desk.unstored.close()
        await self.journal.close()
        log.info("edged stopped")


async def run_app(config: Config, extras: Extras | None = None) -> int:
    """Run the daemon with ``config``; returns the exit code."""
    return await App(config, extras=extras).run()
