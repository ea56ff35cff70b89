"""Shared fixtures: a real SQLite journal, a real Mosquitto (``broker``), a real Sinqro
simulator on a free port (in this process, or ``cloud``: a process of its own), and a config
pointing at it. Whole-box configs are built by :mod:`harness` (``write_config``)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker import MosquittoBroker
from harness import SimulatorProcess

# Re-exported: tests wait with the one helper, tests/support/waiting.py.
from waiting import eventually as eventually

from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro.settings import SinqroConfig


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="fuzz tests: ten times as many examples, freshly random (same as EDGED_SLOW=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--slow"):
        # Read when tests/support/fuzzing.py is imported, which is after this.
        os.environ["EDGED_SLOW"] = "1"


def make_sinqro_config(sim: Simulator, **overrides: Any) -> SinqroConfig:
    """A SinqroConfig for ``sim`` with intervals short enough for tests."""
    values: dict[str, Any] = {
        "server_token": sim.server_token,
        "user_token": sim.user_token,
        "selling_point_id": sim.selling_point_id,
        "base_url": sim.base_url,
        "websocket_url": sim.websocket_url,
        "poll_interval": 0.3,
        "status_refresh_interval": 0.3,
        "request_timeout": 2.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.3,
        "ping_interval": 0.5,
        "ping_timeout": 0.5,
        "max_frame_bytes": 64 * 1024,
    }
    values.update(overrides)
    return SinqroConfig(**values)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """A fresh journal file in the test's own directory, closed after the test."""
    j = await Journal.open(tmp_path / "journal.sqlite3")
    try:
        yield j
    finally:
        await j.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A started simulator on a free localhost port."""
    async with Simulator(host="127.0.0.1", port=0, seed=1234) as simulator:
        yield simulator


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[SimulatorProcess]:
    """The simulator in a process of its own, for tests that run the daemon as a process."""
    process = SimulatorProcess(log_path=tmp_path / "sim.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real Mosquitto on a free port (anonymous, persistent), killed after the test.

    A test may pause it (SIGSTOP) to play a hung broker; it is resumed before the kill so
    the process can be reaped."""
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        if b.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(b.process.pid, signal.SIGCONT)
        b.kill()


@pytest.fixture
def sinqro_config(sim: Simulator) -> SinqroConfig:
    return make_sinqro_config(sim)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a parallel run, the image tests (one xdist group, minutes of debootstrap and
    QEMU on one worker) come first, so every other test overlaps them instead of waiting."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start preparing and booting the QEMU test box as soon as it is known to be needed,
    so its minutes overlap with the tests that run before tests/image/test_image_boot.py.

    Not in a parallel run's workers: each collects everything, but only one runs the image
    tests (one xdist group), and there the other worker's tests are what overlaps."""
    if os.environ.get("PYTEST_XDIST_WORKER") or session.config.option.collectonly:
        return
    for item in session.items:
        module = getattr(item, "module", None)
        callspec = getattr(item, "callspec", None)
        if module is not None and module.__name__ == "test_image_boot" and callspec:
            module.start_boot(callspec.params["box"])
