"""Faults a box meets in a restaurant, one test each, at the level a user meets them.

The cloud-side faults run the whole daemon as a process (``edged run``) against the
simulator in its own process, and look at it the way staff and support do: ``GET /health``,
``/metrics``, the journal file and what reached the cloud. Printer, MQTT and serial faults
run the composition root (:class:`edged.app.App`) in the test's event loop, so the printer
stand-in and the POS terminal can live next to it; everything is still real sockets,
SQLite files, a real Mosquitto and real pseudo-terminals. Waits are bounded waits for a
condition, never timed assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker import MosquittoBroker
from harness import (
    DaemonProcess,
    SimulatorProcess,
    app_config,
    printer,
    write_config,
)
from mqtt_listener import Pos
from ports import free_port
from printer_standin import TcpPrinter
from serial_terminal import Terminal
from waiting import eventually, eventually_blocking

from edged.app import App
from edged.bridges.framing import encode_frame
from edged.config import load_config
from edged.simulator.server import Simulator

# -- the daemon as a process -----------------------------------------------------------------


# A daemon that is starting or restarting does not answer yet: not a failed check.
UNANSWERED = (httpx.HTTPError,)


class Box:
    """A daemon process plus the ways a user looks at it."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
        self.config = config
        self.web = f"http://127.0.0.1:{doc['web']['port']}"
        self.journal = Path(doc["box"]["state_dir"]) / "edged.sqlite3"
        self.daemon = DaemonProcess(config, env=env)

    def health(self) -> dict[str, Any]:
        # Generous: a busy machine may hold a request for seconds; a hang still fails.
        data: dict[str, Any] = httpx.get(f"{self.web}/health", timeout=30).json()
        return data

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.web}/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def has_order(self, order_id: int) -> bool:
        return bool(self.rows("SELECT 1 FROM orders WHERE id = ?", (order_id,)))

    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edged.cli", *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def log(self) -> str:
        return self.daemon.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def running_box(config: Path, env: dict[str, str] | None = None) -> Iterator[Box]:
    box = Box(config, env)
    with box.daemon:
        box.daemon.start()
        try:
            yield box
        except BaseException:
            print(box.daemon.log_tail(80))
            raise
        assert box.alive(), f"edged died:\n{box.daemon.log_tail(80)}"
        assert box.daemon.stop() == 0, box.daemon.log_tail(80)


