"""The fleet link and the relay on a real broker cluster (three NATS servers, MQTT 3.1.1 only):
boxes, the relay and the vendor's subscriber on different nodes, the node in use killed
mid-run. Nothing is lost, and the retained ``availability`` and ``info`` are right on every
node afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bridge_helpers import make_desk, make_order
from conftest import make_sinqro_config
from mqtt_listener import Listener
from nats_cluster import NatsCluster
from test_alerts import monitor, running
from test_fleet import fleet_running, kernel, telemetry
from test_relay import RelayProcess, capture, relay_process
from waiting import eventually

from edged.fleet.link import FleetLink
from edged.fleet.settings import FleetConfig
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.relay.settings import notifications_topic
from edged.relay.subscriber import RelaySubscription
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import parse_notification
from edged.state import BoxState

BOX = "10000000c1a57e01"
BASE = f"edged/{BOX}"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nats = NatsCluster(tmp_path / "nats")
    nats.start()
    try:
        yield nats
    finally:
        nats.stop()


def listener(cluster: NatsCluster, node: int, topics: tuple[str, ...], name: str) -> Listener:
    """The vendor's side: a plain 3.1.1 subscriber on ``node``."""
    host, port = cluster.host, cluster.nodes[node].mqtt_port
    return Listener(host, port, topics, client_id=name, v5=False)


@contextlib.asynccontextmanager
async def retained_on(cluster: NatsCluster, node: int) -> AsyncIterator[Listener]:
    """A late subscriber on ``node``, once the box's retained messages reached it.

    Right after a node is lost NATS may refuse a subscription (SUBACK 0x80) while JetStream
    elects new leaders: the vendor's client, like this one, subscribes again."""
    topics = (f"{BASE}/availability", f"{BASE}/info")
    for attempt in range(6):
        async with listener(cluster, node, topics, f"late-{node}-{attempt}") as late:
            try:
                await eventually(
                    lambda: all(late.last(t) is not None for t in topics),
                    what=f"retained on node {node}",
                    within=5.0,
                )
            except AssertionError:
                continue
            yield late  # the caller's own failures are not retried
            return
    raise AssertionError(f"no retained availability and info on node {node}")


async def test_a_box_keeps_its_alerts_and_info_across_the_kill_of_its_node(
    tmp_path: Path, journal: Journal, cluster: NatsCluster
) -> None:
    desk, state = make_desk(journal)
    state.set("link", "online")
    config = FleetConfig(
        enabled=True,
        url=cluster.url(0),
        failover_urls=cluster.urls(1, 2),
        protocol="3.1.1",
        reconnect_min=0.05,
        reconnect_max=0.3,
        publish_timeout=3.0,
        info_interval=3600.0,
        info_min_interval=0.1,
    )
    link = FleetLink(
        config,
        box_id=BOX,
        telemetry=telemetry(tmp_path, journal, state, files=kernel(tmp_path, throttled=None)),
        wait_changed=state.wait_changed,
    )
    mon = monitor(journal, state, [link], order_waiting_after=0.1)
    orders = list(range(7001, 7013))
    async with (
        listener(cluster, 2, (f"{BASE}/#",), "vendor") as vendor,
        fleet_running(link),
        running(mon),
    ):
        await eventually(lambda: link.connected, what="the box on node 0", within=20.0)
        await eventually(
            lambda: vendor.last(f"{BASE}/info") is not None, what="the first info", within=20.0
        )
        for n, order_id in enumerate(orders):
            await desk.ingest(make_order(order_id), "test")
            if n == 4:
                # Alerts are on their way: the box's node dies without a goodbye.
                await eventually(
                    lambda: link.alerts >= 3, what="some alerts through node 0", within=20.0
                )
                cluster.kill(0)
            await asyncio.sleep(0.05)  # spread the alerts over the outage

        def incidents() -> set[str]:
            return {m.json()["incident"] for m in vendor.on(f"{BASE}/alert")}

        wanted = {f"order_waiting:{order_id}" for order_id in orders}
        await eventually(lambda: incidents() >= wanted, what="every alert at the vendor", within=30)
        assert incidents() == wanted
        assert link.reconnects >= 1 and link.connected
        # A change after the switch is published through the new node.
        state.set("printer.kitchen", {"state": "paper_out", "detail": ""})
        await eventually(
            lambda: vendor.last(f"{BASE}/info").json()["printers"] == {"kitchen": "paper_out"},
            what="the new info",
            within=20.0,
        )
        # Retained on every live node: online and the latest info.
        for node in (1, 2):
            async with retained_on(cluster, node) as late:
                assert availability(late) == b"online"
                info = late.last(f"{BASE}/info")
                assert info is not None and info.retain
                assert info.json()["printers"] == {"kitchen": "paper_out"}
        # The killed node, back, serves the same retained state.
        cluster.start_node(0)
        async with retained_on(cluster, 0) as late:
            assert availability(late) == b"online"
            assert late.last(f"{BASE}/info").json()["printers"] == {"kitchen": "paper_out"}  # type: ignore[union-attr]
        # The vendor's fleet view, over 3.1.1, from whichever node answers.
        listed = await asyncio.to_thread(fleet_ls, cluster)
        (row,) = listed["boxes"]
        assert (row["box_id"], row["availability"]) == (BOX, "online")
        assert row["printers"] == {"kitchen": "paper_out"}
    # A clean stop says offline, on every node.
    for node in (0, 1, 2):
        async with retained_on(cluster, node) as late:
            await eventually(
                lambda: availability(late) == b"offline",
                what=f"offline on node {node}",
                within=20.0,
            )


