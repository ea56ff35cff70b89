"""Sold out from the POS: the ``availability`` command over a real serial line (a
pseudo-terminal) and a real MQTT broker (Mosquitto) changes one option at the simulator
once, however often the POS repeats the command id, and is answered like the other
commands (queued, then ok). The catalog changes are published as ``catalog.changed``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bridge_helpers import make_desk
from broker import MosquittoBroker
from serial_terminal import Terminal
from test_bridge_mqtt import BASE, terminal
from test_bridge_mqtt import config as mqtt_config
from test_bridge_mqtt import running as mqtt_running
from test_bridge_serial import config as serial_config
from test_bridge_serial import running as serial_running
from waiting import eventually

from edged.flow.catalog import CatalogKeeper
from edged.flow.desk import OrderDesk
from edged.flow.outbox import OutboxSender
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.state import BoxState

OAT_MILK = 200130  # an option of the coffee's extras (category 102013)


@contextlib.asynccontextmanager
async def box_with_catalog(
    sim: Simulator, journal: Journal
) -> AsyncIterator[tuple[OrderDesk, BoxState]]:
    """A desk whose catalog keeper holds the simulator's catalog, and a running sender."""
    desk, state = make_desk(journal)
    api = SinqroApi(sim.base_url, sim.server_token, sim.user_token, timeout=2.0, retries=1)
    pairing = Pairing(user_token=sim.user_token, selling_point_id=sim.selling_point_id)
    desk.catalog = CatalogKeeper(journal, api, state, lambda: pairing)
    await desk.catalog.refresh()
    sender = OutboxSender(journal, api, state, OrdersConfig(retry_max=0.2), lambda: pairing)
    tasks = [
        asyncio.create_task(sender.run(), name="sender"),
        asyncio.create_task(desk.catalog.run(), name="keeper"),
    ]
    try:
        yield desk, state
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.aclose()


def option_patches(sim: Simulator) -> list[object]:
    return [p["body"] for p in sim.catalog_patches("/productOptionsCategories/102013")]


async def test_serial_sets_an_option_once(sim: Simulator, journal: Journal, tmp_path: Path) -> None:
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with (
            box_with_catalog(sim, journal) as (desk, state),
            serial_running(serial_config(link), journal, desk, state),
        ):
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            body = {"id": "so-1", "command": "availability", "option": OAT_MILK, "available": False}
            seq = term.command(body)
            term.command(body, seq=seq)  # the same frame again (our ACK was lost)
            term.command(body)  # the POS retried the command: same id, new frame
            await eventually(
                lambda: sim.option(OAT_MILK)["isAvailable"] is False, what="sold out", within=20.0
            )
            await eventually(
                lambda: len(term.of("R")) >= 3, what="queued twice, then ok", within=20.0
            )
            # A repeat is answered as the first was (queued), or with the outcome once known.
            statuses = [r["status"] for r in term.json_of("R")]
            assert statuses[0] == "queued" and statuses[-1] == "ok"
            assert set(statuses) == {"queued", "ok"}
            assert option_patches(sim) == [
                {"productOptions": [{"id": OAT_MILK, "isAvailable": False}]}
            ]
            # By external id, back on; an unknown one is refused with its code.
            term.command(
                {"id": "so-2", "command": "availability", "option": "TPV-014-01", "available": True}
            )
            await eventually(
                lambda: sim.option(OAT_MILK)["isAvailable"] is True, what="back on", within=20.0
            )
            term.command({"id": "so-3", "command": "availability", "product": "X", "available": 1})
            term.command(
                {"id": "so-4", "command": "availability", "product": "nope", "available": False}
            )
            await eventually(
                lambda: {"so-3", "so-4"} <= {r["id"] for r in term.json_of("R")},
                what="refusals",
                within=20.0,
            )
            codes = {
                r["id"]: r.get("code") for r in term.json_of("R") if r["id"] in ("so-3", "so-4")
            }
            assert codes == {"so-3": "BAD_FIELD", "so-4": "UNKNOWN_PRODUCT"}
            assert len(option_patches(sim)) == 2
    finally:
        term.close()


async def test_mqtt_sets_an_option_once_and_publishes_the_change(
    sim: Simulator,
    journal: Journal,
    broker: MosquittoBroker,
) -> None:
    async with (
        box_with_catalog(sim, journal) as (desk, state),
        terminal(broker, (f"{BASE}/response/#", f"{BASE}/events/#")) as pos,
        mqtt_running(mqtt_config(broker), journal, desk, state),
    ):
        body = {"id": "m-1", "option": OAT_MILK, "available": False, "until": "2h"}
        await pos.send("availability", body)
        await pos.send("availability", body)
        await eventually(
            lambda: len(pos.on(f"{BASE}/response/m-1")) >= 3,
            what="queued twice, then ok",
            within=20.0,
        )
        answers = [m.json()["status"] for m in pos.on(f"{BASE}/response/m-1")]
        assert answers[0] == "queued" and answers[-1] == "ok" and set(answers) == {"queued", "ok"}
        assert sim.option(OAT_MILK)["isAvailable"] is False
        assert len(option_patches(sim)) == 1
        assert [(t.item_id, t.kind) for t in await journal.timers()] == [(OAT_MILK, "option")]
        changed = await eventually(lambda: pos.events("catalog.changed"), what="catalog.changed")
        assert {"kind": "option", "id": OAT_MILK, "available": False} in changed[-1]["data"][
            "changed"
        ]
