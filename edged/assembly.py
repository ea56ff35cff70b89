"""How each part of the box is built from the config, for the supervisor.

:class:`Assembly` turns a :class:`~edged.config.Config` into the parts the
:class:`~edged.parts.Supervisor` runs (Sinqro link, outbox sender, spooler, panel, bridges,
web page, fleet link, alerts): :meth:`Assembly.specs` names each part, the config sections
it is built from and its builder. A builder only makes the part's new instance; the part
wires itself to the journal and the state in its ``run`` and the supervisor holds the
instance that runs now (:meth:`~edged.parts.Supervisor.part`), where the composition root
and the other parts read it. The assembly keeps only what parts share and is no part
itself: the Sinqro REST client and the outbox sender (rebuilt when ``[sinqro]`` changes).

What the assembly reads from the composition root is the narrow :class:`Root`; it never
writes into it.

The small adapters at the end make a component fit the supervisor's part shape: the alert
monitor with its webhook client, the spooler that first moves the tickets of removed
printers to their backup.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edged.config import Config
from edged.fleet.identity import BoxIdentity
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink, PushSource
from edged.flow.outbox import OutboxSender
from edged.flow.pairing import Pairing
from edged.flow.station import KitchenStation
from edged.journal.store import Journal
from edged.parts import PartSpec, Runnable
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import OrderAction, SellingPoint
from edged.state import BoxState, printer_key

if TYPE_CHECKING:  # the optional parts are imported only when configured
    from edged.fleet.alerts import AlertMonitor
    from edged.fleet.link import FleetLink
    from edged.fleet.settings import FleetConfig
    from edged.panel.controller import Panel
    from edged.printing.spooler import Spooler
    from edged.web.server import WebServer
    from edged.web.services import Applied, Metric

log = logging.getLogger(__name__)


class Root(Protocol):
    """What the assembly reads from the composition root (:class:`edged.app.App`): the
    box's journal, state, desk and identity, its pairing, the parts running now, and what
    the page offers about the pairing and the settings."""

    @property
    def config(self) -> Config: ...

    @property
    def journal(self) -> Journal: ...

    @property
    def state(self) -> BoxState: ...

    @property
    def desk(self) -> OrderDesk: ...

    @property
    def identity(self) -> BoxIdentity: ...

    @property
    def demo(self) -> bool: ...

    @property
    def web(self) -> WebServer | None: ...

    @property
    def panel(self) -> Panel | None: ...

    @property
    def fleet(self) -> FleetLink | None: ...

    @property
    def alerts(self) -> AlertMonitor | None: ...

    def current_pairing(self) -> Pairing: ...

    async def login(self, username: str, password: str) -> list[SellingPoint]: ...

    async def choose_selling_point(self, selling_point_id: int) -> Pairing: ...

    async def logout(self) -> None: ...

    async def order_actions(self, order_id: int) -> list[OrderAction]: ...

    async def apply_settings(self, changes: dict[str, Any]) -> Applied: ...

    def metrics(self) -> list[Metric]: ...


class Assembly:
    """Builds every part of the box from the config, reading what it needs from ``root``.

    ``api`` and ``sender`` are the Sinqro REST client and the outbox sender of the
    ``[sinqro]`` settings in force (:meth:`build_link` makes them, with the link)."""

    def __init__(self, root: Root) -> None:
        self.root = root
        self.api: SinqroApi
        self.sender: OutboxSender
        self._link: NotificationLink
        # (removed printer, its backup): tickets the next spooler moves before it starts.
        self.printer_moves: list[tuple[str, str]] = []
        self._link_fleet: FleetConfig | None = None
        self._kitchen: KitchenStation | None = None

    @property
    def kitchen(self) -> KitchenStation:
        """The kitchen display's station: one per box, shared by the page and the panel
        (both restart on saved settings; the selection stays)."""
        if self._kitchen is None:
            self._kitchen = KitchenStation(self.root.desk, self.root.journal)
        return self._kitchen

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
        return [
            PartSpec("sinqro-link", ("sinqro", "fleet"), self._link_part),
            PartSpec("outbox", ("sinqro",), self._sender_part),
            PartSpec("catalog", ("sinqro", "box"), self._build_catalog),
            PartSpec("spooler", ("printers", "box"), self._build_spooler),
            PartSpec("panel", ("panel", "orders"), self._build_panel),
            PartSpec("mqtt", ("mqtt", "box"), self._build_mqtt),
            PartSpec("serial", ("serial",), self._build_serial),
            # The page reads the box's name and language live: changing them (the language
            # is chosen on the page) must not restart it and sign everyone out.
            PartSpec("web", ("web",), self._build_web, restart_detached=True),
            # The fleet link reads the box's name live too; the alerts' texts follow the
            # language (their state is kept across the restart).
            PartSpec("fleet", ("fleet",), self._build_fleet),
            PartSpec("alerts", ("alerts", "fleet", "box"), self._build_alerts),
        ]

    def build_link(self, cfg: Config) -> None:
        """The REST client, outbox sender and notification link share one Sinqro config."""
        root = self.root
        self.api = SinqroApi(
            cfg.sinqro.base_url,
            cfg.sinqro.server_token,
            root.current_pairing().user_token,
            timeout=cfg.sinqro.request_timeout,
        )
        self.sender = OutboxSender(
            root.journal,
            self.api,
            root.state,
            cfg.orders,
            root.current_pairing,
            settle=cfg.sinqro.request_timeout,
        )
        self._link = self._make_link(cfg)

    def _make_link(self, cfg: Config) -> NotificationLink:
        """The notification link; with ``fleet.sinqro_notifications`` it also (or only)
        listens to edged relay's topic on the fleet broker."""
        root = self.root
        push_sources: list[PushSource] = []
        if cfg.fleet.sinqro_notifications != "off":
            from edged.relay.subscriber import RelaySubscription

            push_sources.append(RelaySubscription(cfg.fleet, box_id=root.identity.box_id))
        self._link_fleet = cfg.fleet
        return NotificationLink(
            cfg.sinqro,
            self.api,
            root.desk,
            root.journal,
            root.state,
            root.current_pairing,
            on_online=self.sender.kick,
            push_sources=push_sources,
            websocket=cfg.fleet.sinqro_notifications != "instead",
        )

    def _link_part(self, cfg: Config) -> Runnable:
        if self._link.config != cfg.sinqro:
            old = self.api
            self.build_link(cfg)
            asyncio.get_running_loop().create_task(old.aclose(), name="old-sinqro-client")
        elif self._link_fleet != cfg.fleet:
            # Only the relay subscription changed: the REST client and the sender stay.
            self._link = self._make_link(cfg)
        return self._link

    def _sender_part(self, cfg: Config) -> Runnable:
        return self.sender

    def _build_catalog(self, cfg: Config) -> Runnable:
        from edged.flow.catalog import CatalogKeeper

        root = self.root
        keeper = CatalogKeeper(
            root.journal,
            self.api,
            root.state,
            root.current_pairing,
            default_timezone=cfg.box.timezone,
        )
        # The bridges reach the keeper through the desk they already hold.
        root.desk.catalog = keeper
        return keeper

    def _build_spooler(self, cfg: Config) -> Runnable | None:
        root = self.root
        kept = {p.name for p in cfg.printers}
        for name in [n for n in root.state.printers() if n not in kept]:
            root.state.delete(printer_key(name))
        if not cfg.printers:
            return None
        from edged.printing.spooler import Spooler
        from edged.printing.transports import make_transport

        spooler = Spooler(
            list(cfg.printers),
            root.journal,
            root.state,
            cfg.box,
            transports=make_transport,
            unstored=root.desk.unstored,
        )
        spooler.timezone = lambda: root.current_pairing().timezone
        moves, self.printer_moves = self.printer_moves, []
        return _MovingJobs(spooler, root.journal, moves) if moves else spooler

    def _build_panel(self, cfg: Config) -> Panel:
        # Always built: with panel.enabled = false it claims no pins, but the alert logic and
        # the web page's virtual buttons still work.
        from edged.panel.controller import Panel

        root = self.root
        panel = Panel(
            cfg.panel,
            cfg.orders,
            root.desk,
            root.journal,
            root.state,
            on_setup_request=self._print_setup_ticket,
        )
        panel.language = cfg.box.language
        # Both buttons while the page waits for them prove the browser instead; the page
        # hears of every other press (one that went to an order proves nothing).
        panel.on_access_press = self._access_press
        panel.on_press_result = self._press_result
        # While a kitchen display is on, the buttons bump and select its tiles.
        panel.kitchen = self.kitchen
        return panel

    def _access_press(self) -> bool:
        web = self.root.web
        return web is not None and web.button_pressed()

    def _press_result(self, result: str, order_code: str) -> None:
        web = self.root.web
        if web is not None:
            web.press_went_elsewhere(result, order_code)

    async def _print_setup_ticket(self) -> None:
        web = self.root.web
        if web is not None:
            await web.print_setup_ticket()

    def _build_mqtt(self, cfg: Config) -> Runnable | None:
        root = self.root
        if not cfg.mqtt.enabled:
            root.state.set("bridge.mqtt", "disabled")
            return None
        from edged.bridges.homeassistant import DeviceInfo
        from edged.bridges.mqtt import MqttBridge

        identity = root.identity
        device = DeviceInfo(
            box_id=identity.box_id,
            name=cfg.box.name,
            serial_number=identity.serial,
            hw_version=identity.board_model,
            configuration_url=_page_url(cfg),
        )
        return MqttBridge(
            cfg.mqtt,
            root.journal,
            root.desk,
            root.state,
            box_id=identity.box_id,
            device=device,
            printers=lambda: [p.name for p in root.config.printers],
        )

    def _build_serial(self, cfg: Config) -> Runnable | None:
        root = self.root
        if not cfg.serial.enabled:
            root.state.set("bridge.serial", "disabled")
            return None
        from edged.bridges.serial import SerialBridge

        return SerialBridge(cfg.serial, root.journal, root.desk, root.state)

    def _build_web(self, cfg: Config) -> Runnable | None:
        if not cfg.web.enabled:
            return None
        from edged.web.server import WebServer
        from edged.web.services import LivePanel, LiveSpooler, WebServices

        root = self.root
        services = WebServices(
            box_name=cfg.box.name,
            journal=root.journal,
            state=root.state,
            desk=root.desk,
            pairing=root.current_pairing,
            login=root.login,
            choose_selling_point=root.choose_selling_point,
            logout=root.logout,
            order_actions=root.order_actions,
            config=lambda: root.config,
            apply_settings=root.apply_settings,
            # Parts restart on saved settings: the page follows the ones running now.
            spooler=LiveSpooler(root.journal),
            panel=LivePanel(lambda: root.panel),
            metrics=self._page_metrics,
            demo=root.demo,
            kitchen=self.kitchen,
        )
        return WebServer(cfg.web, services)

    def _page_metrics(self) -> list[Metric]:
        """The outbox's and the REST client's counters, then the root's samples."""
        from edged.web.services import Metric

        out = [
            Metric(name, float(value), doc, "counter")
            for name, value, doc in (
                ("edged_commands_sent_total", self.sender.sent, "Commands Sinqro took"),
                ("edged_commands_failed_total", self.sender.failed, "Commands Sinqro refused"),
                ("edged_sinqro_requests_total", self.api.calls, "REST calls to Sinqro"),
                ("edged_sinqro_failures_total", self.api.failures, "REST calls that failed"),
            )
        ]
        return out + self.root.metrics()

    def _build_fleet(self, cfg: Config) -> Runnable | None:
        """The fleet connection: telemetry, availability and the alerts' fleet topic."""
        root = self.root
        if not cfg.fleet.enabled:
            return None
        from edged.fleet.link import FleetLink
        from edged.fleet.telemetry import Telemetry

        def incidents() -> list[str]:
            alerts = root.alerts
            return alerts.open_incidents() if alerts is not None else []

        telemetry = Telemetry(
            identity=root.identity,
            box_name=lambda: root.config.box.name,
            state=root.state.snapshot,
            selling_point=self._selling_point,
            orders_since=root.journal.orders_seen_since,
            incidents=incidents,
            storage_path=cfg.state_dir,
        )
        updater = None
        if cfg.fleet.updates:
            from edged import __version__
            from edged.fleet.updater import Updater

            updater = Updater(
                cfg.fleet,
                box_id=root.identity.box_id,
                running_version=__version__,
                state_dir=cfg.state_dir,
                events=telemetry.events,
                waiting_orders=lambda: int(root.state.get("waiting_orders", 0)),
                timezone=lambda: self._selling_point()[2],
                report=lambda status: root.state.set("fleet.rollout", status),
            )
        return FleetLink(
            cfg.fleet,
            box_id=root.identity.box_id,
            telemetry=telemetry,
            wait_changed=root.state.wait_changed,
            updater=updater,
        )

    def _build_alerts(self, cfg: Config) -> Runnable:
        """Alert rules, always (the page and /health show open incidents), told through the
        fleet topic when [fleet] is on and through every webhook."""
        root = self.root
        import httpx

        from edged.fleet.alerts import AlertMonitor, AlertSink
        from edged.fleet.webhook import WebhookSink

        http = httpx.AsyncClient()
        sinks: list[AlertSink] = []
        if cfg.fleet.enabled:
            sinks.append(_CurrentFleet(lambda: root.fleet))
        sinks += [WebhookSink(hook, i, client=http) for i, hook in enumerate(cfg.alerts.webhooks)]
        monitor = AlertMonitor(
            cfg.alerts,
            journal=root.journal,
            state=root.state,
            sinks=sinks,
            box_id=root.identity.box_id,
            box_name=cfg.box.name,
            language=cfg.box.language,
            selling_point=self._selling_point,
            printers=lambda: [p.name for p in root.config.printers],
        )
        return AlertsPart(monitor, http)

    def _selling_point(self) -> tuple[int, str, str]:
        """``(id, name, time zone)``: the pairing's zone, else ``box.timezone``."""
        p = self.root.current_pairing()
        return p.selling_point_id, p.selling_point_name, p.timezone or self.root.config.box.timezone


