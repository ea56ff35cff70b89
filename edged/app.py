"""Composition root: the only place that picks real or virtual parts, from the config.

Start-up order matters and is what systemd's READY=1 promises:

1. the journal is open (migrated, WAL, writer thread up);
2. the Sinqro link, outbox sender, spooler, panel, bridges and web page are started;
3. READY=1 and a STATUS line; then WATCHDOG=1 while the loop and the journal answer.

Every part runs as a named task in one TaskGroup. A part that dies with an unexpected error
ends the process (exit code 1) so systemd restarts the whole box cleanly; parts handle the
failures they expect (network down, printer off) themselves. SIGTERM/SIGINT stop the group:
each part finishes or records its in-flight work in ``finally`` blocks, then the journal
checkpoints and closes.
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

from edged import sdnotify
from edged.config import Config, save_web_settings
from edged.journal import recovery as journal_recovery
from edged.journal.store import Journal
from edged.orders import OrderDesk, OutboxSender
from edged.pairing import Pairing, load_pairing, save_pairing
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import OrderAction, SellingPoint
from edged.sinqro.notifications import NotificationLink
from edged.state import BoxState

if TYPE_CHECKING:  # the optional parts are imported only when configured
    from edged.bridges.mqtt import MqttBridge
    from edged.bridges.serial import SerialBridge
    from edged.panel.controller import Panel
    from edged.printing.spooler import Spooler
    from edged.web.server import WebServer

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0


class StopRequested(Exception):
    """Raised inside the task group to unwind it on SIGTERM/SIGINT."""


@dataclass
class Extras:
    """Optional tasks the caller adds (the demo's simulator and terminal view)."""

    tasks: list[tuple[str, Callable[[App], Coroutine[Any, Any, None]]]] = field(
        default_factory=list
    )


class App:
    """The daemon. ``await App(config).run()`` until a signal or a fatal error."""

    def __init__(self, config: Config, *, extras: Extras | None = None) -> None:
        self.config = config
        self.extras = extras or Extras()
        self.state = BoxState()
        self.started = time.monotonic()
        self.pairing = Pairing()
        self.ready = asyncio.Event()
        # Set in run(); typed here so the web page and the demo can reach them.
        self.journal: Journal
        self.desk: OrderDesk
        self.api: SinqroApi
        self.sender: OutboxSender
        self.link: NotificationLink
        self.spooler: Spooler | None = None
        self.panel: Panel | None = None
        self.web: WebServer | None = None
        self.bridges: list[MqttBridge | SerialBridge] = []
        self._stop = asyncio.Event()
        self._pending_login: tuple[str, str, list[SellingPoint]] | None = None
        # The demo shows the one-time setup code in the terminal; a real box never logs it.
        self.demo = False

    # -- pairing (used by the web page) ------------------------------------------------------

    def current_pairing(self) -> Pairing:
        return self.pairing

    async def set_pairing(self, pairing: Pairing) -> None:
        """Store a new pairing and move the link over to it at once."""
        await save_pairing(self.journal, pairing)
        self.pairing = pairing
        self.api.user_token = pairing.user_token
        self.link.reconnect_now()
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

    async def order_actions(self, order_id: int) -> list[OrderAction]:
        return await self.api.order_actions(order_id)

    async def apply_settings(self, changes: dict[str, Any]) -> Config:
        """Validate and save settings from the web page.

        Order settings apply at once (the desk and sender read them at use time); printer,
        panel and bridge settings take effect when their part restarts, which the page says.
        Queued work is in the journal, so nothing is lost either way.
        """
        # Off the loop: the save fsyncs the file and its directory.
        new = await asyncio.to_thread(save_web_settings, self.config, changes)
        self.config = new
        self.desk.config = new.orders
        self.sender.config = new.orders
        return new

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        cfg = self.config
        # heal: a damaged journal is moved aside and replaced (edged/journal/opening.py).
        self.journal = await Journal.open(cfg.journal_path, heal=True)
        self.pairing = await load_pairing(self.journal, cfg.sinqro)
        await journal_recovery.report(
            self.journal, self.state, cfg.box.language, self.pairing.timezone
        )
        self.desk = OrderDesk(self.journal, self.state, cfg.orders)
        await self.desk.refresh_counts()
        self.api = SinqroApi(
            cfg.sinqro.base_url,
            cfg.sinqro.server_token,
            self.pairing.user_token,
            timeout=cfg.sinqro.request_timeout,
        )
        self.sender = OutboxSender(
            self.journal,
            self.api,
            self.state,
            cfg.orders,
            self.current_pairing,
            settle=cfg.sinqro.request_timeout,
        )
        self.link = NotificationLink(
            cfg.sinqro,
            self.api,
            self.desk,
            self.journal,
            self.state,
            self.current_pairing,
            on_online=self.sender.kick,
        )
        self._build_optional_parts()

    def _build_optional_parts(self) -> None:
        """Printers, panel, bridges and web page: each only when configured."""
        cfg = self.config
        if cfg.printers:
            from edged.printing.spooler import Spooler

            self.spooler = Spooler(cfg.printers, self.journal, self.state, cfg.box)
        # Always built: with panel.enabled = false it claims no pins, but the alert logic and
        # the web page's virtual buttons still work.
        from edged.panel.controller import Panel

        self.panel = Panel(
            cfg.panel,
            cfg.orders,
            self.desk,
            self.journal,
            self.state,
            on_setup_request=self._print_setup_ticket,
        )
        box_id = cfg.box.name
        if cfg.mqtt.enabled:
            from edged.bridges.mqtt import MqttBridge

            self.bridges.append(
                MqttBridge(cfg.mqtt, self.journal, self.desk, self.state, box_id=box_id)
            )
        else:
            self.state.set("bridge.mqtt", "disabled")
        if cfg.serial.enabled:
            from edged.bridges.serial import SerialBridge

            self.bridges.append(SerialBridge(cfg.serial, self.journal, self.desk, self.state))
        else:
            self.state.set("bridge.serial", "disabled")
        if cfg.web.enabled:
            from edged.web.server import WebServer
            from edged.web.services import WebServices

            self.web = WebServer(cfg.web, WebServices.from_app(self))

    async def _print_setup_ticket(self) -> None:
        if self.web is not None:
            await self.web.print_setup_ticket()

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

    async def run(self) -> int:
        """Run until stopped. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self._open()
        code = 0
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._wait_stop(), name="stop")
                tg.create_task(self.link.run(), name="sinqro-link")
                tg.create_task(self.sender.run(), name="outbox-sender")
                if self.spooler is not None:
                    tg.create_task(self.spooler.run(), name="spooler")
                if self.panel is not None:
                    tg.create_task(self.panel.run(), name="panel")
                for bridge in self.bridges:
                    tg.create_task(bridge.run(), name=type(bridge).__name__)
                if self.web is not None:
                    await self.web.start()
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
                log.critical("a part of edged failed: %r", exc, exc_info=exc)
            code = 1
        finally:
            await self._close()
        return code

    async def _close(self) -> None:
        if self.web is not None:
            with contextlib.suppress(Exception):
                await self.web.stop()
        with contextlib.suppress(Exception):
            await self.api.aclose()
        await self.journal.close()
        log.info("edged stopped")


async def run_app(config: Config, extras: Extras | None = None) -> int:
    """Run the daemon with ``config``; returns the exit code."""
    return await App(config, extras=extras).run()
