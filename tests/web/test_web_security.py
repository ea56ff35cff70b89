"""The local page's defences, over a real socket: sign-in everywhere, CSRF on every change,
slow and limited guessing, no token ever sent back, hostile order text escaped."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_box import (
    PASSWORD,
    FakeClock,
    FakeSpooler,
    Settings,
    csrf_of,
    first_visit,
    offline_services,
    printed_code,
    web_box,
)

from edged.flow.desk import OrderDesk
from edged.flow.pairing import Pairing
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.printing.jobs import MAX_REPRINTS_PER_ORDER
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import SellingPoint, parse_order
from edged.state import BoxState
from edged.web.security import KV_ADMIN, KV_SETUP_CODE, AttemptLimiter
from edged.web.server import PUBLIC_PATHS, WebServer
from edged.web.services import LiveSpooler

USER_TOKEN = "USER-TOKEN-must-never-leak-7f3a"
SERVER_TOKEN = "SERVER-TOKEN-must-never-leak-91bc"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


@dataclass
class Box:
    """A web server over a real journal and desk, with recorded side effects."""

    server: WebServer
    journal: Journal
    state: BoxState
    config_path: Path
    clock: FakeClock
    printed: list[list[str]] = field(default_factory=list)

    @property
    def pairing(self) -> Pairing:
        return self.server.services.pairing()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    config_path = tmp_path / "edged.toml"
    config_path.write_text(
        f'[sinqro]\nserver_token = "{SERVER_TOKEN}"\nbase_url = "http://127.0.0.1:9"\n'
        f'[box]\nname = "Test box"\nstate_dir = "{tmp_path / "state"}"\n'
        '[[printers]]\nname = "kitchen"\nuri = "virtual://kitchen"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\nmetrics_token = "scrape-me"\n'
    )
    settings = Settings(config_path)
    journal = await Journal.open(tmp_path / "journal.sqlite3", watch_interval=0)
    state = BoxState()
    desk = OrderDesk(journal, state, settings.config.orders)
    clock = FakeClock()
    paired = Pairing()

    async def login(username: str, password: str) -> Sequence[SellingPoint]:
        if password != "sinqro-pw":
            raise SinqroError("LOGIN_ERROR", "Incorrect user or password")
        return [SellingPoint(1, "One", "Europe/Madrid"), SellingPoint(2, HOSTILE, "UTC")]

    async def choose(sp_id: int) -> None:
        nonlocal paired
        paired = Pairing(USER_TOKEN, sp_id, "One" if sp_id == 1 else HOSTILE, "demo")

    async def logout() -> None:
        nonlocal paired
        paired = Pairing()

    printed: list[list[str]] = []
    services = offline_services(
        journal,
        settings,
        state=state,
        desk=desk,
        box_name="Test box",
        pairing=lambda: paired,
        spooler=FakeSpooler(printed),
        login=login,
        choose_selling_point=choose,
        logout=logout,
    )
    try:
        async with web_box(
            settings.config.web,
            services,
            limiter=AttemptLimiter(clock=clock),
            code_limiter=AttemptLimiter(clock=clock),
            # no outbox sender here: commands stay queued
            action_wait=0.2,
        ) as server:
            yield Box(server, journal, state, config_path, clock, printed)
    finally:
        await journal.close()


async def sign_in(box: Box, client: httpx.AsyncClient) -> str:
    """First visit: setup code from the printed ticket, then the password. Returns CSRF."""
    return await first_visit(client, printed_code(box.printed).lower())


@pytest.fixture
async def client(box: Box) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=box.url, follow_redirects=False) as c:
        yield c


def waiting_order(order_id: int, comment: str = "extra napkins") -> Any:
    return parse_order(
        {
            "id": order_id,
            "type": "delivery",
            "status": {"code": "waiting_sp_validation", "isFinalStatus": False},
            "marketOrderCode": f"C{order_id}",
            "comment": comment,
            "consumer": {"name": "Ana"},
            "orderLines": [{"label": "Pizza", "quantity": 2, "comment": comment}],
        }
    )


def routes(box: Box) -> list[tuple[str, str]]:
    """Every (method, path) the server answers, path parameters filled in."""
    out = []
    for route in box.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if not path or route.method == "HEAD":
            continue
        path = re.sub(r"\{[^}]+\}", "1", path)
        if "section" in str(info.get("formatter", "")):
            path = path.replace("/1", "/orders")
        out.append((route.method, path))
    return out


# -- first visit -----------------------------------------------------------------------------


async def test_first_start_prints_a_setup_ticket_and_never_logs_the_code(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    code = printed_code(box.printed)
    ticket = "\n".join(box.printed[-1])
    assert "Test box" in ticket and "http://" in ticket
    stored = await box.journal.kv_get(KV_SETUP_CODE)
    assert stored is not None and code.replace("-", "") not in stored
    caplog.set_level(logging.INFO)
    await box.server.print_setup_ticket()
    assert "setup ticket printed" in caplog.text
    new_code = printed_code(box.printed)
    assert new_code != code
    assert new_code not in caplog.text and new_code.replace("-", "") not in caplog.text


async def test_the_setup_ticket_names_the_wi_fi_hotspot_when_the_box_has_one(
    box: Box, tmp_path: Path
) -> None:
    """A box without Ethernet is reached through its own hotspot: the setup ticket says
    which network and password (edged-onboard.service makes the password file)."""
    assert not any("Wi-Fi" in line for line in box.printed[-1])  # no onboarding: no lines
    password_file = tmp_path / "hotspot-password"
    password_file.write_text("k7mq2xwp9hrt\n", encoding="ascii")
    box.server.access.hotspot_password_file = password_file
    await box.server.print_setup_ticket()
    name = socket.gethostname().split(".")[0]
    assert f"Wi-Fi {name}, password k7mq2xwp9hrt" in box.printed[-1]


async def test_setup_code_sets_a_scrypt_password_once(box: Box, client: httpx.AsyncClient) -> None:
    code = printed_code(box.printed)
    await sign_in(box, client)
    raw = await box.journal.kept_get(KV_ADMIN)
    assert raw is not None
    stored = json.loads(raw)
    assert stored["algo"] == "scrypt" and PASSWORD not in raw and len(stored["salt"]) >= 20
    assert await box.journal.kv_get(KV_SETUP_CODE) is None
    # The code was single use.
    async with httpx.AsyncClient(base_url=box.url) as other:
        page = await other.get("/setup")
        again = await other.post(
            "/setup",
            data={
                "csrf": csrf_of(page.text),
                "code": code,
                "password": "x" * 12,
                "confirm": "x" * 12,
            },
        )
        assert again.status_code == 401
        assert "not valid" in again.text


async def test_session_cookie_is_httponly_strict_and_renewed_at_sign_in(
    box: Box, client: httpx.AsyncClient
) -> None:
    page = await client.get("/setup")
    before = client.cookies.get("edged_session")
    cookie_header = page.headers["set-cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=Strict" in cookie_header
    assert "Secure" not in cookie_header  # plain HTTP here; Secure under TLS (next test)
    await sign_in(box, client)
    assert client.cookies.get("edged_session") not in (None, before)
    box.server.site.tls = True
    async with httpx.AsyncClient(base_url=box.url) as other:
        assert "Secure" in (await other.get("/login")).headers["set-cookie"]


async def test_pages_carry_a_strict_content_security_policy(
    box: Box, client: httpx.AsyncClient
) -> None:
    response = await client.get("/setup")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


# -- authentication everywhere ---------------------------------------------------------------


async def test_every_route_but_sign_in_and_health_refuses_strangers(
    box: Box, client: httpx.AsyncClient
) -> None:
    checked = 0
    for method, path in routes(box):
        if path in PUBLIC_PATHS or path.startswith("/static"):
            continue
        response = await client.request(method, path, json={})
        if method == "GET" and not path.startswith("/api/") and path != "/events":
            assert response.status_code == 303, (method, path)
            assert response.headers["location"] == "/login"
        else:
            assert response.status_code == 401, (method, path, response.status_code)
        checked += 1
    assert checked >= 20
    # /metrics is not open either (it is in PUBLIC_PATHS only to answer a scraper's token).
    assert (await client.get("/metrics")).status_code == 401
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["journal"] == "ok"


async def test_every_state_change_needs_the_csrf_token(box: Box, client: httpx.AsyncClient) -> None:
    token = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(41))
    posts = [p for m, p in routes(box) if m == "POST" and p not in ("/login", "/setup")]
    assert len(posts) >= 15
    for path in posts:
        missing = await client.post(path, json={})
        assert missing.status_code == 403, path
        wrong = await client.post(path, json={}, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403, path
        form = await client.post(path, data={"csrf": "nope", "comment": "x"})
        assert form.status_code == 403, path
    # Right token, foreign origin: still refused.
    foreign = await client.post(
        "/api/orders/41/accept",
        json={},
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    assert await box.journal.pending_commands() == []
    # The sign-in forms need it too.
    async with httpx.AsyncClient(base_url=box.url) as other:
        await other.get("/login")
        assert (await other.post("/login", data={"password": PASSWORD})).status_code == 403
    ok = await client.post("/api/orders/41/ack", headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json()["acknowledged"] == [41]


# -- guessing ----------------------------------------------------------------------------------


def client_from(box: Box, address: str) -> httpx.AsyncClient:
    """A client connecting from another loopback address: another client to the box."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=box.url, transport=transport, follow_redirects=False)


