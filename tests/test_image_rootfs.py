"""The image's install step, end to end, in a real Debian bookworm root filesystem.

A minimal rootfs (debootstrap, variant minbase, with python3, python3-venv, systemd and
ca-certificates from the Debian mirror this machine's apt uses) is built once and cached as
a tarball under ``$XDG_CACHE_HOME/edged-ci`` (or ``~/.cache/edged-ci``), keyed by its package
list; the dependency wheels are cached the same way, keyed by pyproject's dependencies.
Each run unpacks a fresh copy, runs ``image/install-into-rootfs`` with a wheel built from this
tree, offline (the chroot has no network), and then checks the result: the user, the files
and their owners and modes, the units as systemd-analyze reads them, provisioning, and the
daemon itself starting as the edged user (with the unit's no-new-privileges and
write-xor-execute memory where the kernel allows them), reporting READY=1 to a real notify
socket, and stopping cleanly on SIGTERM. Last, image/update-edged switches venvs and back.

Needs root, debootstrap and chroot (scripts/install-test-deps); fails without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
INCLUDE = ("python3", "python3-venv", "systemd", "ca-certificates")
TOKEN = "ci-server-token-0123"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def require_tools() -> None:
    """This test needs root and debootstrap; without them it fails, it does not skip."""
    assert os.geteuid() == 0, "the image test needs root (chroot, mounts, file owners)"
    for tool in ("debootstrap", "chroot"):
        assert shutil.which(tool), f"{tool} missing: run scripts/install-test-deps"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "edged-ci"
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 sources first, then sources.list)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            )
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "URIs" in fields:
                return fields["URIs"].split()[0]
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    pytest.fail("no Debian bookworm mirror configured for apt")


def rootfs_tarball() -> Path:
    mirror = debian_mirror()
    key = hashlib.sha256(f"{SUITE} minbase {','.join(INCLUDE)} {mirror}".encode()).hexdigest()
    tarball = cache_dir() / f"rootfs-{SUITE}-{key[:16]}.tar"
    if tarball.is_file():
        return tarball
    build = cache_dir() / f"build-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    try:
        started = time.monotonic()
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(build),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tmp = tarball.with_suffix(".tmp")
        subprocess.run(
            ["tar", "-C", str(build), "--numeric-owner", "-cpf", str(tmp), "."], check=True
        )
        tmp.rename(tarball)
        print(f"built and cached {tarball} in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tarball


def dependency_wheels() -> Path:
    """Wheels of edged's dependencies for the rootfs's Python 3.11, cached."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = sorted(project["dependencies"])
    key = hashlib.sha256("\n".join([sys.version[:4], *deps]).encode()).hexdigest()
    wheels = cache_dir() / f"wheels-{key[:16]}"
    if (wheels / ".complete").is_file():
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), *deps],
        check=True,
    )
    (wheels / ".complete").touch()
    return wheels


@dataclass
class Rootfs:
    root: Path
    uid: int
    gid: int
    groups: dict[str, int]
    install_seconds: float

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


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rootfs]:
    require_tools()
    tarball = rootfs_tarball()
    wheels = dependency_wheels()
    work = tmp_path_factory.mktemp("image")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work), str(REPO)],
        check=True,
    )
    (wheel,) = work.glob("edged-*.whl")
    root = work / "rootfs"
    root.mkdir()
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="fully_trusted")
    started = time.monotonic()
    subprocess.run(
        [
            str(REPO / "image" / "install-into-rootfs"),
            "--wheels",
            str(wheels),
            str(root),
            str(wheel),
        ],
        check=True,
    )
    took = time.monotonic() - started
    users, groups = _ids(root)
    uid, gid = users["edged"]
    mounts: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        mounts.append(root / "proc")
        subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        mounts.append(root / "dev")
        yield Rootfs(root, uid, gid, {g: groups[g][0] for g in groups}, took)
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
        "/etc/systemd/system.conf.d/50-edged-watchdog.conf",
        "/usr/lib/systemd/system/edged-hostname.service",
        "/usr/lib/systemd/system/edged-provision.service",
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
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={rootfs.root}", "--man=no", *units],
        capture_output=True,
        text=True,
    )
    assert result.stderr == "" and result.returncode == 0, result.stderr
    tmpfiles = subprocess.run(
        ["systemd-tmpfiles", f"--root={rootfs.root}", "--create", "edged.conf"],
        capture_output=True,
        text=True,
    )
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        str(_free_port()),
        "--sim-port",
        str(_free_port()),
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


def test_update_switches_venv_and_rolls_back(rootfs: Rootfs, tmp_path: Path) -> None:
    env_file = rootfs.path("/etc/edged/edged.env")
    if not env_file.exists():
        env_file.write_text(f"EDGED_SERVER_TOKEN={TOKEN}\n")
    first = os.readlink(rootfs.path("/opt/edged/venv"))
    staging = rootfs.path("/var/tmp/update")
    shutil.copytree(dependency_wheels(), staging / "wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(staging), str(REPO)],
        check=True,
    )
    (wheel,) = staging.glob("edged-*.whl")
    time.sleep(1.1)  # venv names carry a timestamp in seconds
    update = "/opt/edged/bin/update-edged"
    rootfs.chroot(
        update,
        "--no-restart",
        "--wheels",
        "/var/tmp/update/wheels",
        f"/var/tmp/update/{wheel.name}",
    )
    second = os.readlink(rootfs.path("/opt/edged/venv"))
    assert second != first
    assert os.readlink(rootfs.path("/opt/edged/venv.previous")) == first
    assert rootfs.path("/opt/edged/venv/bin/edged").is_file()
    listed = rootfs.chroot(update, "--list").stdout
    assert f"* {second}" in listed and f"- {first}" in listed

    rootfs.chroot(update, "--rollback", "--no-restart")
    assert os.readlink(rootfs.path("/opt/edged/venv")) == first
    assert os.readlink(rootfs.path("/opt/edged/venv.previous")) == second

    # A wheel that is not there changes nothing.
    failed = rootfs.chroot(update, "--no-restart", "/var/tmp/update/nope.whl", check=False)
    assert failed.returncode != 0 and "no such wheel" in failed.stderr
    assert os.readlink(rootfs.path("/opt/edged/venv")) == first
    shutil.rmtree(staging)
