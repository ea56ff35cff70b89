"""A real clustered MQTT broker for tests: NATS server, three nodes on loopback, JetStream
and the MQTT listener on each, every port free-picked.

Usage::

    cluster = NatsCluster(tmp_path)
    cluster.start()            # all nodes up, each answering an MQTT CONNECT
    cluster.url(0)             # mqtt://127.0.0.1:<port> of node 0
    cluster.kill(0)            # SIGKILL, mid-run
    cluster.start_node(0)      # back on the same ports, with its JetStream store
    cluster.stop()

NATS speaks MQTT 3.1.1 only (QoS 0 and 1; sessions, retained messages and wills live in
JetStream streams replicated across the nodes). Fails (never skips) with a clear message when
nats-server is not installed (Debian: apt-get install nats-server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ports import free_port

SEARCH = ("/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server")


def find_nats_server() -> str:
    """Path of the nats-server binary, or fail the test saying how to get it."""
    found = shutil.which("nats-server") or next((p for p in SEARCH if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            "nats-server is required for the clustered broker tests and was not found "
            "(install it: apt-get install nats-server)",
            pytrace=False,
        )
    return found


def mqtt_connack(
    host: str, port: int, timeout: float, credentials: tuple[str, str] | None = None
) -> bool:
    """Whether ``host:port`` answers an MQTT 3.1.1 CONNECT with an accepting CONNACK (NATS
    answers only once JetStream can hold the session: an open port is not enough)."""
    client_id = b"edged-probe-%d" % os.getpid()
    flags = 0x02 | (0xC0 if credentials else 0)  # clean session (+ user name and password)
    variable = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a"  # level 4, keepalive 10 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    for text in credentials or ():
        payload += len(text).to_bytes(2, "big") + text.encode()
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            answer = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return answer == b"\x20\x02\x00\x00"


@dataclass
class NatsNode:
    name: str
    port: int  # NATS clients
    cluster_port: int  # routes between nodes
    mqtt_port: int
    conf: Path
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)


class NatsCluster:
    """``size`` nats-server processes clustered on 127.0.0.1, config and stores in
    ``directory``."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, size: int = 3, *, extra: str = "") -> None:
        """``extra``: more of every node's config (an ``authorization`` block: users and
        their permissions; the readiness probe then logs in as ``probe`` / ``probe``)."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.binary = find_nats_server()
        self.credentials = ("probe", "probe") if extra else None
        self.nodes = [
            NatsNode(
                name=f"n{i}",
                port=free_port(),
                cluster_port=free_port(),
                mqtt_port=free_port(),
                conf=self.directory / f"n{i}.conf",
                log=self.directory / f"n{i}.log",
            )
            for i in range(size)
        ]
        for node in self.nodes:
            routes = ", ".join(
                f"nats://{self.host}:{other.cluster_port}"
                for other in self.nodes
                if other is not node
            )
            store = self.directory / f"{node.name}-store"
            node.conf.write_text(
                f'server_name: "{node.name}"\n'
                f"listen: {self.host}:{node.port}\n"
                f'jetstream {{ store_dir: "{store}" }}\n'
                f'cluster {{ name: "edged-test", listen: {self.host}:{node.cluster_port}, '
                f"routes: [{routes}] }}\n"
                # Sessions, retained messages and QoS 1 queues on every node: one node
                # lost keeps a quorum (by default NATS takes the peers it sees at the first
                # connection, which may be two of three).
                f"mqtt {{ listen: {self.host}:{node.mqtt_port}, "
                f"stream_replicas: {len(self.nodes)} }}\n" + extra,
                encoding="utf-8",
            )

    def url(self, index: int) -> str:
        return f"mqtt://{self.host}:{self.nodes[index].mqtt_port}"

    def urls(self, *indexes: int) -> list[str]:
        return [self.url(i) for i in indexes]

    def start(self, timeout: float = 60.0) -> None:
        """Start every node, then wait until each takes an MQTT session."""
        for i in range(len(self.nodes)):
            self._spawn(i)
        for i in range(len(self.nodes)):
            self._wait_ready(i, timeout)

    def start_node(self, index: int, timeout: float = 60.0) -> None:
        """(Re)start one node on its ports and store, and wait until it takes sessions."""
        self._spawn(index)
        self._wait_ready(index, timeout)

    def _spawn(self, index: int) -> None:
        node = self.nodes[index]
        assert node.process is None, f"{node.name} already running"
        node.process = subprocess.Popen(
            [self.binary, "-c", str(node.conf), "-l", str(node.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _wait_ready(self, index: int, timeout: float) -> None:
        node = self.nodes[index]
        assert node.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                err = node.process.stderr.read().decode() if node.process.stderr else ""
                node.process = None
                log = node.log.read_text() if node.log.exists() else ""
                raise RuntimeError(f"nats-server {node.name} exited at start: {err}{log[-2000:]}")
            if mqtt_connack(self.host, node.mqtt_port, timeout=5.0, credentials=self.credentials):
                return
            time.sleep(0.1)
        log = node.log.read_text() if node.log.exists() else ""
        raise RuntimeError(
            f"nats-server {node.name} took no MQTT session within {timeout} s: {log[-2000:]}"
        )

    def kill(self, index: int) -> None:
        """SIGKILL one node: no goodbye to its clients or its peers."""
        node = self.nodes[index]
        if node.process is None:
            return
        node.process.kill()
        node.process.wait()
        self._close(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is None:
                continue
            node.process.terminate()
            try:
                node.process.wait(15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            self._close(node)

    @staticmethod
    def _close(node: NatsNode) -> None:
        if node.process is not None and node.process.stderr:
            with contextlib.suppress(OSError):
                node.process.stderr.close()
        node.process = None
