"""The web page's limits: a connection cap, a deadline for the request head, the Host check,
a quiet log under an accept() storm, and slowloris against the whole daemon while orders
keep arriving and printing.

All over real sockets; waits are for a condition, never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import resource
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from aiohttp import web
from fuzzing import hostile
from harness import SimulatorProcess
from hypothesis import given
from hypothesis import strategies as st
from test_faults import Box, new_order, write_config
from test_hostile_daemon import daemon
from waiting import eventually

from edged.web.limits import (
    AcceptStormFilter,
    GuardedSite,
    HostGuard,
    _host_part,
    _ip,
    runner_options,
)
from edged.web.settings import WebConfig


@contextlib.asynccontextmanager
async def guarded_server(
    config: WebConfig,
) -> AsyncIterator[tuple[GuardedSite, int, asyncio.Event]]:
    """A tiny app behind a GuardedSite; ``/slow`` answers once ``release`` is set."""
    release = asyncio.Event()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None, **runner_options(config))
    await runner.setup()
    site = GuardedSite(runner, config)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield site, port, release
    finally:
        release.set()
        await runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Returns once the server ended the connection (EOF or reset); never on its own."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    return True


async def test_a_connection_without_a_request_is_closed_after_the_head_deadline() -> None:
    config = WebConfig(host="127.0.0.1", port=0, header_timeout=1.0, keepalive_timeout=60)
    async with guarded_server(config) as (site, port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        await writer.drain()
        assert await asyncio.wait_for(closed_by_server(reader), 30)
        assert site.guard is not None and site.guard.timed_out == 1
        writer.close()


async def test_at_the_cap_a_new_client_pushes_out_a_silent_connection() -> None:
    config = WebConfig(host="127.0.0.1", port=0, max_connections=8, header_timeout=60)
    async with guarded_server(config) as (site, port, _):
        assert site.guard is not None
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        await eventually(lambda: site.guard is not None and site.guard.open == 8, within=10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/")).text == "hello"
        assert site.guard.evicted >= 1
        assert await asyncio.wait_for(closed_by_server(silent[0][0]), 30)
        for _, writer in silent:
            writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_refused() -> None:
    config = WebConfig(host="127.0.0.1", port=0, max_connections=4, header_timeout=60)
    async with guarded_server(config) as (site, port, release):
        assert site.guard is not None
        busy = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            busy.append((reader, writer))
        await eventually(lambda: site.guard is not None and site.guard.open == 4, within=10)
        await eventually(lambda: site.guard is not None and not site.guard._waiting, within=10)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(closed_by_server(reader), 30)
        assert site.guard.refused >= 1
        release.set()
        for r, w in busy:
            assert b"late" in await asyncio.wait_for(r.read(4096), 30)
            w.close()
        writer.close()


@hostile(2000)
@given(host=st.text(max_size=40) | st.from_regex(r"\A\[?[0-9a-f:.]{0,30}\]?(:[0-9]{0,6})?\Z"))
def test_any_host_header_is_judged_without_an_error(host: str) -> None:
    guard = HostGuard(["localhost", "edged-1a2b.local"])
    allowed = guard.allowed(host, "192.168.1.20")
    assert isinstance(allowed, bool)
    if allowed:
        part = _host_part(host)
        assert part is not None
        address = _ip(part)
        assert part in guard.names or (
            address is not None and (address.is_loopback or str(address) == "192.168.1.20")
        ), host


def test_host_names_and_addresses_of_the_box() -> None:
    guard = HostGuard(["localhost", "edged-1a2b.local", "pos.example.com"])
    for host in ("edged-1a2b.local:8080", "EDGED-1A2B.LOCAL.", "pos.example.com", "[::1]:8080"):
        assert guard.allowed(host, "192.168.1.20"), host
    assert guard.allowed("192.168.1.20:8080", "::ffff:192.168.1.20")
    for host in ("evil.example", "192.168.1.21", "edged-1a2b.local.evil", "[::1", "", "x:y"):
        assert not guard.allowed(host, "192.168.1.20"), host


def test_accept_errors_are_logged_once_a_minute_with_a_count() -> None:
    now = [0.0]
    storm = AcceptStormFilter(clock=lambda: now[0])
    records = [
        logging.LogRecord("asyncio", logging.ERROR, "x", 1, f"{storm.MARK}\nsocket: <x>", (), None)
        for _ in range(1000)
    ]
    passed = [r for r in records if storm.filter(r)]
    assert len(passed) == 1 and storm.suppressed == 999
    now[0] += 61
    later = records[0]
    later.msg = f"{storm.MARK}\nsocket: <y>"
    assert storm.filter(later) and "999 more" in str(later.msg)
    other = logging.LogRecord("asyncio", logging.ERROR, "x", 1, "something else", (), None)
    assert storm.filter(other)


# -- slowloris against the daemon ---------------------------------------------------------------


class Slowloris:
    """``count`` connections that each send a header line now and then and never finish,
    reopened as soon as the server drops them. Bounded: it stops when told."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.opened = 0
        self.dropped = 0
        self._stop = asyncio.Event()

    async def _one(self) -> None:
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            self.opened += 1
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while not self._stop.is_set():
                    await asyncio.sleep(random.uniform(0.5, 1.5))
                    writer.write(b"X-a: b\r\n")
                    await writer.drain()
                    if reader.at_eof():
                        break
            except OSError:
                pass
            finally:
                self.dropped += 1
                writer.close()
            await asyncio.sleep(random.uniform(0.1, 0.3))  # then comes back

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(self.count):
                group.create_task(self._one())

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def file_limit(limit: int) -> Iterator[None]:
    """This process (and children started inside) gets ``limit`` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_slowloris_with_2000_connections_does_not_stop_orders_or_tickets(
    tmp_path: Path,
    cloud: SimulatorProcess,
) -> None:
    tickets = tmp_path / "tickets"
    printers = [{"name": "kitchen", "uri": f"virtual://{tickets}"}]
    config = write_config(tmp_path, cloud.info(), printers=printers)
    # The daemon gets the 1,024 descriptors of a default service; the attacker all it can.
    with file_limit(1024):
        started = daemon(config)
        box: Box = await started.__aenter__()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    attacker_limit = file_limit(hard)
    attacker_limit.__enter__()
    try:
        await eventually(
            lambda: asyncio.to_thread(lambda: box.health()["link"] == "online"),
            what="the link online",
            within=30.0,
            interval=0.05,
            ignoring=(httpx.HTTPError,),
        )
        port = int(box.web.rsplit(":", 1)[1])
        attack = Slowloris(port, 2000)
        attacker = asyncio.create_task(attack.run())
        try:
            await eventually(lambda: attack.opened >= 2000, within=120, what="2,000 connections")
            for _ in range(5):
                order_id = await asyncio.to_thread(new_order, cloud)
                await eventually(
                    lambda order_id=order_id: asyncio.to_thread(box.has_order, order_id),
                    what=f"order {order_id}",
                    within=60,
                    interval=0.05,
                    ignoring=(httpx.HTTPError,),
                )
                await eventually(
                    lambda order_id=order_id: any(tickets.glob(f"*-{order_id}-*.txt")),
                    within=60,
                    what=f"the ticket of order {order_id}",
                )
            # The server pushed slow connections out rather than running out of descriptors.
            assert attack.dropped > 0
            # And the page still answers someone who sends a whole request.
            await eventually(
                lambda: asyncio.to_thread(lambda: box.health()["ok"]),
                what="the page answering",
                within=60,
                interval=0.05,
                ignoring=(httpx.HTTPError,),
            )
        finally:
            attack.stop()
            with contextlib.suppress(Exception):
                await attacker
        assert box.alive()
        assert "Too many open files" not in box.log()
        assert box.daemon.log_path.stat().st_size < 2_000_000
    finally:
        attacker_limit.__exit__(None, None, None)
        await started.__aexit__(None, None, None)
