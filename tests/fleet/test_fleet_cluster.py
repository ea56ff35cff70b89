"""The fleet link and the relay on a real broker cluster (three NATS servers, MQTT 3.1.1 only):
boxes, the relay and the vendor's subscriber on different nodes, the node in use killed
mid-run. Nothing is lost, and the retained ``availability`` and ``info`` are right on every
node afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bridge_helpers import make_desk, make_order, until
from mqtt_listener import Listener
from nats_cluster import NatsCluster
from test_alerts import monitor, running
from test_fleet import fleet_running, kernel, telemetry

from edged.fleet.link import FleetLink
from edged.fleet.settings import FleetConfig
from edged.journal.store import Journal

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
                await until(
                    lambda: all(late.last(t) is not None for t in topics),
                    f"retained on node {node}",
                    limit=5.0,
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
        await until(lambda: link.connected, "the box on node 0")
        await until(lambda: vendor.last(f"{BASE}/info") is not None, "the first info")
        for n, order_id in enumerate(orders):
            await desk.ingest(make_order(order_id), "test")
            if n == 4:
                # Alerts are on their way: the box's node dies without a goodbye.
                await until(lambda: link.alerts >= 3, "some alerts through node 0")
                cluster.kill(0)
            await asyncio.sleep(0.05)  # spread the alerts over the outage

        def incidents() -> set[str]:
            return {m.json()["incident"] for m in vendor.on(f"{BASE}/alert")}

        wanted = {f"order_waiting:{order_id}" for order_id in orders}
        await until(lambda: incidents() >= wanted, "every alert at the vendor", limit=30)
        assert incidents() == wanted
        assert link.reconnects >= 1 and link.connected
        # A change after the switch is published through the new node.
        state.set("printer.kitchen", {"state": "paper_out", "detail": ""})
        await until(
            lambda: vendor.last(f"{BASE}/info").json()["printers"] == {"kitchen": "paper_out"},  # type: ignore[union-attr]
            "the new info",
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
    # A clean stop says offline, on every node.
    for node in (0, 1, 2):
        async with retained_on(cluster, node) as late:
            await until(lambda: availability(late) == b"offline", f"offline on node {node}")


def availability(seen: Listener) -> bytes | None:
    last = seen.last(f"{BASE}/availability")
    return None if last is None else last.payload
