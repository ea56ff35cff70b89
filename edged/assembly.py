"""How each part of the box is built from the config, for the supervisor.

:class:`Assembly` turns a :class:`~edged.config.Config` into the parts the
:class:`~edged.parts.Supervisor` runs (Sinqro link, outbox sender, spooler, panel, bridges,
web page, fleet link, alerts): :meth:`Assembly.specs` names each part, the config sections
it is built from and its builder. A builder makes the part's new instance and keeps the
composition root's reference to it current (``app.link``, ``app.spooler``, ``app.web``...),
so the page, the metrics and the other parts always reach the instance that runs now.

The small adapters at the end make a component fit the supervisor's part shape: the web
server as a part that is listening once started, the alert monitor with its webhook client,
the spooler that first moves the tickets of removed printers to their backup.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edged.config import Config
from edged.flow.intake import NotificationLink, PushSource
from edged.flow.outbox import OutboxSender
from edged.journal.store import Journal, Tx
from edged.parts import PartSpec, Runnable
from edged.sinqro.api import SinqroApi

if TYPE_CHECKING:  # the optional parts are imported only when configured
    from edged.app import App
    from edged.fleet.alerts import AlertMonitor
    from edged.fleet.settings import FleetConfig
    from edged.panel.controller import Panel
    from edged.printing.spooler import Spooler
    from edged.web.server import WebServer

log = logging.getLogger(__name__)


class Assembly:
    """Builds every part of ``app`` from the config; ``release`` runs after an instance
    stopped (it drops the listeners the instance left on the journal and the state)."""

    def __init__(self, app: App, release: Callable[[Runnable], None]) -> None:
        self.app = app
        self.release = release
        # (removed printer, its backup): tickets the next spooler moves before it starts.
        self.printer_moves: list[tuple[str, str]] = []
        self._link_fleet: FleetConfig | None = None

    def plan_printer_moves(self, old: Config, new: Config) -> None:
        """Queued tickets of a printer ``new`` removes go to its backup when that one stays;
        the rest are failed with a reason by the spooler's start (never dropped silently)."""
        kept = {p.name for p in new.printers}
        self.printer_moves = [
            (p.name, p.backup)
            for p in old.printers
            if p.name not in kept and p.backup and p.backup in kept
        ]

    def specs(self) -> list[PartSpec]:
        """Every part, the config sections it is built from, and how to build it."""
        release = self.release
        return [
            PartSpec("sinqro-link", ("sinqro", "fleet"), self._link_part, release),
            PartSpec("outbox", ("sinqro",), self._sender_part, release),
            PartSpec("spooler", ("printers", "box"), self._build_spooler, release),
            PartSpec("panel", ("panel", "orders"), self._build_panel, release),
            PartSpec("mqtt", ("mqtt", "box"), self._build_mqtt, release),
            PartSpec("serial", ("serial",), self._build_serial, release),
            # The page reads the box's name and language live: changing them (the language
            # is chosen on the page) must not restart it and sign everyone out.
            PartSpec("web", ("web",), self._build_web, release, restart_detached=True),
            # The fleet link reads the box's name live too; the alerts' texts follow the
            # language (their state is kept across the restart).
            PartSpec("fleet", ("fleet",), self._build_fleet, release),
            PartSpec("alerts", ("alerts", "fleet", "box"), self._build_alerts, release),
        ]

    def build_link(self, cfg: Config) -> None:
        """The REST client, outbox sender and notification link share one Sinqro config."""
        app = self.app
        app.api = SinqroApi(
            cfg.sinqro.base_url,
            cfg.sinqro.server_token,
            app.pairing.user_token,
            timeout=cfg.sinqro.request_timeout,
        )
        app.sender = OutboxSender(
            app.journal,
            app.api,
            app.state,
            cfg.orders,
            app.current_pairing,
            settle=cfg.sinqro.request_timeout,
        )
        app.link = self._make_link(cfg)

    def _make_link(self, cfg: Config) -> NotificationLink:
        """The notification link; with ``fleet.sinqro_notifications`` it also (or only)
        listens to edged relay's topic on the fleet broker."""
        app = self.app
        push_sources: list[PushSource] = []
        if cfg.fleet.sinqro_notifications != "off":
            from edged.relay.subscriber import RelaySubscription

            push_sources.append(RelaySubscription(cfg.fleet, box_id=app.identity.box_id))
        self._link_fleet = cfg.fleet
        return NotificationLink(
            cfg.sinqro,
            app.api,
            app.desk,
            app.journal,
            app.state,
            app.current_pairing,
            on_online=app.sender.kick,
            push_sources=push_sources,
            websocket=cfg.fleet.sinqro_notifications != "instead",
        )

    def _link_part(self, cfg: Config) -> Runnable:
        if self.app.link.config != cfg.sinqro:
            old = self.app.api
            self.build_link(cfg)
            asyncio.get_running_loop().create_task(old.aclose(), name="old-sinqro-client")
        elif self._link_fleet != cfg.fleet:
            # Only the relay subscription changed: the REST client and the sender stay.
            self.app.link = self._make_link(cfg)
        return self.app.link

    def _sender_part(self, cfg: Config) -> Runnable:
        return self.app.sender

    def _build_spooler(self, cfg: Config) -> Runnable | None:
        app = self.app
        app.spooler = None
        kept = {f"printer.{p.name}" for p in cfg.printers}
        for key in [k for k in app.state.snapshot() if k.startswith("printer.")]:
            if key not in kept:
                app.state.delete(key)
        if not cfg.printers:
            return None
        from edged.printing.spooler import Spooler
        from edged.printing.transports import make_transport

        app.spooler = Spooler(
            list(cfg.printers),
            app.journal,
            app.state,
            cfg.box,
            transports=make_transport,
            unstored=app.desk.unstored,
        )
        app.spooler.timezone = lambda: app.pairing.timezone
        moves, self.printer_moves = self.printer_moves, []
        return _MovingJobs(app.spooler, app.journal, moves) if moves else app.spooler

    def _build_panel(self, cfg: Config) -> Panel:
        # Always built: with panel.enabled = false it claims no pins, but the alert logic and
        # the web page's virtual buttons still work.
        from edged.panel.controller import Panel

        app = self.app
        app.panel = Panel(
            cfg.panel,
            cfg.orders,
            app.desk,
            app.journal,
            app.state,
            on_setup_request=self._print_setup_ticket,
        )
        app.panel.language = cfg.box.language
        # Both buttons while the page waits for them prove the browser instead; the page
        # hears of every other press (one that went to an order proves nothing).
        app.panel.on_access_press = self._access_press
        app.panel.on_press_result = self._press_result
        return app.panel

    def _access_press(self) -> bool:
        return self.app.web is not None and self.app.web.button_pressed()

    def _press_result(self, result: str, order_code: str) -> None:
        if self.app.web is not None:
            self.app.web.press_went_elsewhere(result, order_code)

    async def _print_setup_ticket(self) -> None:
        if self.app.web is not None:
            await self.app.web.print_setup_ticket()

    def _build_mqtt(self, cfg: Config) -> Runnable | None:
        app = self.app
        if not cfg.mqtt.enabled:
            app.state.set("bridge.mqtt", "disabled")
            return None
        from edged.bridges.homeassistant import DeviceInfo
        from edged.bridges.mqtt import MqttBridge

        device = DeviceInfo(
            box_id=app.identity.box_id,
            name=cfg.box.name,
            serial_number=app.identity.serial,
            hw_version=app.identity.board_model,
            configuration_url=_page_url(cfg),
        )
        return MqttBridge(
            cfg.mqtt,
            app.journal,
            app.desk,
            app.state,
            box_id=app.identity.box_id,
            device=device,
            printers=lambda: [p.name for p in app.config.printers],
        )

    def _build_serial(self, cfg: Config) -> Runnable | None:
        app = self.app
        if not cfg.serial.enabled:
            app.state.set("bridge.serial", "disabled")
            return None
        from edged.bridges.serial import SerialBridge

        return SerialBridge(cfg.serial, app.journal, app.desk, app.state)

    def _build_web(self, cfg: Config) -> Runnable | None:
        self.app.web = None
        if not cfg.web.enabled:
            return None
        from edged.web.server import WebServer
        from edged.web.services import WebServices

        self.app.web = WebServer(cfg.web, WebServices.from_app(self.app))
        return _Served(self.app.web)

    def _build_fleet(self, cfg: Config) -> Runnable | None:
        """The fleet connection: telemetry, availability and the alerts' fleet topic."""
        app = self.app
        app.fleet = None
        if not cfg.fleet.enabled:
            return None
        from edged.fleet.link import FleetLink
        from edged.fleet.telemetry import Telemetry

        telemetry = Telemetry(
            identity=app.identity,
            box_name=lambda: app.config.box.name,
            state=app.state.snapshot,
            selling_point=self._selling_point,
            orders_since=app.journal.orders_seen_since,
            incidents=lambda: app.alerts.open_incidents() if app.alerts else [],
            storage_path=cfg.state_dir,
        )
        app.fleet = FleetLink(
            cfg.fleet,
            box_id=app.identity.box_id,
            telemetry=telemetry,
            wait_changed=app.state.wait_changed,
        )
        return app.fleet

    def _build_alerts(self, cfg: Config) -> Runnable:
        """Alert rules, always (the page and /health show open incidents), told through the
        fleet topic when [fleet] is on and through every webhook."""
        app = self.app
        import httpx

        from edged.fleet.alerts import AlertMonitor, AlertSink
        from edged.fleet.webhook import WebhookSink

        http = httpx.AsyncClient()
        sinks: list[AlertSink] = []
        if cfg.fleet.enabled:
            sinks.append(_CurrentFleet(self.app))
        sinks += [WebhookSink(hook, i, client=http) for i, hook in enumerate(cfg.alerts.webhooks)]
        app.alerts = AlertMonitor(
            cfg.alerts,
            journal=app.journal,
            state=app.state,
            sinks=sinks,
            box_id=app.identity.box_id,
            box_name=cfg.box.name,
            language=cfg.box.language,
            selling_point=self._selling_point,
            printers=lambda: [p.name for p in app.config.printers],
        )
        return _Alerting(app.alerts, http)

    def _selling_point(self) -> tuple[int, str, str]:
        """``(id, name, time zone)``: the pairing's zone, else ``box.timezone``."""
        app = self.app
        p = app.pairing
        return p.selling_point_id, p.selling_point_name, p.timezone or app.config.box.timezone