def fleet_ls(cluster: NatsCluster) -> Any:
    """``edged fleet ls --json`` as the vendor runs it, given every node."""
    urls = [arg for url in cluster.urls(0, 1, 2) for arg in ("--url", url)]
    done = subprocess.run(
        [sys.executable, "-m", "edged.cli", "fleet", "ls", "--json", "--protocol", "3.1.1", *urls],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def availability(seen: Listener) -> bytes | None:
    last = seen.last(f"{BASE}/availability")
    return None if last is None else last.payload


# -- the relay and a box that takes its orders from it ------------------------------------------


async def webhook(http: httpx.AsyncClient, relay: RelayProcess, body: str) -> None:
    """POST ``body`` as Sinqro does: again after every refusal, until it is taken."""
    for _ in range(600):
        with contextlib.suppress(httpx.HTTPError):
            answer = await http.post(relay.url(), content=body)
            if answer.status_code == 200:
                return
            assert answer.status_code == 503, answer.text
        await asyncio.sleep(0.05)
    raise AssertionError("the relay never took the webhook")


async def test_relayed_orders_survive_the_kill_of_the_relay_node_and_the_box_node(
    tmp_path: Path, sim: Simulator, journal: Journal, cluster: NatsCluster
) -> None:
    notifications = capture(sim)
    topic = notifications_topic("edged", sim.selling_point_id)
    # The relay on node 0, the box on node 1, the vendor's subscriber on node 2.
    relay_mqtt = {
        "url": cluster.url(0),
        "failover_urls": cluster.urls(2),
        "protocol": "3.1.1",
    }
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    config = make_sinqro_config(sim, poll_interval=3600, status_refresh_interval=3600)
    api = SinqroApi(config.base_url, config.server_token, sim.user_token, timeout=2.0)
    fleet = FleetConfig(
        enabled=True,
        url=cluster.url(1),
        failover_urls=cluster.urls(2, 0),
        protocol="3.1.1",
        reconnect_min=0.05,
        reconnect_max=0.3,
        publish_timeout=3.0,
        sinqro_notifications="instead",
    )
    subscription = RelaySubscription(fleet, box_id=BOX)
    link = NotificationLink(
        config,
        api,
        desk,
        journal,
        state,
        lambda: Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id),
        push_sources=[subscription],
        websocket=False,
    )
    orders: list[int] = []

    async def new_order(http: httpx.AsyncClient) -> None:
        orders.append(sim.create_order("delivery")["id"])
        await webhook(http, relay, json.dumps(notifications[-1]))

    async with (
        relay_process(tmp_path, None, mqtt=relay_mqtt) as relay,
        listener(cluster, 2, (topic,), "vendor") as vendor,
        httpx.AsyncClient(timeout=30) as http,
    ):
        task = asyncio.create_task(link.run(), name="test-link")
        try:
            await eventually(
                lambda: state.get("link") == "online", what="the box subscribed", within=20.0
            )
            for n in range(4):
                await new_order(http)
                if n == 1:
                    cluster.kill(0)  # the relay's node
            cluster.start_node(0)
            for n in range(4):
                await new_order(http)
                if n == 1:
                    cluster.kill(1)  # the box's node
            await eventually(
                lambda: subscription.reconnects >= 1, what="the box on another node", within=20.0
            )

            async def all_stored() -> bool:
                return all([await journal.get_order(i) is not None for i in orders])

            await eventually(all_stored, within=30, what="every order in the journal")

            # Each notification the relay took reached a subscriber on another node.
            def relayed() -> set[int]:
                seen = vendor.on(topic)
                return {parse_notification(m.payload, max_bytes=1 << 20).order.id for m in seen}

            await eventually(
                lambda: relayed() >= set(orders), what="every relayed order", within=30
            )
            await eventually(
                lambda: subscription.messages >= 1, what="relayed messages at the box", within=20.0
            )
            assert state.get("link") == "online"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.aclose()
    # Once each, whichever way it came (the relay's message, or the reconcile after a
    # reconnect): one new-order event per order.
    events = [e for e in await journal.read_events(0) if e.kind == ev.ORDER_NEW]
    assert sorted(e.order_id for e in events) == sorted(orders)