async def test_each_wrong_password_makes_that_client_wait_longer(
    box: Box, client: httpx.AsyncClient
) -> None:
    await sign_in(box, client)
    async with client_from(box, "127.0.0.2") as guesser:
        token = csrf_of((await guesser.get("/login")).text)
        waits = []

        async def attempt(password: str) -> httpx.Response:
            while True:
                response = await guesser.post("/login", data={"csrf": token, "password": password})
                if response.status_code != 429:
                    return response
                waits.append(int(response.headers["retry-after"]))
                box.clock.now += waits[-1]

        for n in range(7):
            assert (await attempt(f"guess{n}")).status_code == 401
        # Three free attempts, then 1 s, 2 s, 4 s, 8 s: each failure doubles the wait.
        assert waits == [1, 2, 4, 8], waits
        # The right password still has to wait its turn, then signs in.
        assert (await attempt(PASSWORD)).status_code == 303
        assert waits[-1] == 16


async def test_60_concurrent_wrong_passwords_get_3_checks_and_the_owner_still_signs_in(
    box: Box, client: httpx.AsyncClient
) -> None:
    await sign_in(box, client)
    async with client_from(box, "127.0.0.2") as guesser:
        token = csrf_of((await guesser.get("/login")).text)
        answers = await asyncio.gather(
            *(
                guesser.post("/login", data={"csrf": token, "password": f"guess{i}"})
                for i in range(60)
            )
        )
    statuses = sorted(r.status_code for r in answers)
    # Each attempt was counted before its scrypt check: only the free ones were checked.
    assert statuses == [401] * 3 + [429] * 57, statuses
    assert box.server.site.limiter.failed == 3
    async with client_from(box, "127.0.0.3") as owner:
        token = csrf_of((await owner.get("/login")).text)
        signed = await owner.post("/login", data={"csrf": token, "password": PASSWORD})
        assert signed.status_code == 303


