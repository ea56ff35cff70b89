"""The board as a counter tablet lives with it, in headless Chromium against the real
daemon (:class:`edged.app.App`) and the simulator: the daemon restarts and the network
drops under an open board, which heals itself without a reload and never shows a stale
status as live; a device kept signed in survives daemon and browser restarts until it is
signed out from the page; and the first-visit proof by the panel leaves waiting orders
alone.

The network cut is a TCP proxy between the browser and the daemon, stopped and started.
Screenshots land in ``artifacts/screenshots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from playwright.async_api import Browser, Page, async_playwright, expect
from ports import free_port
from waiting import eventually

from edged.app import App
from edged.config import load_config
from edged.configtools import dump_toml
from edged.panel.buttons import PROOF_HOLD
from edged.simulator.server import Simulator
from edged.web.guard import COOKIE
from edged.web.sessions import FILE_NAME as SESSIONS_FILE

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TABLET = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000
# The page's promise: back within this after the box is (its retry is capped at 3 s).
HEALED_MS = 5_000
PASSWORD = "counter-box-2024"
ACCEPT_PIN, CANCEL_PIN = 5, 6


@pytest.fixture(autouse=True)
def mock_pins() -> Any:
    """The panel's pins: gpiozero's MockFactory, so a test can press buttons for real."""
    old = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.close()
        Device.pin_factory = old


class Proxy:
    """A TCP proxy on a port of its own, to the daemon's page; :meth:`cut` drops every
    connection and refuses new ones (the shop's Wi-Fi gone), :meth:`restore` listens again."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


class Box:
    """The real daemon in this process on one free port, restartable on the same state."""

    def __init__(self, sim: Simulator, tmp: Path) -> None:
        self.sim = sim
        self.port = free_port()
        self.config = tmp / "edged.toml"
        self.state_dir = tmp / "state"
        doc = {
            "box": {"name": "Pizzeria", "state_dir": str(self.state_dir), "language": "en"},
            "sinqro": {
                "server_token": sim.server_token,
                "base_url": sim.base_url,
                "websocket_url": sim.websocket_url,
                "user_token": sim.user_token,
                "selling_point_id": sim.selling_point_id,
                "poll_interval": 1.0,
                "request_timeout": 2.0,
                "reconnect_min": 0.1,
                "reconnect_max": 0.5,
            },
            "orders": {"retry_max": 0.5},
            "panel": {"pin_factory": "mock"},
            "web": {"host": "127.0.0.1", "port": self.port},
        }
        self.config.write_text(dump_toml(doc))
        self.app: App | None = None
        self._task: asyncio.Task[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> App:
        app = App(load_config(self.config))
        self._task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), 30)
        self.app = app
        return app

    async def stop(self) -> None:
        if self.app is not None and self._task is not None:
            self.app.request_stop()
            await asyncio.wait_for(self._task, 30)
        self.app = None

    async def has_order(self, order_id: int) -> bool:
        assert self.app is not None
        return await self.app.journal.get_order(order_id) is not None


@contextlib.asynccontextmanager
async def running(sim: Simulator, tmp: Path, *, password: bool = True) -> AsyncIterator[Box]:
    box = Box(sim, tmp)
    app = await box.start()
    try:
        if password:
            assert app.web is not None
            await app.web.credentials.set_password(PASSWORD)
        yield box
    finally:
        await box.stop()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, viewport: dict[str, int], **kw: Any) -> Page:
    context = await browser.new_context(viewport=viewport, **kw)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    return page


async def sign_in(page: Page, url: str, *, keep: str = "") -> None:
    await page.goto(url + "/login")
    await page.fill("#password", PASSWORD)
    if keep:
        await page.check("#keep")
        await page.fill("#device-name", keep)
    await page.click("#login-form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/board$"))


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def expect_stale(page: Page) -> None:
    """What the board says while the box does not answer: nothing green, nothing live."""
    await expect(page.locator("#offline-banner")).to_contain_text("reconnecting")
    await expect(page.locator("#status-summary")).to_have_text(
        "Status unknown: the box does not answer"
    )
    await expect(page.locator("#link-dot")).to_have_class("dot unknown")
    await expect(page.locator("#status-bar .pill.ok")).to_have_count(0)
    await expect(page.locator("body")).to_have_attribute("data-live", "false")


