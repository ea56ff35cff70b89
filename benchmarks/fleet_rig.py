"""The vendor's side of ``benchmarks/fleet``, as real processes: a three-node NATS cluster
(JetStream, MQTT 3.1.1) with one user per box and the ACL docs/fleet.md asks for, two
``edged relay`` replicas behind HAProxy, and the processes that hold the simulated boxes
(fleet_boxes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from nats_cluster import NatsCluster  # noqa: E402
from ports import free_port  # noqa: E402

from edged.configtools import dump_toml  # noqa: E402

PREFIX = "edged"
RELAY_USER = "edged-relay"
VENDOR_USER = "fleet-ops"
SECRET = secrets.token_hex(16)
FIRST_SELLING_POINT = 100_000


@dataclass(frozen=True)
class BoxSpec:
    id: str
    password: str
    selling_point: int


def make_boxes(count: int) -> list[BoxSpec]:
    return [
        BoxSpec(f"bench-{n:05d}", secrets.token_hex(8), FIRST_SELLING_POINT + n)
        for n in range(count)
    ]


def authorization(boxes: list[BoxSpec], relay_password: str, vendor_password: str) -> str:
    """The cluster's users: each box writes only its own tree and reads only its selling
    point's notifications; only the relay publishes notifications; the vendor reads.
    (``$MQTT.sub.>``: where NATS delivers a QoS 1 subscription's JetStream consumer.)"""
    deliver = '"$MQTT.sub.>"'

    def user(name: str, password: str, publish: list[str], subscribe: list[str]) -> str:
        pub = ", ".join(f'"{s}"' for s in publish)
        sub = ", ".join([*(f'"{s}"' for s in subscribe), deliver])
        return (
            f'  {{user: "{name}", password: "{password}", '
            f"permissions: {{publish: [{pub}], subscribe: [{sub}]}}}}\n"
        )

    lines = [
        user("probe", "probe", ["probe.>"], []),
        user(RELAY_USER, relay_password, [f"{PREFIX}.sellingPoints.*.notifications"], []),
        user(VENDOR_USER, vendor_password, ["fleet-ops.>"], [f"{PREFIX}.*.alert"]),
    ]
    lines += [
        user(
            b.id,
            b.password,
            [f"{PREFIX}.{b.id}.>"],
            [f"{PREFIX}.sellingPoints.{b.selling_point}.notifications"],
        )
        for b in boxes
    ]
    return "authorization { users = [\n" + "".join(lines) + "] }\n"


def cluster(directory: Path, boxes: list[BoxSpec], relay_pw: str, vendor_pw: str) -> NatsCluster:
    return NatsCluster(directory, extra=authorization(boxes, relay_pw, vendor_pw))


# -- the relays and their load balancer ---------------------------------------------------------


@dataclass
class RelayReplica:
    name: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_relay(
    directory: Path, name: str, urls: list[str], password: str, protocol: str
) -> RelayReplica:
    replica = RelayReplica(name, free_port(), directory / f"{name}.toml", directory / f"{name}.log")
    doc = {
        "relay": {"host": "127.0.0.1", "port": replica.port, "secret": SECRET},
        "mqtt": {
            "url": urls[0],
            "failover_urls": urls[1:],
            "username": RELAY_USER,
            "client_id": name,
            "protocol": protocol,
            "publish_timeout": 5.0,
            "reconnect_min": 0.2,
            "reconnect_max": 2.0,
        },
    }
    replica.config.write_text(dump_toml(doc))
    env = {**os.environ, "EDGED_RELAY_MQTT_PASSWORD": password}
    with replica.log.open("ab") as out:
        replica.proc = subprocess.Popen(
            [sys.executable, "-m", "edged.cli", "relay", "-c", str(replica.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    return replica


@dataclass
class HAProxy:
    port: int
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sinqro/{SECRET}"


def find_haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise SystemExit("benchmarks/fleet needs HAProxy (apt-get install haproxy)")
    return found


def start_haproxy(directory: Path, replicas: list[RelayReplica]) -> HAProxy:
    """Round robin over the replicas; a replica whose /health fails (broker lost) is taken
    out after two checks; a refused connection or a 503 is tried once more on the other."""
    balancer = HAProxy(free_port(), directory / "haproxy.cfg")
    servers = "".join(
        f"    server {r.name} 127.0.0.1:{r.port} check inter 500ms fall 2 rise 2\n"
        for r in replicas
    )
    balancer.config.write_text(
        "global\n    maxconn 4096\n\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n"
        "    timeout server 30s\n    option http-keep-alive\n\n"
        f"frontend webhooks\n    bind 127.0.0.1:{balancer.port}\n    default_backend relays\n\n"
        "backend relays\n    balance roundrobin\n    option httpchk GET /health\n"
        "    http-check expect status 200\n    option redispatch\n    retries 2\n"
        "    retry-on conn-failure empty-response 503\n" + servers,
        encoding="utf-8",
    )
    balancer.proc = subprocess.Popen(
        [find_haproxy(), "-db", "-f", str(balancer.config)],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "haproxy.log").open("ab"),
    )
    return balancer


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not healthy within {within} s")


async def relay_counts(replica: RelayReplica) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        answer = await http.get(f"{replica.root}/health")
        body: dict[str, Any] = answer.json()
        return body


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the box processes --------------------------------------------------------------------------


@dataclass
class Worker:
    """One process holding a share of the boxes; ``status`` is its latest report."""

    proc: asyncio.subprocess.Process
    boxes: int
    status: dict[str, Any] = field(default_factory=dict)
    rss: int = 0
    base: int = 0
    done: dict[str, Any] | None = None
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            report = json.loads(line)
            if "status" in report:
                self.status, self.rss = report["status"], report["rss"]
                self.base = report["base"]
            elif "done" in report:
                self.done = report["done"]

    async def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        await self.proc.wait()
        if self.reader is not None:
            await self.reader
        if self.done is None:
            raise RuntimeError(f"a box process ended without its results ({self.proc.returncode})")
        return self.done


async def start_worker(
    boxes: list[BoxSpec], urls: list[str], settings: dict[str, Any], storage: Path, log: IO[bytes]
) -> Worker:
    """A process for ``boxes``; box n dials node n mod 3 first, then the others in turn."""
    spec = {
        "settings": settings,
        "storage": str(storage),
        "boxes": [
            {
                "id": b.id,
                "password": b.password,
                "selling_point": b.selling_point,
                "urls": [urls[(b.selling_point + k) % len(urls)] for k in range(len(urls))],
            }
            for b in boxes
        ],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "benchmarks" / "fleet_boxes.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
        limit=1 << 28,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode() + b"\n")
    await proc.stdin.drain()
    worker = Worker(proc, len(boxes))
    worker.reader = asyncio.create_task(worker.read(), name="worker-read")
    return worker


def total(workers: list[Worker], key: str) -> int:
    return sum(int(w.status.get(key, 0)) for w in workers)
