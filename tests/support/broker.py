"""A real Mosquitto broker for tests: started on a free port, stoppable and restartable.

Usage::

    broker = MosquittoBroker(tmp_path)
    broker.start()          # listening on 127.0.0.1:broker.port
    broker.stop()           # clean stop (persistence is saved)
    broker.start()          # same port, same persistence file
    broker.kill()

Fails (never skips) with a clear message when mosquitto is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from ports import free_port

SEARCH = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or fail the test saying how to get it."""
    found = shutil.which("mosquitto") or next((p for p in SEARCH if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            "mosquitto is required for the MQTT bridge tests and was not found "
            "(install it: apt-get install mosquitto, or brew install mosquitto)",
            pytrace=False,
        )
    return found


class MosquittoBroker:
    """One mosquitto process with its own config, port, log and persistence in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        persistence: bool = True,
        extra: Sequence[str] = (),
    ):
        """``extra``: more mosquitto.conf lines (a bridge to another broker, ...)."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.binary = find_mosquitto()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf = self.directory / "mosquitto.conf"
        self.log = self.directory / "mosquitto.log"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 10000",
        ]
        if os.geteuid() == 0:
            # As root mosquitto would switch to its own user and lose access to this directory.
            lines.append("user root")
        if persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.directory}/",
                "persistence_file mosquitto.db",
            ]
        lines += extra
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the port accepts connections."""
        assert self.process is None, "broker already running"
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                self.process = None
                raise RuntimeError(f"mosquitto exited at start: {err}{log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Clean stop (SIGTERM): mosquitto saves its persistence file."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_broker(directory: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
