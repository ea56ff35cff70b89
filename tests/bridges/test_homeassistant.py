"""Home Assistant MQTT discovery, against the documented schema and a real Mosquitto.

The expected shapes below are written down from Home Assistant's MQTT documentation
(integrations/mqtt "Discovery messages", sensor.mqtt, button.mqtt, event.mqtt) and the
2025.10 change that replaced ``object_id`` by ``default_entity_id`` (``<domain>.<id>``;
``object_id`` stops being honoured in 2026.4, so both are sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from bridge_helpers import make_desk, make_order
from broker import MosquittoBroker
from hypothesis import given
from hypothesis import strategies as st
from mqtt_listener import Listener
from waiting import eventually

from edged import __version__
from edged.bridges.homeassistant import DeviceInfo, HomeAssistant, ha_id
from edged.bridges.mqtt import MqttBridge, topic_id
from edged.bridges.settings import MqttConfig
from edged.flow.desk import OrderDesk
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.state import BoxState

BOX = "10000000c0ffee42"
BASE = f"edged/{BOX}"
NODE = f"edged_{BOX}"
HA = "homeassistant"

# -- the documented schema -------------------------------------------------------------------

# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids in [a-zA-Z0-9_-].
DISCOVERY_TOPIC = re.compile(
    r"^homeassistant/(sensor|button|event|switch)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$"
)
# An entity id: <domain>.<object>, lower-case letters, digits and single underscores.
ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
COMMON = {
    "name": str,
    "unique_id": str,
    "default_entity_id": str,
    "object_id": str,
    "availability_topic": str,
    "payload_available": str,
    "payload_not_available": str,
    "qos": int,
    "device": dict,
    "origin": dict,
    "icon": str,
    "entity_category": str,
    "enabled_by_default": bool,
}
PLATFORM = {
    "sensor": {
        "required": {"state_topic"},
        "optional": {
            "state_topic": str,
            "device_class": str,
            "options": list,
            "state_class": str,
            "unit_of_measurement": str,
            "value_template": str,
            "json_attributes_topic": str,
        },
        "categories": {"diagnostic"},
    },
    "button": {
        "required": {"command_topic"},
        "optional": {"command_topic": str, "payload_press": str, "device_class": str},
        "categories": {"config", "diagnostic"},
    },
    # switch.mqtt: on = the product is on sale.
    "switch": {
        "required": {"command_topic", "state_topic"},
        "optional": {
            "command_topic": str,
            "state_topic": str,
            "payload_on": str,
            "payload_off": str,
            "state_on": str,
            "state_off": str,
            "optimistic": bool,
            "device_class": str,
        },
        "categories": {"config"},
    },
    "event": {
        "required": {"state_topic", "event_types"},
        "optional": {
            "state_topic": str,
            "event_types": list,
            "value_template": str,
            "device_class": str,
        },
        "categories": {"diagnostic"},
    },
}
DEVICE = {
    "identifiers": list,
    "name": str,
    "manufacturer": str,
    "model": str,
    "sw_version": str,
    "hw_version": str,
    "serial_number": str,
    "configuration_url": str,
}
ORIGIN = {"name": str, "sw_version": str, "support_url": str}


def check_config(topic: str, config: dict[str, Any]) -> str:
    """Check one discovery config field by field; returns its component."""
    match = DISCOVERY_TOPIC.match(topic)
    assert match, f"{topic}: not a discovery topic"
    component = match.group(1)
    spec = PLATFORM[component]
    allowed = {**COMMON, **spec["optional"]}
    for key, value in config.items():
        assert key in allowed, f"{topic}: {key} is not a documented {component} option"
        assert isinstance(value, allowed[key]), f"{topic}: {key} should be {allowed[key]}"
    for key in spec["required"]:
        assert key in config, f"{topic}: {key} is required"
    # Entity naming: default_entity_id is <component>.<id>, object_id the same id.
    assert ENTITY_ID.match(config["default_entity_id"]), config["default_entity_id"]
    domain, _, object_id = config["default_entity_id"].partition(".")
    assert domain == component
    assert config["object_id"] == object_id
    assert config["unique_id"].startswith(NODE)
    # Availability from the bridge's retained status topic.
    assert config["availability_topic"] == f"{BASE}/status"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    if "entity_category" in config:
        assert config["entity_category"] in spec["categories"]
    if "icon" in config:
        assert config["icon"].startswith("mdi:")
    if config.get("device_class") == "enum":
        options = config["options"]
        assert options and all(isinstance(o, str) for o in options)
        assert "state_class" not in config and "unit_of_measurement" not in config
    if "options" in config:
        assert config.get("device_class") == "enum", "options need device_class enum"
    if "state_class" in config:
        assert config["state_class"] in ("measurement", "total", "total_increasing")
    if component == "event":
        assert all(isinstance(t, str) for t in config["event_types"])
    device = config["device"]
    for key, value in device.items():
        assert key in DEVICE and isinstance(value, DEVICE[key]), f"device.{key}"
    assert device["identifiers"] == [NODE]
    assert "configuration_url" not in device or re.match(r"^https?://", device["configuration_url"])
    origin = config["origin"]
    assert origin["name"] == "edged"
    for key, value in origin.items():
        assert key in ORIGIN and isinstance(value, ORIGIN[key]), f"origin.{key}"
    return component


# -- pure ------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def acknowledge(self) -> None:
        self.calls.append(("acknowledge",))

    async def reprint_last(self) -> None:
        self.calls.append(("reprint_last",))

    async def test_print(self, printer: str) -> None:
        self.calls.append(("test_print", printer))


def _state_topic(key: str) -> str | None:
    names = {"waiting_orders", "queued_commands", "link"}
    if key in names:
        return f"{BASE}/state/{key}"
    if key in ("panel.led", "panel.buzzer"):
        return f"{BASE}/state/{key[6:]}"
    if key.startswith("printer."):
        return f"{BASE}/state/printer/{key[8:].lower().replace(' ', '-')}"
    return None


def discovery(printers: Sequence[str] = ("kitchen",), **device: Any) -> HomeAssistant:
    info = {
        "box_id": BOX,
        "name": "Pizza Roma",
        "serial_number": BOX,
        "hw_version": "Raspberry Pi 4 Model B Rev 1.5",
        "configuration_url": f"http://edged-{BOX}.local:8080/",
    }
    info.update(device)
    return HomeAssistant(
        prefix=HA,
        base=BASE,
        device=DeviceInfo(**info),
        printers=lambda: list(printers),
        state_topic=_state_topic,
        actions=Recorder(),
    )


def test_every_config_matches_the_documented_schema() -> None:
    messages = discovery(("kitchen", "Bar 2")).messages()
    components: dict[str, int] = {}
    for topic, payload in messages.items():
        component = check_config(topic, json.loads(payload))
        components[component] = components.get(component, 0) + 1
    # 5 box sensors + 2 per printer; acknowledge, reprint last + a test print per printer.
    assert components == {"sensor": 7, "button": 4, "event": 1}


def test_device_origin_and_entity_details() -> None:
    configs = {t: json.loads(p) for t, p in discovery().messages().items()}
    waiting = configs[f"{HA}/sensor/{NODE}/waiting_orders/config"]
    assert waiting["name"] == "Waiting orders"
    assert waiting["state_topic"] == f"{BASE}/state/waiting_orders"
    assert waiting["state_class"] == "measurement"
    assert waiting["default_entity_id"] == f"sensor.{NODE}_waiting_orders"
    assert waiting["unique_id"] == f"{NODE}_waiting_orders"
    assert waiting["device"] == {
        "identifiers": [NODE],
        "name": "Pizza Roma",
        "manufacturer": "edged",
        "model": "Order box",
        "sw_version": __version__,
        "serial_number": BOX,
        "hw_version": "Raspberry Pi 4 Model B Rev 1.5",
        "configuration_url": f"http://edged-{BOX}.local:8080/",
    }
    assert waiting["origin"] == {"name": "edged", "sw_version": __version__}
    link = configs[f"{HA}/sensor/{NODE}/link/config"]
    assert link["device_class"] == "enum"
    assert link["options"] == [
        "starting",
        "online",
        "polling",
        "offline",
        "unauthorized",
        "not_paired",
    ]
    printer = configs[f"{HA}/sensor/{NODE}/printer_kitchen/config"]
    assert printer["options"] == ["online", "offline", "paper_out", "cover_open", "unknown"]
    assert printer["value_template"] == "{{ value_json.state }}"
    kitchen = f"{BASE}/state/printer/kitchen"
    assert printer["json_attributes_topic"] == printer["state_topic"] == kitchen
    for internal in ("queued_commands", "led", "buzzer"):
        assert configs[f"{HA}/sensor/{NODE}/{internal}/config"]["entity_category"] == "diagnostic"
    for primary in ("waiting_orders", "link", "printer_kitchen"):
        assert "entity_category" not in configs[f"{HA}/sensor/{NODE}/{primary}/config"]
    buttons = {t.split("/")[3]: c for t, c in configs.items() if "/button/" in t}
    assert set(buttons) == {"acknowledge", "reprint_last", "test_print_kitchen"}
    assert buttons["acknowledge"]["command_topic"] == f"{BASE}/button/acknowledge"
    assert buttons["test_print_kitchen"]["command_topic"] == f"{BASE}/button/test_print/kitchen"
    assert all(b["payload_press"] == "PRESS" for b in buttons.values())
    event = configs[f"{HA}/event/{NODE}/new_order/config"]
    assert event["event_types"] == ["new_order"]
    assert event["state_topic"] == f"{BASE}/events/order.new"


def test_the_new_order_template_reads_fields_the_bridge_sends() -> None:
    """The event entity's template reads value_json paths; each must exist in an order.new
    message as docs/bridge-protocol.md documents it."""
    template = json.loads(discovery().messages()[f"{HA}/event/{NODE}/new_order/config"])[
        "value_template"
    ]
    assert '"event_type": "new_order"' in template and template.rstrip().endswith("}}")
    message = {
        "v": 1,
        "id": 1,
        "ts": 0.0,
        "kind": "order.new",
        "order_id": 7,
        "data": {"type": "collection", "status": "waiting_sp_validation", "code": "C7"},
        "order": {"customer": "Ana", "total": 12.5},
    }
    for path in re.findall(r"value_json((?:\.[a-z_]+)+)", template):
        node: Any = message
        for part in path.strip(".").split("."):
            if part == "defined":
                break
            assert isinstance(node, dict) and part in node, f"value_json{path}"
            node = node[part]


def test_no_configuration_url_without_a_web_page() -> None:
    configs = discovery(configuration_url="").messages()
    for payload in configs.values():
        assert "configuration_url" not in json.loads(payload)["device"]


async def test_buttons_map_to_actions_and_retained_presses_are_ignored() -> None:
    ha = discovery(("kitchen", "Bar 2"))
    sent: list[tuple[str, bytes, bool]] = []

    async def publish(topic: str, payload: bytes, retain: bool) -> None:
        sent.append((topic, payload, retain))

    recorder = ha.actions
    assert isinstance(recorder, Recorder)
    for topic in (
        f"{BASE}/button/acknowledge",
        f"{BASE}/button/reprint_last",
        f"{BASE}/button/test_print/bar-2",
        f"{BASE}/button/test_print/nowhere",
        f"{BASE}/button/self_destruct",
    ):
        await ha.on_message(topic, b"PRESS", retain=False, publish=publish)
    await ha.on_message(f"{BASE}/button/acknowledge", b"PRESS", retain=True, publish=publish)
    assert recorder.calls == [("acknowledge",), ("reprint_last",), ("test_print", "Bar 2")]
    assert sent == []


# -- against Mosquitto -------------------------------------------------------------------------


def bridge_config(broker: MosquittoBroker) -> MqttConfig:
    return MqttConfig(
        enabled=True,
        url=broker.url,
        reconnect_min=0.05,
        reconnect_max=0.3,
        publish_timeout=5.0,
        homeassistant=True,
    )


@contextlib.asynccontextmanager
async def running(
    broker: MosquittoBroker,
    journal: Journal,
    desk: OrderDesk,
    state: BoxState,
    printers: Sequence[str],
) -> AsyncIterator[MqttBridge]:
    bridge = MqttBridge(
        bridge_config(broker),
        journal,
        desk,
        state,
        box_id=BOX,
        device=DeviceInfo(box_id=BOX, name="Pizza Roma", serial_number=BOX),
        printers=lambda: list(printers),
    )
    task = asyncio.create_task(bridge.run(), name="test-ha-bridge")
    try:
        await eventually(
            lambda: state.get("bridge.mqtt") == "online" or task.done(),
            what="bridge online",
            within=20.0,
        )
        assert not task.done(), task
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def configs_of(listener: Listener) -> dict[str, bytes]:
    """The latest payload per discovery topic of this box."""
    out: dict[str, bytes] = {}
    for m in listener.messages:
        if m.topic.startswith(f"{HA}/") and f"/{NODE}/" in m.topic:
            out[m.topic] = m.payload
    return out


async def test_discovery_states_and_retained_configs(
    broker: MosquittoBroker, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    state.set("printer.kitchen", {"state": "online", "detail": ""})
    async with (
        Listener(broker.host, broker.port, (f"{HA}/#", f"{BASE}/#")) as ha,
        running(broker, journal, desk, state, ["kitchen"]),
    ):
        wanted = set(discovery(("kitchen",)).messages())
        await eventually(
            lambda: wanted <= ha.topics_seen(), what="every discovery config", within=20.0
        )
        for topic, payload in configs_of(ha).items():
            check_config(topic, json.loads(payload))
        # Retained: a Home Assistant that starts later finds them all.
        async with Listener(broker.host, broker.port, (f"{HA}/#",), client_id="late") as late:
            await eventually(
                lambda: wanted <= late.topics_seen(), what="retained configs", within=20.0
            )
            assert all(m.retain for m in late.messages if m.topic in wanted)
        await eventually(
            lambda: ha.last(f"{BASE}/status") is not None, what="availability", within=20.0
        )
        assert ha.last(f"{BASE}/status").payload == b"online"  # type: ignore[union-attr]
        # State topics the entities read.
        await desk.ingest(make_order(12), "test")
        await eventually(
            lambda: (
                (m := ha.last(f"{BASE}/state/waiting_orders")) is not None and m.payload == b"1"
            ),
            what="waiting_orders = 1",
            within=20.0,
        )
        state.set("printer.kitchen", {"state": "paper_out", "detail": "no paper"})
        await eventually(
            lambda: (
                (m := ha.last(f"{BASE}/state/printer/kitchen")) is not None
                and m.json()["state"] == "paper_out"
            ),
            what="printer state",
            within=20.0,
        )
        # The event entity's topic carries the new order.
        await eventually(
            lambda: ha.last(f"{BASE}/events/order.new") is not None, what="order.new", within=20.0
        )
        assert ha.last(f"{BASE}/events/order.new").json()["order_id"] == 12  # type: ignore[union-attr]


async def test_a_removed_printer_is_cleared(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    bar = {
        f"{HA}/sensor/{NODE}/printer_bar/config",
        f"{HA}/button/{NODE}/test_print_bar/config",
    }
    async with (
        Listener(broker.host, broker.port, (f"{HA}/#",)) as ha,
        running(broker, journal, desk, state, ["kitchen", "bar"]),
    ):
        await eventually(
            lambda: bar <= ha.topics_seen(), what="the bar printer's configs", within=20.0
        )
    # The box restarts with the bar printer removed from its config.
    async with (
        Listener(broker.host, broker.port, (f"{HA}/#",), client_id="ha-2") as ha,
        running(broker, journal, desk, state, ["kitchen"]) as bridge,
    ):
        await eventually(
            lambda: all((m := ha.last(t)) is not None and m.payload == b"" for t in bar),
            what="empty retained payloads for the bar printer",
            within=20.0,
        )
        assert bridge.homeassistant is not None and bridge.homeassistant.cleared == 2
    # Nothing of the bar printer is retained any more; the kitchen's is.
    async with Listener(broker.host, broker.port, (f"{HA}/#",), client_id="ha-3") as late:
        kitchen = f"{HA}/sensor/{NODE}/printer_kitchen/config"
        await eventually(
            lambda: kitchen in late.topics_seen(), what="the kitchen's retained config", within=20.0
        )
        assert not bar & late.topics_seen()


async def test_home_assistant_online_republishes(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    topic = f"{HA}/sensor/{NODE}/link/config"
    async with (
        Listener(broker.host, broker.port, (f"{HA}/#", f"{BASE}/state/#")) as ha,
        running(broker, journal, desk, state, ["kitchen"]),
    ):
        await eventually(lambda: len(ha.on(topic)) == 1, what="the first config", within=20.0)
        await eventually(
            lambda: ha.last(f"{BASE}/state/link") is not None, what="the link state", within=20.0
        )
        states = len(ha.on(f"{BASE}/state/link"))
        await ha.publish(f"{HA}/status", b"offline")
        await ha.publish(f"{HA}/status", b"online")
        await eventually(lambda: len(ha.on(topic)) == 2, what="the config again", within=20.0)
        await eventually(
            lambda: len(ha.on(f"{BASE}/state/link")) > states, what="the state again", within=20.0
        )
        check_config(topic, ha.on(topic)[-1].json())


async def test_buttons_act_on_the_journal(broker: MosquittoBroker, journal: Journal) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(31), "test")
    await desk.ingest(make_order(32), "test")
    async with (
        Listener(broker.host, broker.port, (f"{HA}/#",)) as ha,
        running(broker, journal, desk, state, ["kitchen"]) as bridge,
    ):
        assert bridge.homeassistant is not None
        after = journal.last_seq
        await ha.publish(f"{BASE}/button/acknowledge", b"PRESS")
        await ha.publish(f"{BASE}/button/reprint_last", b"PRESS")
        await ha.publish(f"{BASE}/button/test_print/kitchen", b"PRESS")
        await eventually(
            lambda: bridge.homeassistant.presses == 3, what="three presses", within=20.0
        )  # type: ignore[union-attr]
        events = await journal.read_events(after)
        acknowledged = sorted(e.order_id for e in events if e.kind == ev.ORDER_ACKNOWLEDGED)
        assert acknowledged == [31, 32]
        prints = [e.data for e in events if e.kind == ev.PRINT_REQUESTED]
        assert prints == [
            {"kind": "reprint", "order_id": 32, "source": "homeassistant"},
            {"kind": "test", "printer": "kitchen", "source": "homeassistant"},
        ]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_home_assistant_ids_never_collide(a: str, b: str) -> None:
    """Two different box ids or printer levels never share a node or a unique_id."""
    assert re.fullmatch(r"[a-z0-9_]+", ha_id(a))
    if a != b:
        assert ha_id(a) != ha_id(b)


def test_box_ids_that_slug_alike_get_their_own_nodes() -> None:
    assert discovery(box_id="shop-1").node == "edged_shop_1"  # usual ids read as before
    assert discovery(box_id="shop--1").node != discovery(box_id="shop-1").node
    assert discovery(box_id="shop-1-").node != discovery(box_id="shop-1").node


def test_printers_that_slug_alike_get_their_own_entities() -> None:
    """Names that differ only by '-' and '_' (both allowed) stay apart in Home Assistant;
    names that differ only by case are refused by the config (tests/box/test_config.py)."""

    def level(key: str) -> str | None:
        if key.startswith("printer."):
            return f"{BASE}/state/printer/{topic_id(key[8:])}"
        return _state_topic(key)

    ha = HomeAssistant(
        prefix=HA,
        base=BASE,
        device=DeviceInfo(box_id=BOX, name="Pizza Roma"),
        printers=lambda: ["bar-1", "bar_1", "bar--1"],
        state_topic=level,
        actions=Recorder(),
    )
    unique = [json.loads(p)["unique_id"] for p in ha.messages().values()]
    assert len(unique) == len(set(unique))
    printers = [u for u in unique if "_printer_" in u]
    assert len(printers) == 3
