"""Settings apply live and parts fail alone: the real daemon (a process, so its PID can be
checked), a real Chromium, the TCP printer stand-in and two real Mosquitto brokers; and the
composition root in this process for the part-failure and removed-printer cases. Every wait
is a bounded wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from broker import MosquittoBroker
from harness import SimulatorProcess, app_config, printer, write_config
from playwright.async_api import async_playwright, expect
from ports import free_port
from printer_standin import TcpPrinter
from test_faults import Box, running_app
from waiting import eventually

from edged.app import App
from edged.config import load_config
from edged.configtools import dump_toml
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.web.security import Credentials

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long enough password 42"
GENEROUS = 30.0


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, MosquittoBroker]]:
    first = MosquittoBroker(tmp_path / "broker1")
    second = MosquittoBroker(tmp_path / "broker2")
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


async def with_password(config: Path) -> None:
    """The admin password set before the daemon starts, as the setup page would."""
    state_dir = Path(load_config(config).box.state_dir)
    journal = await Journal.open(state_dir / "edged.sqlite3")
    try:
        await Credentials(journal).set_password(PASSWORD)
    finally:
        await journal.close()


@contextlib.asynccontextmanager
async def daemon(config: Path) -> AsyncIterator[Box]:
    box = Box(config)
    with box.daemon:
        await asyncio.to_thread(box.daemon.start)
        try:
            yield box
        except BaseException:
            print(box.daemon.log_tail(80))
            raise
        assert box.alive(), box.daemon.log_tail(80)
        assert await asyncio.to_thread(box.daemon.stop) == 0, box.daemon.log_tail(80)


async def health(box: Box) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        data: dict[str, Any] = (await client.get(f"{box.web}/health", timeout=5)).json()
    return data


async def bridge_online_on(broker: MosquittoBroker) -> bool:
    """Does ``broker`` hold the box's retained ``online`` status?"""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="probe") as client:
        await client.subscribe("edged/+/status")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    return bytes(message.payload) == b"online"  # type: ignore[arg-type]
    return False


async def test_page_settings_apply_without_a_restart(
    tmp_path: Path, cloud: SimulatorProcess, brokers: tuple[MosquittoBroker, MosquittoBroker]
) -> None:
    first, second = brokers
    config = write_config(
        tmp_path,
        cloud.info(),
        mqtt={"enabled": True, "url": first.url},
    )
    await with_password(config)
    async with TcpPrinter() as standin, daemon(config) as box:
        pid = box.daemon.pid
        await eventually(lambda: bridge_online_on(first), within=GENEROUS, what="on broker 1")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM)
            page = await browser.new_page()
            await page.goto(box.web + "/login")
            await page.fill("#password", PASSWORD)
            await page.press("#password", "Enter")
            await page.wait_for_url(lambda url: "/login" not in url)

            # Add a printer with only a name and an address.
            await page.goto(box.web + "/settings")  # no printer yet: the add form is open
            await page.fill("#f-printers-0-name", "kitchen")
            await page.fill("#f-printers-0-uri", standin.uri)
            await page.click("form[action='/settings/printers/add'] button[type=submit]")
            await expect(page.locator(".notice.ok").first).to_contain_text("spooler")
            await page.screenshot(path=str(tmp_path / "printer-added.png"))
            await page.click("#section-printers details.printer summary >> nth=0")
            await page.click("form[action='/settings/printers/0/test'] button")
            await eventually(lambda: standin.jobs, within=GENEROUS, what="test print")
            saved = load_config(config).printers[0]
            assert saved.order_types and saved.cut and saved.cancel_slip, saved

            # Move the MQTT bridge to the second broker (another port).
            await page.goto(box.web + "/settings")
            await page.click("#section-mqtt summary")
            await page.fill("#f-mqtt-url", second.url)
            await page.click("form[action='/settings/mqtt'] button[type=submit]")
            await expect(page.locator(".notice.ok").first).to_contain_text("mqtt")
            await browser.close()
        await eventually(lambda: bridge_online_on(second), within=GENEROUS, what="on broker 2")
        assert box.daemon.pid == pid and box.alive()


