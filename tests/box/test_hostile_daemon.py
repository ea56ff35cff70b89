"""The whole daemon (``edged run``, a real process) against poison on each channel it
listens to: the Sinqro websocket, a Sinqro REST answer, MQTT commands and the serial line.

Each message below once ended the process (``"id": "²"`` passes ``str.isdigit()`` and fails
``int()``; a JSON integer past 4,300 digits makes ``json.loads`` raise a plain
``ValueError``). The box must refuse each with a log line, answer the sender where there is
one, stay up, and store the next normal order. Waits are for conditions, never for time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from broker import MosquittoBroker
from harness import SimulatorProcess
from serial_terminal import Terminal
from test_faults import Box, admin, clear_faults, new_order, write_config
from waiting import eventually

HUGE = "9" * 5000  # past Python's int-string limit


def order(id_token: str, extra: str = "") -> str:
    """An order as raw JSON text, with ``id_token`` written as it is."""
    status = '"status": {"code": "waiting_sp_validation"}'
    return f'{{"id": {id_token}, "type": "delivery", {status}{extra}}}'


# Order payloads that reached the journal's parser as they are.
POISON_ORDERS = [
    order('"²"'),
    order('"١٢"'),
    order(HUGE),
    order("1e999"),
    order("NaN"),
    order("424242", f', "totalAmount": {HUGE}'),
    order("5", ', "sellingPoint": {"id": "²"}'),
    "[" * 5000 + "]" * 5000,
]


def frames() -> list[str]:
    out = [f'{{"event": "new_order", "data": {o}}}' for o in POISON_ORDERS]
    out.append(f'{{"event": "new_order", "sellingPointId": {HUGE}, "data": {order("9")}}}')
    out.append(f'{{"event": "new_order", "sellingPointId": "²", "data": {order("9")}}}')
    return out


def commands() -> list[bytes]:
    return [
        b'{"id": "p1", "order_id": "\xc2\xb2"}',  # "²"
        b'{"id": "p2", "order_id": ' + HUGE.encode() + b"}",
        b'{"id": "p3", "order_id": 1, "delay": 1e999}',
        b'{"id": "p4", "order_id": NaN}',
        b'{"id": ' + HUGE.encode() + b', "order_id": 1}',
        b'{"id": "p6", "v": true, "order_id": 1}',
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe\x00 not even text",
    ]


@contextlib.asynccontextmanager
async def daemon(config: Path) -> AsyncIterator[Box]:
    """The daemon as a process, started off the loop (the test's own sockets live on)."""
    box = Box(config)
    with box.daemon:
        await asyncio.to_thread(box.daemon.start)
        try:
            yield box
        except BaseException:
            print(box.daemon.log_tail(80))
            raise
        assert box.alive(), f"edged died:\n{box.daemon.log_tail(80)}"
        code = await asyncio.to_thread(box.daemon.stop)
        assert code == 0, box.daemon.log_tail(80)


async def next_order_is_stored(box: Box, cloud: SimulatorProcess) -> None:
    """The box is up and takes the next normal order into its journal."""
    assert box.alive(), box.daemon.log_tail(40)
    order_id = await asyncio.to_thread(new_order, cloud)
    await eventually(
        lambda: asyncio.to_thread(lambda: box.has_order(order_id)),
        what=f"order {order_id} stored",
        within=30.0,
        interval=0.05,
        ignoring=(httpx.HTTPError,),
    )
    assert box.alive(), box.daemon.log_tail(40)


async def online(box: Box) -> None:
    await eventually(
        lambda: asyncio.to_thread(lambda: box.health()["link"] == "online"),
        what="the link online",
        within=30.0,
        interval=0.05,
        ignoring=(httpx.HTTPError,),
    )


async def test_poison_frames_on_the_websocket(tmp_path: Path, cloud: SimulatorProcess) -> None:
    async with daemon(write_config(tmp_path, cloud.info())) as box:
        await online(box)
        for text in frames():
            sent = await asyncio.to_thread(admin, cloud, "/websockets/send", {"text": text})
            assert sent["sent"] == 1
            await next_order_is_stored(box, cloud)
        # Refused by the decoders themselves (a log line each), not by the last guard.
        assert box.log().count("ignored a websocket frame") >= len(frames()) - 2
        assert "Traceback" not in box.log()


async def test_poison_rest_answers(tmp_path: Path, cloud: SimulatorProcess) -> None:
    config = write_config(tmp_path, cloud.info(), sinqro={"status_refresh_interval": 1.0})
    async with daemon(config) as box:
        await online(box)
        bodies = [f"[{order}]" for order in POISON_ORDERS] + [HUGE, "NaN", '{"id": "²"}']
        for body in bodies:
            faults = {"garbleCount": 2, "garbleBody": body}
            await asyncio.to_thread(admin, cloud, "/faults", faults)
            # The next refreshes read the poison (the active list, or an order by id).
            await eventually(
                lambda: asyncio.to_thread(lambda: admin(cloud, "/faults")["garbleCount"] == 0),
                what="the poison read",
                within=30,
                interval=0.05,
                ignoring=(httpx.HTTPError,),
            )
            await asyncio.to_thread(clear_faults, cloud)
            await next_order_is_stored(box, cloud)
        assert "Traceback" not in box.log()


async def test_poison_mqtt_commands_are_answered(tmp_path: Path, cloud: SimulatorProcess) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        mqtt = {"enabled": True, "url": broker.url, "box_id": "box1", "reconnect_max": 0.5}
        config = write_config(tmp_path, cloud.info(), mqtt=mqtt)
        async with (
            daemon(config) as box,
            aiomqtt.Client(broker.host, broker.port, identifier="poison-pos") as pos,
        ):
            await pos.subscribe("edged/box1/status", qos=1)
            await pos.subscribe("edged/box1/response/#", qos=1)
            await pos.subscribe("edged/box1/errors", qos=1)
            answers: list[dict[str, Any]] = []
            status: list[bytes] = []

            async def collect() -> None:
                async for message in pos.messages:
                    assert isinstance(message.payload, bytes)
                    if message.topic.matches("edged/box1/status"):
                        status.append(message.payload)
                    else:
                        answers.append(json.loads(message.payload))

            reader = asyncio.create_task(collect())
            try:
                await eventually(lambda: status[-1:] == [b"online"], within=30, what="online")
                for n, payload in enumerate(commands(), 1):
                    await pos.publish("edged/box1/cmd/accept", payload, qos=1)
                    await eventually(lambda n=n: len(answers) >= n, within=30, what="an answer")
                    assert answers[-1]["status"] == "error", answers[-1]
                    await next_order_is_stored(box, cloud)
            finally:
                reader.cancel()
            codes = {a["code"] for a in answers}
            assert codes <= {"BAD_FIELD", "BAD_JSON"}, codes
            # Where the JSON itself is unusable the id cannot be read: those answers go to
            # <base>/errors without one (docs/bridge-protocol.md).
            assert [a["id"] for a in answers] == ["p1", None, None, None, None, "p6", None, None]
    finally:
        broker.kill()


async def test_poison_on_the_serial_line(tmp_path: Path, cloud: SimulatorProcess) -> None:
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    serial = {
        "enabled": True,
        "port": str(link),
        "baudrate": 115200,
        "ack_timeout": 0.3,
        "reconnect_min": 0.05,
        "reconnect_max": 0.3,
    }
    try:
        config = write_config(tmp_path, cloud.info(), serial=serial)
        async with daemon(config) as box:
            await eventually(lambda: term.of("H"), within=30, what="the box's hello")
            term.write(b"\x00\xff$garbage without end \xfe\r\n$01,C,{}*FFFF\r\n")
            ascii_commands = [c for c in commands() if c.isascii() and len(c) < 30_000]
            for payload in ascii_commands:
                before = len(term.json_of("R"))
                term.command(payload)
                await eventually(
                    lambda before=before: len(term.json_of("R")) > before,
                    within=30,
                    what="an answer on the line",
                )
                assert term.json_of("R")[-1]["status"] == "error"
                await next_order_is_stored(box, cloud)
    finally:
        term.close()
