"""The image's install step, end to end, in real Debian 12 (bookworm) and 13 (trixie) root
filesystems.

A minimal rootfs per release (tests/support/image_support.py: debootstrap, cached as a tarball) is
unpacked fresh for each run; ``image/install-into-rootfs`` installs a wheel built from this
tree with every dependency from ``requirements.lock``'s wheelhouse, hash-checked, in a
network namespace of its own (no index reachable). Then: the user, files, owners and modes,
the units as systemd-analyze reads them, provisioning, the daemon itself starting as the
edged user (with the unit's no-new-privileges and write-xor-execute memory where the kernel
allows them), reporting READY=1 and stopping on SIGTERM; signed update bundles refused when
their signature does not verify; and an update to a version that migrates the journal, then
a rollback that puts the journal back as it was, with every order kept. The same updates
under systemd as PID 1, with the health window, run in tests/image/test_image_boot.py.

Needs root, debootstrap, chroot, unshare and ssh-keygen (scripts/install-test-deps).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import SimulatorProcess
from image_support import (
    PYTHON,
    REPO,
    add_migration,
    build_wheel,
    installed_rootfs,
    make_bundle,
    prefetch,
    release_key,
    require_tools,
    signing_key,
    wheelhouse,
)
from ports import free_port

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

TOKEN = "ci-server-token-0123"

prefetch("bookworm", "trixie")  # cold caches: debootstrap while the other tests run

# One test worker runs both image modules: they share the cache and the CPU-heavy VM.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.xdist_group("image")]


@dataclass
class Rootfs:
    root: Path
    uid: int
    gid: int
    groups: dict[str, int]
    install_seconds: float
    suite: str
    work: Path
    key: Path

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def chroot(
        self,
        *argv: str,
        user: bool = False,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*argv, user=user),
            env=self.environment(env),
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )

    def command(self, *argv: str, user: bool = False) -> list[str]:
        cmd = [shutil.which("chroot") or "chroot"]
        if user:
            extra = ",".join(str(self.groups[g]) for g in ("gpio", "lp", "dialout"))
            cmd += [f"--userspec={self.uid}:{self.gid}", f"--groups={extra}"]
        return [*cmd, str(self.root), *argv]

    @staticmethod
    def environment(extra: dict[str, str] | None) -> dict[str, str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/"}
        env.update(extra or {})
        return env


def _ids(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, list[str]]]]:
    users = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        users[f[0]] = (int(f[2]), int(f[3]))
    groups = {}
    for line in (root / "etc/group").read_text().splitlines():
        f = line.split(":")
        groups[f[0]] = (int(f[2]), [m for m in f[3].split(",") if m])
    return users, groups


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def rootfs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rootfs]:
    require_tools("debootstrap", "chroot", "unshare", "ssh-keygen", "cp")
    suite: str = request.param
    work = tmp_path_factory.mktemp(f"image-{suite}")
    key, _ = release_key()
    root = work / "rootfs"
    took = installed_rootfs(suite, root)
    users, groups = _ids(root)
    uid, gid = users["edged"]
    mounts: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        mounts.append(root / "proc")
        subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        mounts.append(root / "dev")
        yield Rootfs(root, uid, gid, {g: groups[g][0] for g in groups}, took, suite, work, key)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_user_and_groups(rootfs: Rootfs) -> None:
    users, groups = _ids(rootfs.root)
    assert "edged" in users
    entry = next(
        line
        for line in rootfs.path("/etc/passwd").read_text().splitlines()
        if line.startswith("edged:")
    )
    assert entry.endswith(":/usr/sbin/nologin")
    for group in ("gpio", "lp", "dialout"):
        assert "edged" in groups[group][1], group
    assert groups["edged"][0] == rootfs.gid
    assert rootfs.uid < 1000  # a system user


def test_files_owners_and_modes(rootfs: Rootfs) -> None:
    r, uid, gid = rootfs, rootfs.uid, rootfs.gid
    assert owner(r.path("/etc/edged")) == (0, gid, 0o750)
    assert owner(r.path("/etc/edged/edged.toml")) == (0, gid, 0o640)
    assert owner(r.path("/etc/edged/edged.toml.d")) == (0, gid, 0o750)
    assert owner(r.path("/var/lib/edged")) == (uid, gid, 0o750)
    for path in (
        "/usr/lib/systemd/system/edged.service",
        "/usr/lib/systemd/system/edged-failure.service",
        "/usr/lib/systemd/system/edged-update.service",
        "/usr/lib/systemd/system/edged-update.path",
        "/etc/systemd/system.conf.d/50-edged-watchdog.conf",
        "/usr/lib/systemd/system/edged-hostname.service",
        "/usr/lib/systemd/system/edged-provision.service",
        "/usr/lib/systemd/system/edged-provision.path",
        "/usr/lib/sysusers.d/edged.conf",
        "/usr/lib/tmpfiles.d/edged.conf",
        "/etc/udev/rules.d/99-edged-printers.rules",
        "/etc/udev/rules.d/99-edged-gpio.rules",
        "/etc/systemd/journald.conf.d/50-edged.conf",
        "/etc/avahi/services/edged-http.service",
    ):
        assert owner(r.path(path)) == (0, 0, 0o644), path
    for path in ("/opt/edged/bin/update-edged", "/opt/edged/libexec/edged-hostname"):
        assert owner(r.path(path)) == (0, 0, 0o755), path
    wants = {
        "multi-user.target.wants/edged.service": "edged.service",
        "multi-user.target.wants/edged-provision.service": "edged-provision.service",
        "paths.target.wants/edged-provision.path": "edged-provision.path",
        "paths.target.wants/edged-update.path": "edged-update.path",
        "sysinit.target.wants/edged-hostname.service": "edged-hostname.service",
    }
    for link, unit in wants.items():
        target = os.readlink(r.path(f"/etc/systemd/system/{link}"))
        assert target == f"/usr/lib/systemd/system/{unit}"
    venv = os.readlink(r.path("/opt/edged/venv"))
    assert re.fullmatch(r"venvs/edged-[^/]+", venv)
    edged = r.path("/opt/edged/venv/bin/edged")
    assert edged.read_text().splitlines()[0] == f"#!/opt/edged/{venv}/bin/python"
    assert os.readlink(r.path("/usr/local/bin/edged")) == "/opt/edged/venv/bin/edged"
    # Nothing of the install step is left behind.
    assert not r.path("/var/tmp/edged-install").exists()


def test_systemd_reads_the_units(rootfs: Rootfs) -> None:
    units = [
        "edged.service",
        "edged-failure.service",
        "edged-hostname.service",
        "edged-provision.service",
        "edged-provision.path",
        "edged-update.service",
        "edged-update.path",
    ]
    # The release's own systemd reads them (trixie's knows keys the host's does not).
    result = rootfs.chroot("systemd-analyze", "verify", "--man=no", *units, check=False)
    assert result.stderr == "" and result.returncode == 0, result.stderr
    tmpfiles = rootfs.chroot("systemd-tmpfiles", "--create", "edged.conf", check=False)
    assert tmpfiles.returncode == 0 and tmpfiles.stderr == "", tmpfiles.stderr
    assert owner(rootfs.path("/etc/edged")) == (0, rootfs.gid, 0o750)


def test_config_check_as_installed(rootfs: Rootfs) -> None:
    env = {"EDGED_SERVER_TOKEN": TOKEN}
    ok = rootfs.chroot("/usr/local/bin/edged", "check-config", "/etc/edged/edged.toml", env=env)
    assert "OK" in ok.stdout
    missing = rootfs.chroot(
        "/usr/local/bin/edged", "check-config", "/etc/edged/edged.toml", check=False
    )
    assert missing.returncode != 0
    assert "EDGED_SERVER_TOKEN" in missing.stderr


def test_provisioning_in_the_rootfs(rootfs: Rootfs) -> None:
    boot = rootfs.path("/boot/firmware")
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "edged-provision.toml").write_text(
        f'[sinqro]\nserver_token = "{TOKEN}"\nselling_point_id = 77\n'
        '[box]\nname = "CI box"\n'
        '[wifi]\nssid = "Shop"\npsk = "correct horse"\n'
    )
    rootfs.chroot(
        "/opt/edged/venv/bin/python",
        "-m",
        "edged.provision",
        "--boot",
        "/boot/firmware",
        "--etc",
        "/etc/edged",
    )
    assert list(boot.iterdir()) == []
    assert owner(rootfs.path("/etc/edged/edged.env")) == (0, rootfs.gid, 0o600)
    dropin = rootfs.path("/etc/edged/edged.toml.d/50-provision.toml")
    assert owner(dropin) == (0, rootfs.gid, 0o640)
    wifi = rootfs.path("/etc/NetworkManager/system-connections/edged-wifi.nmconnection")
    assert owner(wifi) == (0, 0, 0o600)
    # The daemon's user can read the result; systemd hands it the env file.
    shown = rootfs.chroot(
        "/usr/local/bin/edged",
        "check-config",
        "/etc/edged/edged.toml",
        "--show",
        user=True,
        env={"EDGED_SERVER_TOKEN": TOKEN},
    )
    assert '"selling_point_id": 77' in shown.stdout
    assert TOKEN not in shown.stdout


def _restricted() -> None:
    """In the child before exec: what the unit's NoNewPrivileges= and
    MemoryDenyWriteExecute= ask of the kernel, where this kernel supports it."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_mdwe, pr_mdwe_refuse_exec_gain = 38, 65, 1
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    libc.prctl(pr_set_mdwe, pr_mdwe_refuse_exec_gain, 0, 0, 0)


