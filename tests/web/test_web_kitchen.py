"""The kitchen display as the pass meets it: headless Chromium at 1920x1080 against the real
daemon and the simulator. Tiles oldest first with their items and allergy marks, a timer
red past its due time and amber close to it, the all-day counts, a bump bar's keys moving
the selection and bumping (each bump reaching Sinqro once), the recall row, and a staff
device signed in with the PIN reaching the display. A full pass of 40 open orders worked
with the panel's ACCEPT and CANCEL on gpiozero's mock pins.

Screenshots land in ``artifacts/screenshots``.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from gpiozero import Device
from playwright.async_api import Page, expect
from test_web_people import (
    ACCEPT_PIN,
    CANCEL_PIN,
    Box,
    browser,
    mock_pins,
    new_page,
    running_box,
    shot,
    sign_in_first_time,
)

from edged.simulator import cloud as cloud_module
from edged.simulator.generate import build_order
from edged.simulator.server import Simulator

__all__ = ["mock_pins"]  # the autouse fixture: the panel's pins are gpiozero mocks

PASS = {"width": 1920, "height": 1080}
ALLERGY = "Alérgico al marisco"
STAFF_PIN = "246813"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.fixture
def due_in(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """The simulator's next order is due ``minutes`` from now (past when negative), with
    two paellas and an allergy note."""

    minutes: list[float] = []

    def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        order = build_order(*args, **kwargs)
        when = datetime.now(UTC) + timedelta(minutes=minutes.pop(0))
        order["executionTime"] = order["preparationTime"] = stamp(when)
        order["deliveries"] = []
        order["comment"] = ALLERGY
        order["orderLines"] = [
            {"type": "PRODUCT", "label": "Paella", "quantity": 2, "childrenOrderLines": []},
            {"type": "PRODUCT", "label": "Flan", "quantity": 1, "childrenOrderLines": []},
        ]
        return order

    monkeypatch.setattr(cloud_module, "build_order", build)
    return minutes.append


async def accepted(box: Box, kind: str) -> dict[str, Any]:
    """A new order of ``kind`` from the simulator, accepted through the desk."""
    order = box.sim.create_order(kind)
    journal, desk = box.app.journal, box.app.desk
    await eventually(lambda: journal.get_order(order["id"]), what="the order stored")
    command = await desk.accept(order["id"], None, source="test")
    outcome = await desk.wait(command.id, 10)
    assert outcome.state == "done", outcome
    return order


def status_posts(sim: Simulator, order_id: int) -> int:
    suffix = f"/orders/{order_id}/status"
    return sum(1 for r in sim.requests if r["method"] == "POST" and r["path"].endswith(suffix))


def statuses_posted(sim: Simulator, order_id: int) -> list[str]:
    """The statuses the box sent Sinqro for ``order_id``, in order (refused ones too)."""
    return [
        str(p["requested"])
        for p in sim.posted_actions()
        if p["orderId"] == order_id and p["kind"] == "status"
    ]


DISHES = ("Paella", "Croquetas", "Tortilla", "Pulpo")


@pytest.fixture
def varied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every order from the simulator takes its dishes from a fixed rotation (quantities
    1 to 3, an option line that all-day must not count), due in order 20 to 59 minutes on."""

    made: list[int] = []

    def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        order = build_order(*args, **kwargs)
        n = len(made)
        made.append(n)
        when = datetime.now(UTC) + timedelta(minutes=20 + n)
        order["executionTime"] = order["preparationTime"] = stamp(when)
        order["deliveries"] = []
        order["comment"] = ALLERGY if n % 5 == 0 else ""
        option = {"type": "PRODUCT_OPTION", "label": "Alioli", "quantity": 1}
        order["orderLines"] = [
            {
                "type": "PRODUCT",
                "label": DISHES[n % len(DISHES)],
                "quantity": n % 3 + 1,
                "childrenOrderLines": [{**option, "childrenOrderLines": []}],
            },
            {"type": "PRODUCT", "label": "Flan", "quantity": 1, "childrenOrderLines": []},
        ]
        return order

    monkeypatch.setattr(cloud_module, "build_order", build)


