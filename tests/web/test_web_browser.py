"""The local page in a real headless Chromium against the real server and the simulator.

First visit with the printed setup code, pairing with the selling point picker, an order
arriving live, accept with a delay, cancel (refused without a comment), a status step, a
setup form error shown beside its field, and both logouts. Screenshots land in
``artifacts/screenshots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import make_sinqro_config
from playwright.async_api import BrowserContext, Page, async_playwright, expect
from waiting import eventually
from web_box import web_box

from edged.config import Config, load_config, save_web_settings
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.outbox import OutboxSender
from edged.flow.pairing import Pairing, save_pairing
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.models import OrderAction, SellingPoint
from edged.state import BoxState
from edged.web.server import WebServer
from edged.web.services import WebServices

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
PASSWORD = "counter-box-2024"


@dataclass
class TicketPrinter:
    """Stands in for the spooler: keeps what would have been printed."""

    tickets: list[list[str]] = field(default_factory=list)

    async def request_text(
        self, lines: list[str], *, source: str, qr: str = "", big: Sequence[int] = ()
    ) -> None:
        self.tickets.append(lines)

    def request_test_print(self, name: str, *, source: str) -> None:
        self.tickets.append([f"test page for {name}"])

    def request_reprint(self, order_id: int, printer: str | None = None, *, source: str) -> None:
        self.tickets.append([f"reprint {order_id}"])

    def setup_code(self) -> str:
        text = "\n".join(self.tickets[-1])
        match = re.search(r"Setup code:\n(\w{4}-\w{4})", text)
        assert match, text
        return match.group(1)


@dataclass
class VirtualPanel:
    presses: list[tuple[str, float]] = field(default_factory=list)

    async def virtual_press(self, button: str, seconds: float) -> str:
        self.presses.append((button, seconds))
        return f"{button} pressed"


@dataclass
class Box:
    server: WebServer
    journal: Journal
    printer: TicketPrinter
    panel: VirtualPanel

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@contextlib.asynccontextmanager
async def running_box(sim: Simulator, tmp: Path) -> AsyncIterator[Box]:
    """The daemon's parts for the page: journal, desk, link, outbox sender, web server."""
    sinqro = make_sinqro_config(sim, user_token="", selling_point_id=0)
    (tmp / "edged.toml").write_text(
        f'[sinqro]\nserver_token = "{sim.server_token}"\nbase_url = "{sim.base_url}"\n'
        f'websocket_url = "{sim.websocket_url}"\n'
        f'[box]\nname = "Pizzeria counter"\nstate_dir = "{tmp / "state"}"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\n'
        # A printer is configured, so the first start prints the setup ticket.
        f'[[printers]]\nname = "counter"\nuri = "virtual://{tmp / "tickets"}"\n'
    )
    holder: dict[str, Any] = {"config": load_config(tmp / "edged.toml"), "pairing": Pairing()}
    journal = await Journal.open(tmp / "journal.sqlite3")
    state = BoxState()
    desk = OrderDesk(journal, state, holder["config"].orders)
    api = SinqroApi(sim.base_url, sim.server_token, "", timeout=2.0)
    sender = OutboxSender(journal, api, state, holder["config"].orders, lambda: holder["pairing"])
    link = NotificationLink(
        sinqro, api, desk, journal, state, lambda: holder["pairing"], on_online=sender.kick
    )
    pending: dict[str, Any] = {}

    async def login(username: str, password: str) -> Sequence[SellingPoint]:
        token = await api.login(username, password)
        probe = SinqroApi(sim.base_url, sim.server_token, token, timeout=2.0)
        try:
            points = await probe.selling_points()
        finally:
            await probe.aclose()
        pending.update(username=username, token=token, points=points)
        return points

    async def choose(sp_id: int) -> None:
        point = next(p for p in pending["points"] if p.id == sp_id)
        pairing = Pairing(pending["token"], point.id, point.name, pending["username"])
        await save_pairing(journal, pairing)
        holder["pairing"] = pairing
        api.user_token = pairing.user_token
        link.reconnect_now()
        sender.kick()

    async def logout() -> None:
        with contextlib.suppress(Exception):
            await api.logout()
        holder["pairing"] = Pairing()
        await save_pairing(journal, Pairing())
        link.reconnect_now()

    async def order_actions(order_id: int) -> Sequence[OrderAction]:
        return await api.order_actions(order_id)

    async def apply(changes: dict[str, Any]) -> Config:
        new = await asyncio.to_thread(save_web_settings, holder["config"], changes)
        holder["config"] = new
        desk.config = sender.config = new.orders
        return new

    printer = TicketPrinter()
    panel = VirtualPanel()
    services = WebServices(
        box_name="Pizzeria counter",
        journal=journal,
        state=state,
        desk=desk,
        pairing=lambda: holder["pairing"],
        login=login,
        choose_selling_point=choose,
        logout=logout,
        order_actions=order_actions,
        config=lambda: holder["config"],
        apply_settings=apply,
        spooler=printer,
        panel=panel,
    )
    tasks = [
        asyncio.create_task(link.run(), name="sinqro-link"),
        asyncio.create_task(sender.run(), name="outbox-sender"),
    ]
    try:
        async with web_box(holder["config"].web, services) as server:
            yield Box(server, journal, printer, panel)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.aclose()
        await journal.close()


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[BrowserContext]:
    with tempfile.TemporaryDirectory(prefix="edged-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 414, "height": 896},  # a phone
            )
            try:
                yield context
            finally:
                await context.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def posted(sim: Simulator, order_id: int, kind: str = "action") -> list[dict[str, Any]]:
    return [p for p in sim.posted_actions() if p["orderId"] == order_id and p["kind"] == kind]


