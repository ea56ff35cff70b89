"""The board as the counter meets it, in headless Chromium against the real daemon and the
simulator: a card shows what the kitchen ticket shows (table, pickup time, courier, an
allergy mark), the compact list holds a busy evening on a phone, filters, decisions that
hide once queued and then say "sent", the history beyond today with search, a deliberately
disconnected box, and the setup-code form keeping what was typed.

Screenshots land in the test's tmp dir and in ``artifacts/screenshots``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect
from test_web_people import (
    DESKTOP,
    PHONE,
    SHOTS,
    browser,
    mock_pins,
    new_page,
    running_box,
    sign_in_first_time,
)
from waiting import eventually

from edged.simulator import cloud as cloud_module
from edged.simulator.generate import build_order
from edged.simulator.server import Simulator

__all__ = ["mock_pins"]  # the autouse fixture: the panel's pins are gpiozero mocks

ALLERGY = "Alérgico a los frutos secos: ¡mucho cuidado!"
ZONE = ZoneInfo("Europe/Madrid")


def hhmm(value: str) -> str:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(ZONE).strftime("%H:%M")


@pytest.fixture
def orders_with(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make the simulator's next orders carry a comment and a courier with a driver."""

    def configure(*, comment: str = ALLERGY, courier: bool = True) -> None:
        def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
            order = build_order(*args, **kwargs)
            order["comment"] = comment
            for line in order["orderLines"]:
                line["comment"] = None
            for delivery in order.get("deliveries") or []:
                if courier:
                    delivery["isSelfDelivery"] = False
                    delivery["deliveryAccountName"] = "Glovo"
                    delivery["deliveryAccountPhone"] = "600000001"
                    delivery["driver"] = {"name": "Jordi", "lastname": "Puig", "phone": "+34611"}
            return order

        monkeypatch.setattr(cloud_module, "build_order", build)

    return configure