def _mdwe_supported() -> bool:
    """Whether a child started like the daemon really runs with W^X memory (PR_GET_MDWE)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"],
        preexec_fn=_restricted,
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip() == "1"


def test_daemon_starts_reports_ready_and_stops(rootfs: Rootfs) -> None:
    state = rootfs.path("/var/lib/edged/demo")
    state.mkdir()
    os.chown(state, rootfs.uid, rootfs.gid)
    name = f"edged-ci-notify-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(b"\0" + name.encode())  # abstract: reachable from inside the chroot
    listener.settimeout(1.0)
    argv = rootfs.command(
        "/opt/edged/venv/bin/edged",
        "demo",
        "--headless",
        "--state-dir",
        "/var/lib/edged/demo",
        "--web-port",
        str(free_port()),
        "--sim-port",
        str(free_port()),
        user=True,
    )
    mdwe = _mdwe_supported()
    log = rootfs.root.parent / "daemon.log"
    messages: list[str] = []
    started = time.monotonic()
    with log.open("w") as out, listener:
        proc = subprocess.Popen(
            argv,
            env=rootfs.environment({"NOTIFY_SOCKET": "@" + name}),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_restricted,
        )
        try:
            while not any("READY=1" in m for m in messages):
                assert proc.poll() is None, f"edged exited early:\n{log.read_text()}"
                assert time.monotonic() - started < 90, f"no READY=1:\n{log.read_text()}"
                with contextlib.suppress(TimeoutError):
                    messages.append(listener.recv(4096).decode())
            ready_after = time.monotonic() - started
            proc.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = proc.wait(timeout=30)  # the unit's TimeoutStopSec
            stop_took = time.monotonic() - stopped
            with contextlib.suppress(TimeoutError):
                while True:
                    messages.append(listener.recv(4096).decode())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print(
        f"install {rootfs.install_seconds:.1f} s, READY=1 after {ready_after:.1f} s, "
        f"stop {stop_took:.1f} s, W^X memory {'on' if mdwe else 'not supported here'}"
    )
    assert code == 0, log.read_text()
    assert any(m.startswith("STOPPING=1") for m in messages), messages
    # It ran as the edged user: its files in the state directory are edged's.
    journal_files = list(state.rglob("*.sqlite3"))
    assert journal_files
    assert {p.stat().st_uid for p in journal_files} == {rootfs.uid}
    assert pwd.getpwuid(0).pw_name == "root"


def test_lock_installed_offline_with_hashes(rootfs: Rootfs) -> None:
    """Exactly the locked versions are in the venv, installed with no index reachable."""
    frozen = rootfs.chroot("/opt/edged/venv/bin/python", "-m", "pip", "freeze", "--all").stdout
    installed = {
        name.lower().replace("_", "-"): version
        for name, _, version in (line.partition("==") for line in frozen.splitlines())
        if version
    }
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)(?: ; (.*?))?\s*\\?$", line)
        if match and "win32" not in (match.group(3) or ""):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    assert pins, "no pins read from requirements.lock"
    for name, version in pins.items():
        assert installed.get(name) == version, (name, version, installed.get(name))
    version = rootfs.chroot("/opt/edged/venv/bin/python", "--version").stdout.split()[1]
    assert version.startswith(PYTHON[rootfs.suite] + ".")
    assert rootfs.path("/etc/edged/update-signers").read_text().startswith("edged-release ")


# -- updates -------------------------------------------------------------------------------

UPDATE = "/opt/edged/bin/update-edged"


def _venvs(rootfs: Rootfs) -> tuple[str, str | None, list[str]]:
    prev = rootfs.path("/opt/edged/venv.previous")
    return (
        os.readlink(rootfs.path("/opt/edged/venv")),
        os.readlink(prev) if prev.is_symlink() else None,
        sorted(p.name for p in rootfs.path("/opt/edged/venvs").iterdir()),
    )


def _events(rootfs: Rootfs) -> list[dict[str, object]]:
    path = rootfs.path("/var/lib/edged/box-events.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stage(rootfs: Rootfs, bundle: Path, name: str | None = None) -> str:
    """Copy a bundle and its signature into the rootfs; returns its path inside."""
    staging = rootfs.path("/var/tmp/ci-bundles")
    staging.mkdir(exist_ok=True)
    target = staging / (name or bundle.name)
    shutil.copy(bundle, target)
    if bundle.with_name(bundle.name + ".sig").exists():
        shutil.copy(bundle.with_name(bundle.name + ".sig"), target.with_name(target.name + ".sig"))
    return "/var/tmp/ci-bundles/" + target.name


def test_a_badly_signed_update_is_refused_before_anything_changes(rootfs: Rootfs) -> None:
    wheel = build_wheel(rootfs.work / "dist-b", version="0.99.1")
    wheels = wheelhouse(PYTHON[rootfs.suite])
    stranger, _ = signing_key(rootfs.work / "stranger", "someone-else")
    unsigned = make_bundle(wheel, wheels, stranger, rootfs.work / "by-stranger")
    good = make_bundle(wheel, wheels, rootfs.key, rootfs.work / "signed")
    tampered = rootfs.work / "tampered.bundle"
    shutil.copy(good, tampered)
    with tampered.open("ab") as fh:
        fh.write(b"\0" * 512)  # one more (empty) tar block: still unpacks, no longer verifies
    shutil.copy(good.with_name(good.name + ".sig"), tampered.with_name("tampered.bundle.sig"))
    before = _venvs(rootfs)
    etc = sorted(str(p.relative_to(rootfs.root)) for p in rootfs.path("/etc/edged").rglob("*"))
    cases = {
        "untrusted key": _stage(rootfs, unsigned, "untrusted.bundle"),
        "tampered": _stage(rootfs, tampered),
        "no signature": _stage(rootfs, wheel, "nosig.bundle"),
    }
    for why, inside in cases.items():
        refused = rootfs.chroot(UPDATE, "--no-restart", inside, check=False)
        assert refused.returncode != 0, why
        assert "nothing changed" in refused.stderr, (why, refused.stderr)
        assert _venvs(rootfs) == before, why
        assert not list(rootfs.path("/opt/edged/staging").glob("bundle.*")), why
    after = sorted(str(p.relative_to(rootfs.root)) for p in rootfs.path("/etc/edged").rglob("*"))
    assert after == etc
    refusals = [e for e in _events(rootfs) if e["kind"] == "update_refused"]
    assert len(refusals) >= len(cases)
    shutil.rmtree(rootfs.path("/var/tmp/ci-bundles"))


def _journal_orders(path: Path) -> set[int]:
    """Order ids in the journal; none while the daemon is still creating it."""
    if not path.exists():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return {row[0] for row in db.execute("SELECT id FROM orders")}
    except sqlite3.OperationalError:  # no table yet: the first migration runs
        return set()


def _user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextlib.contextmanager
def _daemon(rootfs: Rootfs, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``edged run`` with the box's config, as the edged user, in the rootfs."""
    log = rootfs.work / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            rootfs.command(
                "/opt/edged/venv/bin/edged", "run", "-c", "/etc/edged/edged.toml", user=True
            ),
            env=rootfs.environment(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_restricted,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(what: str, check: Callable[[], bool], log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


@dataclass
class Shop:
    """A Sinqro simulator on the host and the rootfs's config pointing at it."""

    sim: SimulatorProcess
    env: dict[str, str]
    journal: Path
    log: Path

    def create(self, count: int) -> set[int]:
        """``count`` new orders; returns the ids of every order the cloud has."""
        r = httpx.post(f"{self.sim.root}/_sim/orders", json={"count": count}, timeout=10)
        r.raise_for_status()
        return {int(o["id"]) for o in httpx.get(f"{self.sim.root}/_sim/orders").json()}


@pytest.fixture(scope="module")
def shop(rootfs: Rootfs) -> Iterator[Shop]:
    with SimulatorProcess(log_path=rootfs.work / "sim.log") as sim:
        info = sim.info()
        dropin = rootfs.path("/etc/edged/edged.toml.d/90-ci.toml")
        dropin.write_text(
            f"[sinqro]\nselling_point_id = {info['sellingPointId']}\n"
            f'base_url = "{info["baseUrl"]}"\nwebsocket_url = "{info["websocketUrl"]}"\n'
            "poll_interval = 1.0\nstatus_refresh_interval = 2.0\nreconnect_min = 0.1\n"
            "reconnect_max = 1.0\n"
            f'[panel]\npin_factory = "mock"\n[web]\nport = {free_port()}\n'
        )
        os.chown(dropin, 0, rootfs.gid)
        env = {"EDGED_SERVER_TOKEN": DEFAULT_SERVER_TOKEN, "EDGED_USER_TOKEN": DEFAULT_USER_TOKEN}
        rootfs.path("/etc/edged/edged.env").write_text(
            "".join(f"{k}={v}\n" for k, v in env.items())
        )
        journal = rootfs.path("/var/lib/edged/edged.sqlite3")
        try:
            yield Shop(sim, env, journal, rootfs.work / "run.log")
        finally:
            dropin.unlink()


def test_a_normal_update_keeps_every_order(rootfs: Rootfs, shop: Shop) -> None:
    wheel = build_wheel(rootfs.work / "dist-n", version="0.99.1")
    bundle = make_bundle(wheel, wheelhouse(PYTHON[rootfs.suite]), rootfs.key, rootfs.work / "n")
    taken = shop.create(3)
    with _daemon(rootfs, shop.env):
        _wait_for("A stores the orders", lambda: _journal_orders(shop.journal) >= taken, shop.log)
    before = _journal_orders(shop.journal)
    a_venv = os.readlink(rootfs.path("/opt/edged/venv"))
    updated = rootfs.chroot(UPDATE, "--no-restart", _stage(rootfs, bundle), check=False)
    assert updated.returncode == 0, updated.stderr
    assert "0.99.1" in os.readlink(rootfs.path("/opt/edged/venv"))
    version = rootfs.chroot("/usr/local/bin/edged", "--version").stdout
    assert "0.99.1" in version
    later = shop.create(1)
    with _daemon(rootfs, shop.env):
        _wait_for(
            "the new version stores the next order",
            lambda: _journal_orders(shop.journal) >= later,
            shop.log,
        )
    assert _journal_orders(shop.journal) >= before  # nothing lost
    assert _events(rootfs)[-1]["kind"] == "update"
    # Back to A by hand: the schema did not move, so the journal stays as it is.
    rolled = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
    assert rolled.returncode == 0, rolled.stderr
    assert os.readlink(rootfs.path("/opt/edged/venv")) == a_venv
    assert _events(rootfs)[-1]["journal_restored"] is False
    assert _journal_orders(shop.journal) >= later


def test_update_that_migrates_then_rollback_keeps_every_order(rootfs: Rootfs, shop: Shop) -> None:
    """A takes orders; B (a schema migration) is installed and runs, takes one more order,
    then is rolled back: A runs again on the journal as it was before B, and the order that
    arrived under B is fetched again from Sinqro by A's reconcile."""
    wheels = wheelhouse(PYTHON[rootfs.suite])
    b_wheel = build_wheel(rootfs.work / "dist-m", version="0.99.2", change=add_migration)
    bundle = make_bundle(b_wheel, wheels, rootfs.key, rootfs.work / "migrating")
    journal, log, env = shop.journal, shop.log, shop.env
    create = shop.create
    # Version A takes orders.
    taken = create(5)
    with _daemon(rootfs, env):
        _wait_for(
            "A stores the orders",
            lambda: _journal_orders(journal) >= taken,
            log,
        )
    a_version = _user_version(journal)
    a_venv = os.readlink(rootfs.path("/opt/edged/venv"))

    # The update to B: verified, installed offline, config checked, journal backed up.
    updated = rootfs.chroot(UPDATE, "--no-restart", _stage(rootfs, bundle), check=False)
    assert updated.returncode == 0, updated.stderr
    backup = journal.with_name("edged.sqlite3.before-update")
    assert _user_version(backup) == a_version and _journal_orders(backup) == taken
    assert os.readlink(rootfs.path("/opt/edged/venv.previous")) == a_venv

    # B migrates the journal and takes one more order.
    late = create(1) - taken
    with _daemon(rootfs, env):
        _wait_for("B stores the late order", lambda: _journal_orders(journal) >= taken | late, log)
    assert _user_version(journal) == a_version + 1

    # Rolled back: A again, the journal as it was (B's kept beside it), A starts on it.
    rolled = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
    assert rolled.returncode == 0, rolled.stderr
    assert os.readlink(rootfs.path("/opt/edged/venv")) == a_venv
    assert _user_version(journal) == a_version
    assert _journal_orders(journal) == taken
    kept = list(journal.parent.glob("edged.sqlite3.failed-update-*"))
    assert [p for p in kept if not p.name.endswith(("-wal", "-shm"))]
    with _daemon(rootfs, env):
        # The reconcile after connecting fetches the order that arrived under B again.
        _wait_for(
            "A fetches the late order again",
            lambda: _journal_orders(journal) >= taken | late,
            log,
        )
    events = _events(rootfs)
    assert [e["kind"] for e in events if e["kind"] != "update_refused"][-1] == "rollback"
    assert events[-1]["journal_restored"] is True


# -- what root's updater must not be talked into ---------------------------------------------


def _installed_version(rootfs: Rootfs) -> str:
    return rootfs.chroot("/opt/edged/venv/bin/edged", "--version").stdout


def _version_here() -> str:
    text = (REPO / "pyproject.toml").read_text()
    found = re.search(r'(?m)^version = "([^"]+)"', text)
    assert found
    return found.group(1)


def test_an_older_or_the_same_version_is_refused_unless_asked_for(
    rootfs: Rootfs, shop: Shop
) -> None:
    """PEP 440 order, not string order: 0.1.0rc1 comes before 0.1.0 (and sorts after it as
    text). A signed older bundle is refused, and goes in with --allow-downgrade, recorded."""
    running = _version_here()
    older = f"{running}rc1"
    wheels = wheelhouse(PYTHON[rootfs.suite])
    old_bundle = make_bundle(
        build_wheel(rootfs.work / "dist-old", version=older), wheels, rootfs.key, rootfs.work / "o"
    )
    same_bundle = make_bundle(
        build_wheel(rootfs.work / "dist-same"), wheels, rootfs.key, rootfs.work / "s"
    )
    before = _venvs(rootfs)
    refused = rootfs.chroot(UPDATE, "--no-restart", _stage(rootfs, old_bundle), check=False)
    assert refused.returncode != 0
    assert f"edged {older} is older than the running {running}" in refused.stderr
    assert "nothing changed" in refused.stderr
    assert _venvs(rootfs) == before
    assert _events(rootfs)[-1]["kind"] == "update_refused"
    same = rootfs.chroot(UPDATE, "--no-restart", _stage(rootfs, same_bundle), check=False)
    assert same.returncode != 0 and "already running" in same.stderr, same.stderr
    assert _venvs(rootfs) == before

    forced = rootfs.chroot(
        UPDATE, "--no-restart", "--allow-downgrade", _stage(rootfs, old_bundle), check=False
    )
    assert forced.returncode == 0, forced.stderr
    assert older in _installed_version(rootfs)
    event = _events(rootfs)[-1]
    assert (event["kind"], event["to"], event["forced"]) == ("update", older, "downgrade")
    assert event["health"] == {"result": "skipped", "reason": "not restarted (--no-restart)"}
    back = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
    assert back.returncode == 0, back.stderr
    assert _venvs(rootfs)[0] == before[0]
    again = rootfs.chroot(
        UPDATE, "--no-restart", "--reinstall", _stage(rootfs, same_bundle), check=False
    )
    assert again.returncode == 0, again.stderr
    assert _venvs(rootfs)[0] != before[0]  # a new venv of the same version
    assert _events(rootfs)[-1]["forced"] == "reinstall"
    back = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
    assert back.returncode == 0, back.stderr
    assert _venvs(rootfs)[0] == before[0]


def test_a_bundle_swapped_after_its_signature_was_checked_is_not_what_goes_in(
    rootfs: Rootfs, shop: Shop
) -> None:
    """The file given is read once, into root's staging directory; the swap (between the
    verification and the unpacking, where the updater used to read it again) has no effect:
    the signed version goes in, not the stranger's."""
    wheels = wheelhouse(PYTHON[rootfs.suite])
    signed = make_bundle(
        build_wheel(rootfs.work / "dist-sw", version="0.99.5"),
        wheels,
        rootfs.key,
        rootfs.work / "sw-good",
    )
    stranger, _ = signing_key(rootfs.work / "stranger-sw", "mallory")
    evil = make_bundle(
        build_wheel(rootfs.work / "dist-ev", version="0.99.6"),
        wheels,
        stranger,
        rootfs.work / "sw-evil",
    )
    inside = _stage(rootfs, signed, "swapped.bundle")
    evil_inside = _stage(rootfs, evil, "evil.bundle")
    before = _venvs(rootfs)
    swap = f"cp {evil_inside} {inside}.new && mv -f {inside}.new {inside}"
    done = rootfs.chroot(
        UPDATE, "--no-restart", inside, env={"UPDATE_EDGED_AFTER_VERIFY": swap}, check=False
    )
    assert done.returncode == 0, done.stderr
    assert rootfs.path(inside).read_bytes() == evil.read_bytes()  # the swap happened
    assert "0.99.5" in _installed_version(rootfs)
    assert not any("0.99.6" in name for name in _venvs(rootfs)[2])
    # A symlink or a FIFO is not taken as a bundle at all.
    link = rootfs.path("/var/tmp/ci-bundles/link.bundle")
    link.symlink_to("swapped.bundle")
    shutil.copy(signed.with_name(signed.name + ".sig"), str(link) + ".sig")
    fifo = rootfs.path("/var/tmp/ci-bundles/fifo.bundle")
    os.mkfifo(fifo)
    shutil.copy(signed.with_name(signed.name + ".sig"), str(fifo) + ".sig")
    for name in ("link.bundle", "fifo.bundle"):
        refused = rootfs.chroot(UPDATE, "--no-restart", f"/var/tmp/ci-bundles/{name}", check=False)
        assert refused.returncode != 0 and "no usable bundle" in refused.stderr, refused.stderr
    back = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
    assert back.returncode == 0, back.stderr
    assert _venvs(rootfs)[0] == before[0]
    assert not list(rootfs.path("/opt/edged/staging").glob("bundle.*"))
    shutil.rmtree(rootfs.path("/var/tmp/ci-bundles"))


def _make_journal(path: Path, version: int, uid: int, gid: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
    os.chown(path, uid, gid)


def test_a_rollback_is_not_steered_by_what_the_edged_user_can_write(rootfs: Rootfs) -> None:
    """settings.toml (the edged user's) names another journal, and symlinks wait where the
    restore and the event line would write: root's files stay as they are, the journal of
    root's config is restored, as the edged user."""
    state = rootfs.path("/var/lib/edged")
    journal = state / "edged.sqlite3"
    aside = rootfs.work / "aside"  # the other tests' journal and events, put back after
    aside.mkdir()
    for p in [*state.glob("edged.sqlite3*"), state / "box-events.jsonl"]:
        if p.exists():
            shutil.move(p, aside / p.name)
    _make_journal(journal, 41, rootfs.uid, rootfs.gid)
    _make_journal(state / "edged.sqlite3.before-update", 40, rootfs.uid, rootfs.gid)
    victims = {name: rootfs.path(f"/etc/ci-victim-{name}") for name in ("tmp", "other", "events")}
    for name, victim in victims.items():
        victim.write_text(f"root's {name}\n")
        victim.chmod(0o644)
    planted = {
        state / "edged.sqlite3.tmp": "/etc/ci-victim-tmp",
        rootfs.path("/etc/ci-victim-other.tmp"): "/etc/ci-victim-other",
        state / "box-events.jsonl": "/etc/ci-victim-events",
    }
    for link, target in planted.items():
        link.symlink_to(target)
        os.lchown(link, rootfs.uid, rootfs.gid)
    settings = state / "settings.toml"
    settings.write_text('[journal]\npath = "/etc/ci-victim-other"\n')
    os.chown(settings, rootfs.uid, rootfs.gid)
    venv = os.readlink(rootfs.path("/opt/edged/venv"))
    previous = rootfs.path("/opt/edged/venv.previous")
    saved_previous = os.readlink(previous) if previous.is_symlink() else None
    previous.unlink(missing_ok=True)
    previous.symlink_to(venv)  # a rollback "to" the same venv: only the journal moves
    try:
        rolled = rootfs.chroot(UPDATE, "--rollback", "--no-restart", check=False)
        assert rolled.returncode == 0, rolled.stderr
        for name, victim in victims.items():
            assert victim.read_text() == f"root's {name}\n", name
            assert owner(victim) == (0, 0, 0o644), name
        assert rootfs.path("/etc/ci-victim-other.tmp").is_symlink()
        # The journal root's config names, put back from its backup, by and for edged.
        assert _user_version(journal) == 40
        assert owner(journal)[:2] == (rootfs.uid, rootfs.gid)
        assert not (state / "edged.sqlite3.tmp").exists()
        kept = [p for p in state.glob("edged.sqlite3.failed-update-*") if p.suffix != ".tmp"]
        assert [_user_version(p) for p in kept] == [41]
        assert "could not record the event" in rolled.stderr
    finally:
        for link in planted:
            link.unlink(missing_ok=True)
        for victim in victims.values():
            victim.unlink()
        settings.unlink()
        for p in state.glob("edged.sqlite3*"):
            p.unlink()
        for p in aside.iterdir():
            shutil.move(p, state / p.name)
        previous.unlink()
        if saved_previous:
            previous.symlink_to(saved_previous)
