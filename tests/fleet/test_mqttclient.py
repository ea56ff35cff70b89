"""The one broker schema and client builder (edged.mqttclient): several nodes, the order
they are dialled in and the waits between, and old config files that still load."""

from __future__ import annotations

import random

import pytest

from edged.bridges.settings import MqttConfig
from edged.configtools import ConfigError, build
from edged.fleet.settings import FleetConfig
from edged.mqttclient import BrokerConfig, Node, Redial
from edged.relay.settings import RelayBrokerConfig


def test_nodes_are_the_url_then_the_failover_urls() -> None:
    config = build(
        FleetConfig,
        {"url": "mqtts://a.example", "failover_urls": ["mqtts://b.example:9883", "mqtts://c"]},
        file="t",
    )
    assert config.nodes == (Node("a.example", 8883), Node("b.example", 9883), Node("c", 8883))
    assert config.where == "a.example:8883"


@pytest.mark.parametrize(
    ("others", "problem"),
    [
        (["mqtts://b"], "failover_urls[0]: every node of one cluster uses mqtt://"),
        (["mqtt://b", "http://c"], "failover_urls[1]: expected mqtt://host[:port]"),
        (["mqtt://b:99999"], "failover_urls[0]: Port out of range"),
    ],
)
def test_a_bad_failover_url_is_named(others: list[str], problem: str) -> None:
    for section in (FleetConfig, RelayBrokerConfig, MqttConfig):
        with pytest.raises(ConfigError) as err:
            build(section, {"url": "mqtt://a", "failover_urls": others}, file="t.toml")
        assert problem in str(err.value)


def test_the_sections_keep_their_own_defaults_and_secrets() -> None:
    bridge, fleet = MqttConfig(), FleetConfig()
    assert (bridge.keepalive, bridge.reconnect_min, bridge.reconnect_max) == (30, 0.5, 30.0)
    assert (fleet.keepalive, fleet.reconnect_min, fleet.reconnect_max) == (60, 1.0, 60.0)
    assert isinstance(bridge, BrokerConfig) and isinstance(fleet, BrokerConfig)
    # The bridge takes any client id the broker does; the fleet's ACL needs a plain one.
    assert build(MqttConfig, {"client_id": "caja 1"}, file="t").client_id == "caja 1"
    with pytest.raises(ConfigError, match="client_id"):
        build(FleetConfig, {"client_id": "caja 1"}, file="t")


def test_an_old_bridge_section_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGED_MQTT_PASSWORD", "from-env")
    old = {
        "enabled": True,
        "url": "mqtts://pos.local:8884",
        "client_id": "pos-bridge",
        "box_id": "shop-1",
        "topic_prefix": "edged",
        "username": "box",
        "protocol": "3.1.1",
        "ca_file": "/etc/ssl/ca.pem",
        "keepalive": 20,
        "reconnect_min": 1,
        "reconnect_max": 10,
        "publish_timeout": 5,
        "full_payload": True,
        "homeassistant": True,
    }
    config = build(MqttConfig, old, file="t")
    assert config.nodes == (Node("pos.local", 8884),) and config.tls
    assert config.password == "from-env" and config.protocol == "3.1.1"


def test_redial_moves_round_the_nodes_and_waits_longer_each_round() -> None:
    config = FleetConfig(
        url="mqtt://a",
        failover_urls=["mqtt://b", "mqtt://c"],
        reconnect_min=1.0,
        reconnect_max=8.0,
    )
    redial = Redial(config, random.Random(7))
    assert redial.node.host == "a"
    hosts, waits = [], []
    for _ in range(12):
        waits.append(redial.lost())
        hosts.append(redial.node.host)
    assert hosts == ["b", "c", "a"] * 4
    # One round of three nodes at the shortest wait, then twice as long, up to the cap;
    # each wait drawn between half and all of its step.
    steps = [1.0] * 3 + [2.0] * 3 + [4.0] * 3 + [8.0] * 3
    assert all(step / 2 <= wait <= step for wait, step in zip(waits, steps, strict=True))
    assert len(set(waits)) == len(waits)  # jittered, not one fixed value
    redial.connected()
    assert redial.lost() <= 1.0 and redial.node.host == "b"


def test_one_node_waits_twice_as_long_after_each_failure() -> None:
    redial = Redial(FleetConfig(reconnect_min=0.5, reconnect_max=3.0), random.Random(1))
    waits = [redial.lost() for _ in range(5)]
    assert redial.node.where == "localhost:1883"
    for wait, step in zip(waits, [0.5, 1.0, 2.0, 3.0, 3.0], strict=True):
        assert step / 2 <= wait <= step


def test_boxes_that_lost_one_node_come_back_spread_out() -> None:
    config = FleetConfig(url="mqtt://a", failover_urls=["mqtt://b"], reconnect_min=10.0)
    waits = sorted(Redial(config, random.Random(seed)).lost() for seed in range(1000))
    assert waits[0] >= 5.0 and waits[-1] <= 10.0
    # No tenth of a second holds more than a few percent of the thousand.
    buckets = [0] * 50
    for wait in waits:
        buckets[min(49, int((wait - 5.0) * 10))] += 1
    assert max(buckets) < 60
