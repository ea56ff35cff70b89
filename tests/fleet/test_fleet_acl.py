"""The fleet broker's ACL as shipped (config/mosquitto-fleet.acl), in a real Mosquitto with a
password file: only the relay's user publishes notifications, a box reads only its own
selling point's topic and writes only its own tree; only the release user publishes the
release manifest, which every box reads.

The box side is the real subscriber (:class:`RelaySubscription`), the relay side the real
``edged relay`` process logged in as the relay's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
from broker import MosquittoBroker
from test_relay import RelayProcess
from waiting import eventually

from edged.configtools import dump_toml
from edged.fleet.settings import FleetConfig
from edged.mqttclient import BrokerConfig, make_client
from edged.relay.subscriber import RelaySubscription

ACL = Path(__file__).parents[2] / "config" / "mosquitto-fleet.acl"
# The box of the shipped example, and a second box made the same way.
BOX_A, SP_A = "10000000a1b2c3d4", 3442
BOX_B, SP_B = "10000000a1b2c3d5", 3443
PASSWORDS = {
    BOX_A: "box-a-password",
    BOX_B: "box-b-password",
    "edged-relay": "relay-password",
    "fleet-ops": "ops-password",
    "edged-release": "release-password",
}


def notification(sp: int, order_id: int) -> str:
    return json.dumps(
        {
            "event": "new_order",
            "sellingPointId": sp,
            "data": {
                "id": order_id,
                "type": "collection",
                "status": {"code": "waiting_sp_validation", "isFinalStatus": False},
                "sellingPoint": {"id": sp},
            },
        }
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The fleet broker as shipped (ACL, password file, no anonymous clients): in this
    module it takes the place of conftest's anonymous one."""
    directory = tmp_path / "broker"
    directory.mkdir()
    passwd = directory / "fleet.passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(passwd), user, password], check=True)
    acl = directory / "fleet.acl"
    # The shipped file, plus box B's block written the way the file says.
    acl.write_text(
        ACL.read_text() + f"\nuser {BOX_B}\ntopic read edged/sellingPoints/{SP_B}/notifications\n"
    )
    b = MosquittoBroker(
        directory,
        persistence=False,
        extra=["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"],
    )
    b.start()
    try:
        yield b
    finally:
        b.kill()


class Sink:
    """Stands in for the Sinqro link: what the box's subscription hands on."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.frames: list[bytes] = []

    def source_up(self, name: str) -> None:
        self.up.set()

    def source_down(self, name: str, reason: str) -> None:
        self.up.clear()

    async def source_frame(self, name: str, message: str | bytes, selling_point_id: int) -> None:
        self.frames.append(message if isinstance(message, bytes) else message.encode())


def credentials(broker: MosquittoBroker, user: str) -> BrokerConfig:
    return BrokerConfig(url=broker.url, username=user, password=PASSWORDS[user])


@contextlib.asynccontextmanager
async def subscribed(broker: MosquittoBroker, user: str, sp: int) -> AsyncIterator[Sink]:
    """The box's real relay subscription, logged in as ``user``."""
    fleet = FleetConfig(
        enabled=True,
        url=broker.url,
        username=user,
        password=PASSWORDS[user],
        reconnect_min=0.05,
        reconnect_max=0.3,
        sinqro_notifications="instead",
    )
    sink = Sink()
    task = asyncio.create_task(RelaySubscription(fleet, box_id=user).run(sp, sink))
    try:
        await asyncio.wait_for(sink.up.wait(), 20)
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish_as(broker: MosquittoBroker, user: str, topic: str, payload: str) -> None:
    """QoS 1: once this returns the broker has handled (or dropped) the message."""
    client = make_client(credentials(broker, user), f"{user}-intruder")
    async with client:
        # Mosquitto may answer "not authorized" in the PUBACK; either way nothing is sent on.
        with contextlib.suppress(aiomqtt.MqttCodeError):
            await client.publish(topic, payload, qos=1)


