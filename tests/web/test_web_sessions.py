"""Sign-ins that last: the sessions file (hashed, 0600, written only on change, last use
coarsely), device sign-ins, and the live stream resumed from its id after a drop."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_web_security import Box, box, sign_in  # noqa: F401  (box is a fixture)

from edged.journal import events as ev
from edged.web.sessions import (
    DEVICE_IDLE,
    FILE_NAME,
    LAST_USE_EVERY,
    Sessions,
    csrf_for,
    device_name,
    token_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def sessions(path: Path, clock: Clock) -> Sessions:
    kept = Sessions(idle=3600.0, lifetime=86400.0, path=path, clock=clock)
    kept.load()
    return kept


async def test_signed_in_sessions_are_kept_hashed_and_written_only_when_they_change(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = tmp_path / FILE_NAME
    first = sessions(path, clock)
    first.new(client="10.0.0.7")  # a sign-in form shown: nothing to keep
    await first.save()
    assert not path.exists()
    token, session = first.new(authenticated=True)
    await first.save()
    assert first.writes == 1
    text = path.read_text()
    assert token not in text and session.csrf not in text
    assert token_key(token) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Used all day: one write every few minutes at most, none for each request.
    for _ in range(50):
        clock.now += 5
        assert first.get(token) is session
    await first.save()
    assert first.writes == 1
    clock.now += LAST_USE_EVERY
    assert first.get(token) is session
    await first.save()
    assert first.writes == 2
    assert json.loads(path.read_text())["sessions"][0]["last_seen"] == clock.now
    # The daemon restarts: the same cookie is the same sign-in, with the same CSRF token.
    again = sessions(path, clock)
    restored = again.get(token)
    assert restored is not None and restored.authenticated
    assert restored.csrf == session.csrf == csrf_for(token)
    assert again.get("another-token") is None


async def test_a_device_outlives_the_idle_limit_and_a_revocation_is_written_at_once(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = tmp_path / FILE_NAME
    kept = sessions(path, clock)
    plain, _ = kept.new(authenticated=True)
    tablet, device = kept.new(authenticated=True, device=True, name="Counter\ttablet\n")
    assert device.name == "Counter tablet"
    clock.now += 2 * 3600  # past the ordinary sign-in's idle limit
    assert kept.get(plain) is None
    assert kept.get(tablet) is device
    assert [d.name for d in kept.devices()] == ["Counter tablet"]
    assert kept.rename(device.ref, "Till 1") and device.name == "Till 1"
    await kept.save()
    assert sessions(path, clock).get(tablet) is not None
    assert kept.revoke("not-a-ref") is None
    assert kept.revoke(device.ref) is device
    await kept.save()
    assert token_key(tablet) not in path.read_text()
    assert sessions(path, clock).get(tablet) is None
    # Unused for months, a device signs in again too.
    _, old = kept.new(authenticated=True, device=True, name="Old")
    clock.now += DEVICE_IDLE + 1
    assert kept.devices() == []
    assert old not in kept.devices()


async def test_a_new_password_ends_every_session_and_a_damaged_file_signs_everyone_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = tmp_path / FILE_NAME
    kept = sessions(path, clock)
    token, _ = kept.new(authenticated=True, device=True, name="Tablet")
    kept.drop_all()
    await kept.save()
    assert json.loads(path.read_text())["sessions"] == []
    assert sessions(path, clock).get(token) is None
    path.write_text('{"sessions": [{"key": "zz"}, 3]')
    with caplog.at_level(logging.ERROR):
        assert sessions(path, clock).devices() == []
    assert "cannot be read" in caplog.text
    path.write_text(json.dumps({"sessions": [{"key": "zz"}, {"key": token_key(token)}]}))
    with caplog.at_level(logging.WARNING):
        assert sessions(path, clock).get(token) is None
    assert "damaged entry" in caplog.text


def test_a_device_is_named_from_its_browser_until_the_owner_names_it() -> None:
    tablet = (
        "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    )
    ipad = (
        "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    assert device_name(tablet) == "Chrome on Android"
    assert device_name(ipad) == "Safari on iPad"
    assert device_name("") == "Browser"


# -- the live stream, resumed ---------------------------------------------------------------


async def read_events(response: httpx.Response, until: str) -> AsyncIterator[dict[str, str]]:
    """Parsed server-sent events up to and including the first ``until`` event."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in event:
                yield event
                if event["event"] == until:
                    return
            event = {}
            continue
        name, _, value = line.partition(":")
        event[name] = value.strip()