async def test_60_guessers_on_60_addresses_never_lock_the_owner_out(
    box: Box, client: httpx.AsyncClient
) -> None:
    await sign_in(box, client)

    async def guess(n: int) -> int:
        async with client_from(box, f"127.0.1.{n}") as guesser:
            token = csrf_of((await guesser.get("/login")).text)
            response = await guesser.post("/login", data={"csrf": token, "password": "nope"})
            return response.status_code

    assert await asyncio.gather(*(guess(n) for n in range(1, 61))) == [401] * 60
    # No box-wide lockout: the owner's right password works at once.
    async with client_from(box, "127.0.0.3") as owner:
        token = csrf_of((await owner.get("/login")).text)
        signed = await owner.post("/login", data={"csrf": token, "password": PASSWORD})
        assert signed.status_code == 303


async def test_wrong_setup_codes_are_throttled_until_a_fresh_code_is_printed(
    box: Box, client: httpx.AsyncClient
) -> None:
    token = csrf_of((await client.get("/setup")).text)

    async def try_code(code: str) -> httpx.Response:
        data = {"csrf": token, "code": code, "password": PASSWORD, "confirm": PASSWORD}
        return await client.post("/setup", data=data)

    statuses = [(await try_code("AAAA-AAAA")).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert (await try_code(printed_code(box.printed))).status_code == 429
    # Holding both buttons prints a new code: proof of physical access beats the throttle.
    await box.server.print_setup_ticket()
    assert (await try_code(printed_code(box.printed))).status_code == 303


async def test_password_guessing_never_blocks_the_setup_code(
    box: Box, client: httpx.AsyncClient
) -> None:
    await sign_in(box, client)
    async with client_from(box, "127.0.0.2") as someone:
        token = csrf_of((await someone.get("/login")).text)
        for _ in range(6):
            await someone.post("/login", data={"csrf": token, "password": "wrong"})
        assert box.server.site.limiter.begin("127.0.0.2") > 0
        await box.server.print_setup_ticket()
        setup = csrf_of((await someone.get("/setup")).text)
        new_password = "another long password"
        response = await someone.post(
            "/setup",
            data={
                "csrf": setup,
                "code": printed_code(box.printed),
                "password": new_password,
                "confirm": new_password,
            },
        )
        assert response.status_code == 303


async def test_a_flood_of_anonymous_sessions_keeps_the_owners_sign_in_form(
    box: Box, client: httpx.AsyncClient
) -> None:
    await sign_in(box, client)
    async with client_from(box, "127.0.0.3") as owner:
        owner_token = csrf_of((await owner.get("/login")).text)

        async def flood(n: int) -> None:
            async with client_from(box, f"127.0.2.{n}") as stranger:
                for _ in range(10):
                    stranger.cookies.clear()  # a new anonymous session each time
                    assert (await stranger.get("/login")).status_code == 200

        # 700 anonymous sessions from 70 addresses: more than the table holds.
        await asyncio.gather(*(flood(n) for n in range(1, 71)))
        signed = await owner.post("/login", data={"csrf": owner_token, "password": PASSWORD})
        assert signed.status_code == 303


async def test_a_host_that_is_not_the_box_is_refused(box: Box) -> None:
    port = box.server.port
    async with httpx.AsyncClient(base_url=box.url) as browser:
        # A DNS-rebinding page: the browser sends the attacker's name as Host.
        rebound = await browser.get("/login", headers={"Host": f"evil.example:{port}"})
        assert rebound.status_code == 421
        posted = await browser.post(
            "/login", headers={"Host": "evil.example"}, data={"password": PASSWORD}
        )
        assert posted.status_code == 421
        # Another address than the one connected to is no name of this box either.
        assert (await browser.get("/setup", headers={"Host": "10.1.2.3"})).status_code == 421
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", "127.0.0.1"):
            assert (await browser.get("/setup", headers={"Host": host})).status_code == 200
        # Monitoring may use any name: /health tells nothing.
        health = await browser.get("/health", headers={"Host": "monitor.example"})
        assert health.status_code == 200


# -- secrets and hostile text ------------------------------------------------------------------


async def test_tokens_never_appear_in_any_response(box: Box, client: httpx.AsyncClient) -> None:
    token = await sign_in(box, client)
    headers = {"X-CSRF-Token": token}
    picker = await client.post(
        "/pairing/login", data={"csrf": token, "username": "demo", "password": "sinqro-pw"}
    )
    assert picker.status_code == 303
    page = await client.get("/pairing")
    assert 'name="selling_point_id"' in page.text
    chosen = await client.post("/pairing/choose", data={"csrf": token, "selling_point_id": "1"})
    assert chosen.status_code == 303
    assert box.pairing.user_token == USER_TOKEN
    await box.journal.upsert_order(waiting_order(42))
    bodies = []
    for method, path in routes(box):
        if method == "GET" and path not in ("/events",):
            bodies.append((await client.get(path)).text)
    bodies.append((await client.get("/metrics")).text)
    bodies.append((await client.get("/settings")).text)
    async with client.stream("GET", "/events") as stream:
        async for chunk in stream.aiter_text():
            bodies.append(chunk)
            if "event: status" in "".join(bodies[-3:]):
                break
    bodies.append((await client.post("/api/orders/42/accept", json={}, headers=headers)).text)
    everything = "\n".join(bodies)
    assert "paired" in everything
    assert USER_TOKEN not in everything
    assert SERVER_TOKEN not in everything
    assert "scrape-me" not in everything


async def test_accept_delay_must_be_whole_minutes(box: Box, client: httpx.AsyncClient) -> None:
    token = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(46))
    headers = {"X-CSRF-Token": token}
    for bad in (True, 10.5, "soon", "99999", [10]):
        response = await client.post("/api/orders/46/accept", json={"delay": bad}, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "BAD_DELAY"
    assert await box.journal.pending_commands() == []


async def test_hostile_order_text_is_escaped(box: Box, client: httpx.AsyncClient) -> None:
    token = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(43, comment=HOSTILE))
    board = await client.get("/api/board")
    assert board.headers["content-type"].startswith("application/json")
    assert board.json()["waiting"][0]["comment"] == HOSTILE  # data, shown with textContent
    for path in ("/board", "/pairing", "/settings", "/api/board", "/api/history"):
        assert "<script>alert" not in (await client.get(path)).text
    # A hostile selling point name from Sinqro in the picker is escaped too.
    await client.post(
        "/pairing/login", data={"csrf": token, "username": "demo", "password": "sinqro-pw"}
    )
    picker = (await client.get("/pairing")).text
    assert "&lt;script&gt;" in picker and "<script>alert" not in picker
    # And hostile text typed into a setting comes back escaped beside the field.
    saved = await client.post(
        "/settings/orders",
        data={"csrf": token, "orders.cancel_comment": HOSTILE, "orders.default_delay": "5"},
    )
    assert saved.status_code == 303
    settings = (await client.get("/settings")).text
    assert "<script>alert" not in settings and "&lt;script&gt;" in settings


