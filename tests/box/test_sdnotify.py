"""The sd_notify helper against real unix datagram sockets, named and abstract."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import eventually

from edged import sdnotify


class Listener:
    """A notify socket like systemd's: a bound unix datagram socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture(params=["path", "abstract"])
def listener(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
    else:
        name = f"edged-test-{os.getpid()}-{id(sock)}"
        sock.bind(b"\0" + name.encode())
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    with sock:
        yield Listener(sock)


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready("up") is False
    assert sdnotify.watchdog() is False


def test_messages(listener: Listener) -> None:
    assert sdnotify.ready("journal open,\nlinks started")
    assert sdnotify.status("sinqro: connected")
    assert sdnotify.watchdog()
    assert sdnotify.stopping("finishing 2 tickets")
    assert listener.messages() == [
        "READY=1\nSTATUS=journal open, links started",
        "STATUS=sinqro: connected",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=finishing 2 tickets",
    ]


def test_dead_socket_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert sdnotify.watchdog_interval() is None


async def pings_within(listener: Listener, count: int, within: float = 30.0) -> list[str]:
    """Read the socket until ``count`` messages arrived; bounded, so a busy machine only
    makes it slower, never wrong."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen: list[str] = []
    while len(seen) < count:
        assert loop.time() < deadline, f"only {len(seen)} of {count} pings in {within}s"
        await asyncio.sleep(0.01)
        seen += listener.messages()
    return seen


async def test_watchdog_fed_while_healthy(listener: Listener) -> None:
    calls = 0

    async def check() -> None:
        nonlocal calls
        calls += 1

    task = asyncio.create_task(sdnotify.watchdog_loop(check, 0.02), name="watchdog")
    pings = await pings_within(listener, 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pings += listener.messages()
    assert set(pings) == {"WATCHDOG=1"}
    # Each ping follows a check that passed.
    assert calls >= len(pings)


async def test_watchdog_starves_when_check_fails_and_resumes(listener: Listener) -> None:
    healthy = True
    failed_checks = 0

    async def check() -> None:
        nonlocal failed_checks
        if not healthy:
            failed_checks += 1
            raise RuntimeError("journal writer gone")

    task = asyncio.create_task(sdnotify.watchdog_loop(check, 0.02), name="watchdog")
    await pings_within(listener, 1)
    healthy = False
    # A ping may have been in flight at the switch; after two failed checks none may come.
    await eventually(lambda: failed_checks >= 2, within=30.0, what="two failed checks")
    listener.messages()
    await eventually(lambda: failed_checks >= 8, within=30.0, what="eight failed checks")
    assert listener.messages() == []
    healthy = True
    assert "WATCHDOG=1" in await pings_within(listener, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_starves_when_check_hangs(listener: Listener) -> None:
    hang = asyncio.Event()
    cancelled = 0

    async def check() -> None:
        nonlocal cancelled
        try:
            await hang.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    task = asyncio.create_task(sdnotify.watchdog_loop(check, 0.02), name="watchdog")
    # Each hung check is given up on, not left piling up, and none of them pings.
    await eventually(lambda: cancelled >= 3, within=30.0, what="three hung checks given up")
    assert listener.messages() == []
    hang.set()
    assert "WATCHDOG=1" in await pings_within(listener, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_rejects_bad_interval() -> None:
    async def check() -> None:
        return None

    with pytest.raises(ValueError):
        await sdnotify.watchdog_loop(check, 0)
