"""``edged fleet exporter``: the fleet as Prometheus series, one set per box.

It holds one subscription to every box's retained ``info`` and ``availability`` (the same
read as ``edged fleet ls``, kept open: a box's new report or last will changes the next
scrape) and serves ``GET /metrics`` in the text format 0.0.4, with the rules of the box's
own ``/metrics`` (one HELP and TYPE per family, label values escaped, integers without a
point). Names follow Prometheus' conventions so alert rules read plainly:
``edged_box_up == 0``, ``edged_box_link_state{state="online"} == 0``,
``edged_box_throttled{flag="under_voltage"} == 1``.

What a box published is a claim: a field of the wrong type (or not a finite number) is left
out rather than shown as 0. While no broker node holds the subscription the view is not
live, so ``/metrics`` answers 503 (Prometheus marks the scrape down) rather than serving a
stale fleet as the current one; ``/healthz`` says the same for a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import aiomqtt
from aiohttp import web

from edged import mqttstop
from edged.fleet.view import BoxView, FleetView
from edged.mqttclient import BrokerConfig, Redial, make_client

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The states the box knows (docs/fleet.md); one a box reports beyond them is shown too.
LINK_STATES = ("starting", "online", "polling", "offline", "unauthorized", "not_paired")
PRINTER_STATES = ("online", "offline", "paper_out", "cover_open", "unknown")


class Sample(NamedTuple):
    """One line of the exposition; samples sharing a name share one HELP/TYPE header."""

    name: str
    value: float
    help: str
    labels: tuple[tuple[str, str], ...] = ()
    kind: str = "gauge"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def render(samples: Iterable[Sample]) -> str:
    """The text exposition of ``samples``, grouped by name."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.name, []).append(sample)
    out: list[str] = []
    for name, group in groups.items():
        out.append(f"# HELP {name} {group[0].help}")
        out.append(f"# TYPE {name} {group[0].kind}")
        for s in group:
            inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in s.labels)
            out.append(
                f"{name}{{{inner}}} {_number(s.value)}" if inner else f"{name} {_number(s.value)}"
            )
    return "\n".join(out) + "\n"


def _finite(value: object) -> float | None:
    """A number the box claimed, or None (a bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# Gauges read straight from one info field: (info key, series, help).
GAUGES = (
    ("waiting_orders", "edged_box_waiting_orders", "Orders waiting for a decision on the box."),
    ("queued_commands", "edged_box_queued_commands", "Decisions queued for Sinqro on the box."),
    (
        "orders_today",
        "edged_box_orders_today",
        "Orders since midnight in the selling point's zone.",
    ),
    ("storage_free", "edged_box_storage_free_bytes", "Free bytes on the box's data disk."),
    ("storage_total", "edged_box_storage_size_bytes", "Size in bytes of the box's data disk."),
    ("soc_temperature", "edged_box_soc_temperature_celsius", "SoC temperature of the box."),
    ("uptime", "edged_box_uptime_seconds", "Seconds since the box's daemon started."),
    ("system_uptime", "edged_box_system_uptime_seconds", "Seconds since the box booted."),
)


def box_samples(box: BoxView) -> Iterator[Sample]:
    """Every series of one box, each labelled with its ``box_id``."""
    me = (("box_id", box.box_id),)
    yield Sample(
        "edged_box_up",
        1 if box.availability == "online" else 0,
        "1 while the box holds its fleet connection (its retained availability).",
        me,
    )
    info = box.info
    if not info:
        return
    sp = info.get("selling_point")
    sp_id = sp.get("id") if isinstance(sp, dict) else None
    labels = {
        "name": box.text("name"),
        "version": box.text("version"),
        "board": box.text("board"),
        "selling_point": str(sp_id) if isinstance(sp_id, int) and sp_id > 0 else "",
    }
    yield Sample(
        "edged_box_info",
        1,
        "The box's name, version, board and selling point.",
        me + tuple(labels.items()),
    )
    link = box.text("link")
    for state in (*LINK_STATES, *([link] if link and link not in LINK_STATES else [])):
        yield Sample(
            "edged_box_link_state",
            1 if state == link else 0,
            "1 for the box's current Sinqro link state.",
            (*me, ("state", state)),
        )
    for printer, current in sorted(box.printers.items()):
        extra = [current] if current not in PRINTER_STATES else []
        for state in (*PRINTER_STATES, *extra):
            yield Sample(
                "edged_box_printer_state",
                1 if state == current else 0,
                "1 for each printer's current state.",
                (*me, ("printer", printer), ("state", state)),
            )
    yield Sample("edged_box_printers", len(box.printers), "Printers configured on the box.", me)
    yield Sample("edged_box_open_incidents", len(box.incidents), "Open alert incidents.", me)
    for key, name, help_text in GAUGES:
        value = _finite(info.get(key))
        if value is not None:
            yield Sample(name, value, help_text, me)
    flags = info.get("throttling")
    if isinstance(flags, dict):
        for flag, on in sorted(flags.items()):
            if isinstance(on, bool):
                yield Sample(
                    "edged_box_throttled",
                    int(on),
                    "Raspberry Pi firmware throttling flags (the _occurred ones: since boot).",
                    (*me, ("flag", str(flag))),
                )
    if (seen := box.seen_at) is not None:
        yield Sample(
            "edged_box_last_report_timestamp_seconds", seen, "When the box wrote its info.", me
        )
    yield from update_samples(box)


def update_samples(box: BoxView) -> Iterator[Sample]:
    """The box's last update, rollback and health-window result, when its info has them."""
    me = (("box_id", box.box_id),)
    updates = box.info.get("updates")
    if not isinstance(updates, dict):
        return
    health = updates.get("health")
    if isinstance(health, dict) and isinstance(health.get("ok"), bool):
        yield Sample(
            "edged_box_health_window_ok",
            int(health["ok"]),
            "1 when the box's last health window after an update passed.",
            me,
        )
    for key, name, what in (
        ("last_update", "edged_box_last_update_timestamp_seconds", "update"),
        ("last_rollback", "edged_box_last_rollback_timestamp_seconds", "rollback"),
    ):
        event = updates.get(key)
        at = _finite(event.get("at")) if isinstance(event, dict) else None
        if at is not None:
            yield Sample(name, at, f"When the box's last {what} happened.", me)