def counts(orders: list[dict[str, Any]]) -> list[str]:
    """The all-day rows the pass must show for ``orders``: most first, then by name."""
    total: Counter[str] = Counter()
    for order in orders:
        for line in order["orderLines"]:
            total[line["label"]] += line["quantity"]
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
    return [f"{n} x {label}" for label, n in ranked]


async def press(pin_number: int) -> None:
    """A short press on a mock pin, held like a finger would (the gesture is a duration)."""
    pin = Device.pin_factory.pin(pin_number)
    pin.drive_low()
    await asyncio.sleep(0.3)
    pin.drive_high()


async def tile_ids(page: Page) -> list[int]:
    ids = await page.locator("#tiles .tile").evaluate_all("ns => ns.map(n => n.dataset.orderId)")
    return [int(i) for i in ids]


async def test_the_pass_oldest_first_timers_counts_bumps_by_key_recall_and_a_kitchen_device(
    sim: Simulator, tmp_path: Path, due_in: Callable[[float], None]
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PASS) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        orders = []
        for minutes, kind in ((-10, "collection"), (3, "inside"), (60, "collection")):
            due_in(minutes)
            orders.append(await accepted(box, kind))
        late, soon, later = (o["id"] for o in orders)
        await page.goto(box.url + "/kitchen")
        await expect(page.locator("#tiles .tile")).to_have_count(3)
        assert await tile_ids(page) == [late, soon, later]
        tile = page.locator(f"#tiles .tile[data-order-id='{late}']")
        # Past its due time it is red; three minutes to go is amber (5 or fewer); an hour
        # is green.
        await expect(tile).to_have_attribute("data-level", "red")
        await expect(tile.locator(".timer")).to_contain_text("-")
        await expect(page.locator(f".tile[data-order-id='{soon}']")).to_have_attribute(
            "data-level", "amber"
        )
        await expect(page.locator(f".tile[data-order-id='{later}']")).to_have_attribute(
            "data-level", "green"
        )
        await expect(tile.locator(".code")).to_have_text(orders[0]["marketOrderCode"])
        await expect(tile.locator(".lines")).to_contain_text("2× Paella")
        await expect(tile.locator(".note.allergy .allergy-mark")).to_have_text("ALLERGY")
        await expect(page.locator(f".tile[data-order-id='{soon}'] .where")).to_contain_text(
            "Table:"
        )
        # All day: 3 orders x 2 paellas, 3 flans, most first.
        await expect(page.locator("#all-day li").first).to_have_text("6 x Paella")
        await expect(page.locator("#all-day li").nth(1)).to_have_text("3 x Flan")
        await expect(tile).to_have_class("tile selected")
        await shot(page, "kitchen-1920-pass")

        # The bump bar: right arrow selects the second tile; Space bumps it to preparation.
        await page.keyboard.press("ArrowRight")
        second = page.locator(f".tile[data-order-id='{soon}']")
        await expect(second).to_have_class("tile selected")
        await page.keyboard.press(" ")
        await expect(second).to_have_attribute("data-status", "preparation")
        assert sim.order(soon)["status"]["code"] == "preparation"
        # Enter bumps it again: ready, off the pass and into the recall row.
        await page.keyboard.press("Enter")
        await expect(second).to_have_count(0)
        await expect(page.locator(f"#recall li[data-order-id='{soon}']")).to_be_visible()
        await eventually(lambda: sim.order(soon)["status"]["code"] == "ready", what="ready")
        assert status_posts(sim, soon) == 2, "each bump reaches Sinqro once"
        assert status_posts(sim, late) == status_posts(sim, later) == 0
        await expect(page.locator("#all-day li").first).to_have_text("4 x Paella")
        # The selection stayed on the pass (the oldest), and the digits pick a tile.
        await expect(tile).to_have_class("tile selected")
        await page.keyboard.press("2")
        await expect(page.locator(f".tile[data-order-id='{later}']")).to_have_class("tile selected")
        await shot(page, "kitchen-1920-bumped")

        # A screen on the pass signs in as a kitchen device: the staff PIN, kept signed in.
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        saved = await page.request.post(
            box.url + "/staff-pin",
            form={"csrf": csrf or "", "pin": STAFF_PIN, "confirm": STAFF_PIN},
            max_redirects=0,
        )
        assert saved.headers["location"] == "/settings?pin=set#section-devices"
        assert context.browser is not None
        screen = await context.browser.new_context(viewport=PASS)  # type: ignore[arg-type]
        try:
            kds = await new_page(screen)
            await kds.goto(box.url + "/login")
            await kds.fill("#password", STAFF_PIN)
            await kds.check("#keep")
            await kds.fill("#device-name", "Pass")
            await kds.click("#login-form button[type=submit]")
            await expect(kds).to_have_url(re.compile(r"/board$"))
            await kds.goto(box.url + "/kitchen")
            # The box's one selection: the owner's pick shows on the device too.
            picked = kds.locator(f".tile[data-order-id='{later}']")
            await expect(picked).to_have_class("tile selected")
            await kds.keyboard.press(" ")
            await expect(picked).to_have_attribute("data-status", "preparation")
            assert status_posts(sim, later) == 1
            # Staff still reach nothing but the orders.
            await kds.goto(box.url + "/settings")
            await expect(kds).to_have_url(re.compile(r"/board$"))
        finally:
            await screen.close()


