"""The update's health window under a real systemd: the test rootfs of
tests/support/image_support.py (Debian 13, edged installed by image/install-into-rootfs)
booted as a container with systemd-nspawn, sharing the host's network so the daemon reaches
the Sinqro simulator on the host. A good update passes the window; an update whose daemon
starts and feeds the watchdog but whose journal does not take writes (its /health says so)
is rolled back, and the box runs the version before it again.

Needs root, debootstrap and systemd-nspawn (scripts/install-test-deps).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import SimulatorProcess
from image_support import (
    PYTHON,
    build_wheel,
    installed_rootfs,
    make_bundle,
    prefetch,
    release_key,
    require_tools,
    wheelhouse,
)
from ports import free_port

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

SUITE = "trixie"
prefetch(SUITE)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.xdist_group("image")]

GOOD, BROKEN = "0.99.1", "0.99.3"
# Over the unit's WatchdogSec (30 s; fed every 15 s): two feeds fit in it.
HEALTH = {"HEALTH_WINDOW": "45", "HEALTH_CHECKS": "3"}


def journal_refuses_writes(tree: Path) -> None:
    """The daemon starts and answers, but its journal reports every write failing."""
    engine = tree / "edged" / "journal" / "engine.py"
    text = engine.read_text()
    assert "class JournalEngine" in text and "JournalError" in text
    engine.write_text(
        text
        + "\n\ndef _ci_check(self: JournalEngine) -> None:\n"
        + '    raise JournalError("ci: the disk refuses writes")\n\n\n'
        + "JournalEngine.check = _ci_check  # type: ignore[method-assign]\n"
    )


def _container_init(nspawn: int) -> int | None:
    """The host PID of the container's systemd: the descendant of ``nspawn`` that is PID 1
    in its own namespace."""
    parents: dict[int, int] = {}
    nspid: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, StopIteration, ValueError):
            lines = (entry / "status").read_text().splitlines()
            parents[int(entry.name)] = int(
                next(x for x in lines if x.startswith("PPid:")).split()[1]
            )
            nspid[int(entry.name)] = next(x for x in lines if x.startswith("NSpid:")).split()[1:]
    for pid, ids in nspid.items():
        up = pid
        while up in parents and up != nspawn:
            up = parents[up]
        if up == nspawn and len(ids) > 1 and ids[-1] == "1":
            return pid
    return None


@dataclass
class Box:
    root: Path
    init: int
    port: int
    log: Path

    def run(
        self, *argv: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the booted container, as root."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.init),
                "-a",
                "env",
                "-i",
                "PATH=/usr/sbin:/usr/bin",
                "LANG=C.UTF-8",
                *extra,
                *argv,
            ],
            capture_output=True,
            text=True,
            check=check,
            timeout=900,
        )

    def health(self) -> dict[str, object]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=10)
        return dict(r.json())

    def events(self) -> list[dict[str, object]]:
        path = self.root / "var/lib/edged/box-events.jsonl"
        text = path.read_text() if path.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def venv(self) -> str:
        return os.readlink(self.root / "opt/edged/venv")

    def wait(self, what: str, check: object, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if callable(check) and check():
                    return
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, f"{what}\n{self.tail()}"
            time.sleep(0.5)

    def tail(self) -> str:
        unit = self.run("journalctl", "-u", "edged", "-n", "60", "--no-pager", check=False)
        return unit.stdout[-4000:]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_tools("debootstrap", "systemd-nspawn", "nsenter", "ssh-keygen")
    work = tmp_path_factory.mktemp("update-health")
    release_key()
    root = work / "rootfs"
    installed_rootfs(SUITE, root)
    uid, gid = (int(x) for x in _passwd(root, "edged"))
    port = free_port()
    with SimulatorProcess(log_path=work / "sim.log") as sim:
        info = sim.info()
        dropin = root / "etc/edged/edged.toml.d/90-ci.toml"
        dropin.write_text(
            f"[sinqro]\nselling_point_id = {info['sellingPointId']}\n"
            f'base_url = "{info["baseUrl"]}"\nwebsocket_url = "{info["websocketUrl"]}"\n'
            "poll_interval = 1.0\nreconnect_min = 0.1\nreconnect_max = 1.0\n"
            f'[panel]\npin_factory = "mock"\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        os.chown(dropin, 0, gid)
        env = root / "etc/edged/edged.env"
        env.write_text(
            f"EDGED_SERVER_TOKEN={DEFAULT_SERVER_TOKEN}\nEDGED_USER_TOKEN={DEFAULT_USER_TOKEN}\n"
        )
        os.chown(env, 0, gid)
        env.chmod(0o640)
        # No first boot here: the box is provisioned already.
        for unit in ("edged-provision.path", "edged-provision.service", "edged-hostname.service"):
            for link in (root / "etc/systemd/system").rglob(unit):
                link.unlink()
        log = work / "nspawn.log"
        with log.open("wb") as out:
            nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-q",
                    "-D",
                    str(root),
                    "--boot",
                    "--register=no",
                    "--keep-unit",  # no host systemd to make a scope for it
                    f"--machine=edged-ci-{os.getpid()}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while (init := _container_init(nspawn.pid)) is None:
                assert nspawn.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            b = Box(root, init, port, log)
            b.run("systemctl", "is-system-running", "--wait", check=False)
            b.wait("edged is online", lambda: b.health().get("link") == "online")
            assert uid == (root / "var/lib/edged").stat().st_uid
            yield b
        finally:
            nspawn.terminate()
            try:
                nspawn.wait(60)
            except subprocess.TimeoutExpired:
                nspawn.kill()
                nspawn.wait()
            shutil.rmtree(root, ignore_errors=True)


def _passwd(root: Path, user: str) -> tuple[str, str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return f[2], f[3]
    raise AssertionError(f"no user {user}")


def _stage(box: Box, bundle: Path) -> str:
    staging = box.root / "var/tmp/ci"
    staging.mkdir(exist_ok=True)
    shutil.copy(bundle, staging / bundle.name)
    shutil.copy(bundle.with_name(bundle.name + ".sig"), staging / (bundle.name + ".sig"))
    return f"/var/tmp/ci/{bundle.name}"


def _bundle(box: Box, version: str, change: object = None) -> Path:
    key, _ = release_key()
    wheel = build_wheel(
        box.root.parent / f"dist-{version}",
        version=version,
        change=change if callable(change) else None,
    )
    return make_bundle(wheel, wheelhouse(PYTHON[SUITE]), key, box.root.parent / version)


def test_a_healthy_update_passes_the_window(box: Box) -> None:
    done = box.run(
        "/opt/edged/bin/update-edged", _stage(box, _bundle(box, GOOD)), env=HEALTH, check=False
    )
    assert done.returncode == 0, done.stderr + box.tail()
    assert box.health()["version"] == GOOD
    event = box.events()[-1]
    assert event["kind"] == "update" and event["to"] == GOOD
    health = event["health"]
    assert isinstance(health, dict) and health["result"] == "pass", health
    assert "3 checks" in str(health["reason"])


def test_an_update_whose_journal_takes_no_writes_is_rolled_back(box: Box) -> None:
    before = box.venv()
    # Whatever runs now (the image's version, or GOOD after the test above): it comes back.
    running = box.health()["version"]
    bundle = _bundle(box, BROKEN, journal_refuses_writes)
    done = box.run("/opt/edged/bin/update-edged", _stage(box, bundle), env=HEALTH, check=False)
    assert done.returncode != 0
    assert "rolled back" in done.stderr and "journal is not writable" in done.stderr, done.stderr
    assert box.venv() == before
    event = box.events()[-1]
    assert (event["kind"], event["from"], event["to"]) == ("rollback", BROKEN, running)
    health = event["health"]
    assert isinstance(health, dict) and health["result"] == "fail"
    assert "journal is not writable" in str(health["reason"])
    box.wait("the version before runs again", lambda: box.health()["version"] == running)
    box.wait("and is online", lambda: box.health()["link"] == "online")
    assert box.health()["journal"] == "ok"