class _MovingJobs:
    """The spooler, started after the tickets of removed printers moved to their backup
    (the old spooler has stopped: a ticket it was sending is sent again, marked REPRINT)."""

    def __init__(self, spooler: Spooler, journal: Journal, moves: list[tuple[str, str]]) -> None:
        self.spooler = spooler
        self.journal = journal
        self.moves = moves

    async def start(self) -> None:
        from edged.printing.jobs import move_to_backups

        moved = await move_to_backups(self.journal, self.moves)
        if moved:
            log.info("%d ticket(s) of removed printers moved to their backup", moved)

    async def run(self) -> None:
        await self.spooler.run()


class _CurrentFleet:
    """The fleet topic as an alert sink, through whichever fleet link runs now (the fleet
    part may restart under the alerts)."""

    name = "fleet"

    def __init__(self, current: Callable[[], FleetLink | None]) -> None:
        self.current = current

    async def deliver(self, alert: dict[str, Any]) -> None:
        from edged.fleet.alerts import DeliveryError

        fleet = self.current()
        if fleet is None:
            raise DeliveryError("fleet link not running")
        await fleet.deliver(alert)


class AlertsPart:
    """The alert monitor as a part (``monitor``); its webhook client closes with it."""

    def __init__(self, monitor: AlertMonitor, http: Any) -> None:
        self.monitor = monitor
        self.http = http

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