async def test_forty_orders_on_the_pass_bumped_to_ready_by_the_accept_pin(
    sim: Simulator, tmp_path: Path, varied: None
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PASS) as context:
        page = await new_page(context)
        await sign_in_first_time(box, page)
        created = sim.create_orders(40, "collection")
        journal, desk = box.app.journal, box.app.desk
        for order in created:
            await eventually(lambda o=order: journal.get_order(o["id"]), what="stored")
        commands = [await desk.accept(o["id"], None, source="test") for o in created]
        for command in commands:
            assert (await desk.wait(command.id, 20)).state == "done"
        ids = [o["id"] for o in created]
        await page.goto(box.url + "/kitchen")
        await expect(page.locator("#tiles .tile")).to_have_count(40)
        assert await tile_ids(page) == ids, "oldest first"
        await expect(page.locator("#tile-count")).to_have_text("40")
        assert await page.locator("#all-day li").all_inner_texts() == counts(created)
        await expect(page.locator("#tiles .note.allergy")).to_have_count(8)
        first = page.locator(f".tile[data-order-id='{ids[0]}']")
        await expect(first).to_have_class("tile selected")
        await expect(first.locator(".lines li.child")).to_have_text("1× Alioli")
        await shot(page, "kitchen-1920-forty")

        # CANCEL moves the selection on; ACCEPT bumps the selected tile, twice: to
        # preparation, then to ready, off the pass and into the recall row.
        await press(CANCEL_PIN)
        second = page.locator(f".tile[data-order-id='{ids[1]}']")
        await expect(second).to_have_class("tile selected")
        await press(ACCEPT_PIN)
        await expect(second).to_have_attribute("data-status", "preparation")
        await eventually(
            lambda: sim.order(ids[1])["status"]["code"] == "preparation", what="preparation"
        )
        await press(ACCEPT_PIN)
        await expect(second).to_have_count(0)
        await expect(page.locator("#tiles .tile")).to_have_count(39)
        await eventually(lambda: sim.order(ids[1])["status"]["code"] == "ready", what="ready")
        assert statuses_posted(sim, ids[1]) == ["preparation", "ready"], "each status once"
        assert all(statuses_posted(sim, i) == [] for i in ids if i != ids[1])
        recalled = page.locator(f"#recall li[data-order-id='{ids[1]}']")
        await expect(recalled).to_contain_text(created[1]["marketOrderCode"])
        await recalled.locator("summary").click()
        await expect(recalled.locator(".lines")).to_contain_text("Croquetas")
        rest = [o for o in created if o["id"] != ids[1]]
        assert await page.locator("#all-day li").all_inner_texts() == counts(rest)
        # The selection went to a tile still on the pass; the oldest was never touched.
        await expect(page.locator("#tiles .tile.selected")).to_have_count(1)
        await expect(first).to_have_attribute("data-status", "accepted")
        await shot(page, "kitchen-1920-forty-bumped")