async def test_cancel_without_a_comment_is_refused(box: Box, client: httpx.AsyncClient) -> None:
    token = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(44))
    for body in ({}, {"comment": ""}, {"comment": "   "}):
        response = await client.post(
            "/api/orders/44/cancel", json=body, headers={"X-CSRF-Token": token}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"
    assert await box.journal.pending_commands() == []
    done = await client.post(
        "/api/orders/44/cancel", json={"comment": "out of dough"}, headers={"X-CSRF-Token": token}
    )
    assert done.status_code == 200 and done.json()["state"] == "queued"
    [command] = await box.journal.pending_commands()
    assert command.kind == "cancel" and command.params["comment"] == "out of dough"


async def test_status_buttons_only_for_statuses_that_apply(
    box: Box, client: httpx.AsyncClient
) -> None:
    token = await sign_in(box, client)
    accepted = waiting_order(45).raw | {"status": {"code": "accepted"}, "type": "collection"}
    await box.journal.upsert_order(parse_order(accepted))
    item = (await client.get("/api/board")).json()["active"][0]
    assert [s["status"] for s in item["statuses"]] == ["preparation", "ready", "finished"]
    bad = await client.post(
        "/api/orders/45/status", json={"status": "delivering"}, headers={"X-CSRF-Token": token}
    )
    assert bad.status_code == 409
    good = await client.post(
        "/api/orders/45/status", json={"status": "ready"}, headers={"X-CSRF-Token": token}
    )
    assert good.status_code == 200


async def test_a_reprint_flood_is_refused_with_its_reason(
    box: Box, client: httpx.AsyncClient
) -> None:
    # The daemon's own spooler front: requests go through the journal, where the caps hold.
    box.server.services.spooler = LiveSpooler(box.journal)
    token = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(47))
    answers = [
        await client.post("/api/orders/47/reprint", json={}, headers={"X-CSRF-Token": token})
        for _ in range(MAX_REPRINTS_PER_ORDER + 1)
    ]
    assert [a.status_code for a in answers] == [200] * MAX_REPRINTS_PER_ORDER + [429]
    refused = answers[-1].json()
    assert refused["ok"] is False and refused["code"] == "REPRINT_LIMIT"
    assert "already reprinted" in refused["message"]
    events = await box.journal.read_events(0)
    requested = [e for e in events if e.kind == ev.PRINT_REQUESTED and e.order_id == 47]
    assert len(requested) == MAX_REPRINTS_PER_ORDER