async def test_only_the_relay_user_publishes_notifications_and_a_box_reads_only_its_own(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    topic_a = f"edged/sellingPoints/{SP_A}/notifications"
    topic_b = f"edged/sellingPoints/{SP_B}/notifications"
    relay = RelayProcess(tmp_path, broker)
    doc = {
        "relay": {"host": "127.0.0.1", "port": relay.port, "secret": "s3cret-for-the-relay-0123"},
        "mqtt": {
            "url": broker.url,
            "username": "edged-relay",
            "password": PASSWORDS["edged-relay"],
            "client_id": "relay-test",
            "publish_timeout": 2.0,
            "reconnect_min": 0.05,
            "reconnect_max": 0.3,
        },
    }
    relay.config.write_text(dump_toml(doc))
    relay.start()
    try:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            subscribed(broker, BOX_A, SP_A) as box_a,
            subscribed(broker, BOX_B, SP_B) as box_b,
        ):

            async def relay_up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(f"{relay.root}/health")).status_code == 200
                return False

            await eventually(relay_up, within=30, what="the relay on the broker")
            # Box B's credentials, box A's own, and no credentials at all: nothing arrives.
            await publish_as(broker, BOX_B, topic_a, notification(SP_A, 1))
            await publish_as(broker, BOX_A, topic_a, notification(SP_A, 2))
            await publish_as(broker, BOX_A, topic_b, notification(SP_B, 3))
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(broker.host, broker.port, identifier="anon") as anon:
                    await anon.publish(topic_a, notification(SP_A, 4), qos=1)
            # The relay's user: box A gets its notification, box B does not.
            answer = await http.post(relay.url(), content=notification(SP_A, 5))
            assert answer.status_code == 200, answer.text
            await eventually(
                lambda: len(box_a.frames) >= 1,
                what="the relay's notification at box A",
                within=20.0,
            )
            assert [json.loads(f)["data"]["id"] for f in box_a.frames] == [5]
            # Box B's topic: box A cannot listen there (what the broker sends one client
            # keeps its order, so the first thing box A's spy hears is on its own topic).
            spy = make_client(credentials(broker, BOX_A), f"{BOX_A}-spy")
            async with spy:
                await spy.subscribe(topic_b, qos=1)
                await spy.subscribe(topic_a, qos=1)
                answer = await http.post(relay.url(), content=notification(SP_B, 6))
                assert answer.status_code == 200, answer.text
                await eventually(
                    lambda: len(box_b.frames) >= 1,
                    what="the relay's notification at box B",
                    within=20.0,
                )
                assert [json.loads(f)["data"]["id"] for f in box_b.frames] == [6]
                answer = await http.post(relay.url(), content=notification(SP_A, 7))
                assert answer.status_code == 200, answer.text
                first = await anext(aiter(spy.messages))
                assert str(first.topic) == topic_a
                assert json.loads(bytes(first.payload))["data"]["id"] == 7
            # A box writes its own tree, not another's.
            ops = make_client(credentials(broker, "fleet-ops"), "fleet-ops-test")
            async with ops:
                await ops.subscribe("edged/+/info", qos=1)
                await publish_as(broker, BOX_A, f"edged/{BOX_B}/info", "forged")
                await publish_as(broker, BOX_A, f"edged/{BOX_A}/info", "mine")
                first = await anext(aiter(ops.messages))
                assert (str(first.topic), first.payload) == (f"edged/{BOX_A}/info", b"mine")
    finally:
        relay.stop()


async def test_only_the_release_user_publishes_the_manifest_and_every_box_reads_it(
    broker: MosquittoBroker,
) -> None:
    topic = "edged/releaseManifest"
    forger = make_client(credentials(broker, BOX_A), f"{BOX_A}-forger")
    async with forger:
        # Retained: had the broker taken it, the reader would get it as it subscribes.
        with contextlib.suppress(aiomqtt.MqttCodeError):
            await forger.publish(topic, b"forged by a box", qos=1, retain=True)
    reader = make_client(credentials(broker, BOX_B), f"{BOX_B}-reader")
    async with reader:
        await reader.subscribe(topic, qos=1)
        await reader.subscribe(f"edged/{BOX_B}/info", qos=1)
        client = make_client(credentials(broker, "edged-release"), "release-tool")
        async with client:
            await client.publish(topic, b"signed manifest", qos=1, retain=True)
        # Box A's forgery never arrived; the release tool's message is the first one.
        first = await anext(aiter(reader.messages))
        assert (str(first.topic), first.payload) == (topic, b"signed manifest")