async def expect_live(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-live", "true")
    await expect(page.locator("#offline-banner")).to_be_hidden()
    await expect(page.locator("#link-dot")).to_have_class("dot ok")
    await expect(page.locator("#status-summary")).to_contain_text("Sinqro online")


# -- the board heals itself -------------------------------------------------------------------


async def test_an_open_board_heals_across_two_restarts_and_a_network_cut(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running(sim, tmp_path) as box, chromium() as browser:
        proxy = await Proxy(box.port).start()
        url = f"http://127.0.0.1:{proxy.port}"
        try:
            page = await new_page(browser, TABLET)
            await sign_in(page, url)
            await expect_live(page)
            # A mark only this very document carries: a reload would lose it.
            await page.evaluate("window.sameDocument = 'yes'")
            cards = page.locator("#waiting .order")
            created: list[dict[str, Any]] = []

            async def arrives_while(down: str) -> None:
                created.append(sim.create_order("delivery"))
                await expect_stale(page)
                await shot(page, f"live-board-{down}")

            for restart in (1, 2):
                await box.stop()
                await arrives_while(f"restart-{restart}")
                await box.start()
                # The page's part starts once the box holds the order.
                await eventually(lambda: box.has_order(created[-1]["id"]), within=20)
                card = page.locator(f"#waiting .order[data-order-id='{created[-1]['id']}']")
                await expect(card).to_be_visible(timeout=HEALED_MS)
                await expect_live(page)
                if restart == 1:
                    # The shop's network gone for 30 s, the daemon running on.
                    await proxy.cut()
                    await arrives_while("network-cut")
                    await eventually(lambda: box.has_order(created[-1]["id"]), within=20)
                    await asyncio.sleep(30)  # the cut itself, not a wait for a state
                    await expect_stale(page)
                    await proxy.restore()
                    card = page.locator(f"#waiting .order[data-order-id='{created[-1]['id']}']")
                    await expect(card).to_be_visible(timeout=HEALED_MS)
                    await expect_live(page)
            await expect(cards).to_have_count(len(created))
            assert await page.evaluate("window.sameDocument") == "yes", "the page reloaded"
            assert page.url.endswith("/board")
        finally:
            await proxy.close()


# -- sign-ins that last -----------------------------------------------------------------------


async def test_a_device_kept_signed_in_outlives_restarts_until_signed_out_from_the_page(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running(sim, tmp_path) as box, chromium() as browser:
        tablet = await new_page(browser, TABLET)
        await sign_in(tablet, box.url, keep="Counter tablet")
        [cookie] = [c for c in await tablet.context.cookies() if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["expires"] > 0, "a persistent cookie: it outlives the browser"
        token = cookie["value"]
        # At rest: the token's hash, never the token; only the edged user reads it.
        sessions = box.state_dir / SESSIONS_FILE
        text = sessions.read_text()
        assert token not in text
        assert hashlib.sha256(token.encode()).hexdigest() in text
        assert stat.S_IMODE(os.stat(sessions).st_mode) == 0o600
        [kept] = json.loads(text)["sessions"]
        assert kept["device"] is True and kept["name"] == "Counter tablet"
        # Using the board writes nothing (last use is written at most every few minutes).
        before = sessions.stat().st_mtime_ns
        for _ in range(3):
            await tablet.reload()
            await expect(tablet.locator("body")).to_have_attribute("data-live", "true")
        assert sessions.stat().st_mtime_ns == before

        # The daemon restarts: the tablet is still signed in.
        await box.stop()
        await box.start()
        await tablet.goto(box.url + "/board")
        await expect(tablet).to_have_url(re.compile(r"/board$"))
        await expect(tablet.locator("body")).to_have_attribute("data-live", "true")

        # The browser restarts: a new context holding only the stored cookie.
        state = await tablet.context.storage_state()
        await tablet.context.close()
        tablet = await new_page(browser, TABLET, storage_state=state)
        await tablet.goto(box.url + "/board")
        await expect(tablet).to_have_url(re.compile(r"/board$"))

        # The owner, on a phone (an ordinary sign-in: a session cookie, not listed).
        owner = await new_page(browser, PHONE)
        await sign_in(owner, box.url)
        [mine] = [c for c in await owner.context.cookies() if c["name"] == COOKIE]
        assert mine["expires"] == -1, "not kept: a session cookie"
        await owner.goto(box.url + "/settings#section-devices")
        devices = owner.locator("#devices .device")
        await expect(devices).to_have_count(1)
        await expect(devices.first.locator(".device-name")).to_have_text("Counter tablet")
        await expect(devices.first).to_contain_text("last used")
        await shot(owner, "live-devices")
        owner.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await devices.first.locator("form[action='/devices/revoke'] button").click()
        await expect(owner.locator("#revoked")).to_be_visible()
        await expect(devices).to_have_count(0)
        assert token not in sessions.read_text()
        assert hashlib.sha256(token.encode()).hexdigest() not in sessions.read_text()
        # The tablet's open board goes to the sign-in page; a restart brings nothing back.
        await expect(tablet).to_have_url(re.compile(r"/login$"))
        await box.stop()
        await box.start()
        await tablet.goto(box.url + "/board")
        await expect(tablet).to_have_url(re.compile(r"/login$"))
        # The owner's own sign-in lasted the restart too.
        await owner.goto(box.url + "/board")
        await expect(owner).to_have_url(re.compile(r"/board$"))


# -- the proof of physical access -------------------------------------------------------------


async def press_both(seconds: float) -> None:
    pins = [Device.pin_factory.pin(n) for n in (ACCEPT_PIN, CANCEL_PIN)]
    for pin in pins:
        pin.drive_low()
    await asyncio.sleep(seconds)  # held like fingers would: the gesture is a duration
    for pin in pins:
        pin.drive_high()


async def test_the_first_visit_proof_leaves_every_waiting_order_waiting(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running(sim, tmp_path, password=False) as box, chromium() as browser:
        app = box.app
        assert app is not None
        created = sim.create_orders(2, "delivery")
        await eventually(
            lambda: app.state.get("waiting_orders") == len(created), within=20, what="waiting"
        )
        page = await new_page(browser, PHONE)
        await page.goto(box.url + "/")
        await expect(page).to_have_url(re.compile(r"/setup$"))
        note = page.locator("#orders-waiting")
        await expect(note).to_be_visible()
        await expect(note).to_contain_text("Orders waiting: 2")
        await expect(page.locator("#press-proof")).to_contain_text("hold the box's ACCEPT")
        await page.click("#press-start")
        await expect(page.locator("#press-proof")).to_have_attribute("data-state", "waiting")
        # Another browser cannot take over the window this one opened.
        other = await new_page(browser, PHONE)
        await other.goto(box.url + "/setup")
        await other.click("#press-start")
        await expect(other.locator("#press-proof")).to_have_attribute("data-state", "busy")
        await expect(other.locator("#press-state")).to_contain_text("Another browser")
        assert app.panel is not None
        panel = app.panel
        # The everyday brief press (silence) proves nothing, and the page says so.
        await press_both(0.3)
        await eventually(lambda: panel.last_press, what="the brief press's result")
        assert panel.last_press is not None and panel.last_press["result"] == "silenced"
        await expect(page.locator("#press-elsewhere")).to_contain_text("only silenced")
        await expect(page.locator("#press-proof")).to_have_attribute("data-state", "waiting")
        panel.last_press = None
        await press_both(PROOF_HOLD + 0.5)
        await expect(page.locator("#press-proof")).to_have_attribute("data-state", "proven")
        await expect(page.locator("#press-state")).to_contain_text("proof of access")
        await eventually(lambda: panel.last_press, what="the held press's result")
        assert panel.last_press is not None and panel.last_press["result"] == "proof"
        await shot(page, "live-proof-proven")
        # Every order still waits (silenced, never decided); nothing went to Sinqro.
        waiting = await app.journal.waiting_orders()
        assert sorted(o.id for o in waiting) == sorted(o["id"] for o in created)
        assert await app.journal.pending_commands() == []
        assert sim.posted_actions() == []
        await page.fill("#new-password", PASSWORD)
        await page.fill("#confirm", PASSWORD)
        await page.click("#setup-form button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/board$"))
        await expect(page.locator("#waiting .order")).to_have_count(len(created))


async def test_a_board_reconnecting_all_day_keeps_its_listeners_and_nodes(
    sim: Simulator, tmp_path: Path
) -> None:
    """A page left open for days: every reconnect and board refetch leaves the listener
    and DOM node counts (after a garbage collection) where they were."""
    async with running(sim, tmp_path) as box, chromium() as browser:
        app = box.app
        assert app is not None and app.web is not None
        live = app.web.live
        page = await new_page(browser, TABLET)
        await sign_in(page, box.url)
        sim.create_orders(3, "delivery")
        await expect(page.locator("#waiting .order")).to_have_count(3)
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Performance.enable")

        async def counts() -> dict[str, float]:
            await cdp.send("HeapProfiler.collectGarbage")
            metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
            return {m["name"]: m["value"] for m in metrics}

        async def drop_and_heal() -> None:
            before = set(live.clients)
            live.end_sessions(None)  # the stream goes, the sign-in stays
            await eventually(
                lambda: live.clients and not live.clients & before, within=20, what="a new stream"
            )
            await expect(page.locator("body")).to_have_attribute("data-live", "true")

        await drop_and_heal()  # warm: every code path has run once
        start = await counts()
        for _ in range(15):
            await drop_and_heal()
        end = await counts()
        await expect(page.locator("#waiting .order")).to_have_count(3)
        assert end["JSEventListeners"] <= start["JSEventListeners"] + 5, (start, end)
        assert end["Nodes"] <= start["Nodes"] * 1.1 + 50, (start, end)
