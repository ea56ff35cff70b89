"""``edged relay`` as a real process, a real Mosquitto, and a box that takes its orders from
the relay's topic instead of the websocket (REST against the Sinqro simulator)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker import MosquittoBroker
from conftest import make_sinqro_config
from harness import DaemonProcess, SimulatorProcess, sinqro_section
from mqtt_listener import Listener
from ports import free_port
from waiting import eventually

from edged.configtools import ConfigError, dump_toml
from edged.fleet.settings import FleetConfig
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.relay.settings import load_relay_config
from edged.relay.subscriber import RelaySubscription
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.state import BoxState

SECRET = "s3cret-for-the-relay-0123"
BOX = "10000000babe0001"


class RelayProcess:
    """``edged relay -c FILE`` in its own process."""

    def __init__(
        self,
        tmp_path: Path,
        broker: MosquittoBroker | None,
        *,
        mqtt: dict[str, Any] | None = None,
        **relay: Any,
    ) -> None:
        """``relay``: more keys of the ``[relay]`` table; ``mqtt``: of its ``[mqtt]`` table
        (``url`` there when ``broker`` is None)."""
        self.port = free_port()
        self.config = tmp_path / "relay.toml"
        self.log = tmp_path / "relay.log"
        doc = {
            "relay": {"host": "127.0.0.1", "port": self.port, "secret": SECRET, **relay},
            "mqtt": {
                **({"url": broker.url} if broker is not None else {}),
                "client_id": "relay-test",
                "publish_timeout": 1.0,
                "reconnect_min": 0.05,
                "reconnect_max": 0.3,
                **(mqtt or {}),
            },
        }
        self.config.write_text(dump_toml(doc))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, secret: str = SECRET) -> str:
        return f"{self.root}/sinqro/{secret}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edged.cli", "relay", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.asynccontextmanager
async def relay_process(
    tmp_path: Path,
    broker: MosquittoBroker | None,
    *,
    mqtt: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[RelayProcess]:
    """A relay process, healthy (connected to ``broker``); ``settings`` for ``[relay]``,
    ``mqtt`` for its ``[mqtt]``."""
    process = RelayProcess(tmp_path, broker, mqtt=mqtt, **settings)
    process.start()
    try:
        async with httpx.AsyncClient() as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"{process.root}/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            for _ in range(600):
                if await healthy():
                    break
                assert process.proc is not None and process.proc.poll() is None, (
                    process.log.read_text()
                )
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the relay did not come up:\n" + process.log.read_text())
        yield process
    finally:
        process.stop()
    assert SECRET not in process.log.read_text()  # never logged


@pytest.fixture
async def relay(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[RelayProcess]:
    async with relay_process(tmp_path, broker) as process:
        yield process


@contextlib.asynccontextmanager
async def box(
    sim: Simulator, broker: MosquittoBroker, journal: Journal, *, websocket: bool = False
) -> AsyncIterator[tuple[NotificationLink, BoxState]]:
    """A box whose Sinqro link listens to the relay (and polls only once an hour)."""
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    config = make_sinqro_config(sim, poll_interval=3600, status_refresh_interval=3600)
    api = SinqroApi(config.base_url, config.server_token, sim.user_token, timeout=2.0)
    fleet = FleetConfig(
        enabled=True,
        url=broker.url,
        reconnect_min=0.05,
        reconnect_max=0.3,
        sinqro_notifications="beside" if websocket else "instead",
    )
    link = NotificationLink(
        config,
        api,
        desk,
        journal,
        state,
        lambda: Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id),
        push_sources=[RelaySubscription(fleet, box_id=BOX)],
        websocket=websocket,
    )
    task = asyncio.create_task(link.run(), name="test-link")
    try:
        await eventually(
            lambda: state.get("link") == "online" and link.reconciler.reconciles >= 1,
            what="link up",
            within=20.0,
        )
        yield link, state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.aclose()


def capture(sim: Simulator) -> list[dict[str, Any]]:
    """The notifications the simulator would send, exactly (doc 003 payloads)."""
    sent: list[dict[str, Any]] = []
    sim.cloud.listeners.append(lambda sp_id, envelope: sent.append(envelope))
    return sent


async def test_webhooks_reach_the_box_through_mosquitto(
    sim: Simulator, broker: MosquittoBroker, relay: RelayProcess, journal: Journal
) -> None:
    notifications = capture(sim)
    async with box(sim, broker, journal) as (link, state), httpx.AsyncClient() as http:
        assert state.get("link.detail") == "relay connected"
        assert sim.connected() == 0  # no websocket: the relay is the only push
        # The box polls an hour apart: what it learns now, the relay told it of, and it
        # stored what Sinqro answered to GET /orders/{id} (unless a reconcile that was still
        # under way at the start stored the order first: the hint then tells nothing new).
        order = sim.create_order("delivery")
        (new_order,) = notifications
        assert new_order["event"] == "new_order"
        answer = await http.post(relay.url(), content=json.dumps(new_order))
        assert answer.status_code == 200, answer.text
        assert answer.json()["topic"] == f"edged/sellingPoints/{sim.selling_point_id}/notifications"
        hints = link.hints
        await eventually(
            lambda: hints.applied + hints.known == 1,
            what="the notification at the box",
            within=20.0,
        )
        stored = await journal.get_order(order["id"])
        assert stored is not None and stored.status == "waiting_sp_validation"
        # The same notification twice (Sinqro retrying) is still one order.
        again = await http.post(relay.url(), content=json.dumps(new_order))
        assert again.status_code == 200
        await eventually(
            lambda: hints.applied + hints.known == 2, what="the repeat at the box", within=20.0
        )
        assert hints.known >= 1  # the same status again: nothing to ask
        order_path = f"/pos-app/v1/orders/{order['id']}"
        asked = sum(1 for r in sim.requests if r["path"].endswith(order_path))
        # A status change follows the same path.
        sim.set_status(order["id"], "cancelled_by_client")
        changed = notifications[-1]
        assert changed["event"] == "order_status_changed"
        assert (await http.post(relay.url(), content=json.dumps(changed))).status_code == 200
        await eventually(
            lambda: hints.applied + hints.known == 3,
            what="the status change at the box",
            within=20.0,
        )
        assert sum(1 for r in sim.requests if r["path"].endswith(order_path)) == asked + 1
        stored = await journal.get_order(order["id"])
        assert stored is not None and stored.status == "cancelled_by_client"
        events = await journal.read_events(0)
        assert [e.kind for e in events if e.order_id == order["id"]] == [
            ev.ORDER_NEW,
            ev.ORDER_STATUS,
        ]
        assert link.frames == 3 and sum(hints.rejected.values()) == 0


async def test_secret_and_payload_checks(broker: MosquittoBroker, relay: RelayProcess) -> None:
    async with (
        httpx.AsyncClient() as http,
        Listener(broker.host, broker.port, ("edged/#",)) as watch,
    ):
        body = json.dumps({"event": "new_order", "data": {"id": 1, "status": {"code": "x"}}})
        for url in (relay.url("wrong-secret-0123456789"), f"{relay.root}/sinqro"):
            answer = await http.post(url, content=body)
            assert answer.status_code == 403
        assert (await http.post(relay.url(), content=b"{not json")).status_code == 400
        assert (await http.post(relay.url(), content=b'{"event": "party"}')).status_code == 400
        health = (await http.get(f"{relay.root}/health")).json()
        assert health["refused"] == 2 and health["published"] == 0
        assert watch.messages == []  # nothing reached the broker


async def test_2xx_only_after_the_broker_acknowledged(
    sim: Simulator, broker: MosquittoBroker, relay: RelayProcess, journal: Journal
) -> None:
    notifications = capture(sim)
    async with box(sim, broker, journal) as (link, _), httpx.AsyncClient(timeout=30) as http:
        order = sim.create_order("collection")
        body = json.dumps(notifications[-1])
        assert broker.process is not None
        # A frozen broker keeps the TCP connection but never sends PUBACK.
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            frozen = await http.post(relay.url(), content=body)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        assert frozen.status_code == 503, frozen.text
        assert frozen.json()["code"] == "BROKER_UNAVAILABLE"
        # A stopped broker: 503 as well, and the relay says so on /health.
        broker.stop()
        stopped = await http.post(relay.url(), content=body)
        assert stopped.status_code == 503
        assert (await http.get(f"{relay.root}/health")).status_code == 503
        # Back: Sinqro's retry is taken, and the box has the order once.
        broker.start()
        for _ in range(600):
            answer = await http.post(relay.url(), content=body)
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert answer.status_code == 200, answer.text
        await eventually(lambda: journal.get_order(order["id"]), within=30, what="the order")
        # The order may come by the reconcile after the broker's restart too; the relay's
        # copy still arrives (the box's session kept it) and changes nothing.
        await eventually(lambda: link.frames >= 1, what="the relay's message at the box", within=30)
        events = [e for e in await journal.read_events(0) if e.order_id == order["id"]]
        assert [e.kind for e in events] == [ev.ORDER_NEW]


BRAND_A = "brand-a-secret-0123456789"
BRAND_B = "brand-b-secret-0123456789"


async def test_each_endpoint_serves_only_its_own_selling_points(
    tmp_path: Path, sim: Simulator, broker: MosquittoBroker
) -> None:
    notifications = capture(sim)
    sim.create_order("delivery")
    body = json.dumps(notifications[-1])
    endpoints = [
        {"secret": BRAND_A, "selling_points": [sim.selling_point_id], "name": "brand A"},
        {"secret": BRAND_B, "selling_points": [sim.selling_point_id + 1], "name": "brand B"},
    ]
    topic = f"edged/sellingPoints/{sim.selling_point_id}/notifications"
    async with (
        relay_process(tmp_path, broker, endpoints=endpoints) as relay,
        httpx.AsyncClient() as http,
        Listener(broker.host, broker.port, ("edged/#",)) as watch,
    ):
        # Brand B's URL, leaked, does not open brand A's restaurant.
        refused = await http.post(relay.url(BRAND_B), content=body)
        assert refused.status_code == 403, refused.text
        answer = await http.post(relay.url(BRAND_A), content=body)
        assert answer.status_code == 200, answer.text
        # The old single secret still works, for every selling point (documented as weaker).
        assert (await http.post(relay.url(SECRET), content=body)).status_code == 200
        await eventually(lambda: len(watch.messages) == 2, what="two publishes", within=20.0)
        assert {m.topic for m in watch.messages} == {topic}
        health = (await http.get(f"{relay.root}/health")).json()
        assert health["published"] == 2 and health["refused"] == 1
    log = relay.log.read_text()
    assert BRAND_A not in log and BRAND_B not in log
    assert "not one of endpoint brand B's" in log


def test_relay_config_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(dump_toml({"relay": {"secret": "short"}}))
    with pytest.raises(ConfigError, match="secret: at least 16"):
        load_relay_config(path)
    path.write_text(dump_toml({"relay": {"secret": SECRET, "prot": 1}}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_relay_config(path)
    for relay, problem in (
        ({}, "secret: set it"),
        ({"endpoints": [{"secret": BRAND_A, "selling_points": []}]}, "at least one selling"),
        ({"secret": BRAND_A, "endpoints": [{"secret": BRAND_A, "selling_points": [1]}]}, "own"),
        ({"endpoints": [{"secret": "short", "selling_points": [1]}]}, "at least 16"),
    ):
        path.write_text(dump_toml({"relay": relay}))
        with pytest.raises(ConfigError, match=problem):
            load_relay_config(path)
    path.write_text(dump_toml({"relay": {"secret": SECRET}, "mqtt": {"url": "mqtts://hq"}}))
    config = load_relay_config(path)
    assert config.mqtt.port == 8883 and config.relay.path == "/sinqro"


def test_the_example_relay_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGED_RELAY_SECRET", SECRET)
    config = load_relay_config(Path(__file__).parents[2] / "config" / "relay.example.toml")
    assert config.relay.secret == SECRET and config.relay.port == 8090
    assert config.mqtt.topic_prefix == "edged"


async def test_the_daemon_takes_its_orders_from_the_relay(
    tmp_path: Path, broker: MosquittoBroker, relay: RelayProcess
) -> None:
    """``edged run`` with fleet.sinqro_notifications = "instead": no websocket, polls an hour
    apart, so an order it stores came through the relay."""
    with SimulatorProcess(log_path=tmp_path / "sim.log") as sim:
        sim.start()
        info = sim.info()
        doc: dict[str, Any] = {
            "box": {"state_dir": str(tmp_path / "state"), "id": BOX},
            "sinqro": sinqro_section(info, poll_interval=3600.0, status_refresh_interval=3600.0),
            "panel": {"enabled": False},
            "web": {"enabled": False},
            "fleet": {
                "enabled": True,
                "url": broker.url,
                "reconnect_min": 0.1,
                "sinqro_notifications": "instead",
            },
        }
        config = tmp_path / "edged.toml"
        config.write_text(dump_toml(doc))
        async with httpx.AsyncClient(timeout=10) as http:
            with DaemonProcess(config) as daemon:
                await asyncio.to_thread(daemon.start)
                # The box logs its subscription once the broker confirmed it (SUBACK).
                await eventually(
                    lambda: "relay: subscribed to" in daemon.log_path.read_text(),
                    what="the subscription",
                    within=30,
                )

                # The box reconciles at start and again once subscribed; either may list an
                # order created meanwhile. So a first order may come by either way; once it is
                # stored and no reconcile is on its way, a second can only come by the relay.
                async def actives() -> int:
                    seen = (await http.get(f"{sim.root}/_sim/requests")).json()
                    return sum(1 for r in seen if r["path"].endswith("/orders/active"))

                journal = tmp_path / "state" / "edged.sqlite3"
                for attempt in ("first", "second"):
                    await eventually(actives, within=30, what="the reconcile")
                    created = await http.post(
                        f"{sim.root}/_sim/orders", json={"type": "collection"}
                    )
                    order = created.json()[0]
                    order_id = int(order["id"])
                    webhook = {"event": "new_order", "data": order}
                    answer = await http.post(relay.url(), json=webhook)
                    assert answer.status_code == 200, answer.text
                    await eventually(
                        lambda oid=order_id: oid in stored_ids(journal),
                        what=f"the {attempt} order in the journal",
                        within=30,
                    )
                # The journal commits just before the log line.
                head = f"order {order_id} (collection, "
                await eventually(
                    lambda: any(
                        head in line and line.endswith("stored from relay")
                        for line in daemon.log_path.read_text().splitlines()
                    ),
                    what="the second order logged as stored from the relay",
                    within=20.0,
                )
                assert daemon.stop() == 0


def stored_ids(path: Path) -> set[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {int(row[0]) for row in conn.execute("SELECT id FROM orders")}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()