def admin(sim: SimulatorProcess, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{sim.root}/_sim{path}"
    if body is None:
        response = httpx.get(url, timeout=10)
    else:
        response = httpx.post(url, json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def clear_faults(sim: SimulatorProcess) -> None:
    httpx.delete(f"{sim.root}/_sim/faults", timeout=10).raise_for_status()


def new_order(sim: SimulatorProcess, kind: str = "collection") -> int:
    created = admin(sim, "/orders", {"type": kind})
    return int(created[0]["id"])


def api_requests(sim: SimulatorProcess) -> list[dict[str, str]]:
    result: list[dict[str, str]] = admin(sim, "/requests")
    return result


def ok_actions(sim: SimulatorProcess, order_id: int) -> list[dict[str, Any]]:
    return [
        a for a in admin(sim, "/actions") if a["orderId"] == order_id and a.get("result") == "ok"
    ]


# -- Sinqro link faults ----------------------------------------------------------------------


def test_websocket_dropped_reconnects_and_reconcile_finds_the_orders_of_the_gap(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """The websocket is cut without a close frame and stays refused for a while; orders are
    created meanwhile. The box must reconnect on its own and the reconciliation that follows
    every reconnect must bring the orders of the gap into the journal (polling is slowed
    right down here, so it is the reconcile that finds them)."""
    config = write_config(
        tmp_path,
        cloud.info(),
        sinqro={"poll_interval": 3600.0, "status_refresh_interval": 3600.0},
    )
    with running_box(config) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        admin(cloud, "/faults", {"refuseWebsockets": True})
        admin(cloud, "/websockets/drop", {"abrupt": True})
        # The poll right after the drop succeeds: REST is fine, the websocket is not.
        eventually_blocking(
            lambda: box.health()["link"] == "polling",
            what="the box to notice the drop",
            within=60.0,
            ignoring=UNANSWERED,
        )
        missed = [new_order(cloud), new_order(cloud, "delivery")]
        clear_faults(cloud)
        eventually_blocking(
            lambda: box.metric("edged_link_reconnects_total") >= 1,
            what="a reconnect",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: all(box.has_order(i) for i in missed),
            what="the orders of the gap",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert box.health()["link"] == "online"
        # And the websocket carries new orders again.
        live = new_order(cloud)
        eventually_blocking(
            lambda: box.has_order(live),
            what="an order by the new websocket",
            within=60.0,
            ignoring=UNANSWERED,
        )


def test_half_open_websocket_is_caught_by_keepalive_and_polling_covers_the_gap(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """The cloud keeps the TCP connection open but sends nothing and answers no ping (a
    half-open link behind a NAT or a dead proxy). The box must notice by its keepalive,
    reconnect, and meanwhile find by REST the orders the silent websocket never sent."""
    config = write_config(tmp_path, cloud.info(), sinqro={"status_refresh_interval": 3600.0})
    with running_box(config) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        admin(cloud, "/faults", {"stall": True})
        unheard = new_order(cloud)
        eventually_blocking(
            lambda: box.metric("edged_link_reconnects_total") >= 1,
            what="a keepalive reconnect",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.has_order(unheard),
            what="the unheard order, by REST",
            within=60.0,
            ignoring=UNANSWERED,
        )
        clear_faults(cloud)
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online again",
            within=60.0,
            ignoring=UNANSWERED,
        )
        live = new_order(cloud)
        eventually_blocking(
            lambda: box.has_order(live),
            what="an order after the stall",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert box.alive()


@pytest.mark.slow
async def test_unresolvable_cloud_is_offline_without_a_hot_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop's DNS cannot resolve the cloud's name. The box must say ``offline``, keep
    running (the page answers), and retry at its backoff pace: every connection attempt
    starts with a name lookup, and those are counted over a few seconds."""
    host = "sinqro.invalid"
    lookups: list[float] = []
    real = socket.getaddrinfo

    def counting(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == host:
            lookups.append(time.monotonic())
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    info = {
        "sellingPointId": 3961,
        "baseUrl": f"http://{host}/pos-app/v1",
        "websocketUrl": f"ws://{host}/pos-app/v1/notifications",
    }
    config = write_config(tmp_path, info)
    async with running_app(config) as app:
        await eventually(lambda: app.state.get("link") == "offline", within=15, what="offline")
        assert "unreachable" in str(app.state.get("link.detail"))
        window = 3.0
        start = time.monotonic()
        await asyncio.sleep(window)
        in_window = [t for t in lookups if t >= start]
        # Websocket and REST each back off to reconnect_max (1 s, jittered down to 0.5 s):
        # at most about 2 lookups a second each. A hot loop would make thousands.
        # At least one retry (a starved loop may make fewer than the jitter allows).
        assert 1 <= len(in_window) <= 4 * window / 0.5 + 4, len(in_window)
        assert app.state.get("link") == "offline"
        port = app.config.web.port
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/health", timeout=5)).json()
        assert health["link"] == "offline" and health["journal"] == "ok"


@pytest.mark.slow
def test_rest_5xx_gets_retried_and_queued_commands_go_once_when_it_recovers(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """Sinqro answers every request with 500 for a while. Reads must be retried (with
    backoff), a decision taken meanwhile must wait in the outbox, and be delivered exactly
    once when the cloud recovers; an order created during the outage is found."""
    config = write_config(tmp_path, cloud.info())
    with running_box(config) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        order = new_order(cloud)
        eventually_blocking(
            lambda: box.has_order(order), what="the order", within=60.0, ignoring=UNANSWERED
        )
        admin(cloud, "/faults", {"failAlways": True, "failStatus": 500})
        admin(cloud, "/websockets/drop", {"abrupt": False})
        eventually_blocking(
            lambda: box.health()["link"] == "offline",
            what="the link offline",
            within=60.0,
            ignoring=UNANSWERED,
        )
        queued = box.cli("accept", str(order), "--wait", "0")
        assert queued.returncode == 0, queued.stderr
        eventually_blocking(
            lambda: box.health()["queued_commands"] == 1,
            what="the accept queued",
            within=60.0,
            ignoring=UNANSWERED,
        )
        before = len(api_requests(cloud))
        during = new_order(cloud, "delivery")
        eventually_blocking(
            lambda: len(api_requests(cloud)) >= before + 3,
            what="reads retried",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert ok_actions(cloud, order) == []
        clear_faults(cloud)
        eventually_blocking(
            lambda: ok_actions(cloud, order),
            what="the accept at Sinqro",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.health()["queued_commands"] == 0,
            what="the outbox empty",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.has_order(during),
            what="the order created during the outage",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online again",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert len(ok_actions(cloud, order)) == 1


@pytest.mark.slow
def test_slow_rest_times_out_degrades_the_link_and_loses_nothing(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """Sinqro answers, but slower than the box's request timeout. Requests must time out
    (never hang), the link must show it, and when the cloud is fast again the order created
    meanwhile is stored and the decision taken meanwhile reaches Sinqro exactly once (even
    though a slow attempt may have landed after the box gave up on it)."""
    config = write_config(tmp_path, cloud.info())
    with running_box(config) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        order = new_order(cloud)
        eventually_blocking(
            lambda: box.has_order(order), what="the order", within=60.0, ignoring=UNANSWERED
        )
        admin(cloud, "/faults", {"delay": 2.5})
        admin(cloud, "/websockets/drop", {"abrupt": False})
        eventually_blocking(
            lambda: box.health()["link"] == "offline",
            what="the link to degrade",
            within=60.0,
            ignoring=UNANSWERED,
        )
        during = new_order(cloud)
        queued = box.cli("accept", str(order), "--wait", "0")
        assert queued.returncode == 0, queued.stderr
        eventually_blocking(
            lambda: box.metric("edged_sinqro_failures_total") >= 3,
            what="timed-out requests",
            within=60.0,
            ignoring=UNANSWERED,
        )
        clear_faults(cloud)
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link back",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.has_order(during),
            what="the order created while slow",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: box.health()["queued_commands"] == 0,
            what="the outbox empty",
            within=60.0,
            ignoring=UNANSWERED,
        )
        eventually_blocking(
            lambda: ok_actions(cloud, order),
            what="the accept at Sinqro",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert len(ok_actions(cloud, order)) == 1


@pytest.mark.slow
def test_revoked_token_says_unauthorized_backs_off_and_recovers(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """Sinqro revokes the box's user token (password changed, session ended). The box must
    say so (``unauthorized`` on /health), stop hammering the cloud (requests are counted at
    the cloud over a window), and come back by itself once the token is valid again."""
    config = write_config(tmp_path, cloud.info())
    with running_box(config) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        admin(cloud, "/tokens/revoke", {})
        eventually_blocking(
            lambda: box.health()["link"] == "unauthorized",
            what="unauthorized on /health",
            within=60.0,
            ignoring=UNANSWERED,
        )
        window = 3.0
        before = len(api_requests(cloud))
        time.sleep(window)
        tries = len(api_requests(cloud)) - before
        # One session (websocket + one REST read) per reconnect_max (1 s), give or take.
        assert tries <= 3 * window + 3, tries
        assert box.health()["link"] == "unauthorized"
        admin(cloud, "/tokens/restore", {})
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online after restore",
            within=60.0,
            ignoring=UNANSWERED,
        )
        order = new_order(cloud)
        eventually_blocking(
            lambda: box.has_order(order),
            what="orders flowing again",
            within=60.0,
            ignoring=UNANSWERED,
        )


# -- the composition root in this process ------------------------------------------------------


@contextlib.asynccontextmanager
async def running_app(config_path: Path) -> AsyncIterator[App]:
    """``App`` from a config file, run as the daemon runs it; stopped as SIGTERM would."""
    app = App(load_config(config_path))
    task = asyncio.create_task(app.run(), name="edged-app")
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not app.ready.is_set():
        ready.cancel()
        raise AssertionError(f"edged did not get ready: {task}")
    try:
        yield app
        assert not task.done(), f"edged ended early: {task}"
    finally:
        app.request_stop()
        code = await asyncio.wait_for(task, 30)
    assert code == 0


def jobs_for(app: App, order_id: int) -> Callable[[], Any]:
    """A condition for eventually(): the order's print jobs, once there are any."""

    async def read() -> list[dict[str, Any]]:
        return [j for j in await jobs(app) if j["order_id"] == order_id]

    return read


def jobs(app: App) -> Any:
    async def read() -> list[dict[str, Any]]:
        def run(tx: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in tx.execute("SELECT * FROM print_jobs ORDER BY id")]

        result: list[dict[str, Any]] = await app.journal.transaction(run)
        return result

    return read()


class PortPrinter(TcpPrinter):
    """The printer stand-in on a fixed port, so it can be switched off and on again."""

    def __init__(self, port: int, mode: str = "online") -> None:
        super().__init__(mode)
        self.port = port

    async def start(self) -> PortPrinter:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self


async def test_printer_off_jobs_wait_and_print_when_it_is_back(
    tmp_path: Path, sim: Simulator
) -> None:
    """The kitchen printer is switched off (connection refused). Its tickets must wait,
    the counter printer must print as usual, and the kitchen tickets print, once each,
    when the printer is switched back on."""
    kitchen_port = free_port()
    async with TcpPrinter() as counter:
        config = app_config(
            tmp_path,
            sim,
            printers=[
                printer("kitchen", f"tcp://127.0.0.1:{kitchen_port}"),
                printer("counter", counter.uri),
            ],
        )
        async with running_app(config) as app:
            orders = [sim.create_order("collection")["id"] for _ in range(2)]
            await eventually(lambda: len(counter.jobs) >= 2, within=20, what="counter tickets")
            await eventually(
                lambda: app.state.get("printer.kitchen", {}).get("state") == "offline",
                within=10,
                what="kitchen offline",
            )
            waiting = [j for j in await jobs(app) if j["printer"] == "kitchen"]
            assert {j["order_id"] for j in waiting} == set(orders)
            # Kept and tried again now and then ("sending" for the moment of a try).
            assert all(j["state"] in ("queued", "sending") for j in waiting)
            async with PortPrinter(kitchen_port) as kitchen:
                await eventually(lambda: len(kitchen.jobs) >= 2, within=20, what="kitchen")
                await eventually(
                    lambda: app.state.get("printer.kitchen", {}).get("state") == "online",
                    within=10,
                    what="kitchen online",
                )

                async def all_done() -> bool:
                    # The printer has the bytes a moment before the spooler records "done".
                    return [j["state"] for j in await jobs(app)] == ["done"] * 4

                await eventually(all_done, within=20, what="four jobs done")
                assert len(kitchen.jobs) == 2
            assert len(counter.jobs) == 2


class StallingPrinter(TcpPrinter):
    """A printer with a small receive buffer (as real ones have) that answers its status,
    takes the first part of the next ticket and then stops reading, without closing: a
    printer hung mid-job. ``recover()`` makes it a good printer again."""

    def __init__(self, take: int = 1024) -> None:
        super().__init__("online")
        self.take = take
        self.stalled = asyncio.Event()
        self._stall = True

    async def start(self) -> StallingPrinter:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=1024)
        self.port = sock.getsockname()[1]
        return self

    def recover(self) -> None:
        self._stall = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._stall:
            await self._client(reader, writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        taken = 0
        try:
            while taken < self.take:
                chunk = await reader.read(256)
                if not chunk:
                    return  # a status poll: answered, closed by the box
                while chunk.startswith(b"\x10\x04"):
                    writer.write(b"\x12")  # "online" to the status query
                    chunk = chunk[3:]
                taken += len(chunk)
            # Hung: neither reads nor closes; only the kernel's small buffer still fills.
            transport = writer.transport
            assert isinstance(transport, asyncio.ReadTransport)
            transport.pause_reading()
            self.stalled.set()
            await asyncio.Event().wait()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def test_printer_hanging_mid_job_times_out_and_reprints_the_job(
    tmp_path: Path, sim: Simulator
) -> None:
    """The printer takes part of a ticket and then stops reading (firmware hang, buffer
    stuck). The box must time out instead of waiting forever, keep the job, retry, and
    print it again marked REPRINT because part of it may have come out."""
    async with StallingPrinter() as stuck:
        config = app_config(tmp_path, sim, printers=[printer("kitchen", stuck.uri, copies=3)])
        async with running_app(config) as app:
            order = sim.create_order("delivery")["id"]
            await asyncio.wait_for(stuck.stalled.wait(), 20)
            await eventually(
                lambda: app.state.get("printer.kitchen", {}).get("state") == "offline",
                within=20,
                what="the hang noticed",
            )
            [job] = await jobs(app)
            assert job["order_id"] == order and job["state"] in ("queued", "sending")
            stuck.recover()
            await eventually(lambda: stuck.jobs, within=20, what="the ticket printed")

            async def closed() -> bool:
                rows = await jobs(app)
                return len(rows) == 1 and rows[0]["state"] == "done"

            await eventually(closed, within=10, what="the job done")
            [job] = await jobs(app)
            assert job["reprint"] == 1 and job["attempts"] >= 2
            assert b"REPRINT" in stuck.jobs[-1]


async def test_paper_out_is_reported_jobs_wait_and_print_after_paper_in(
    tmp_path: Path, sim: Simulator
) -> None:
    """The printer reports paper out. The box must say so (BoxState and a journal health
    event, which the page and the bridges show), keep the tickets queued, and print them
    once paper is back."""
    async with TcpPrinter("paper_out") as kitchen:
        config = app_config(tmp_path, sim, printers=[printer("kitchen", kitchen.uri)])
        async with running_app(config) as app:
            order = sim.create_order("collection")["id"]
            await eventually(
                lambda: app.state.get("printer.kitchen", {}).get("state") == "paper_out",
                within=20,
                what="paper out reported",
            )

            async def health_events() -> list[Any]:
                events = await app.journal.read_events(0, 10_000)
                return [e.data for e in events if e.kind == "printer.health"]

            await eventually(
                lambda: _has_state(health_events(), "paper_out"), within=10, what="event"
            )
            # The printer may report paper out before the order's job is recorded.
            [job] = await eventually(jobs_for(app, order), within=20, what="the job")
            # Kept, tried again now and then ("sending" for the moment of a try).
            assert job["state"] in ("queued", "sending")
            assert kitchen.jobs == []
            kitchen.mode = "online"
            await eventually(lambda: kitchen.jobs, within=20, what="the ticket after paper in")
            await eventually(
                lambda: app.state.get("printer.kitchen", {}).get("state") == "online",
                within=10,
                what="online again",
            )
            await eventually(lambda: _has_state(health_events(), "online"), what="event")
            assert len(kitchen.jobs) == 1


async def _has_state(events: Any, state: str) -> bool:
    return any(d.get("state") == state for d in await events)


async def test_broker_restart_loses_no_mqtt_event(tmp_path: Path, sim: Simulator) -> None:
    """The MQTT broker restarts (update, crash). Order events that happened while it was
    down must be published once it is back; the POS sees every order."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        mqtt = {
            "enabled": True,
            "url": broker.url,
            "box_id": "box1",
            "reconnect_min": 0.05,
            "reconnect_max": 0.3,
            "publish_timeout": 5.0,
        }
        config = app_config(tmp_path, sim, mqtt=mqtt)
        pos_ctx = Pos(
            broker.host,
            broker.port,
            ("edged/box1/events/#",),
            base="edged/box1",
            client_id="pos-durable",
            persistent=True,
        )
        async with running_app(config) as app, pos_ctx as pos:
            await eventually(lambda: app.state.get("bridge.mqtt") == "online", within=20)
            before = [sim.create_order()["id"] for _ in range(2)]
            await eventually(
                lambda: {e["order_id"] for e in pos.events("order.new")} >= set(before),
                within=20,
                what="orders before the restart",
            )
            broker.stop()
            await eventually(lambda: app.state.get("bridge.mqtt") == "offline", within=20)
            during = [sim.create_order()["id"] for _ in range(3)]
            await eventually(lambda: all_stored(app, during), within=20, what="stored")
            broker.start()
            await eventually(lambda: app.state.get("bridge.mqtt") == "online", within=20)
            after = [sim.create_order()["id"] for _ in range(2)]
            await eventually(
                lambda: (
                    {e["order_id"] for e in pos.events("order.new")} >= set(before + during + after)
                ),
                within=40,
                what="every order at the POS",
            )
    finally:
        broker.kill()


async def all_stored(app: App, ids: list[int]) -> bool:
    for order_id in ids:
        if await app.journal.get_order(order_id) is None:
            return False
    return True


async def test_serial_cable_pulled_mid_frame_bridge_reconnects_and_events_resume(
    tmp_path: Path, sim: Simulator
) -> None:
    """The POS cable is pulled while a frame is half written. The daemon must not crash,
    say the line is offline, reopen it when the cable is back (same device path, new
    tty), and deliver the events it missed, then the new ones."""
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    serial_cfg = {
        "enabled": True,
        "port": str(link),
        "baudrate": 115200,
        "ack_timeout": 0.3,
        "max_retries": 3,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    try:
        config = app_config(tmp_path, sim, serial=serial_cfg)
        async with running_app(config) as app:
            await eventually(lambda: app.state.get("bridge.serial") == "online", within=20)
            first = sim.create_order()["id"]
            await eventually(
                lambda: first in [e["order_id"] for e in term.json_of("E")],
                within=20,
                what="the first event on the line",
            )
            frame = encode_frame(1, "C", b'{"id": "pulled", "command": "ping"}')
            term.write(frame[: len(frame) // 2])  # half a frame, then the cable goes
            term.close()
            await eventually(lambda: app.state.get("bridge.serial") == "offline", within=20)
            missed = sim.create_order()["id"]
            await eventually(lambda: all_stored(app, [missed]), within=20, what="stored")
            term = Terminal(link)
            await eventually(lambda: app.state.get("bridge.serial") == "online", within=20)
            await eventually(
                lambda: missed in [e["order_id"] for e in term.json_of("E")],
                within=20,
                what="the missed event after replug",
            )
            later = sim.create_order()["id"]
            await eventually(
                lambda: later in [e["order_id"] for e in term.json_of("E")],
                within=20,
                what="new events after replug",
            )
    finally:
        term.close()


# -- the disk fills up -------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(where: Path, size: str = "2m") -> Iterator[Path]:
    """A real small filesystem (tmpfs) mounted for the test; mounting needs root."""
    assert os.geteuid() == 0, "the disk-full test mounts a small tmpfs and must run as root"
    mount = where / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_disk_full_logs_keeps_running_loses_nothing_and_resumes(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """The state partition fills up (logs gone wild, a big update). The daemon must log a
    clear error, keep running (the page answers /health), keep every order it had stored,
    and store the orders it could not store as soon as space is freed: Sinqro still lists
    them as active, so reconciliation brings them in."""
    with tiny_filesystem(tmp_path) as mount:
        config = write_config(tmp_path, cloud.info(), state_dir=mount / "state")
        with running_box(config) as box:
            eventually_blocking(
                lambda: box.health()["link"] == "online",
                what="the link online",
                within=60.0,
                ignoring=UNANSWERED,
            )
            stored = [new_order(cloud) for _ in range(3)]
            eventually_blocking(
                lambda: all(box.has_order(i) for i in stored),
                what="the first orders",
                within=60.0,
                ignoring=UNANSWERED,
            )
            filler = fill(mount)
            # The journal's WAL has its working size already, so orders are still stored
            # for a while; keep them coming until the disk is full for the journal too.
            refused: list[int] = []

            def order_until_full() -> bool:
                refused.append(new_order(cloud))
                time.sleep(0.1)
                return "disk is full" in box.log()

            eventually_blocking(
                order_until_full, what="a clear error in the log", within=120, ignoring=UNANSWERED
            )
            assert "journal cannot store order" in box.log()
            assert box.alive()
            # Reads still work: the page answers and shows the stored orders; /health
            # says the journal cannot write.
            health = box.health()
            assert health["ok"] is False and health["journal_state"] == "failing"
            assert all(box.has_order(i) for i in stored)
            filler.unlink()
            eventually_blocking(
                lambda: all(box.has_order(i) for i in refused),
                what="the refused orders",
                within=30,
                ignoring=UNANSWERED,
            )
            later = new_order(cloud)
            eventually_blocking(
                lambda: box.has_order(later), what="storing again", within=60.0, ignoring=UNANSWERED
            )
            assert box.health()["ok"] is True
        assert box.rows("PRAGMA integrity_check")[0][0] == "ok"


# -- the wall clock jumps ----------------------------------------------------------------------


def libfaketime() -> str:
    found = sorted(
        glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
        + glob.glob("/usr/lib/faketime/libfaketimeMT.so.1")
        + glob.glob("/usr/local/lib/faketime/libfaketimeMT.so.1")
    )
    if not found:
        pytest.fail(
            "libfaketime is required for the clock-jump test and was not found "
            "(install it: apt-get install faketime)",
            pytrace=False,
        )
    return found[0]


@pytest.mark.slow
def test_wall_clock_jumps_forward_and_back_while_orders_flow(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    """The box's wall clock jumps a day forward (an RTC-less Pi meeting NTP) and then an
    hour back, while orders arrive and decisions are sent. Nothing may crash, no order may
    be lost or pruned while open, and the timers (keepalive, backoff, polling) keep working
    because they run on the monotonic clock, which a wall-clock jump does not move."""
    offset = tmp_path / "faketime"
    offset.write_text("+0\n", encoding="ascii")
    env = {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        # As with settimeofday(): CLOCK_MONOTONIC does not jump.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    config = write_config(tmp_path, cloud.info(), orders={"auto_accept": True, "retry_max": 0.5})
    created: list[int] = []
    with running_box(config, env) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        for jump, label in (("+1d", "a day forward"), ("-1h", "an hour back")):
            created += [new_order(cloud) for _ in range(2)]
            offset.write_text(f"{jump}\n", encoding="ascii")
            created += [new_order(cloud) for _ in range(2)]
            eventually_blocking(
                lambda ids=list(created): all(box.has_order(i) for i in ids),
                what=f"orders after {label}",
                within=60.0,
                ignoring=UNANSWERED,
            )
            # Timers still fire: a dropped websocket is noticed and reconnected.
            reconnects = box.metric("edged_link_reconnects_total")
            admin(cloud, "/websockets/drop", {"abrupt": True})
            eventually_blocking(
                lambda r=reconnects: box.metric("edged_link_reconnects_total") > r,
                what=f"a reconnect after {label}",
                within=60.0,
                ignoring=UNANSWERED,
            )
        eventually_blocking(
            lambda: all(ok_actions(cloud, i) for i in created),
            what="every auto-accept sent",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert all(len(ok_actions(cloud, i)) == 1 for i in created)
        # The daemon really lived in the jumped time: its journal stamps say so.
        stamps = [t for (t,) in box.rows("SELECT first_seen FROM orders")]
        assert max(stamps) > time.time() + 20 * 3600
    # Restart a month later (prune runs at start): accepted, still-open orders stay.
    offset.write_text("+40d\n", encoding="ascii")
    with running_box(config, env) as box:
        eventually_blocking(
            lambda: box.health()["link"] == "online",
            what="the link online",
            within=60.0,
            ignoring=UNANSWERED,
        )
        assert all(box.has_order(i) for i in created)
