"""``benchmarks/fleet``: a fleet of simulated boxes against a clustered broker, the relay
behind a load balancer, and Sinqro's webhooks for every selling point.

Usage: benchmarks/fleet [--quick] [--boxes N] [--rate R] [--output FILE]

Prints one markdown table (rows in benchmarks/README.md, "Fleet") and writes it to
``benchmarks/results-fleet.md`` (``--quick``: 50 boxes, a short run, for CI and trying).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_rig as rig
from suite_common import (
    Row,
    fmt_s,
    git_commit,
    latency_row,
    machine_line,
    progress,
    verdict,
)

from edged.simulator.generate import notification_example

RESULTS = rig.ROOT / "benchmarks" / "results-fleet.md"
AIM_MS = 250.0


@dataclass(frozen=True)
class Plan:
    boxes: int
    per_process: int
    rate: float  # webhooks per second, steady
    steady: float  # seconds of steady rate
    bursts: int
    burst: int  # webhooks sent at once
    storm_rate_for: float  # seconds of steady rate around the node restart
    within: float  # generous bound for waits (not a measure)

    @classmethod
    def make(cls, quick: bool, boxes: int | None, rate: float | None) -> Plan:
        if quick:
            plan = cls(50, 25, 20.0, 3.0, 1, 50, 6.0, 180.0)
        else:
            plan = cls(1000, 250, 100.0, 30.0, 3, 200, 20.0, 900.0)
        return cls(
            boxes or plan.boxes,
            plan.per_process,
            rate or plan.rate,
            *(plan.steady, plan.bursts, plan.burst, plan.storm_rate_for, plan.within),
        )


@dataclass
class Feeder:
    """Sinqro's side: posts webhooks through the load balancer and, like Sinqro, posts one
    again when it was not taken (not 200). ``sent``: (selling point, order) -> the
    CLOCK_MONOTONIC of the first try and the phase it belongs to."""

    url: str
    http: aiohttp.ClientSession
    sent: dict[tuple[int, int], tuple[float, str]] = field(default_factory=dict)
    answered: int = 0
    retried: int = 0
    given_up: int = 0
    next_order: int = 1
    template: dict[str, Any] = field(default_factory=notification_example)

    def body(self, selling_point: int, order: int) -> bytes:
        data = {**self.template["data"], "id": order, "marketOrderCode": f"C{order}"}
        doc = {**self.template, "data": data, "sellingPointId": selling_point}
        return json.dumps(doc).encode()

    async def one(self, selling_point: int, phase: str) -> None:
        order = self.next_order
        self.next_order += 1
        body = self.body(selling_point, order)
        started = time.monotonic()
        self.sent[(selling_point, order)] = (started, phase)
        while time.monotonic() - started < 120:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.post(self.url, data=body) as answer:
                    await answer.read()
                    if answer.status == 200:
                        self.answered += 1
                        return
            self.retried += 1
            await asyncio.sleep(0.2)
        self.given_up += 1

    async def steady(
        self, selling_points: list[int], rate: float, seconds: float, phase: str
    ) -> None:
        count = max(1, round(rate * seconds))
        start = time.monotonic()
        tasks = []
        for k in range(count):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sp = selling_points[(self.next_order + k) % len(selling_points)]
            tasks.append(asyncio.create_task(self.one(sp, phase)))
        await asyncio.gather(*tasks)

    async def burst(self, selling_points: list[int], size: int, phase: str) -> None:
        first = self.next_order
        chosen = [selling_points[(first + k) % len(selling_points)] for k in range(size)]
        await asyncio.gather(*(self.one(sp, phase) for sp in chosen))


async def wait_for(
    check: Callable[[], bool], within: float, what: str, interval: float = 0.05
) -> float:
    """Poll until ``check()``; return the CLOCK_MONOTONIC it first held."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic()


@dataclass
class Vendor:
    """The vendor's alert subscriber (every box's ``alert`` topic), on one node."""

    alerts: dict[str, list[str]] = field(default_factory=dict)  # box -> alert ids
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, host: str, port: int, password: str) -> None:
        async with aiomqtt.Client(
            host,
            port,
            identifier="fleet-ops-bench",
            username=rig.VENDOR_USER,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V311,
        ) as client:
            await client.subscribe(f"{rig.PREFIX}/+/alert", qos=1)
            self.ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                alert = json.loads(message.payload)
                self.alerts.setdefault(alert["box_id"], []).append(alert["id"])


