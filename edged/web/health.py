"""``/health`` (open, nothing secret) and ``/metrics`` (Prometheus; signed in, or the
bearer token ``web.metrics_token``, unless ``web.metrics_public``)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web

from edged import __version__
from edged.buildinfo import build_info
from edged.journal import recovery as journal_recovery
from edged.web.board_api import Board
from edged.web.http import Stop, json_response, redirect
from edged.web.live import Live
from edged.web.metrics import CONTENT_TYPE, process_metrics, render_metrics
from edged.web.services import Metric
from edged.web.site import Site

log = logging.getLogger(__name__)

LINK_STATES = ("starting", "online", "polling", "offline", "unauthorized", "not_paired")


class Health:
    """Health check and metrics."""

    def __init__(self, site: Site, board: Board, live: Live) -> None:
        self.site = site
        self.board = board  # its decision times
        self.live = live  # its open streams

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/health", self.health)
        r.add_get("/metrics", self.metrics)
        r.add_post("/journal/dismiss", self.journal_dismiss)

    async def journal_dismiss(self, request: web.Request) -> web.StreamResponse:
        """The owner has read the banner about a rebuilt journal (signed in, CSRF checked)."""
        services = self.site.services
        await journal_recovery.dismiss(services.journal, services.state)
        return redirect("/board")

    async def health(self, request: web.Request) -> web.StreamResponse:
        services = self.site.services
        journal_ok = "ok"
        try:
            async with asyncio.timeout(2.0):
                await services.journal.ping()
            services.journal.check()  # writes failing (disk full, I/O error)
        except Exception as exc:  # any failure is the answer here
            journal_ok = f"error: {type(exc).__name__}"
        state = services.state
        printers = {
            name: (h.get("state", "unknown") if isinstance(h, dict) else "unknown")
            for name, h in state.printers().items()
        }
        body = {
            "ok": journal_ok == "ok",
            "version": __version__,
            "link": state.get("link", "unknown"),
            "paired": services.pairing().paired,
            "journal": journal_ok,
            # ok | recovered (rebuilt after damage, until dismissed) | failing
            "journal_state": state.get("journal", "ok"),
            # Orders rung and printed from memory that the journal could not store yet.
            "unstored_orders": len(state.get("journal.unstored") or []),
            "queued_commands": state.get("queued_commands", 0),
            "waiting_orders": state.get("waiting_orders", 0),
            # Relay notifications dropped after checking with Sinqro, by reason.
            "hints_rejected": state.get("link.hints_rejected", {}),
            "printers": printers,
            # Every part's state; a failed part is restarted with backoff (edged.parts).
            "parts": {
                key[5:]: value.get("state", "unknown")
                for key, value in sorted(state.snapshot().items())
                if key.startswith("part.") and isinstance(value, dict)
            },
            "box_id": state.get("box.id"),
            # Open alert incidents (edged/fleet/alerts.py), oldest first.
            "incidents": state.get("alerts.open", []),
        }
        return json_response(body, status=200 if body["ok"] else 503)

    def _allowed(self, request: web.Request) -> bool:
        config = self.site.config
        if config.metrics_public:
            return True
        session = self.site.guard.session(request)
        if session is not None and session.authenticated:
            return True
        token = config.metrics_token
        header = request.headers.get("Authorization", "")
        if token and header.startswith("Bearer "):
            return hmac.compare_digest(header[7:].encode(), token.encode())
        return False

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            raise Stop(401, "UNAUTHENTICATED", "sign in or send the metrics bearer token")
        samples = await self.collect()
        return web.Response(
            body=render_metrics(samples).encode("utf-8"), headers={"Content-Type": CONTENT_TYPE}
        )

    async def collect(self) -> list[Metric]:
        """The box's own samples plus the composition root's (``services.metrics``)."""
        site = self.site
        services = site.services
        state = services.state
        counts = await services.journal.counts()
        link = str(state.get("link", "unknown"))
        samples = [
            Metric("edged_orders", counts["orders"], "Orders in the journal"),
            Metric("edged_open_orders", counts["open_orders"], "Orders not final yet"),
            Metric("edged_waiting_orders", counts["waiting_orders"], "Orders waiting for staff"),
            Metric("edged_queued_commands", counts["queued_commands"], "Outbox depth"),
            Metric("edged_journal_events", counts["events"], "Rows in the event log"),
            Metric(
                "edged_journal_write_failures_total",
                services.journal.write_failures,
                "Journal writes that failed",
                "counter",
            ),
            Metric(
                "edged_link_reconnects_total",
                float(state.get("link.reconnects", 0) or 0),
                "Websocket reconnects since start",
                "counter",
            ),
        ]
        samples += [
            Metric(
                "edged_link_state", float(link == name), "Cloud link state", labels={"state": name}
            )
            for name in LINK_STATES
        ]
        for name, health in sorted(state.printers().items()):
            value = health.get("state", "unknown") if isinstance(health, dict) else "unknown"
            samples.append(
                Metric(
                    "edged_printer_online",
                    float(value == "online"),
                    "Printer is online",
                    labels={"printer": name},
                )
            )
        samples += [
            Metric("edged_web_requests_total", site.guard.requests, "HTTP requests", "counter"),
            Metric(
                "edged_web_auth_failures_total",
                site.limiter.failed + site.code_limiter.failed,
                "Wrong passwords and setup codes",
                "counter",
            ),
            Metric(
                "edged_web_auth_refused_total",
                site.limiter.refused + site.code_limiter.refused,
                "Sign-in attempts refused by the rate limit",
                "counter",
            ),
            Metric("edged_web_live_clients", len(self.live.clients), "Open live-update streams"),
            *self.board.decision_seconds.samples(
                "edged_web_decision_seconds",
                "Time from a board button to Sinqro's answer (or the wait limit)",
            ),
            Metric(
                "edged_build_info",
                1,
                "The running edged: version, commit and Python",
                labels=build_info(),
            ),
            *process_metrics(),
        ]
        if services.metrics is not None:
            try:
                samples += list(services.metrics())
            except Exception:
                log.exception("web: metrics provider failed")
        return samples
