"""``edged relay`` bounded like the box's page: 2,000 slowloris connections against a relay
process with the 1,024 descriptors of a default service, while real webhooks keep being
answered 200 within a second and the log stays quiet.

Real sockets, a real Mosquitto; waits are for a condition, never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import resource
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from pathlib import Path

import httpx
from broker import MosquittoBroker
from test_relay import SECRET, RelayProcess, capture
from test_web_limits import Slowloris, file_limit
from waiting import eventually

from edged.simulator.server import Simulator

ATTACKERS = 2000
MAX_CONNECTIONS = 512  # relay.max_connections by default
WEBHOOKS = 20


class Attack:
    """What the attacking process reports: connections it opened, and saw dropped."""

    def __init__(self, context: BaseContext) -> None:
        self.opened = context.Value("l", 0)
        self.dropped = context.Value("l", 0)
        self.stop = context.Event()


def _attack(port: int, count: int, attack: Attack) -> None:
    """The slowloris of the page's test, in a process of its own (its own CPU share, its
    own descriptors), so the client measuring the webhooks does not share its loop."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run() -> None:
        slowloris = Slowloris(port, count)
        task = asyncio.create_task(slowloris.run())
        while not attack.stop.is_set():
            attack.opened.value, attack.dropped.value = slowloris.opened, slowloris.dropped
            await asyncio.sleep(0.05)
        slowloris.stop()
        with contextlib.suppress(Exception):
            await task

    asyncio.run(run())


@contextlib.contextmanager
def attacking(port: int, count: int) -> Iterator[Attack]:
    context = multiprocessing.get_context("spawn")
    attack = Attack(context)
    child = context.Process(target=_attack, args=(port, count, attack), name="slowloris")
    child.start()
    try:
        yield attack
    finally:
        attack.stop.set()
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join()


async def healthy(process: RelayProcess) -> None:
    async def up() -> bool:
        assert process.proc is not None and process.proc.poll() is None, process.log.read_text()
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{process.root}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, within=30, what="the relay up")


async def test_2000_half_open_connections_leave_real_webhooks_answered_within_a_second(
    tmp_path: Path, sim: Simulator
) -> None:
    notifications = capture(sim)
    for _ in range(WEBHOOKS):
        sim.create_order("delivery")
    assert len(notifications) == WEBHOOKS
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    process = RelayProcess(tmp_path, broker, header_timeout=30.0, body_timeout=1.0)
    try:
        # The relay gets the 1,024 descriptors of a default service; the attacker all it can.
        with file_limit(1024):
            process.start()
        await healthy(process)
        with attacking(process.port, ATTACKERS) as attack:
            await eventually(
                lambda: attack.opened.value >= ATTACKERS, within=120, what="2,000 connections"
            )
            # A fresh connection for each, as each new webhook from Sinqro would come.
            fresh = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(limits=fresh, timeout=30) as http:

                async def at_the_cap() -> bool:
                    held = (await http.get(f"{process.root}/health")).json()["connections"]
                    return bool(held["open"] >= MAX_CONNECTIONS - 1 and held["pushed_out"])

                # The attack holds every connection the relay allows, and more wait.
                await eventually(at_the_cap, within=60, what="the relay at its cap")
                for i, notification in enumerate(notifications):
                    try:
                        async with asyncio.timeout(1.0):
                            answer = await http.post(
                                process.url(), content=json.dumps(notification)
                            )
                    except TimeoutError:
                        raise AssertionError(f"webhook {i}: no answer within 1 s") from None
                    assert answer.status_code == 200, answer.text
                health = (await http.get(f"{process.root}/health")).json()
            # The attacker sees its connections cut (at its next write).
            await eventually(lambda: attack.dropped.value > 0, within=30, what="drops seen")
        assert health["published"] == WEBHOOKS
        # A webhook whose body never comes is answered 408 at body_timeout, and closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
        head = f"POST /sinqro/{SECRET} HTTP/1.1\r\nHost: relay\r\nContent-Length: 900\r\n\r\n"
        writer.write(head.encode() + b'{"event": ')
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        # Slow connections made way rather than taking the descriptors.
        assert health["connections"]["pushed_out"] > 0
        log = process.log.read_text()
        assert "Traceback" not in log and "Too many open files" not in log
        assert len(log.splitlines()) < 50, log[-5000:]
    finally:
        process.stop()
        broker.kill()
