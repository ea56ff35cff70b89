"""The page as restaurant people meet it, in headless Chromium against the real daemon
(:class:`edged.app.App`: journal, link, outbox, spooler, mock-pin panel, web page) and the
simulator, on a phone (390x844) and a desktop (1280x800).

Screenshots land in ``artifacts/screenshots`` (CI keeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from playwright.async_api import BrowserContext, Page, async_playwright, expect
from printer_standin import TcpPrinter
from waiting import eventually

from edged.app import App
from edged.config import load_config
from edged.configtools import dump_toml
from edged.i18n import Locale
from edged.i18n.extract import all_messages
from edged.panel.buttons import PROOF_HOLD
from edged.simulator.server import Simulator

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 20_000
PASSWORD = "counter-box-2024"
ACCEPT_PIN = 5
CANCEL_PIN = 6


@dataclass
class Box:
    app: App
    sim: Simulator

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return f"http://127.0.0.1:{self.app.web.port}"


@pytest.fixture(autouse=True)
def mock_pins() -> Any:
    """The panel's pins: gpiozero's MockFactory, so a test can press ACCEPT for real."""
    old = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.close()
        Device.pin_factory = old


@contextlib.asynccontextmanager
async def running_box(
    sim: Simulator,
    tmp: Path,
    *,
    language: str = "en",
    paired: bool = True,
    printers: list[dict[str, Any]] | None = None,
) -> AsyncIterator[Box]:
    """The real daemon in this process, with the web page on a free port."""
    sinqro: dict[str, Any] = {
        "server_token": sim.server_token,
        "base_url": sim.base_url,
        "websocket_url": sim.websocket_url,
        "poll_interval": 1.0,
        "request_timeout": 2.0,
        "reconnect_min": 0.1,
        "reconnect_max": 0.5,
    }
    if paired:
        sinqro.update(user_token=sim.user_token, selling_point_id=sim.selling_point_id)
    doc = {
        "box": {
            "name": "Pizzeria",
            "state_dir": str(tmp / "state"),
            "language": language,
            "timezone": "Europe/Madrid",
        },
        "sinqro": sinqro,
        "orders": {"retry_max": 0.5},
        "printers": printers or [],
        "panel": {"pin_factory": "mock"},
        "web": {"host": "127.0.0.1", "port": 0},
    }
    (tmp / "edged.toml").write_text(dump_toml(doc))
    app = App(load_config(tmp / "edged.toml"))
    task = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        yield Box(app, sim)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def browser(viewport: dict[str, int]) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        context = await chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
        try:
            yield context
        finally:
            await context.close()
            await chromium.close()


async def new_page(context: BrowserContext) -> Page:
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    return page


async def shot(page: Page, name: str, *, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


async def press_both(seconds: float = PROOF_HOLD + 0.5) -> None:
    """Both buttons on the mock pins, held past the click for the proof, then let go."""
    pins = [Device.pin_factory.pin(n) for n in (ACCEPT_PIN, CANCEL_PIN)]
    for pin in pins:
        pin.drive_low()
    await asyncio.sleep(seconds)
    for pin in pins:
        pin.drive_high()


async def sign_in_first_time(box: Box, page: Page) -> None:
    """First visit by the panel: both buttons held on the mock pins prove the browser."""
    await page.goto(box.url + "/")
    await expect(page).to_have_url(re.compile(r"/setup$"))
    await page.click("#press-start")
    await expect(page.locator("#press-proof")).to_have_attribute("data-state", "waiting")
    await press_both()
    await expect(page.locator("#press-proof")).to_have_attribute("data-state", "proven")
    await page.fill("#new-password", PASSWORD)
    await page.fill("#confirm", PASSWORD)
    await page.click("#setup-form button[type=submit]")
    await expect(page).not_to_have_url(re.compile(r"/setup$"))


def _stamp(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def due(order: dict[str, Any]) -> float:
    """The time the board counts to: the kitchen's (the courier's pickup, else the
    preparation time) when it is another minute than the customer's, as on the ticket."""
    customer = _stamp(order["executionTime"])
    pickups = [
        d["pickupAgreedAt"] for d in order.get("deliveries") or [] if d.get("pickupAgreedAt")
    ]
    ready = pickups[0] if pickups else order.get("preparationTime")
    if ready and int(_stamp(ready)) // 60 != int(customer) // 60:
        return _stamp(ready)
    return customer