async def run(plan: Plan, tmp: Path) -> tuple[list[Row], list[str]]:
    boxes = rig.make_boxes(plan.boxes)
    relay_pw, vendor_pw = secrets.token_hex(8), secrets.token_hex(8)
    cluster = rig.cluster(tmp / "nats", boxes, relay_pw, vendor_pw)
    progress(f"NATS cluster, 3 nodes, {len(boxes)} box users")
    await asyncio.to_thread(cluster.start)
    replicas: list[rig.RelayReplica] = []
    balancer: rig.HAProxy | None = None
    workers: list[rig.Worker] = []
    vendor_task: asyncio.Task[None] | None = None
    log = (tmp / "boxes.log").open("ab")
    try:
        urls = cluster.urls(0, 1, 2)
        # Replica a on node 0 (the node the storm kills), replica b on node 1.
        replicas = [
            rig.start_relay(tmp, "relay-a", urls, relay_pw, "3.1.1"),
            rig.start_relay(tmp, "relay-b", [urls[1], urls[2], urls[0]], relay_pw, "3.1.1"),
        ]
        for r in replicas:
            assert r.proc is not None
            await rig.wait_healthy(f"{r.root}/health", r.proc, r.name, 60)
        balancer = rig.start_haproxy(tmp, replicas)
        assert balancer.proc is not None
        await rig.wait_healthy(
            f"http://127.0.0.1:{balancer.port}/health", balancer.proc, "haproxy", 30
        )
        vendor = Vendor()
        vendor_task = asyncio.create_task(
            vendor.run(cluster.host, cluster.nodes[2].mqtt_port, vendor_pw), name="vendor"
        )
        await asyncio.wait_for(vendor.ready.wait(), 30)

        progress(f"{plan.boxes} boxes in {math.ceil(plan.boxes / plan.per_process)} processes")
        settings = {"protocol": "3.1.1", "reconnect_min": 1.0, "reconnect_max": 30.0}
        began = time.monotonic()
        for n in range(0, len(boxes), plan.per_process):
            workers.append(
                await rig.start_worker(boxes[n : n + plan.per_process], urls, settings, tmp, log)
            )

        def all_up() -> bool:
            return (
                rig.total(workers, "fleet") == plan.boxes
                and rig.total(workers, "orders") == plan.boxes
            )

        def alive() -> bool:
            for w in workers:
                if w.proc.returncode is not None:
                    raise RuntimeError(f"a box process exited ({w.proc.returncode})")
            return all_up()

        up_at = await wait_for(alive, plan.within, f"{plan.boxes} boxes connected", 0.1)
        connect_time = up_at - began
        progress(f"all {plan.boxes} boxes connected in {connect_time:.1f} s")
        await asyncio.sleep(1.0)
        memory = [(w.rss - w.base) / w.boxes for w in workers]

        sps = [b.selling_point for b in boxes]
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            feeder = Feeder(balancer.webhook_url, http)
            before = [await rig.relay_counts(r) for r in replicas]
            progress(f"steady: {plan.rate:g} webhooks/s for {plan.steady:g} s")
            t0 = time.monotonic()
            await feeder.steady(sps, plan.rate, plan.steady, "steady")
            steady_time = time.monotonic() - t0
            after = [await rig.relay_counts(r) for r in replicas]
            per_replica = [
                (a["published"] - b["published"]) / steady_time
                for a, b in zip(after, before, strict=True)
            ]
            progress(f"bursts: {plan.bursts} × {plan.burst} at once")
            burst_rates = []
            for _ in range(plan.bursts):
                t0 = time.monotonic()
                await feeder.burst(sps, plan.burst, "burst")
                burst_rates.append(plan.burst / (time.monotonic() - t0))
                await asyncio.sleep(1.0)

            progress("node 0 killed under the steady rate, then restarted")
            reconnects_before = rig.total(workers, "reconnects")
            on_node0 = 2 * sum(1 for b in boxes if b.selling_point % 3 == 0)
            storm = asyncio.create_task(
                feeder.steady(sps, plan.rate, plan.storm_rate_for, "storm"), name="storm"
            )
            await asyncio.sleep(2.0)
            killed = time.monotonic()
            cluster.kill(0)

            def back() -> bool:
                moved = rig.total(workers, "reconnects") - reconnects_before
                return moved >= on_node0 and all_up()

            back_at = await wait_for(back, plan.within, "every box back after the kill", 0.05)
            storm_time = back_at - killed
            progress(f"all back on nodes 1 and 2 in {storm_time:.1f} s; restarting node 0")
            t0 = time.monotonic()
            await asyncio.to_thread(cluster.start_node, 0)
            restart_time = time.monotonic() - t0
            await storm

        sent = len(feeder.sent)

        def arrived() -> bool:
            return rig.total(workers, "received") >= sent

        with contextlib.suppress(RuntimeError):
            await wait_for(arrived, 60, "every notification at its box", 0.1)
        await wait_for(
            lambda: (
                sum(len(v) for v in vendor.alerts.values()) >= 2 * plan.boxes
                or time.monotonic() - back_at > 60
            ),
            120,
            "alerts",
        )
        await asyncio.sleep(1.0)  # repeats, if any, arrive too
        results = [await w.stop() for w in workers]
        workers = []
    finally:
        for w in workers:
            if w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()
        if vendor_task is not None:
            vendor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await vendor_task
        if balancer is not None:
            rig.stop(balancer.proc)
        for r in replicas:
            rig.stop(r.proc)
        await asyncio.to_thread(cluster.stop)
        log.close()

    # -- the numbers ---------------------------------------------------------------------------
    arrivals: dict[tuple[int, int], list[float]] = {}
    for result in results:
        for sp, orders in result["arrivals"].items():
            for order, times in orders.items():
                arrivals[(int(sp), int(order))] = times
    lost = [key for key in feeder.sent if key not in arrivals]
    twice = sum(1 for key in feeder.sent if len(arrivals.get(key, ())) > 1)
    strays = [key for key in arrivals if key not in feeder.sent]
    latency: dict[str, list[float]] = {"steady": [], "burst": [], "storm": []}
    for key, (started, phase) in feeder.sent.items():
        if key in arrivals:
            latency[phase].append(arrivals[key][0] - started)
    alert_ids = [i for ids in vendor.alerts.values() for i in ids]
    alerts_once = len(set(alert_ids))
    complete = sum(1 for b in boxes if len(set(vendor.alerts.get(b.id, ()))) == 2)

    n = plan.boxes
    rows = [
        Row(
            "connections held",
            f"{2 * n} ({n} fleet links + {n} relay subscriptions, one user each) on 3 nodes;"
            f" all up {fmt_s(connect_time)} after the first box started",
            f"{n} boxes",
            verdict(True),
        ),
        latency_row(
            f"webhook → box's notification handler, {plan.rate:g}/s steady",
            latency["steady"],
            AIM_MS,
        ),
        latency_row(f"… in bursts of {plan.burst} at once", latency["burst"] or [math.nan], None),
        latency_row("… while a node dies and restarts", latency["storm"] or [math.nan], None),
        Row(
            "relay webhooks/s per replica, steady",
            ", ".join(f"{r.name} {v:.1f}/s" for r, v in zip(replicas, per_replica, strict=True))
            + f"; bursts: {min(burst_rates):.0f}–{max(burst_rates):.0f}/s through both",
            f"{plan.rate:g}/s in all",
            verdict(sum(per_replica) >= 0.95 * plan.rate),
        ),
        Row(
            "memory per simulated box",
            f"{sum(memory) / len(memory) / 1024:.0f} KiB"
            f" (RSS of {len(memory)} processes after connecting, less their start)",
            "no aim",
            "—",
        ),
        Row(
            "reconnect storm: node 0 killed",
            f"{on_node0} connections lost; all {n} boxes back on nodes 1–2 in"
            f" {fmt_s(storm_time)}; node 0 back (takes sessions) in {fmt_s(restart_time)}",
            "no aim",
            "—",
        ),
        Row(
            "nothing lost",
            f"{sent} notifications: {len(lost)} lost, {twice} twice (the box stores once),"
            f" {len(strays)} strays; alerts: {complete} of {n} boxes told both"
            f" (link down, resolved), {len(alert_ids) - alerts_once} repeats",
            "0 lost",
            verdict(not lost and not strays and complete == n and feeder.given_up == 0),
        ),
    ]
    notes = [
        f"Webhooks re-posted after a refusal or a dropped connection: {feeder.retried}"
        f" (given up: {feeder.given_up}); the latency counts from the first try.",
        f"Unreadable frames at the boxes: {sum(r['unreadable'] for r in results)}.",
    ]
    return rows, notes


