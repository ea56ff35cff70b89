"""The page's tests' one web box: a real :class:`WebServer` on a free port over a real
journal, with the daemon's side offline unless a test hands its own.

* :class:`Settings`: the config in force, saved like the page's settings layer;
* :func:`offline_services`: :class:`WebServices` whose Sinqro calls fail (override any);
* :func:`web_box`: the server started, stopped on the way out;
* :func:`first_visit`: the setup code from the printed ticket, then the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edged.config import Config, load_config, save_web_settings
from edged.flow.pairing import Pairing
from edged.journal.store import Journal
from edged.sinqro.errors import SinqroError
from edged.state import BoxState
from edged.web.security import AttemptLimiter
from edged.web.server import WebServer
from edged.web.services import DeskLike, SpoolerLike, WebServices
from edged.web.settings import WebConfig

PASSWORD = "correct horse battery"


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSpooler:
    """Records what the page asks to print."""

    def __init__(self, box_printed: list[list[str]]) -> None:
        self.printed = box_printed
        self.tests: list[str] = []
        self.reprints: list[tuple[int, str | None]] = []

    async def request_text(
        self, lines: list[str], *, source: str, qr: str = "", big: Sequence[int] = ()
    ) -> None:
        self.printed.append(lines)

    def request_test_print(self, name: str, *, source: str) -> None:
        self.tests.append(name)

    def request_reprint(self, order_id: int, printer: str | None = None, *, source: str) -> None:
        self.reprints.append((order_id, printer))


class Settings:
    """The config in force: ``edged.toml`` loaded, then the page's saved changes."""

    def __init__(self, path: Path) -> None:
        self.config: Config = load_config(path)

    async def apply(self, changes: dict[str, Any]) -> Config:
        self.config = await asyncio.to_thread(save_web_settings, self.config, changes)
        return self.config


async def refuse(*args: Any) -> Any:
    raise SinqroError("UNAVAILABLE", "offline in this test")


async def nothing() -> None:
    return None


def offline_services(
    journal: Journal,
    settings: Settings,
    *,
    state: BoxState,
    desk: DeskLike,
    box_name: str,
    pairing: Callable[[], Pairing] = Pairing,
    spooler: SpoolerLike | None = None,
    **overrides: Any,
) -> WebServices:
    """Services for a page whose Sinqro is out of reach; ``overrides`` replace any field."""
    services = WebServices(
        box_name=box_name,
        journal=journal,
        state=state,
        desk=desk,
        pairing=pairing,
        login=refuse,
        choose_selling_point=refuse,
        logout=nothing,
        order_actions=refuse,
        config=lambda: settings.config,
        apply_settings=settings.apply,
        spooler=spooler,
    )
    return dataclasses.replace(services, **overrides)


@contextlib.asynccontextmanager
async def web_box(
    config: WebConfig,
    services: WebServices,
    *,
    action_wait: float | None = None,
    limiter: AttemptLimiter | None = None,
    code_limiter: AttemptLimiter | None = None,
    scrypt_n: int = 2**12,
) -> AsyncIterator[WebServer]:
    """The page served on ``config``'s host and port (0: a free one) until the block ends;
    ``action_wait``: how long a board decision waits for Sinqro before "queued"."""
    server = WebServer(
        config, services, limiter=limiter, code_limiter=code_limiter, scrypt_n=scrypt_n
    )
    if action_wait is not None:
        server.action_wait = action_wait
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def printed_code(printed: list[list[str]]) -> str:
    """The setup code on the last ticket printed."""
    text = "\n".join(printed[-1])
    match = re.search(r"Setup code:\n(\w{4}-\w{4})", text)
    assert match, text
    return match.group(1)


async def first_visit(client: httpx.AsyncClient, code: str, password: str = PASSWORD) -> str:
    """First visit: the setup code, then the password; returns the board's CSRF token."""
    page = await client.get("/setup")
    response = await client.post(
        "/setup",
        data={"csrf": csrf_of(page.text), "code": code, "password": password, "confirm": password},
    )
    assert response.status_code == 303, response.text
    board = await client.get("/board")
    assert board.status_code == 200
    return csrf_of(board.text)