def is_prepaid(order: dict[str, Any]) -> bool:
    payments = order.get("payments") or []
    return bool(payments) and all(p.get("prepaid") is True for p in payments)


# -- the staff board ------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_new_order_alert_sort_by_due_time_and_payment_badges(
    sim: Simulator, tmp_path: Path, viewport: dict[str, int]
) -> None:
    name = "phone" if viewport is PHONE else "desktop"
    async with running_box(sim, tmp_path) as box, browser(viewport) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        created = sim.create_orders(4, "delivery") + sim.create_orders(2, "collection")
        await page.goto(box.url + "/board")
        cards = page.locator("#waiting .order")
        await expect(cards).to_have_count(len(created))
        # Soonest due first, whatever the arrival order.
        by_due = [str(o["id"]) for o in sorted(created, key=due)]
        shown = [await c.get_attribute("data-order-id") for c in await cards.all()]
        assert shown == by_due
        # Paid and cash orders say so, with the amount.
        for order in created:
            badge = page.locator(f"#waiting .order[data-order-id='{order['id']}'] .pay")
            word = "PAID" if is_prepaid(order) else "CASH TO COLLECT"
            await expect(badge).to_contain_text(word)
            await expect(badge).to_have_attribute(
                "data-payment", "paid" if is_prepaid(order) else "collect"
            )
        assert {is_prepaid(o) for o in created} == {True, False}, "want both kinds"
        await page.click("#alert-seen")
        await expect(page.locator("#new-order-alert")).to_be_hidden()
        # One tap turns the sound on; then a new order rings, alerts and lands by due time.
        await page.click("#enable-sound")
        await expect(page.locator("#sound-on")).to_be_visible()
        fresh = sim.create_order("collection")
        alert = page.locator("#new-order-alert")
        await expect(alert).to_be_visible()
        await expect(alert).to_contain_text(f"#{fresh['marketOrderCode']}")
        await expect(page).to_have_title(re.compile(r"^\(1\) New order"))
        await expect(page.locator("body")).to_have_attribute("data-chimes", re.compile(r"[1-9]"))
        await expect(cards).to_have_count(len(created) + 1)
        everything = sorted([*created, fresh], key=due)
        shown = [await c.get_attribute("data-order-id") for c in await cards.all()]
        assert shown == [str(o["id"]) for o in everything]
        await shot(page, f"people-{name}-new-order")
        await page.click("#alert-seen")
        await expect(page).to_have_title(re.compile(r"^\(\d+\) Orders"))
        await shot(page, f"people-{name}-board", full=True)


