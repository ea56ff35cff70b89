"""Home Assistant's product switches against a real Mosquitto and the simulator: a switch
per exposed product (by id or external id), its state read from the catalog, and turning
it off marks the product sold out at Sinqro through the outbox, once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence

from broker import MosquittoBroker
from mqtt_listener import Listener
from test_bridge_availability import box_with_catalog
from test_homeassistant import BASE, BOX, HA, NODE, bridge_config, check_config
from waiting import eventually

from edged.bridges.homeassistant import DeviceInfo
from edged.bridges.mqtt import MqttBridge
from edged.flow.desk import OrderDesk
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.state import BoxState

PIZZA = 109800  # exposed by id
PAELLA = 109802  # exposed by its external id
TORTILLA = 109801  # in the catalog, not exposed


@contextlib.asynccontextmanager
async def running(
    broker: MosquittoBroker,
    journal: Journal,
    desk: OrderDesk,
    state: BoxState,
    exposed: Sequence[str],
) -> AsyncIterator[MqttBridge]:
    config = bridge_config(broker)
    config = type(config)(**{**config.__dict__, "homeassistant_products": list(exposed)})
    bridge = MqttBridge(
        config,
        journal,
        desk,
        state,
        box_id=BOX,
        device=DeviceInfo(box_id=BOX, name="Pizza Roma", serial_number=BOX),
        printers=lambda: [],
    )
    task = asyncio.create_task(bridge.run(), name="test-ha-products")
    try:
        await eventually(
            lambda: state.get("bridge.mqtt") == "online" or task.done(), what="bridge online"
        )
        assert not task.done(), task
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def switch_config(product_id: int) -> str:
    return f"{HA}/switch/{NODE}/product_{product_id}/config"


async def test_a_switch_sells_out_an_exposed_product_once(
    broker: MosquittoBroker, sim: Simulator, journal: Journal
) -> None:
    async with (
        box_with_catalog(sim, journal) as (desk, state),
        Listener(broker.host, broker.port, (f"{HA}/#", f"{BASE}/#")) as ha,
        running(broker, journal, desk, state, [str(PIZZA), "TPV-003", "NO-SUCH"]) as bridge,
    ):
        assert bridge.homeassistant is not None
        wanted = {switch_config(PIZZA), switch_config(PAELLA)}
        await eventually(lambda: wanted <= ha.topics_seen(), what="a switch per exposed product")
        assert switch_config(TORTILLA) not in ha.topics_seen()
        paella = ha.last(switch_config(PAELLA))
        assert paella is not None
        config = json.loads(paella.payload)
        assert check_config(switch_config(PAELLA), config) == "switch"
        assert config["name"] == "Paella valenciana (2 pers.)"
        state_topic, command_topic = config["state_topic"], config["command_topic"]
        await eventually(
            lambda: (m := ha.last(state_topic)) is not None and m.payload == b"ON", what="on"
        )

        # A retained command would replay on every reconnect: ignored. An unexposed
        # product has no switch. Then the real one, sent twice (Home Assistant repeats).
        await ha.publish(command_topic, b"OFF", retain=True)
        await ha.publish(f"{BASE}/switch/product/{TORTILLA}/set", b"OFF")
        await ha.publish(command_topic, b"OFF")
        await eventually(
            lambda: sim.product(PAELLA)["isAvailable"] is False, what="sold out at Sinqro"
        )
        # The state follows the catalog once Sinqro took it, not the command.
        await eventually(
            lambda: (m := ha.last(state_topic)) is not None and m.payload == b"OFF", what="off"
        )
        assert sim.product(TORTILLA)["isAvailable"] is True
        assert [p["body"] for p in sim.catalog_patches(f"/products/{PAELLA}")] == [
            {"isAvailable": False}
        ]

        await ha.publish(command_topic, b"ON")
        await eventually(
            lambda: sim.product(PAELLA)["isAvailable"] is True, what="back on at Sinqro"
        )
        await eventually(
            lambda: (m := ha.last(state_topic)) is not None and m.payload == b"ON", what="on"
        )
        pizza = json.loads(ha.last(switch_config(PIZZA)).payload)
        assert ha.last(pizza["state_topic"]).payload == b"ON"
        assert bridge.homeassistant.switched == 2
        # Configs and states are retained: a Home Assistant started later finds them.
        async with Listener(
            broker.host, broker.port, (f"{HA}/#", state_topic), client_id="late"
        ) as late:
            await eventually(lambda: wanted | {state_topic} <= late.topics_seen(), what="retained")
            assert all(m.retain for m in late.messages)


async def test_no_switches_without_exposed_products(
    broker: MosquittoBroker, sim: Simulator, journal: Journal
) -> None:
    async with (
        box_with_catalog(sim, journal) as (desk, state),
        Listener(broker.host, broker.port, (f"{HA}/#",)) as ha,
        running(broker, journal, desk, state, []) as bridge,
    ):
        assert bridge.homeassistant is not None
        link = f"{HA}/sensor/{NODE}/link/config"
        await eventually(lambda: link in ha.topics_seen(), what="the other configs")
        assert not [t for t in ha.topics_seen() if t.startswith(f"{HA}/switch/")]
        assert f"{BASE}/switch/#" not in bridge.homeassistant.subscriptions()
