"""The Menu area as the counter meets it, in headless Chromium at phone size against the
real daemon and the simulator: one tap marks a dish sold out at Sinqro, the row says so
only once Sinqro has it, and a refusal (404 PRODUCT_NOT_FOUND) is shown with its reason.
The JSON API is checked for the staff session and the CSRF token like the board's."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import expect
from test_web_people import PHONE, Box, browser, mock_pins, new_page, running_box, shot
from test_web_people import sign_in_first_time as sign_in
from waiting import eventually

from edged.simulator.server import Simulator

__all__ = ["mock_pins"]  # the autouse fixture: the panel's pins are gpiozero mocks

PAELLA = 109802
CREMA = 109809


async def keeper_has_catalog(box: Box) -> bool:
    keeper = box.app.desk.catalog
    return keeper is not None and bool((await keeper.catalog()).products)


async def test_sold_out_from_the_phone_reaches_sinqro_and_a_refusal_says_why(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in(box, page)
        await eventually(lambda: keeper_has_catalog(box), what="the catalog read from Sinqro")
        await page.goto(box.url + "/menu")
        row = page.locator(f".menu-item[data-kind=product][data-id='{PAELLA}']")
        await expect(row).to_be_visible()
        await expect(row).to_have_attribute("data-available", "true")
        # The default choice is "until closing": one tap on the row's button.
        await row.locator("button.toggle").click()
        await eventually(
            lambda: sim.product(PAELLA)["isAvailable"] is False,
            what="sold out at Sinqro",  # usually well under 2 s; no timing asserted here
        )
        await expect(row.locator(".change")).to_have_attribute("data-state", "done")
        await expect(row).to_have_attribute("data-available", "false")
        await expect(row.locator(".back-at")).to_contain_text("04:00")
        assert [p["body"] for p in sim.catalog_patches(f"/products/{PAELLA}")] == [
            {"isAvailable": False}
        ]
        await shot(page, "menu-phone-sold-out")

        # Gone at Sinqro since the box read the catalog: refused, with Sinqro's reason.
        del sim.cloud.catalog(sim.selling_point_id).products[CREMA]
        crema = page.locator(f".menu-item[data-kind=product][data-id='{CREMA}']")
        await page.fill("#menu-q", "crema")
        await expect(crema).to_be_visible()
        await crema.locator("button.toggle").click()
        await expect(crema.locator(".change")).to_have_attribute("data-state", "refused")
        await expect(crema.locator(".change")).to_contain_text("Product not found")
        await expect(crema).to_have_attribute("data-available", "true")
        await shot(page, "menu-phone-refused")


async def test_the_menu_api_needs_a_session_and_the_csrf_token(
    sim: Simulator, tmp_path: Path
) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in(box, page)
        await eventually(lambda: keeper_has_catalog(box), what="the catalog read from Sinqro")
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        async with httpx.AsyncClient(base_url=box.url) as anonymous:
            assert (await anonymous.get("/api/menu")).status_code == 401
        async with httpx.AsyncClient(base_url=box.url, cookies=cookies) as owner:
            listed = (await owner.get("/api/menu", params={"q": "paella"})).json()
            assert [p["id"] for p in listed["products"]] == [PAELLA]
            body = {"kind": "product", "id": PAELLA, "available": False, "until": "1h"}
            refused = await owner.post("/api/menu/availability", json=body)
            assert (refused.status_code, refused.json()["code"]) == (403, "CSRF")
            assert sim.catalog_patches(f"/products/{PAELLA}") == []
            await page.goto(box.url + "/menu")
            csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
            headers = {"X-CSRF-Token": csrf or ""}
            bad = await owner.post(
                "/api/menu/availability", json={**body, "until": "tomorrow"}, headers=headers
            )
            assert (bad.status_code, bad.json()["code"]) == (400, "BAD_UNTIL")
            done = await owner.post("/api/menu/availability", json=body, headers=headers)
            answer = done.json()
            assert answer["state"] in ("queued", "done") and answer["back_at"]
            change = f"/api/menu/changes/{answer['command_id']}"
            await eventually(
                lambda: sim.product(PAELLA)["isAvailable"] is False, what="sold out at Sinqro"
            )
            await eventually(
                lambda: _state(owner, change), what="the change reads done once Sinqro has it"
            )


async def _state(client: httpx.AsyncClient, path: str) -> bool:
    return bool((await client.get(path)).json()["state"] == "done")


async def test_sold_out_next_to_an_item_on_an_order_card(sim: Simulator, tmp_path: Path) -> None:
    async with running_box(sim, tmp_path) as box, browser(PHONE) as context:
        page = await new_page(context)
        await sign_in(box, page)
        await eventually(lambda: keeper_has_catalog(box), what="the catalog read from Sinqro")
        order = sim.create_order("delivery")
        product_id = order["orderLines"][0]["product"]["id"]
        await page.goto(box.url + "/board")
        card = page.locator(f"#waiting .order[data-order-id='{order['id']}']")
        await expect(card).to_be_visible()
        button = card.locator(f"button.sold-out[data-kind=product][data-id='{product_id}']").first
        await button.click()
        state = card.locator(".sold-out-state").first
        await expect(state).to_contain_text("done, Sinqro has it")
        assert sim.product(product_id)["isAvailable"] is False
        # Until closing: the box puts it back on at the selling point's day end itself.
        timers = await box.app.journal.timers(sim.selling_point_id)
        assert [(t.kind, t.item_id) for t in timers] == [("product", product_id)]
        await shot(page, "board-phone-sold-out")