async def test_offline_banner_queue_buttons_and_a_second_decision_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        order = sim.create_order("delivery")
        await page.goto(box.url + "/board")
        card = page.locator(f"#waiting .order[data-order-id='{order['id']}']")
        await expect(card).to_be_visible()
        await page.click("#alert-seen")
        # Sinqro out of reach: websocket and REST refused.
        sim.refuse_websockets(True)
        sim.refuse_all("close")
        await sim.drop_websockets()
        banner = page.locator("#offline-banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Offline since")
        plain = card.locator("button[data-kind=accept]:not([data-delay])")
        await expect(plain).to_have_text(re.compile(r"^Queue: Accept$"))
        await plain.click()
        await expect(card.locator(".result")).to_contain_text("Queued")
        await expect(card.locator(".pending")).to_contain_text("queued")
        # No second decision to take on the card; one sent anyway is refused at once.
        await expect(card.locator(".actions button")).to_have_count(0)
        answer = await page.evaluate(
            """async (id) => {
                 const csrf = document.querySelector('meta[name="csrf-token"]').content;
                 const r = await fetch(`/api/orders/${id}/accept`, { method: "POST",
                   headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
                   body: JSON.stringify({ delay: 10 }) });
                 return [r.status, (await r.json()).code];
               }""",
            order["id"],
        )
        assert answer == [409, "DECISION_QUEUED"]
        pending = await box.app.journal.pending_commands()
        assert [c.kind for c in pending] == ["accept"]
        await shot(page, "people-phone-offline", full=True)
        # Sinqro back: the queued accept is delivered and the banner goes.
        sim.refuse_all(None)
        sim.refuse_websockets(False)
        await expect(banner).to_be_hidden()
        await eventually(
            lambda: [p for p in sim.posted_actions() if p["orderId"] == order["id"]],
            within=20,
            what="the queued accept at the simulator",
        )
        await expect(page.locator(f"#active .order[data-order-id='{order['id']}']")).to_be_visible()


# -- the owner's setup ----------------------------------------------------------------------


async def test_first_visit_by_button_then_a_printer_added_with_two_fields_prints(
    sim: Simulator, tmp_path: Path
) -> None:
    printer = await TcpPrinter().start()
    try:
        async with running_box(sim, tmp_path, paired=False) as box, browser(PHONE) as context:
            page = await new_page(context)
            await sign_in_first_time(box, page)
            await expect(page).to_have_url(re.compile(r"/pairing$"))
            await page.goto(box.url + "/settings")
            form = page.locator("#add-printer-form")
            await expect(form).to_be_visible()  # no printer yet: the form is open
            # Every field at once: a bad copies value and a missing name, both said.
            await page.fill("#f-printers-0-copies", "nine")
            await page.click("#add-printer-form button:not([name])")
            await expect(page.locator("#f-printers-0-name-error")).to_have_text("Required.")
            await expect(page.locator("#f-printers-0-uri-error")).to_have_text("Required.")
            await expect(page.locator("#f-printers-0-copies-error")).to_have_text(
                "Enter a whole number."
            )
            await shot(page, "people-phone-printer-errors", full=True)
            # Two fields: a name and the address as a person types it.
            await page.fill("#f-printers-0-copies", "1")
            await page.fill("#f-printers-0-name", "kitchen")
            await page.fill("#f-printers-0-uri", f"127.0.0.1:{printer.port}")
            await page.click("#add-printer-form button[name=test]")
            await expect(page.locator("#tested")).to_contain_text("kitchen")
            [saved] = box.app.config.printers
            assert saved.uri == f"tcp://127.0.0.1:{printer.port}"
            assert saved.copies == 1 and saved.paper_width == 80  # the rest: defaults
            # Saved settings apply live: the restarted spooler prints the test page.
            # (It may print something else first, e.g. the pending setup ticket.)
            await eventually(
                lambda: any(b"TEST PRINT" in job for job in printer.jobs),
                within=20,
                what="the test page",
            )
            # The password is set: no setup code is left to print or to use.
            assert not any(b"Setup code" in job for job in printer.jobs)
            assert box.app.web is not None
            assert not await box.app.web.credentials.has_setup_code()
            await shot(page, "people-phone-printer-added", full=True)
            # The language is chosen on the page; it applies at once, still signed in.
            await page.select_option("#language", "es")
            await page.click("#language-form button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Configuración")
            assert box.app.config.box.language == "es"
    finally:
        await printer.close()


# -- one language at a time -----------------------------------------------------------------