async def shots(page: Page, tmp: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for where in (tmp / f"{name}.png", SHOTS / f"{name}.png"):
        await page.screenshot(path=str(where))


async def rows_in_view(page: Page, selector: str) -> int:
    """Rows whose whole bounding box is inside the window (read at one instant: the board
    may redraw between two reads)."""
    return int(
        await page.evaluate(
            """sel => [...document.querySelectorAll(sel)].filter((n) => {
                 const r = n.getBoundingClientRect();
                 return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight
                   && r.left >= 0 && r.right <= window.innerWidth;
               }).length""",
            selector,
        )
    )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_card_shows_what_the_ticket_shows(
    sim: Simulator, tmp_path: Path, viewport: dict[str, int], orders_with: Callable[..., None]
) -> None:
    name = "phone" if viewport is PHONE else "desktop"
    orders_with()
    tickets = tmp_path / "tickets"
    printers = [{"name": "kitchen", "uri": f"virtual://{tickets}", "layout": "kitchen"}]
    async with (
        running_box(sim, tmp_path, printers=printers) as box,
        browser(viewport) as context,
    ):
        page = await new_page(context)
        await sign_in_first_time(box, page)
        delivery = sim.create_order("delivery")
        table = sim.create_order("inside")
        await page.goto(box.url + "/board")
        card = page.locator(f"#waiting .order[data-order-id='{delivery['id']}']")
        await expect(card).to_be_visible()
        # The counter counts to the courier's pickup, as the kitchen ticket prints it big;
        # the customer's time is said beside it.
        pickup = hhmm(delivery["deliveries"][0]["pickupAgreedAt"])
        assert pickup != hhmm(delivery["executionTime"])
        await expect(card.locator(".due")).to_contain_text(f"Pickup {pickup}")
        await expect(card.locator(".customer-time")).to_contain_text(
            hhmm(delivery["executionTime"])
        )
        await expect(card.locator(".courier")).to_have_text(
            "Courier: Glovo 600000001 · Driver: Jordi Puig +34611"
        )
        await expect(card.locator(".note.allergy .allergy-mark")).to_have_text("ALLERGY")
        await expect(card.locator(".note")).to_contain_text(ALLERGY)
        await expect(card.locator("header .flag .allergy-mark")).to_be_visible()
        # A table order says its zone and table.
        location = table["serviceLocation"]
        where = f"{location['serviceZone']['name']} · {location['name']}"
        table_card = page.locator(f"#waiting .order[data-order-id='{table['id']}']")
        await expect(table_card.locator(".table")).to_have_text(f"Table: {where}")
        await shots(page, tmp_path, f"board-{name}-waiting")
        # A card waiting for a decision has no Reprint; the cancel reasons fit the type.
        await expect(card.locator(".reprint-button")).to_have_count(0)
        await card.locator("button[data-kind=cancel]").click()
        await expect(card.locator(".cancel-form")).to_be_visible()
        offered = await card.locator(".cancel-form .reason").all_inner_texts()
        assert "Sorry, we cannot deliver to this address." in offered, offered
        # The sticky "new orders" banner never covers the form being filled in: with the
        # page scrolled so the table card's buttons sit under the banner, a tap on Cancel
        # brings the form out below it.
        await page.evaluate(
            """id => {
                 const card = document.querySelector(`#waiting .order[data-order-id='${id}']`);
                 const banner = document.querySelector("#new-order-alert");
                 const actions = card.querySelector(".actions");
                 const top = actions.getBoundingClientRect().top + window.scrollY;
                 window.scrollTo(0, top - banner.offsetHeight + 20);
                 card.querySelector("button[data-kind=cancel]").click();
               }""",
            table["id"],
        )
        banner = await page.locator("#new-order-alert").bounding_box()
        form = await table_card.locator(".cancel-form").bounding_box()
        assert banner and form and form["y"] >= banner["y"] + banner["height"], (banner, form)
        reasons = await table_card.locator(".cancel-form .reason").all_inner_texts()
        assert reasons and not any("deliver" in r for r in reasons), reasons
        await page.click("#alert-seen")
        await shots(page, tmp_path, f"board-{name}-cards")
        # The kitchen ticket (the virtual printer's text) has the same mark.
        printed = await eventually(
            lambda: [
                p.read_text("utf-8")
                for p in tickets.glob(f"*-{delivery['id']}-*.txt")
                if "ALLERGY" in p.read_text("utf-8")
            ],
            within=20,
            what="the kitchen ticket with the allergy mark",
        )
        assert ALLERGY.split(":")[0] in printed[0]
        assert f"PICKUP: {pickup}" in printed[0]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_a_hundred_orders_in_the_compact_list_and_filters(
    sim: Simulator, tmp_path: Path, orders_with: Callable[..., None], viewport: dict[str, int]
) -> None:
    name = "phone" if viewport is PHONE else "desktop"
    orders_with(comment="", courier=False)
    async with running_box(sim, tmp_path) as box, browser(viewport) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        created = [sim.create_order(kind) for kind in ("delivery", "collection") * 50]
        await page.goto(box.url + "/board")
        await expect(page.locator("#waiting-count")).to_have_text("100")
        await page.click("#alert-seen")
        if viewport is DESKTOP:
            # Full cards fill the width: four columns side by side at 1280 px.
            tops = await page.locator("#waiting .order").evaluate_all(
                "ns => ns.slice(0, 8).map((n) => Math.round(n.getBoundingClientRect().top))"
            )
            assert tops.count(tops[0]) >= 4, tops
            await shots(page, tmp_path, "board-desktop-cards-100")
        await page.click("#view-compact")
        await expect(page.locator("#view-compact")).to_have_attribute("aria-pressed", "true")
        rows = "#waiting .order"
        await expect(page.locator(rows)).to_have_count(100)
        await page.evaluate("window.scrollTo(0, document.querySelector('#waiting').offsetTop)")
        seen = await rows_in_view(page, rows)
        await shots(page, tmp_path, f"board-{name}-compact-100")
        assert seen >= 8, f"{seen} rows visible"
        # A tap opens one row, with its buttons; the others stay one line.
        first = page.locator(rows).first
        await first.locator("header").click()
        await expect(first.locator("button[data-kind=accept]").first).to_be_visible()
        await expect(page.locator(rows).nth(1).locator(".body")).to_be_hidden()
        # Filters: by type, then by state.
        await page.select_option("#filter-type", "collection")
        await expect(page.locator(rows)).to_have_count(50)
        types = await page.locator(rows).evaluate_all("ns => ns.map(n => n.dataset.type)")
        assert set(types) == {"collection"}
        await expect(page.locator("#waiting-title .filtered")).to_contain_text("50 hidden")
        await page.select_option("#filter-state", "queued")
        await expect(page.locator(rows)).to_have_count(0)
        await expect(page.locator("#waiting .empty")).to_have_text("No order matches the filter.")
        await page.select_option("#filter-state", "all")
        await page.select_option("#filter-type", "all")
        await expect(page.locator(rows)).to_have_count(len(created))
        # The choice of view survives a reload (kept in the browser).
        await page.reload()
        await expect(page.locator("#view-compact")).to_have_attribute("aria-pressed", "true")


async def test_a_queued_decision_hides_the_buttons_then_says_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        order = sim.create_order("collection")
        await page.goto(box.url + "/board")
        card = page.locator(f"#waiting .order[data-order-id='{order['id']}']")
        await expect(card.locator("button[data-kind=accept]").first).to_be_visible()
        await page.click("#alert-seen")
        # Another order arrives: this card, unchanged, is the very same element (a button
        # under a finger is not swapped for a new one).
        await card.evaluate("n => { n.dataset.kept = 'yes'; }")
        other = sim.create_order("delivery")
        await expect(
            page.locator(f"#waiting .order[data-order-id='{other['id']}']")
        ).to_be_visible()
        await expect(card).to_have_attribute("data-kept", "yes")
        shape = await card.locator(".actions button").evaluate_all(
            "ns => ns.map(n => n.dataset.kind + (n.dataset.delay || ''))"
        )
        # Sinqro out of reach: the accept is queued and the card offers nothing more.
        sim.refuse_websockets(True)
        sim.refuse_all("close")
        await sim.drop_websockets()
        await expect(page.locator("#offline-banner")).to_contain_text("Offline since")
        # Offline buttons have the shape Sinqro's had: the same delays, in the same order.
        queue = card.locator(".actions button")
        await expect(queue.first).to_have_text(re.compile(r"^Queue: "))
        offline_shape = await queue.evaluate_all(
            "ns => ns.map(n => n.dataset.kind + (n.dataset.delay || ''))"
        )
        assert offline_shape == shape
        await card.locator("button[data-kind=accept]:not([data-delay])").click()
        await expect(card.locator(".pending")).to_contain_text("queued")
        await expect(card.locator(".result")).to_contain_text("Queued")
        await expect(card.locator(".actions button")).to_have_count(0)
        await page.select_option("#filter-state", "queued")
        await expect(page.locator("#waiting .order")).to_have_count(1)
        await page.select_option("#filter-state", "all")
        await shots(page, tmp_path, "board-phone-queued")
        # Sinqro back: delivered; the card says sent, not "queued" any more.
        sim.refuse_all(None)
        sim.refuse_websockets(False)
        moved = page.locator(f"#active .order[data-order-id='{order['id']}']")
        await expect(moved).to_be_visible()
        await expect(moved.locator(".result")).to_have_text("Sent: Sinqro has it.")
        await expect(moved.locator(".pending")).to_be_hidden()
        # Disconnected on purpose: not "offline, queued" but what to do; no Queue buttons.
        waiting = sim.create_order("delivery")
        fresh = page.locator(f"#waiting .order[data-order-id='{waiting['id']}']")
        await expect(fresh).to_be_visible()
        await page.goto(box.url + "/pairing")
        # Paired by the config file, so only the id was known: the name is Sinqro's own.
        await expect(page.locator("#paired-selling-point")).to_have_text(
            order["sellingPoint"]["name"]
        )
        page.once("dialog", lambda d: d.accept())
        await page.click("#unpair-form button[type=submit]")
        await expect(page.locator("#pairing-form")).to_be_visible()
        await page.goto(box.url + "/board")
        banner = page.locator("#offline-banner")
        await expect(banner).to_contain_text("not connected to Sinqro")
        await expect(banner.locator("a[href='/pairing']")).to_be_visible()
        await expect(page.locator("#waiting .order")).to_have_count(2)
        await expect(page.locator("#waiting .order .actions button")).to_have_count(0)
        assert "Queue" not in await page.locator("#waiting").inner_text()
        await shots(page, tmp_path, "board-phone-not-paired")
        # Paired again, and Sinqro does not answer for a new order's actions: its buttons
        # still have the shape Sinqro gave the others.
        await page.goto(box.url + "/pairing")
        await page.fill("#sinqro-username", "demo")
        await page.fill("#sinqro-password", "demo")
        await page.click("#pairing-form button[type=submit]")
        await page.check(f"#picker input[value='{sim.selling_point_id}']")
        await page.click("#picker button[type=submit]")
        await expect(page.locator("#paired")).to_be_visible()
        sim.fail_order(sim.cloud.next_id)
        silent = sim.create_order("collection")
        await page.goto(box.url + "/board")
        buttons = page.locator(f"#waiting .order[data-order-id='{silent['id']}'] .actions button")
        await expect(buttons.first).to_be_visible()
        again = await buttons.evaluate_all(
            "ns => ns.map(n => n.dataset.kind + (n.dataset.delay || ''))"
        )
        assert again == shape


async def test_history_reaches_back_and_searches(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        old, today = sim.create_order("collection"), sim.create_order("delivery")
        sim.set_status(old["id"], "cancelled_by_sp", "Cerrado")
        journal = box.app.journal
        await eventually(
            lambda: _final(journal, old["id"]), within=20, what="the old order cancelled"
        )
        # Three days ago (a final order is never touched again).
        db = sqlite3.connect(journal.path)
        with db:
            db.execute(
                "UPDATE orders SET first_seen = first_seen - 3 * 86400, "
                "updated = updated - 3 * 86400 WHERE id = ?",
                (old["id"],),
            )
        db.close()
        await page.goto(box.url + "/board")
        history = page.locator("#history tr")
        await expect(history).to_have_count(1)
        await expect(history).to_contain_text(today["marketOrderCode"])
        await page.select_option("#history-days", "7")
        await expect(history).to_have_count(2)
        # Every column on a phone: code and total are there and inside the screen.
        row = page.locator("#history tr", has_text=old["marketOrderCode"])
        await page.locator("#history-title").scroll_into_view_if_needed()
        await shots(page, tmp_path, "board-phone-history-7-days")
        inside = await row.locator("td").evaluate_all(
            """tds => tds.slice(0, 6).map((td) => {
                 const r = td.getBoundingClientRect();
                 return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;
               })"""
        )
        assert inside == [True] * 6, inside
        await page.fill("#history-q", old["marketOrderCode"])
        await page.click("#history-search button[type=submit]")
        await expect(history).to_have_count(1)
        await expect(history).to_contain_text(old["marketOrderCode"])
        await page.fill("#history-q", "no such order anywhere")
        await page.click("#history-search button[type=submit]")
        await expect(history).to_have_text("No order matches the search.")
        await shots(page, tmp_path, "board-phone-history")


async def _final(journal: Any, order_id: int) -> bool:
    order = await journal.get_order(order_id)
    return order is not None and order.is_final


async def test_setup_code_form_lists_every_error_and_keeps_the_code(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_box(sim, tmp_path, paired=False) as box, browser(PHONE) as context:
        page = await new_page(context)
        await page.goto(box.url + "/setup")
        await page.evaluate("document.querySelector('#code-proof').open = true")
        # Nothing typed: the code and the password are both said.
        await page.click("#setup-form button[type=submit]")
        await expect(page.locator("#code-error")).to_be_visible()
        await expect(page.locator("#password-error")).to_contain_text("at least")
        # A wrong code, a short password and a different confirmation: the three fields
        # each say theirs, and the code is still there.
        await expect(page.locator("#code-proof")).to_have_attribute("open", "")
        await page.fill("#code", "WXYZ-2345")
        await page.fill("#new-password", "short")
        await page.fill("#confirm", "other")
        await page.click("#setup-form button[type=submit]")
        await expect(page.locator("#password-error")).to_contain_text("at least")
        await expect(page.locator("#confirm-error")).to_contain_text("differ")
        await expect(page.locator("#code-error")).to_contain_text("not valid")
        await expect(page.locator("#code")).to_have_value("WXYZ-2345")
        await expect(page.locator("#code-proof")).to_have_attribute("open", "")
        await shots(page, tmp_path, "setup-code-errors")