# -- setup forms, health, metrics --------------------------------------------------------------


async def test_a_bad_setting_is_shown_beside_its_field_and_not_saved(
    box: Box, client: httpx.AsyncClient
) -> None:
    token = await sign_in(box, client)
    response = await client.post(
        "/settings/orders", data={"csrf": token, "orders.default_delay": "999"}
    )
    assert response.status_code == 400
    match = re.search(r'id="f-orders-default-delay-error"[^>]*>([^<]+)<', response.text)
    assert match and match.group(1) == "At most 240."
    assert 'value="999"' in response.text  # what the user typed stays in the field
    assert not (Path(box.server.services.config().box.state_dir) / "settings.toml").exists()
    printer = await client.post(
        "/settings/printers/add",
        data={
            "csrf": token,
            "printers[1].name": "bar",
            "printers[1].uri": "virtual://bar",
            "printers[1].copies": "9",
        },
    )
    assert printer.status_code == 400
    assert re.search(r'id="f-printers-1-copies-error"[^>]*>[^<]*At most 5', printer.text)
    ok = await client.post(
        "/settings/printers/add",
        data={"csrf": token, "printers[1].name": "bar", "printers[1].uri": "virtual://bar"},
    )
    assert ok.status_code == 303
    assert [p.name for p in box.server.services.config().printers] == ["kitchen", "bar"]


async def test_health_is_open_and_metrics_need_a_session_or_the_token(
    box: Box, client: httpx.AsyncClient
) -> None:
    box.state.set("printer.kitchen", {"state": "online", "detail": ""})
    health = (await client.get("/health")).json()
    assert health["printers"] == {"kitchen": "online"} and health["paired"] is False
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    scraped = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE edged_orders gauge" in scraped.text
    assert 'edged_printer_online{printer="kitchen"} 1' in scraped.text
    await sign_in(box, client)
    assert "edged_queued_commands 0" in (await client.get("/metrics")).text
