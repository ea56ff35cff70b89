"""Run edged and its simulator as real processes, and build their configs: for tests,
benchmarks and crash runs (test support, not part of the product).

:class:`DaemonProcess` starts ``edged run -c FILE`` with a ``NOTIFY_SOCKET`` it owns, so it
knows exactly when the daemon said READY=1 (the same signal systemd waits for), can
SIGKILL it at any moment and start it again on the same journal.
:class:`SimulatorProcess` runs ``python -m edged.simulator`` in its own process, so killing
the daemon never touches the cloud's memory of what it received.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from ports import free_port

from edged.configtools import dump_toml
from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN, Simulator


def sinqro_section(info: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A ``[sinqro]`` config table for a simulator process (``SimulatorProcess.info()``),
    with intervals short enough for tests and crash runs."""
    section: dict[str, Any] = {
        "server_token": DEFAULT_SERVER_TOKEN,
        "user_token": DEFAULT_USER_TOKEN,
        "selling_point_id": info["sellingPointId"],
        "base_url": info["baseUrl"],
        "websocket_url": info["websocketUrl"],
        "poll_interval": 1.0,
        "status_refresh_interval": 2.0,
        "request_timeout": 2.0,
        "reconnect_min": 0.1,
        "reconnect_max": 1.0,
    }
    section.update(overrides)
    return section


def fault_sinqro(info: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Faults want a link that notices quickly: short timeouts and keepalive."""
    return sinqro_section(
        info,
        **{"request_timeout": 1.0, "ping_interval": 0.5, "ping_timeout": 0.5, **overrides},
    )


def write_config(
    tmp_path: Path,
    info: dict[str, Any],
    *,
    state_dir: Path | None = None,
    sinqro: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    doc: dict[str, Any] = {
        "box": {"name": "test-box", "state_dir": str(state_dir or tmp_path / "state")},
        "sinqro": fault_sinqro(info, **(sinqro or {})),
        "orders": {"retry_max": 0.5},
        "panel": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": free_port(), "metrics_public": True},
    }
    doc.update(sections)
    path = tmp_path / "edged.toml"
    path.write_text(dump_toml(doc), encoding="utf-8")
    return path


def app_config(tmp_path: Path, sim: Simulator, **sections: Any) -> Path:
    """A whole-box config file for an in-process :class:`Simulator` (see :func:`write_config`)."""
    info = {
        "sellingPointId": sim.selling_point_id,
        "baseUrl": sim.base_url,
        "websocketUrl": sim.websocket_url,
    }
    doc_sinqro = {"server_token": sim.server_token, "user_token": sim.user_token}
    # No web page: it would print its setup ticket on the first printer.
    sections.setdefault("web", {"enabled": False})
    return write_config(tmp_path, info, sinqro=doc_sinqro, **sections)


def printer(name: str, uri: str, **overrides: Any) -> dict[str, Any]:
    """A ``[[printers]]`` table with timeouts short enough for tests."""
    values: dict[str, Any] = {
        "name": name,
        "uri": uri,
        "timeout": 1.0,
        "retry_max": 0.3,
        "health_interval": 0.5,
        "qr_tracking": False,
    }
    values.update(overrides)
    return values


class DaemonProcess:
    """``edged run`` as a child process, with its sd_notify messages captured."""

    def __init__(
        self,
        config: Path,
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.preexec_fn = preexec_fn  # e.g. join a capped cgroup (benchmarks/bench_pi.py)
        self.log_path = log_path or config.with_suffix(".log")
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.messages: list[str] = []
        self._sockdir = tempfile.mkdtemp(prefix="edged-notify-")
        self._sockpath = os.path.join(self._sockdir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self._sockpath)
        self._sock.setblocking(False)
        self.started_at = 0.0
        self.ready_after: float | None = None
        # The daemon's sd_notify sends block when nobody reads the socket (as they would
        # with a stuck service manager): read it all the time, not only while waiting.
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name="notify", daemon=True)
        self._reader.start()

    def _read_forever(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(OSError, ValueError):
                select.select([self._sock], [], [], 0.1)
                self._drain()

    def start(self, *, wait_ready: float | None = 30.0) -> None:
        """Start the daemon; with ``wait_ready`` block until READY=1 (or fail loudly)."""
        self._drain()
        with self._lock:
            self.messages.clear()
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": self._sockpath, "PYTHONUNBUFFERED": "1"}
        env.pop("JOURNAL_STREAM", None)
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.ready_after = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged.cli", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self.preexec_fn,
        )
        log.close()
        if wait_ready is not None:
            self.wait_for("READY=1", wait_ready)

    def _drain(self) -> None:
        with self._lock:
            while True:
                try:
                    data = self._sock.recv(65536)
                except BlockingIOError:
                    return
                for line in data.decode("utf-8", "replace").splitlines():
                    self.messages.append(line)
                    if line == "READY=1" and self.ready_after is None:
                        self.ready_after = time.monotonic() - self.started_at

    def wait_for(self, message: str, timeout: float) -> None:
        """Wait until the daemon sent ``message`` (e.g. ``READY=1``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain()
            if message in self.messages:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"edged exited with {self.proc.returncode} before {message}; "
                    f"log:\n{self.log_tail()}"
                )
            time.sleep(0.01)
        raise TimeoutError(f"edged did not send {message} in {timeout}s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a power cut for the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise
        self._drain()
        return int(self.proc.returncode)

    def peak_rss_kib(self) -> int:
        """VmHWM of the running daemon (peak resident set), in KiB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
        self._closed.set()
        self._reader.join(5)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._sockpath)
            os.rmdir(self._sockdir)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SimulatorProcess:
    """The Sinqro simulator in its own process (``python -m edged.simulator``)."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged.simulator", "--port", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.root}/_sim/state", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError("simulator exited at start") from None
                time.sleep(0.05)
        raise TimeoutError("simulator did not start")

    def info(self) -> dict[str, Any]:
        response = httpx.get(f"{self.root}/_sim/state", timeout=5)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