def render(rows: list[Row]) -> list[str]:
    lines = ["| measure | result | aim | verdict |", "|---|---|---|---|"]
    return lines + [f"| {r.measure} | {r.result} | {r.aim} | {r.verdict} |" for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 boxes, a short run")
    parser.add_argument("--boxes", type=int, default=None, help="simulated boxes")
    parser.add_argument("--rate", type=float, default=None, help="steady webhooks per second")
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, args.boxes, args.rate)
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edged-fleet-") as tmp:
        header = machine_line(tmp)
        print(header, file=sys.stderr)
        rows, notes = asyncio.run(run(plan, Path(tmp)))
    took = time.monotonic() - began
    load_after = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    flags = " --quick" if args.quick else ""
    lines = [
        f"{header}.",
        f"edged {git_commit()}, {stamp}, `benchmarks/fleet{flags}` ({took:.0f} s):"
        f" {plan.boxes} boxes, {plan.rate:g} webhooks/s for {plan.steady:g} s,"
        f" {plan.bursts} bursts of {plan.burst}, node 0 killed under {plan.rate:g}/s;"
        f" 1-minute load average {load_before:.2f} before, {load_after:.2f} after.",
        "",
        *render(rows),
        "",
        *(f"- {note}" for note in notes),
    ]
    text = "\n".join(lines) + "\n"
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