async def stream(client: httpx.AsyncClient, url: str) -> list[dict[str, str]]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        return [e async for e in read_events(response, "board")]


async def test_a_reconnecting_page_gets_what_it_missed_and_a_new_journal_a_reset(
    box: Box,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=box.url) as client:
        await sign_in(box, client)
        first = await stream(client, "/events")
        last = first[-1]["id"]
        epoch, _, seq = last.rpartition(".")
        assert epoch == box.journal.epoch and int(seq) == box.journal.last_seq
        assert json.loads(first[-1]["data"]) == {"reset": False}
        # Sinqro refused a queued decision while the page was away.
        await box.journal.append_event(
            ev.COMMAND_FAILED, None, {"code": "ORDER_EXPIRED", "message": "too late"}
        )
        resumed = await stream(client, f"/events?last={last}")
        kinds = [e["event"] for e in resumed]
        assert kinds == ["notice", "status", "board"]
        assert json.loads(resumed[0]["data"])["code"] == "ORDER_EXPIRED"
        assert resumed[-1]["id"] == f"{box.journal.epoch}.{box.journal.last_seq}"
        # Nothing new since: no notice again (the header a browser sends works too).
        async with client.stream(
            "GET", "/events", headers={"Last-Event-ID": resumed[-1]["id"]}
        ) as response:
            again = [e async for e in read_events(response, "board")]
        assert [e["event"] for e in again] == ["status", "board"]
        # An id from another journal (rebuilt, replaced): the whole board, marked reset.
        other = await stream(client, f"/events?last=0123456789abcdef.{seq}")
        assert [e["event"] for e in other] == ["status", "board"]
        assert json.loads(other[-1]["data"]) == {"reset": True}


# -- staff: the board only ------------------------------------------------------------------


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def test_staff_sign_in_with_a_pin_and_run_the_board_but_nothing_else(
    box: Box,  # noqa: F811
) -> None:
    pin = "246813"
    async with (
        httpx.AsyncClient(base_url=box.url) as owner,
        httpx.AsyncClient(base_url=box.url) as staff,
    ):
        csrf = await sign_in(box, owner)
        short = await owner.post(
            "/staff-pin", data={"csrf": csrf, "pin": "1234", "confirm": "1234"}
        )
        assert short.headers["Location"] == "/settings?pin_error=digits#section-devices"
        assert not await box.server.credentials.has_staff_pin()
        saved = await owner.post("/staff-pin", data={"csrf": csrf, "pin": pin, "confirm": pin})
        assert saved.headers["Location"] == "/settings?pin=set#section-devices"
        assert pin not in box.journal.kept.path.read_text()

        login = await staff.get("/login")
        assert "staff PIN" in login.text
        signed = await staff.post("/login", data={"csrf": csrf_in(login.text), "password": pin})
        assert signed.status_code == 303 and signed.headers["Location"] == "/board"
        board = await staff.get("/board")
        assert board.status_code == 200
        assert 'href="/settings"' not in board.text and 'href="/pairing"' not in board.text
        staff_csrf = csrf_in(board.text)
        assert (await staff.get("/api/board")).status_code == 200
        for path in ("/settings", "/pairing"):
            page = await staff.get(path)
            assert (page.status_code, page.headers.get("Location")) == (303, "/board"), path
        for path, data in (
            ("/settings/language", {"language": "es"}),
            ("/staff-pin", {"remove": "1"}),
            ("/devices/revoke", {"ref": "x"}),
            ("/pairing/logout", {}),
        ):
            refused = await staff.post(path, data={"csrf": staff_csrf, **data})
            assert refused.status_code == 403, path
            assert refused.json()["code"] == "OWNER_ONLY"
        assert box.server.services.config().box.language == "en"
        assert await box.server.credentials.has_staff_pin()
        # A new PIN: whoever knew the old one signs in again; the owner stays.
        new = "97531864"
        await owner.post("/staff-pin", data={"csrf": csrf, "pin": new, "confirm": new})
        assert (await staff.get("/api/board")).status_code == 401
        assert (await owner.get("/api/board")).status_code == 200