class _MovingJobs:
    """The spooler, started after the tickets of removed printers moved to their backup
    (the old spooler has stopped: a ticket it was sending is sent again, marked REPRINT)."""

    def __init__(self, spooler: Spooler, journal: Journal, moves: list[tuple[str, str]]) -> None:
        self.spooler = spooler
        self.journal = journal
        self.moves = moves

    async def start(self) -> None:
        def run(tx: Tx) -> int:
            moved = 0
            for removed, backup in self.moves:
                moved += tx.execute(
                    "UPDATE print_jobs SET printer = ?, origin = ?, updated = ?,"
                    " reprint = (reprint OR state = 'sending'), state = 'queued'"
                    " WHERE printer = ? AND state IN ('queued', 'sending')",
                    (backup, backup, tx.now, removed),
                ).rowcount
            return moved

        moved = await self.journal.transaction(run)
        if moved:
            log.info("%d ticket(s) of removed printers moved to their backup", moved)

    async def run(self) -> None:
        await self.spooler.run()


class _CurrentFleet:
    """The fleet topic as an alert sink, through whichever fleet link runs now (the fleet
    part may restart under the alerts)."""

    name = "fleet"

    def __init__(self, app: App) -> None:
        self.app = app

    async def deliver(self, alert: dict[str, Any]) -> None:
        from edged.fleet.alerts import DeliveryError

        if self.app.fleet is None:
            raise DeliveryError("fleet link not running")
        await self.app.fleet.deliver(alert)


class _Alerting:
    """The alert monitor as a part; its webhook client closes with it."""

    def __init__(self, monitor: AlertMonitor, http: Any) -> None:
        self.monitor = monitor
        self.http = http
        # The supervisor drops these when the part stops (see App._release).
        self._on_events = monitor._on_events
        self._on_state = monitor._on_state

    async def run(self) -> None:
        try:
            await self.monitor.run()
        finally:
            await self.http.aclose()


def _page_url(cfg: Config) -> str:
    """The local page's address as the network sees the box (mDNS), for Home Assistant's
    device link; empty without a web page or a fixed port."""
    if not cfg.web.enabled or not cfg.web.port:
        return ""
    scheme = "https" if cfg.web.tls_cert else "http"
    return f"{scheme}://{socket.gethostname()}.local:{cfg.web.port}/"


class _Served:
    """The web page as a part: listening once ``start`` returns, stopped when cancelled."""

    def __init__(self, server: WebServer) -> None:
        self.server = server
        # The supervisor drops these when the part stops (see App._release).
        self._on_journal_events = server._on_journal_events
        self._on_state_change = server._on_state_change

    async def start(self) -> None:
        await self.server.start()

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.server.stop()