def english_phrases(language: str) -> list[str]:
    """Catalog strings a page could show that read differently in ``language``: if one of
    them is on a Spanish or Catalan page, something was not translated."""
    locale = Locale(language)
    phrases = []
    for message in all_messages():
        if message.context:
            continue
        fixed = re.split(r"\{\w*\}", message.text)[0].strip()
        if len(fixed) < 4 or not re.search(r"[a-z]", fixed):
            continue
        if locale.gettext(message.text).startswith(fixed):
            continue  # the same words in both languages (Sinqro, Total...)
        phrases.append(fixed)
    return phrases


async def visible_text(page: Page) -> str:
    """The page's words, less what it marks ``translate="no"`` (config keys shown for
    support, which are names, not language)."""
    return str(
        await page.evaluate(
            """() => {
                const hidden = [...document.querySelectorAll('[translate="no"]')];
                hidden.forEach((e) => (e.dataset.was = e.style.display, e.style.display = "none"));
                const text = document.body.innerText;
                hidden.forEach((e) => (e.style.display = e.dataset.was));
                return text;
            }"""
        )
    )


@pytest.mark.parametrize("language", ["es", "ca"])
async def test_a_spanish_or_catalan_box_shows_no_english_and_the_selling_points_time(
    sim: Simulator, tmp_path: Path, language: str
) -> None:
    phrases = english_phrases(language)
    assert len(phrases) > 150

    def english_in(text: str) -> list[str]:
        return [p for p in phrases if re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", text)]

    async with (
        running_box(sim, tmp_path, language=language, paired=False) as box,
        browser(PHONE) as context,
    ):
        page = await new_page(context)
        await page.goto(box.url + "/setup")
        assert english_in(await visible_text(page)) == []
        await sign_in_first_time(box, page)
        # Pairing through the page: the box learns the selling point's zone.
        await expect(page).to_have_url(re.compile(r"/pairing$"))
        assert english_in(await visible_text(page)) == []
        await page.fill("#sinqro-username", "demo")
        await page.fill("#sinqro-password", "demo")
        await page.click("#pairing-form button[type=submit]")
        await page.check(f"#picker input[value='{sim.selling_point_id}']")
        await page.click("#picker button[type=submit]")
        await expect(page.locator("#paired")).to_be_visible()
        assert english_in(await visible_text(page)) == []
        orders = [sim.create_order(kind) for kind in ("delivery", "collection", "reservation")]
        await page.goto(box.url + "/board")
        await expect(page.locator("#waiting .order")).to_have_count(len(orders))
        await page.locator("#waiting .order button[data-kind=cancel]").first.click()
        await page.click("#status-line > summary")
        await expect(page.locator("#history tr")).to_have_count(len(orders))
        text = await visible_text(page)
        assert english_in(text) == [], text
        await shot(page, f"people-phone-board-{language}", full=True)
        # Times are the selling point's, not the box's UTC.
        zone = ZoneInfo(box.app.current_pairing().timezone)
        assert str(zone) == "Europe/Madrid"
        for order in orders:
            card = page.locator(f"#waiting .order[data-order-id='{order['id']}']")
            expected = datetime.fromtimestamp(due(order), zone).strftime("%H:%M")
            await expect(card.locator(".due")).to_contain_text(expected)
        stored = await box.app.journal.list_orders(limit=10)
        first_seen = {o.id: o.first_seen for o in stored}
        rows = page.locator("#history tr")
        for row in await rows.all():
            code = (await row.locator("td").nth(1).inner_text()).lstrip("#")
            [order] = [o for o in orders if o["marketOrderCode"] == code]
            seen = datetime.fromtimestamp(first_seen[order["id"]], zone).strftime("%H:%M")
            assert await row.locator("td").first.inner_text() == seen
        for path in ("/settings", "/pairing", "/login"):
            await page.goto(box.url + path)
            # Folded parts too: the advanced fields a vendor opens are in the language.
            await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            text = await visible_text(page)
            assert english_in(text) == [], f"{path}: {text}"
            if path == "/settings":
                await shot(page, f"people-phone-settings-{language}", full=True)