async def test_sighup_applies_a_printer_added_in_a_drop_in(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    config = write_config(tmp_path, cloud.info())
    async with TcpPrinter() as standin, daemon(config) as box:
        pid = box.daemon.pid
        dropin = config.parent / (config.name + ".d")
        dropin.mkdir()
        table = {"printers": [printer("bar", standin.uri)]}
        (dropin / "bar.toml").write_text(dump_toml(table), encoding="utf-8")
        os.kill(pid, signal.SIGHUP)

        async def spooler_running() -> bool:
            return (await health(box))["parts"].get("spooler") == "running"

        await eventually(spooler_running, within=GENEROUS, what="spooler started")
        cli = [sys.executable, "-m", "edged.cli", "test-print", "bar", "-c", str(config)]
        done = await asyncio.to_thread(subprocess.run, cli, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        await eventually(lambda: standin.jobs, within=GENEROUS, what="test print")
        assert box.daemon.pid == pid


async def test_a_part_failing_on_every_start_is_shown_and_the_rest_goes_on(
    tmp_path: Path, sim: Simulator
) -> None:
    port = free_port()
    path = app_config(
        tmp_path,
        sim,
        panel={"enabled": True, "pin_factory": "mock"},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{free_port()}"},
        web={"host": "127.0.0.1", "port": port, "metrics_public": True},
    )
    starts: list[str] = []

    def broken_mqtt(name: str) -> None:
        if name == "mqtt":
            starts.append(name)
            raise RuntimeError("injected start fault")

    app = App(load_config(path))
    app.start_hook = broken_mqtt
    async with running(app):
        await eventually(lambda: len(starts) >= 2, within=GENEROUS, what="restarted")
        failed = app.state.get("part.mqtt")
        assert failed["state"] == "failed" and "injected start fault" in failed["error"]
        await eventually(lambda: app.state.get("panel.led") == "part_failed", what="LED says so")
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/health", timeout=5)).json()
        assert body["parts"]["mqtt"] == "failed"
        assert body["parts"]["sinqro-link"] == "running"
        # Order intake and the buzzer go on.
        order_id = sim.create_order("collection")["id"]
        await eventually(lambda: app.journal.get_order(order_id), within=GENEROUS, what="stored")
        await eventually(
            lambda: app.state.get("panel.buzzer") not in (None, "quiet"), what="ringing"
        )


@contextlib.asynccontextmanager
async def running(app: App) -> AsyncIterator[App]:
    """``app`` run as the daemon runs it; stopped as SIGTERM would."""
    task = asyncio.create_task(app.run(), name="edged-app")
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert app.ready.is_set(), f"edged did not get ready: {task}"
    try:
        yield app
        assert not task.done(), f"edged ended early: {task}"
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


async def jobs_of(app: Any, order_id: int) -> list[dict[str, Any]]:
    def run(tx: Any) -> list[dict[str, Any]]:
        rows = tx.execute("SELECT * FROM print_jobs WHERE order_id = ? ORDER BY id", (order_id,))
        return [dict(r) for r in rows]

    result: list[dict[str, Any]] = await app.journal.transaction(run)
    return result


@pytest.mark.parametrize("with_backup", [True, False])
async def test_removing_a_printer_with_queued_jobs_never_drops_them(
    tmp_path: Path, sim: Simulator, with_backup: bool
) -> None:
    async with TcpPrinter("offline") as dead, TcpPrinter() as alive:
        kitchen = printer(
            "kitchen", dead.uri, backup="counter" if with_backup else "", failover_after=3600
        )
        counter = printer("counter", alive.uri, order_types=["reservation"])
        path = app_config(tmp_path, sim, printers=[kitchen, counter])
        async with running_app(path) as app:
            order_id = sim.create_order("collection")["id"]

            async def queued() -> bool:
                return any(j["state"] == "queued" for j in await jobs_of(app, order_id))

            await eventually(queued, within=GENEROUS, what="job queued on the dead printer")
            result = await app.apply_settings({"printers": [counter]})
            assert result.parts == {"spooler": "applied"}

            async def settled() -> list[dict[str, Any]]:
                rows = await jobs_of(app, order_id)
                return rows if all(r["state"] in ("done", "failed") for r in rows) else []

            (job,) = await eventually(settled, within=GENEROUS, what="job settled")
            if with_backup:
                assert job["state"] == "done" and job["printer"] == "counter", job
                assert alive.jobs
            else:
                assert job["state"] == "failed"
                assert "no longer configured" in job["error"]