async def test_first_visit_pairing_and_the_live_board(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path) as box, browser() as context:
        page = context.pages[0] if context.pages else await context.new_page()
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)

        # First visit: the page asks for the code printed at first start.
        await page.goto(box.url + "/")
        await expect(page).to_have_url(re.compile(r"/setup$"))
        await page.fill("#code", box.printer.setup_code())
        await page.fill("#new-password", PASSWORD)
        await page.fill("#confirm", PASSWORD)
        await shot(page, "01-first-visit")
        await page.click("#setup-form button[type=submit]")

        # Pairing: a wrong Sinqro password is said beside the field ...
        await expect(page).to_have_url(re.compile(r"/pairing$"))
        await page.fill("#sinqro-username", "demo")
        await page.fill("#sinqro-password", "wrong")
        await page.click("#pairing-form button[type=submit]")
        await expect(page.locator("#password-error")).to_contain_text("Incorrect")
        # ... then the right one brings the picker (user "demo" has two selling points).
        await page.fill("#sinqro-username", "demo")
        await page.fill("#sinqro-password", "demo")
        await page.click("#pairing-form button[type=submit]")
        picker = page.locator("#picker input[name=selling_point_id]")
        await expect(picker).to_have_count(2)
        await shot(page, "02-picker")
        await page.check(f"#picker input[value='{sim.selling_point_id}']")
        await page.click("#picker button[type=submit]")
        await expect(page.locator("#paired")).to_be_visible()
        assert "sim-" not in await page.content()  # no token on the page

        # The board: an order arrives live, over the websocket and server-sent events.
        await page.click("nav a[href='/board']")
        await expect(page.locator("#st-link .pill-value")).to_have_text("online")
        await expect(page.locator("#virtual-panel")).to_be_visible()
        first = sim.create_order("delivery")
        card = page.locator(f"#waiting .order[data-order-id='{first['id']}']")
        await expect(card).to_be_visible()
        delayed = card.locator("button[data-kind=accept][data-delay]").first
        await expect(delayed).to_be_visible()
        delay = int(await delayed.get_attribute("data-delay") or 0)
        assert delay > 0
        await shot(page, "03-order-waiting")

        # Accept with a delay: the simulator receives the delayed ACCEPT token.
        await delayed.click()
        await eventually(
            lambda: [p for p in posted(sim, first["id"]) if p.get("result") == "ok"],
            within=10,
            what="the accept at the simulator",
        )
        [accept] = [p for p in posted(sim, first["id"]) if p.get("result") == "ok"]
        assert accept["actionType"] == "ACCEPT" and accept["delayMinutes"] == delay
        moved = page.locator(f"#active .order[data-order-id='{first['id']}']")
        await expect(moved).to_be_visible()
        # Status buttons for a delivery order; "Preparing" reaches Sinqro.
        await expect(moved.locator("button[data-status=delivering]")).to_be_visible()
        await moved.locator("button[data-status=preparation]").click()
        await eventually(
            lambda: sim.order(first["id"])["status"]["code"] == "preparation",
            within=10,
            what="preparation at the simulator",
        )

        # Cancel: refused in the page without a comment, sent with one.
        second = sim.create_order("collection")
        card = page.locator(f"#waiting .order[data-order-id='{second['id']}']")
        await expect(card).to_be_visible()
        await card.locator("button[data-kind=cancel]").click()
        await card.locator(".cancel-form button[type=submit]").click()
        await expect(card.locator(".cancel-form .field-error")).to_be_visible()
        await shot(page, "04-cancel-needs-comment")
        assert posted(sim, second["id"]) == []
        assert await box.journal.pending_commands() == []
        await card.locator(".cancel-form input[name=comment]").fill("Out of dough <b>sorry</b>")
        await card.locator(".cancel-form button[type=submit]").click()
        await eventually(
            lambda: [p for p in posted(sim, second["id"]) if p.get("result") == "ok"],
            within=10,
            what="the cancel at the simulator",
        )
        [cancel] = posted(sim, second["id"])
        assert cancel["actionType"] == "CANCEL" and cancel["comment"] == "Out of dough <b>sorry</b>"
        await expect(
            page.locator(f"#waiting .order[data-order-id='{second['id']}']")
        ).to_have_count(0)
        await expect(page.locator("#history")).to_contain_text(second["marketOrderCode"] or "")
        # The virtual panel's buttons reach the panel.
        await page.click("#virtual-panel [data-press=both]")
        await expect(page.locator("#virtual-panel-result")).to_have_text("both pressed")
        await shot(page, "05-board")

        # Setup: a bad value is shown beside its field, by the config file's own check.
        await page.click("nav a[href='/settings']")
        await page.click("#section-orders > summary")
        await page.fill("#f-orders-default-delay", "999")
        await page.click("#section-orders button[type=submit]")
        error = page.locator("#f-orders-default-delay-error")
        await expect(error).to_contain_text("At most 240")
        await page.locator("#section-orders").screenshot(path=str(SHOTS / "06-setup-error.png"))
        await page.fill("#f-orders-default-delay", "5")
        await page.click("#section-orders button[type=submit]")
        await expect(page.locator(".notice.ok")).to_contain_text("Orders: saved")

        # Logout from Sinqro, then from the page.
        await page.click("nav a[href='/pairing']")
        # Disconnecting asks first: dismissed, nothing happens; accepted, the box unpairs.
        asked: list[str] = []

        async def answer(dialog: Any, accept: bool) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda d: answer(d, False))
        await page.click("#unpair-form button[type=submit]")
        await expect(page.locator("#paired")).to_be_visible()
        assert box.server.services.pairing().paired
        page.once("dialog", lambda d: answer(d, True))
        await page.click("#unpair-form button[type=submit]")
        await expect(page.locator("#pairing-form")).to_be_visible()
        assert len(asked) == 2 and "Disconnect" in asked[0]
        await page.click("nav button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/login$"))
        await page.goto(box.url + "/board")
        await expect(page).to_have_url(re.compile(r"/login$"))
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/board$"))
        await shot(page, "07-signed-in-again")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The browser and httpx talk to 127.0.0.1 only.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