@dataclass
class Exporter:
    """The live fleet view and its HTTP endpoint."""

    config: BrokerConfig
    client_id: str = field(
        default_factory=lambda: f"edged-fleet-exporter-{int(time.time() * 1000) % 10**9}"
    )
    view: FleetView = field(default_factory=FleetView)
    connected: bool = False
    reconnects: int = 0

    def samples(self) -> Iterator[Sample]:
        yield Sample(
            "edged_fleet_broker_connected",
            int(self.connected),
            "1 while a broker node holds the exporter's subscription.",
        )
        yield Sample(
            "edged_fleet_boxes",
            len(self.view.boxes),
            "Boxes the broker holds an info or availability for.",
        )
        yield Sample(
            "edged_fleet_unreadable_messages_total",
            self.view.unreadable,
            "Retained messages that were no box info or availability.",
            kind="counter",
        )
        yield Sample(
            "edged_fleet_broker_reconnects_total",
            self.reconnects,
            "Times the exporter lost its broker node.",
            kind="counter",
        )
        for _, box in sorted(self.view.boxes.items()):
            yield from box_samples(box)

    async def metrics(self, request: web.Request) -> web.Response:
        if not self.connected:
            return web.Response(status=503, text="no broker node holds the fleet subscription\n")
        return web.Response(
            body=render(self.samples()).encode(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"connected": self.connected, "boxes": len(self.view.boxes)},
            status=200 if self.connected else 503,
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def follow(self) -> None:
        """Keep the subscription, node after node, until cancelled."""
        prefix = self.config.topic_prefix
        redial = Redial(self.config)
        while True:
            node = redial.node
            try:
                client = make_client(self.config, self.client_id, node=node)
                async with mqttstop.connection(client):
                    for leaf in ("info", "availability"):
                        await client.subscribe(f"{prefix}/+/{leaf}", qos=1)
                    redial.connected()
                    # A fresh read: the broker sends every retained message again, and a
                    # box whose messages were cleared meanwhile must not linger.
                    self.view = FleetView()
                    self.connected = True
                    log.info("fleet exporter: following %s/+/info on %s", prefix, node.where)
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        self._take(message.topic.value, payload, prefix)
            except aiomqtt.MqttError as exc:
                log.warning("fleet exporter: broker %s: %s", node.where, exc)
            self.connected = False
            self.reconnects += 1
            await asyncio.sleep(redial.lost())

    def _take(self, topic: str, payload: bytes, prefix: str) -> None:
        if payload:
            self.view.take(topic, payload, prefix)
            return
        # An empty retained message is MQTT's way to delete one: forget that part.
        box_id, _, leaf = topic[len(prefix) + 1 :].partition("/")
        box = self.view.boxes.get(box_id)
        if box is None:
            return
        if leaf == "info":
            box.info = {}
        elif leaf == "availability":
            box.availability = ""
        if not box.info and not box.availability:
            del self.view.boxes[box_id]


async def serve(config: BrokerConfig, host: str, port: int) -> int:
    """Serve ``/metrics`` on ``host:port`` until SIGTERM/SIGINT; returns the exit code."""
    exporter = Exporter(config)
    runner = web.AppRunner(exporter.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("fleet exporter: listening on %s:%d/metrics", host, port)
        task = asyncio.create_task(exporter.follow(), name="fleet-exporter")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("fleet exporter: stopped")
    finally:
        await runner.cleanup()
    return 0
