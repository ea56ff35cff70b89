"""The owner is told about the journal: a rebuilt journal (until dismissed) and failing
writes show as a banner on every signed-in page, on the LED state and on ``/health``."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import httpx
from test_web_security import Box, box, client, sign_in, waiting_order  # noqa: F401  (fixtures)

from edged.journal import recovery
from edged.journal.writer import JournalError
from edged.panel.patterns import led_state


async def test_a_rebuilt_journal_shows_a_banner_until_the_owner_dismisses_it(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    csrf = await sign_in(box, client)
    assert 'id="journal"' not in (await client.get("/board")).text
    rebuilt = {"at": 1.0, "reason": "file is not a database", "kept_as": "edged.damaged-X.sqlite3"}
    await box.journal.kv_set("journal.recovered", json.dumps(rebuilt))
    box.journal.recovered = rebuilt
    await recovery.report(box.journal, box.state, "en")
    assert box.state.get("journal") == "recovered"
    assert led_state(box.state.snapshot()) == "journal_problem"
    page = (await client.get("/board")).text
    assert 'id="journal"' in page and "edged.damaged-X.sqlite3" in page
    health = (await client.get("/health")).json()
    assert health["ok"] is True and health["journal_state"] == "recovered"

    dismissed = await client.post("/journal/dismiss", data={"csrf": csrf})
    assert dismissed.status_code == 303
    assert 'id="journal"' not in (await client.get("/board")).text
    assert box.state.get("journal") == "ok"
    assert led_state(box.state.snapshot()) != "journal_problem"
    assert await box.journal.kv_get("journal.recovered") is None


async def test_failing_writes_show_on_the_page_and_make_health_not_ok(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    await sign_in(box, client)
    await recovery.report(box.journal, box.state, "en")
    box.journal._on_fault(JournalError("journal write failed: disk I/O error"))
    assert box.state.get("journal") == "failing"
    assert "cannot be written" in (await client.get("/board")).text
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["journal_state"] == "failing"
    # The next write that works clears it.
    await box.journal.kv_set("probe", "1")
    assert box.state.get("journal") == "ok"
    assert (await client.get("/health")).json()["ok"] is True


async def test_a_journal_that_cannot_store_answers_503_in_the_box_language_never_500(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    csrf = await sign_in(box, client)
    await box.journal.upsert_order(waiting_order(41))
    config = box.server.services.config()
    spanish = dataclasses.replace(config, box=dataclasses.replace(config.box, language="es"))
    box.server.services.config = lambda: spanish
    writer = box.journal._writer
    working = writer.conn
    dead = sqlite3.connect(":memory:", check_same_thread=False)
    dead.close()  # every read and write on it fails, as on a card that went away
    writer.conn = dead
    try:
        accept = await client.post("/api/orders/41/accept", json={}, headers={"X-CSRF-Token": csrf})
        assert accept.status_code == 503
        body = accept.json()
        assert body["ok"] is False and body["code"] == "JOURNAL_UNAVAILABLE"
        assert "no puede guardar" in body["message"]
        assert accept.headers["Retry-After"]
        board = await client.get("/api/board")
        assert board.status_code == 503 and "no puede guardar" in board.json()["message"]
        # The page itself still opens: it tells what it can.
        page = await client.get("/board")
        assert page.status_code == 200
    finally:
        writer.conn = working
    assert (await client.get("/api/board")).status_code == 200
