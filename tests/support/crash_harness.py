"""Crash harness: the real daemon, killed with SIGKILL at random moments, many times.

Everything around the daemon is real and outlives it: the Sinqro simulator (own process), a
Mosquitto broker, a TCP ESC/POS printer stand-in and a virtual printer, an MQTT terminal
(records events, sends commands with ids) and a serial terminal on a pseudo-terminal
(ACKs frames, records events, sends commands). Orders arrive in bursts; staff decisions
come through the CLI, MQTT and serial; the daemon dies at a random point (seeded) and is
started again on the same journal. Afterwards :meth:`CrashRun.check` tests the invariants
the design promises. ``tests/box/test_crash.py`` runs a short version, ``scripts/crash-run``
long ones.

Inbound commands are at-most-once by nature: the broker's PUBACK (and the serial ACK) goes
out before the daemon has stored the command, so a command can die with the daemon
(docs/bridge-protocol.md). The terminals here do what the protocol asks of a real POS:
repeat an unanswered command with the *same* id until an answer comes; the box applies it
once. That is what the "exactly once at Sinqro" invariant is checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx
from broker import MosquittoBroker
from escpos_decoder import decode
from harness import DaemonProcess, SimulatorProcess, sinqro_section
from ports import free_port
from printer_standin import TcpPrinter
from waiting import eventually_blocking

from edged.bridges.framing import Frame, FrameDecoder, FrameError, encode_frame, escape_payload
from edged.bridges.protocol import PUBLISHED_KINDS
from edged.configtools import dump_toml

T = TypeVar("T")

BOX = "crash-box"
BASE = f"edged/{BOX}"
TCP_PRINTER = "counter"  # takes every order type
VIRTUAL_PRINTER = "kitchen"  # takes delivery and collection only
VIRTUAL_TYPES = ("delivery", "collection")
CHANNELS = ("cli", "mqtt", "serial")
RESEND_AFTER = 3.0  # seconds a terminal waits for an answer before repeating a command
CANCEL_COMMENT = "Sin existencias"
# Answers after which repeating the command is right (the box could not take it yet).
RETRY_CODES = ("INTERNAL", "BUSY")
# paho warns about every QoS 1 publish still waiting for its PUBACK: expected while the
# terminal repeats commands to a dead daemon, and only noise in a run's summary.
_MQTT_LOG = logging.getLogger("crash.mqtt-terminal")
_MQTT_LOG.setLevel(logging.ERROR)


@dataclass
class Settings:
    kills: int = 30
    seed: int = 0
    orders_per_round: int = 3
    max_sleep_ms: int = 1500  # the kill lands 0..N ms after READY
    command_share: float = 0.75  # share of orders that get a staff decision
    settle_timeout: float = 90.0  # bound for the final drain
    log_level: str = "INFO"  # the daemon's
    log: Callable[[str], None] = print


@dataclass
class Request:
    """One staff decision sent through one channel, repeated with the same id until
    answered."""

    rid: str
    order_id: int
    kind: str  # accept | cancel
    channel: str  # cli | mqtt | serial
    sends: int = 0
    next_at: float = 0.0
    busy: bool = False  # a CLI run is in flight
    answer: str | None = None  # queued / ok / error:<code> / refused:<code>


@dataclass
class Plan:
    """What staff decided for one order: one kind, through one or two channels (the second
    is a duplicate, as when two people press at once)."""

    order_id: int
    kind: str
    requests: list[Request] = field(default_factory=list)


class Terminals:
    """The peers that outlive the daemon, on one asyncio loop in a background thread: the
    TCP printer stand-in, the MQTT terminal, the serial terminal and the command sender."""

    def __init__(self, workdir: Path, broker_port: int, config: Path) -> None:
        self.workdir = workdir
        self.broker_port = broker_port
        self.config = config
        self.printer = TcpPrinter("online")
        self.mqtt_events: dict[int, int] = defaultdict(int)  # event id -> times received
        self.serial_events: dict[int, int] = defaultdict(int)
        self.requests: list[Request] = []
        self.link = workdir / "pos-tty"
        self.serial_seq = 0
        self.serial_hellos = 0
        self.serial_errors = 0
        self.cli_runs = 0
        self._mqtt: aiomqtt.Client | None = None
        self._mqtt_ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="terminals")
        self._tasks: list[asyncio.Task[None]] = []
        self._cli_slots: asyncio.Semaphore | None = None
        self._decoder = FrameDecoder(1 << 20)
        self.master = self.slave = -1

    # -- plumbing --------------------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def run(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())
        if not self._mqtt_ready.wait(15):
            raise RuntimeError("the MQTT terminal could not subscribe at the broker")

    async def _start(self) -> None:
        await self.printer.start()
        self._cli_slots = asyncio.Semaphore(2)
        # The terminal's end of the serial line. The daemon opens the slave through a stable
        # symlink (as udev gives /dev/serial/by-id/...). We keep the slave open too, so the
        # master never reads EIO while the daemon is dead.
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo of our own frames before the daemon sets the line up
        self.link.symlink_to(os.ttyname(self.slave))
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._serial_readable)
        self._tasks.append(asyncio.create_task(self._mqtt_loop(), name="mqtt-terminal"))
        self._tasks.append(asyncio.create_task(self._command_loop(), name="commands"))

    def close(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.printer.close()
            if self.master >= 0:
                asyncio.get_running_loop().remove_reader(self.master)
                os.close(self.master)
                os.close(self.slave)

        with contextlib.suppress(Exception):
            self.call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- MQTT terminal ---------------------------------------------------------------------

    async def _mqtt_loop(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.broker_port,
                    identifier="crash-pos",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    logger=_MQTT_LOG,
                ) as client:
                    await client.subscribe(f"{BASE}/events/#", qos=1)
                    await client.subscribe(f"{BASE}/response/#", qos=1)
                    self._mqtt = client
                    self._mqtt_ready.set()
                    async for message in client.messages:
                        self._on_mqtt(message.topic.value, message.payload)
            except aiomqtt.MqttError:
                self._mqtt = None
                await asyncio.sleep(0.2)

    def _on_mqtt(self, topic: str, payload: Any) -> None:
        body = json.loads(bytes(payload))
        if topic.startswith(f"{BASE}/events/"):
            self.mqtt_events[int(body["id"])] += 1
        elif topic.startswith(f"{BASE}/response/"):
            self._answered(body)

    # -- serial terminal -------------------------------------------------------------------

    def _serial_write(self, data: bytes) -> None:
        # Never block the loop: with the daemon dead the pty buffer can fill; what does not
        # fit is lost as on a real line, and the unanswered command is repeated later.
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.write(self.master, data)

    def _serial_readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError, OSError):
            return
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                self.serial_errors += 1
                self._serial_write(encode_frame(0, "N", item.reason.encode()))
                continue
            self._on_frame(item)

    def _on_frame(self, frame: Frame) -> None:
        if frame.kind not in "EHR":
            return  # A or N for our command frames: the answer (R) is what we wait for
        self._serial_write(encode_frame(frame.seq, "A"))
        if frame.kind == "H":
            self.serial_hellos += 1
            return
        body = json.loads(frame.payload)
        if frame.kind == "E":
            self.serial_events[int(body["id"])] += 1
        else:
            self._answered(body)

    def _serial_command(self, body: dict[str, Any]) -> None:
        # A fresh frame (new sequence number) for every repeat: the protocol's advice for a
        # command whose answer never came.
        self.serial_seq = (self.serial_seq + 1) % 256
        payload = escape_payload(json.dumps(body, separators=(",", ":")).encode())
        self._serial_write(encode_frame(self.serial_seq, "C", payload))

    # -- commands --------------------------------------------------------------------------

    def _answered(self, body: dict[str, Any]) -> None:
        rid = body.get("id")
        status = body.get("status")
        for request in self.requests:
            if request.rid != rid or request.answer is not None:
                continue
            if status == "error":
                code = str(body.get("code"))
                if code in RETRY_CODES:
                    return
                request.answer = f"error:{code}"
            else:
                request.answer = str(status)

    async def _command_loop(self) -> None:
        while True:
            now = time.monotonic()
            for request in list(self.requests):
                if request.answer is None and not request.busy and now >= request.next_at:
                    self._send(request)
            await asyncio.sleep(0.05)

    def _send(self, request: Request) -> None:
        request.sends += 1
        request.next_at = time.monotonic() + RESEND_AFTER
        body: dict[str, Any] = {"id": request.rid, "order_id": request.order_id}
        if request.kind == "cancel":
            body["comment"] = CANCEL_COMMENT
        if request.channel == "mqtt":
            if self._mqtt is None:
                return
            task = asyncio.create_task(
                self._mqtt.publish(f"{BASE}/cmd/{request.kind}", json.dumps(body), qos=1)
            )
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        elif request.channel == "serial":
            self._serial_command({**body, "command": request.kind})
        else:
            request.busy = True
            self._tasks.append(asyncio.create_task(self._cli(request)))

    async def _cli(self, request: Request) -> None:
        assert self._cli_slots is not None
        args = [request.kind, str(request.order_id), "-c", str(self.config), "--wait", "0"]
        if request.kind == "cancel":
            args += ["--comment", CANCEL_COMMENT]
        try:
            async with self._cli_slots:
                self.cli_runs += 1
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "edged.cli",
                    *args,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                _, err = await proc.communicate()
            if proc.returncode == 0:
                request.answer = "queued"
            elif proc.returncode == 3:
                # Refused by the desk (e.g. NOT_WAITING for the second of two presses).
                text = err.decode(errors="replace").strip()
                request.answer = "refused:" + text.rpartition("(")[2].rstrip(")")
            else:
                request.next_at = time.monotonic() + 0.5
        finally:
            request.busy = False

    def add(self, requests: list[Request]) -> None:
        self.run(lambda: self.requests.extend(requests))

    def unanswered(self) -> list[Request]:
        return self.run(lambda: [r for r in self.requests if r.answer is None])

    def snapshot(self) -> tuple[dict[int, int], dict[int, int], list[bytes]]:
        return self.run(
            lambda: (dict(self.mqtt_events), dict(self.serial_events), list(self.printer.jobs))
        )


def journal_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@dataclass
class Report:
    kills: int = 0
    orders: int = 0
    plans: int = 0
    requests: int = 0
    repeats: int = 0
    tcp_tickets: int = 0
    virtual_tickets: int = 0
    reprints: int = 0
    events: int = 0
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        state = "OK" if not self.failures else f"{len(self.failures)} invariant failure(s)"
        lines = [
            f"{state}: {self.kills} kills, {self.orders} orders, {self.plans} decisions "
            f"({self.requests} requests, {self.repeats} repeats), {self.events} published "
            f"events, tickets {self.tcp_tickets} tcp + {self.virtual_tickets} virtual "
            f"({self.reprints} REPRINT), {self.elapsed:.0f}s"
        ]
        lines += [f"  FAIL {f}" for f in self.failures[:50]]
        if len(self.failures) > 50:
            lines.append(f"  ... and {len(self.failures) - 50} more")
        return "\n".join(lines)


class CrashRun:
    """One crash run in ``workdir``: set up, :meth:`run`, :meth:`check`, :meth:`close`."""

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = workdir
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.state_dir = workdir / "state"
        self.journal = self.state_dir / "edged.sqlite3"
        self.virtual_dir = workdir / "virtual-printer"
        self.created: dict[int, str] = {}  # order id -> type
        self.plans: dict[int, Plan] = {}
        self.kills = 0
        self.first_cursor = 0
        self._reprints = 0
        self.started = time.monotonic()
        self.sim = SimulatorProcess(log_path=workdir / "sim.log")
        self.broker = MosquittoBroker(workdir / "broker")
        self.config = workdir / "edged.toml"
        self.terminals: Terminals | None = None
        self.daemon: DaemonProcess | None = None

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        self.s.log(f"crash run: seed {self.s.seed}, {self.s.kills} kills, work dir {self.workdir}")
        self.sim.start()
        self.broker.start()
        self.terminals = Terminals(self.workdir, self.broker.port, self.config)
        self.terminals.start()
        self._write_config()
        self.daemon = DaemonProcess(self.config, log_path=self.workdir / "edged.log")
        self.daemon.start()
        # Bridges start at the end of the journal the first time: let them take their
        # place before the first order, so every event is owed to the terminals.
        bridges = "SELECT seq FROM cursors WHERE consumer IN ('bridge.mqtt', 'bridge.serial')"
        cursors = eventually_blocking(
            lambda: rows if len(rows := journal_rows(self.journal, bridges)) == 2 else None,
            within=20,
            what="the bridges' first cursors",
        )
        self.first_cursor = min(int(seq) for (seq,) in cursors)

    def _write_config(self) -> None:
        info = self.sim.info()
        doc: dict[str, Any] = {
            # The box id names the MQTT topics (edged/<BOX>/...) the terminals use.
            "box": {"name": BOX, "id": BOX, "state_dir": str(self.state_dir)},
            "sinqro": sinqro_section(info),
            "orders": {"retry_max": 1.0},
            "logging": {"level": self.s.log_level},
            "panel": {"enabled": False},
            "web": {"enabled": False, "host": "127.0.0.1", "port": free_port()},
            "printers": [
                {
                    "name": TCP_PRINTER,
                    "uri": f"tcp://127.0.0.1:{self._printer_port()}",
                    "timeout": 5.0,
                    "retry_max": 1.0,
                    "health_interval": 0,
                },
                {
                    "name": VIRTUAL_PRINTER,
                    "uri": f"virtual://{self.virtual_dir}",
                    "layout": "kitchen",
                    "order_types": list(VIRTUAL_TYPES),
                    "retry_max": 1.0,
                    "health_interval": 0,
                },
            ],
            "mqtt": {
                "enabled": True,
                "url": self.broker.url,
                "reconnect_min": 0.05,
                "reconnect_max": 0.5,
            },
            "serial": {
                "enabled": True,
                "port": str(self.workdir / "pos-tty"),
                "baudrate": 115200,
                "ack_timeout": 0.3,
                "max_retries": 5,
                "reconnect_min": 0.05,
                "reconnect_max": 0.5,
            },
        }
        self.config.write_text(dump_toml(doc), encoding="utf-8")

    def _printer_port(self) -> int:
        assert self.terminals is not None
        return self.terminals.printer.port

    # -- the run ---------------------------------------------------------------------------

    def _sim_create(self, count: int) -> None:
        response = httpx.post(f"{self.sim.root}/_sim/orders", json={"count": count}, timeout=10)
        response.raise_for_status()
        for order in response.json():
            self.created[int(order["id"])] = str(order["type"])

    def _plan_stored_orders(self) -> None:
        """Decide for orders the journal holds and that have no plan yet (commands only make
        sense for orders the box knows: otherwise UNKNOWN_ORDER)."""
        assert self.terminals is not None
        stored = [i for (i,) in journal_rows(self.journal, "SELECT id FROM orders ORDER BY id")]
        new: list[Request] = []
        for order_id in stored:
            if order_id in self.plans or order_id not in self.created:
                continue
            # One RNG per order: the same seed gives the same decisions whatever the timing.
            rng = random.Random(f"{self.s.seed}-{order_id}")
            if rng.random() >= self.s.command_share:
                self.plans[order_id] = Plan(order_id, "none")
                continue
            kind = "accept" if rng.random() < 0.65 else "cancel"
            channels = [rng.choice(CHANNELS)]
            if rng.random() < 0.2:
                # A second press of the same decision through another channel.
                channels.append(rng.choice([c for c in CHANNELS if c != channels[0]]))
            plan = Plan(order_id, kind)
            for n, channel in enumerate(channels):
                plan.requests.append(Request(f"{kind}-{order_id}-{n}", order_id, kind, channel))
            self.plans[order_id] = plan
            new += plan.requests
        if new:
            self.terminals.add(new)

    def run(self) -> None:
        assert self.daemon is not None
        for round_ in range(self.s.kills):
            self._sim_create(self.s.orders_per_round)
            self._plan_stored_orders()
            time.sleep(self.rng.uniform(0, self.s.max_sleep_ms / 1000))
            self.daemon.kill()
            self.kills += 1
            check = journal_rows(self.journal, "PRAGMA integrity_check")
            if check != [("ok",)]:
                raise AssertionError(f"integrity_check after kill {self.kills}: {check}")
            self.daemon.start()
            if (round_ + 1) % 10 == 0:
                self.s.log(
                    f"  {round_ + 1} kills, {len(self.created)} orders, "
                    f"{time.monotonic() - self.started:.0f}s"
                )
        self._settle()

    def _settle(self) -> None:
        """With the daemon up for good, wait (bounded) until everything has landed."""
        assert self.terminals is not None
        terminals = self.terminals
        limit = self.s.settle_timeout

        def all_planned() -> bool:
            self._plan_stored_orders()
            return set(self.created) <= set(self.plans)

        eventually_blocking(all_planned, within=limit, what="every created order in the journal")
        try:
            eventually_blocking(
                lambda: not terminals.unanswered(), within=limit, what="an answer to every command"
            )
        except AssertionError as exc:
            left = [(r.rid, r.channel, r.sends) for r in terminals.unanswered()]
            raise AssertionError(f"{exc}: {left[:20]}") from None
        eventually_blocking(
            lambda: (
                journal_rows(
                    self.journal, "SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'sending')"
                )[0][0]
                == 0
            ),
            within=limit,
            what="the outbox to drain",
        )
        spooled = (
            "SELECT (SELECT seq FROM cursors WHERE consumer = 'spooler')"
            " >= (SELECT MAX(seq) FROM events)"
        )
        eventually_blocking(
            lambda: journal_rows(self.journal, spooled)[0][0] == 1,
            within=limit,
            what="the spooler to plan every event",
        )
        eventually_blocking(
            lambda: (
                journal_rows(
                    self.journal,
                    "SELECT COUNT(*) FROM print_jobs WHERE state IN ('queued', 'sending')",
                )[0][0]
                == 0
            ),
            within=limit,
            what="every print job to finish",
        )
        # The last deliveries: done when the checks that depend on them pass, or the bound
        # is reached (then check() reports what is missing).
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and (
            self._event_failures() or self._print_failures(quiet=True)
        ):
            time.sleep(0.2)

    # -- invariants ------------------------------------------------------------------------

    def check(self) -> Report:
        assert self.terminals is not None and self.daemon is not None
        report = Report(kills=self.kills, orders=len(self.created))
        failures = report.failures
        code = self.daemon.stop()
        if code != 0:
            failures.append(f"the daemon exited {code} on SIGTERM")
        stored = {i for (i,) in journal_rows(self.journal, "SELECT id FROM orders")}
        for order_id in sorted(set(self.created) - stored):
            failures.append(f"order {order_id}: created at Sinqro, not in the journal")
        failures += self._action_failures()
        failures += self._print_failures()
        failures += self._event_failures()
        check = journal_rows(self.journal, "PRAGMA integrity_check")
        if check != [("ok",)]:
            failures.append(f"integrity_check: {check}")
        requests = [r for p in self.plans.values() for r in p.requests]
        report.plans = sum(1 for p in self.plans.values() if p.requests)
        report.requests = len(requests)
        report.repeats = sum(max(0, r.sends - 1) for r in requests)
        mqtt, _, jobs = self.terminals.snapshot()
        report.events = len(mqtt)
        report.tcp_tickets = len(jobs)
        report.virtual_tickets = len(list(self.virtual_dir.glob("*.txt")))
        report.reprints = self._reprints
        report.elapsed = time.monotonic() - self.started
        return report

    def _action_failures(self) -> list[str]:
        """Each decision reached Sinqro exactly once; nothing else was posted."""
        response = httpx.get(f"{self.sim.root}/_sim/actions", timeout=10)
        response.raise_for_status()
        posts: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for post in response.json():
            posts[int(post["orderId"])].append(post)
        failures = []
        for order_id in sorted(set(posts) | set(self.plans)):
            plan = self.plans.get(order_id)
            got = posts.get(order_id, [])
            described = [(p.get("kind"), p.get("actionType"), p.get("result")) for p in got]
            if plan is None or plan.kind == "none":
                if got:
                    failures.append(f"order {order_id}: no decision, yet Sinqro got {described}")
                continue
            want = "ACCEPT" if plan.kind == "accept" else "CANCEL"
            ok = [p for p in got if p.get("result") == "ok" and p.get("actionType") == want]
            if len(ok) != 1 or len(got) != 1:
                channels = [f"{r.channel}:{r.answer}" for r in plan.requests]
                failures.append(
                    f"order {order_id}: {plan.kind} via {channels}: Sinqro got {described}, "
                    f"expected one {want} ok"
                )
        return failures

    def _tickets(self) -> dict[tuple[str, int], list[bool]]:
        """(printer, order id) -> one entry per order ticket that came out: REPRINT banner?"""
        assert self.terminals is not None
        out: dict[tuple[str, int], list[bool]] = defaultdict(list)
        _, _, jobs = self.terminals.snapshot()
        for data in jobs:
            decoded = decode(data)
            texts = [line.text.strip() for line in decoded.lines]
            if "CANCELLED" in texts:
                continue  # a cancellation slip, not the order ticket
            order_id = next(
                (int(t[6:]) for t in texts if t.startswith("Order ") and t[6:].isdigit()), None
            )
            if order_id is None:
                continue  # cut short before its header: paper, but no ticket
            out[(TCP_PRINTER, order_id)].append("REPRINT" in texts)
        for txt in sorted(self.virtual_dir.glob("*.txt")):
            _, order, kind = txt.stem.rsplit("-", 2) if txt.stem.count("-") >= 2 else ("", "", "")
            if kind.isdigit():  # name-N.txt: a second file in the same millisecond
                _, order, kind, _ = txt.stem.rsplit("-", 3)
            if kind not in ("order", "reprint") or not order.isdigit():
                continue
            lines = [line.strip() for line in txt.read_text(encoding="utf-8").splitlines()]
            out[(VIRTUAL_PRINTER, int(order))].append("REPRINT" in lines)
        return out

    def _print_failures(self, *, quiet: bool = False) -> list[str]:
        """Each order ticket printed at least once on every printer that takes it; a second
        copy only ever under a REPRINT banner."""
        tickets = self._tickets()
        if not quiet:
            self._reprints = sum(sum(v) for v in tickets.values())
        skipped = {
            (printer, order_id)
            for printer, order_id in journal_rows(
                self.journal,
                "SELECT printer, order_id FROM print_jobs"
                " WHERE kind = 'order' AND state = 'skipped' AND error LIKE 'order %'",
            )
        }
        final = {i for (i,) in journal_rows(self.journal, "SELECT id FROM orders WHERE is_final")}
        failures = []
        for order_id, order_type in sorted(self.created.items()):
            for printer in (TCP_PRINTER, VIRTUAL_PRINTER):
                if printer == VIRTUAL_PRINTER and order_type not in VIRTUAL_TYPES:
                    if tickets.get((printer, order_id)):
                        failures.append(f"order {order_id} ({order_type}) printed on {printer}")
                    continue
                prints = tickets.get((printer, order_id), [])
                if not prints and not ((printer, order_id) in skipped and order_id in final):
                    # Only an order cancelled before its turn may go unprinted (no paper
                    # flood after an outage); the journal must say so.
                    failures.append(f"order {order_id}: no ticket on {printer}")
                plain = prints.count(False)
                if plain > 1:
                    failures.append(
                        f"order {order_id}: {plain} tickets on {printer} without REPRINT banner"
                    )
        return failures

    def _event_failures(self) -> list[str]:
        """Every published journal event reached both terminals (repeats fine, gaps not)."""
        assert self.terminals is not None
        marks = ",".join("?" * len(PUBLISHED_KINDS))
        owed = [
            seq
            for (seq,) in journal_rows(
                self.journal,
                f"SELECT seq FROM events WHERE seq > ? AND kind IN ({marks}) ORDER BY seq",
                (self.first_cursor, *PUBLISHED_KINDS),
            )
        ]
        mqtt, serial, _ = self.terminals.snapshot()
        failures = []
        for name, seen in (("MQTT", mqtt), ("serial", serial)):
            missing = [s for s in owed if s not in seen]
            if missing:
                failures.append(
                    f"{len(missing)} of {len(owed)} events never reached the {name} terminal: "
                    f"{missing[:20]}"
                )
        return failures

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
        if self.terminals is not None:
            self.terminals.close()
        self.broker.stop()
        self.sim.stop()

    def counts(self) -> Counter[str]:
        """Decisions by kind and channel, for the summary."""
        return Counter(f"{r.kind}/{r.channel}" for p in self.plans.values() for r in p.requests)
