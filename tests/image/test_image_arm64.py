"""edged on the box's own architecture, arm64, emulated with QEMU.

A Debian 13 (trixie) arm64 root filesystem (tests/image_support.py: a foreign debootstrap
whose maintainer scripts run under qemu-user through binfmt_misc, cached like the x86 one)
gets ``image/install-into-rootfs`` with the locked wheels for aarch64, as the image build
does it. Then:

* the installed daemon runs in that root (chroot, every binary under qemu-aarch64) as the
  edged user against the Sinqro simulator on the host's loopback: it says READY=1 on its
  sd_notify socket and prints an order from the simulator on a TCP printer stand-in;
* the root boots with ``qemu-system-aarch64 -M virt -cpu cortex-a72``,
  Debian's arm64 kernel and systemd as PID 1: edged.service reaches active (READY) and the
  hardware watchdog (an emulated i6300ESB on the board's PCI bus) is armed;
* ``image/build-image`` runs its whole pipeline, with ``BASE_IMAGE``, on a
  disk image made from the same arm64 root, to an ``.img.xz``.

All of it runs in ``make test-slow`` (times in the README's Tests section). Needs root,
debootstrap, qemu-user-static with binfmt-support, qemu-system-arm, mtools
(scripts/install-test-deps).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from escpos_decoder import decode
from harness import SimulatorProcess
from image_support import (
    LOCK,
    PYTHON,
    REPO,
    build_wheel,
    foreign_arch_ready,
    installed_rootfs,
    release_key,
    require_tools,
    rootfs_tarball,
    unpack,
    wheelhouse,
)
from ports import free_port
from printer_standin import TcpPrinter
from vm import VM, build_disk, prepare_guest

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

SUITE = "trixie"  # what Raspberry Pi OS is built on now
ARCH = "arm64"
EM_AARCH64 = 183  # ELF e_machine of arm64 binaries

# Everything here is in `make test-slow`, not CI: the install step alone (a pip install
# under qemu-user) takes about four minutes of one core, the root's first debootstrap far
# longer, and CI's image worker already carries the x86 image tests. So no background
# debootstrap at import either (CI imports this module and deselects it).
# The image tests share one worker: the cache, and the CPU the emulation eats.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.extended,
    pytest.mark.timeout(2400),
    pytest.mark.xdist_group("image"),
]


def _require() -> None:
    require_tools("debootstrap", "chroot", "unshare", "ssh-keygen", "qemu-aarch64-static")
    assert foreign_arch_ready(ARCH), (
        "qemu-aarch64 is not registered with binfmt_misc: run scripts/install-test-deps"
    )


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def _inside(root: Path, path: str) -> Path:
    """``path`` of the root filesystem, its symlinks followed inside ``root``."""
    here = root / path.lstrip("/")
    for _ in range(40):
        if not here.is_symlink():
            return here
        target = os.readlink(here)
        here = root / target.lstrip("/") if target.startswith("/") else here.parent / target
    raise AssertionError(f"symlink loop at {path}")


class Root:
    """The installed arm64 root, with /proc and /dev mounted for chroot."""

    def __init__(self, root: Path, took: float) -> None:
        self.root = root
        self.install_seconds = took
        ids = {}
        for line in (root / "etc/passwd").read_text().splitlines():
            f = line.split(":")
            ids[f[0]] = (int(f[2]), int(f[3]))
        self.uid, self.gid = ids["edged"]
        self.groups = {
            f[0]: int(f[2])
            for f in (line.split(":") for line in (root / "etc/group").read_text().splitlines())
        }

    def command(self, *argv: str, user: bool = False) -> list[str]:
        cmd = ["chroot"]
        if user:
            extra = ",".join(str(self.groups[g]) for g in ("gpio", "lp", "dialout"))
            cmd += [f"--userspec={self.uid}:{self.gid}", f"--groups={extra}"]
        return [*cmd, str(self.root), *argv]

    def run(self, *argv: str) -> str:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/"}
        done = subprocess.run(
            self.command(*argv), env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def arm64_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    _require()
    root = tmp_path_factory.mktemp("arm64") / "rootfs"
    took = installed_rootfs(SUITE, root, arch=ARCH)
    mounts: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        mounts.append(root / "proc")
        subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        mounts.append(root / "dev")
        yield Root(root, took)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_the_installed_venv_is_arm64(arm64_root: Root) -> None:
    root = arm64_root.root
    assert _elf_machine(_inside(root, "/opt/edged/venv/bin/python")) == EM_AARCH64
    site = next(root.glob("opt/edged/venvs/*/lib/python*/site-packages"))
    compiled = sorted(site.rglob("*.so"))
    assert compiled, "no compiled extension in the venv: the aarch64 wheels were not used"
    assert {_elf_machine(p) for p in compiled} == {EM_AARCH64}
    probe = "import platform, multidict._multidict as m; print(platform.machine(), m.__file__)"
    machine, module = arm64_root.run("/opt/edged/venv/bin/python", "-c", probe).split()
    assert machine == "aarch64"
    assert "aarch64" in module  # the C extension, not the pure-Python fallback


@contextlib.contextmanager
def _printer() -> Iterator[TcpPrinter]:
    """The TCP printer stand-in on a loop of its own, beside this synchronous test."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="printer", daemon=True)
    thread.start()
    printer = TcpPrinter("online")
    asyncio.run_coroutine_threadsafe(printer.start(), loop).result(30)
    try:
        yield printer
    finally:
        asyncio.run_coroutine_threadsafe(printer.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _printed_order(printer: TcpPrinter, order_id: int) -> bool:
    for job in list(printer.jobs):
        texts = [line.text.strip() for line in decode(job).lines]
        if f"Order {order_id}" in texts:
            return True
    return False


def test_the_daemon_reaches_ready_and_prints_an_order(arm64_root: Root, tmp_path: Path) -> None:
    root = arm64_root.root
    with SimulatorProcess(log_path=tmp_path / "sim.log") as sim, _printer() as printer:
        info = sim.info()
        dropin = root / "etc/edged/edged.toml.d/90-ci.toml"
        dropin.write_text(
            f"[sinqro]\nselling_point_id = {info['sellingPointId']}\n"
            f'base_url = "{info["baseUrl"]}"\nwebsocket_url = "{info["websocketUrl"]}"\n'
            "poll_interval = 1.0\nstatus_refresh_interval = 2.0\nrequest_timeout = 10.0\n"
            "reconnect_min = 0.2\nreconnect_max = 2.0\n"
            f'[panel]\npin_factory = "mock"\n[web]\nport = {free_port()}\n'
            f'[[printers]]\nname = "kitchen"\nuri = "{printer.uri}"\n'
            "timeout = 10.0\nqr_tracking = false\n"
        )
        os.chown(dropin, 0, arm64_root.gid)
        dropin.chmod(0o640)
        name = f"edged-ci-arm64-{os.getpid()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(b"\0" + name.encode())  # abstract: reachable from inside the chroot
        listener.settimeout(1.0)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/",
            "NOTIFY_SOCKET": "@" + name,
            "EDGED_SERVER_TOKEN": DEFAULT_SERVER_TOKEN,
            "EDGED_USER_TOKEN": DEFAULT_USER_TOKEN,
        }
        argv = arm64_root.command(
            "/opt/edged/venv/bin/edged", "run", "-c", "/etc/edged/edged.toml", user=True
        )
        log = tmp_path / "daemon.log"
        messages: list[str] = []
        started = time.monotonic()
        with log.open("wb") as out, listener:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                while not any("READY=1" in m for m in messages):
                    assert proc.poll() is None, f"edged exited early:\n{log.read_text()}"
                    assert time.monotonic() - started < 600, f"no READY=1:\n{log.read_text()}"
                    with contextlib.suppress(TimeoutError):
                        messages.append(listener.recv(4096).decode())
                ready_after = time.monotonic() - started
                r = httpx.post(f"{sim.root}/_sim/orders", json={"count": 1}, timeout=10)
                r.raise_for_status()
                order_id = max(int(o["id"]) for o in httpx.get(f"{sim.root}/_sim/orders").json())
                ordered = time.monotonic()
                while not _printed_order(printer, order_id):
                    assert proc.poll() is None, f"edged exited:\n{log.read_text()}"
                    assert time.monotonic() - ordered < 300, (
                        f"order {order_id} not printed:\n{log.read_text()[-3000:]}"
                    )
                    time.sleep(0.5)
                printed_after = time.monotonic() - ordered
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                dropin.unlink()
    print(
        f"\narm64: install {arm64_root.install_seconds:.0f} s, READY=1 after {ready_after:.0f} s,"
        f" order printed {printed_after:.0f} s after it was placed"
    )
    assert code == 0, log.read_text()[-3000:]
    journal = root / "var/lib/edged/edged.sqlite3"
    assert journal.stat().st_uid == arm64_root.uid  # it ran as the edged user


# -- booted under qemu-system-aarch64 --------------------------------------------------------

SINQRO = "10.0.2.100:8900"  # the simulator, as the guest sees it
MAC = "52:54:00:ed:a6:41"


@pytest.fixture(scope="module")
def arm64_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    _require()
    require_tools("qemu-system-aarch64", "mkfs.ext4", "socat")
    work = tmp_path_factory.mktemp("arm64-boot")
    root = work / "rootfs"
    installed_rootfs(SUITE, root, arch=ARCH)
    assert list(root.glob("usr/lib/modules/*/kernel/drivers/watchdog/i6300esb.ko*")), (
        "Debian's arm64 kernel has no i6300esb driver"
    )
    prepare_guest(root)
    with SimulatorProcess(log_path=work / "sim.log") as sim:
        info = sim.info()
        port = info["baseUrl"].split("//", 1)[1].split("/", 1)[0]
        dropin = root / "etc/edged/edged.toml.d/90-ci.toml"
        dropin.write_text(
            "[sinqro]\n"
            f'base_url = "{info["baseUrl"].replace(port, SINQRO)}"\n'
            f'websocket_url = "{info["websocketUrl"].replace(port, SINQRO)}"\n'
            "poll_interval = 2.0\nstatus_refresh_interval = 5.0\n"
            "reconnect_min = 0.5\nreconnect_max = 5.0\nrequest_timeout = 10.0\n"
            '[panel]\npin_factory = "mock"\n'
        )
        dropin.chmod(0o640)
        firmware = root / "boot/firmware"
        firmware.mkdir(parents=True, exist_ok=True)
        (firmware / "edged-provision.toml").write_text(
            f'[sinqro]\nserver_token = "{DEFAULT_SERVER_TOKEN}"\n'
            f'user_token = "{DEFAULT_USER_TOKEN}"\nselling_point_id = {info["sellingPointId"]}\n'
            '[box]\nname = "Casa Pepe"\n'
        )
        shutil.copy(sorted((root / "boot").glob("vmlinuz-*"))[-1], work / "vmlinuz")
        shutil.copy(sorted((root / "boot").glob("initrd.img-*"))[-1], work / "initrd.img")
        disk = work / "disk.raw"
        build_disk(root, disk)
        shutil.rmtree(root)
        vm = VM(
            disk,
            work / "vmlinuz",
            work / "initrd.img",
            work,
            mac=MAC,
            forwards={SINQRO: sim.port},
            arch=ARCH,
        )
        try:
            vm.start(timeout=1200)
            print(f"\narm64 guest booted in {vm.booted_after:.0f} s")
            yield vm
        finally:
            vm.stop()


@pytest.mark.extended  # minutes of full-system emulation: make test-slow
def test_the_arm64_box_boots_to_an_active_edged_with_the_watchdog_armed(arm64_vm: VM) -> None:
    vm = arm64_vm
    assert vm.ok("uname -m").strip() == "aarch64"
    assert vm.ok("cat /proc/1/comm").strip() == "systemd"
    vm.wait_until("systemctl is-active edged-provision.service", "provisioning ran", 900)
    vm.wait_until("systemctl is-active edged.service", "edged active", 900)
    # Type=notify: active means the daemon said READY=1.
    assert vm.ok("systemctl show edged -p Type --value").strip() == "notify"
    assert vm.ok("systemctl show edged -p NRestarts --value").strip() == "0"
    vm.wait_until(
        "python3 -c 'import json, urllib.request; "
        'h = json.load(urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=10)); '
        'raise SystemExit(h["link"] != "online")\'',
        "the link is online",
        600,
    )
    assert vm.ok("systemctl show -p RuntimeWatchdogUSec --value").strip() == "14s"
    assert "i6300ESB" in vm.ok("cat /sys/class/watchdog/watchdog0/identity")
    assert vm.ok("cat /sys/class/watchdog/watchdog0/state").strip() == "active"


# -- image/build-image on a Debian arm64 base ------------------------------------------------


def _base_image(tarball: Path, work: Path) -> Path:
    """A disk image laid out as Raspberry Pi OS's (a FAT boot partition with cmdline.txt,
    an ext4 root) from the debootstrapped arm64 root, built without loop devices."""
    root = work / "base-root"
    unpack(tarball, root)
    (root / "boot/firmware").mkdir(parents=True, exist_ok=True)
    boot_mb, root_mb = 64, 2048
    boot = work / "boot.vfat"
    subprocess.run(["mkfs.vfat", "-n", "bootfs", "-C", str(boot), str(boot_mb * 1024)], check=True)
    cmdline = work / "cmdline.txt"
    cmdline.write_text("console=serial0,115200 root=LABEL=rootfs rootfstype=ext4 rootwait\n")
    subprocess.run(["mcopy", "-i", str(boot), str(cmdline), "::cmdline.txt"], check=True)
    ext4 = work / "root.ext4"
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "rootfs",
            "-E",
            "root_owner=0:0",
            "-d",
            str(root),
            str(ext4),
            f"{root_mb}M",
        ],
        check=True,
    )
    shutil.rmtree(root)
    image = work / "debian-trixie-arm64.img"
    with image.open("wb") as fh:
        fh.truncate((1 + boot_mb + root_mb) * 2**20)
    table = f"label: dos\nstart=1MiB, size={boot_mb}MiB, type=c\nstart={1 + boot_mb}MiB, type=83\n"
    subprocess.run(["sfdisk", "-q", str(image)], input=table, text=True, check=True)
    for part, mb in ((boot, 1), (ext4, 1 + boot_mb)):
        subprocess.run(
            ["dd", f"if={part}", f"of={image}", "bs=1M", f"seek={mb}", "conv=notrunc,sparse"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        part.unlink()
    return image


def _debugfs(partition: Path, request: str) -> str:
    done = subprocess.run(
        ["debugfs", "-R", request, str(partition)], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.extended  # an apt-get and a pip install under qemu-user, then xz: make test-slow
def test_build_image_turns_a_debian_arm64_base_into_an_image(tmp_path: Path) -> None:
    _require()
    require_tools("mkfs.vfat", "mcopy", "sfdisk", "debugfs", "losetup", "parted", "xz")
    base = _base_image(rootfs_tarball(SUITE, ARCH), tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    # The wheelhouse build-image would download, from the tests' cache (hash-checked there).
    lock_key = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    shutil.copytree(wheelhouse(PYTHON[SUITE], "aarch64"), cache / f"wheels-3.13-{lock_key}")
    wheel = build_wheel(tmp_path / "dist")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "BASE_IMAGE": str(base),
        "RPIOS_RELEASE": SUITE,
        "UPDATE_SIGNERS": str(release_key()[1]),
        "EDGED_WHEEL": str(wheel),
        "OUT": str(out),
        "CACHE": str(cache),
        "EXTRA_PACKAGES": "fonts-dejavu-core",
        "IMAGE_GROW_MB": "256",
    }
    started = time.monotonic()
    built = subprocess.run(
        [str(REPO / "image" / "build-image")], env=env, capture_output=True, text=True
    )
    took = time.monotonic() - started
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    version = wheel.name.split("-")[1]
    name = f"edged-{version}-local-{SUITE}-arm64.img.xz"
    assert sorted(p.name for p in out.iterdir()) == [name, f"{name}.sha256"]
    check = subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=out, capture_output=True)
    assert check.returncode == 0, check.stdout
    print(f"\nbuild-image on a Debian arm64 base: {took:.0f} s")

    image = tmp_path / "built.img"
    with image.open("wb") as fh:
        subprocess.run(["xz", "-dc", str(out / name)], stdout=fh, check=True)
    layout = json.loads(
        subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, check=True).stdout
    )
    parts = layout["partitiontable"]["partitions"]
    assert len(parts) == 2
    assert parts[1]["size"] * 512 > 2048 * 2**20  # grown by IMAGE_GROW_MB
    # The boot partition got the first-boot files (mounted, or through mtools on a host
    # whose kernel has no FAT driver) and kept the base's cmdline.txt.
    boot = f"{image}@@{parts[0]['start'] * 512}"
    listing = subprocess.run(
        ["mdir", "-b", "-i", boot, "::"], capture_output=True, text=True, check=True
    ).stdout
    assert {"::/user-data", "::/meta-data", "::/cmdline.txt"} <= set(listing.split()), listing
    cmdline = subprocess.run(
        ["mtype", "-i", boot, "::cmdline.txt"], capture_output=True, text=True, check=True
    ).stdout
    assert "root=LABEL=rootfs" in cmdline
    rootpart = tmp_path / "root.ext4"
    subprocess.run(
        [
            "dd",
            f"if={image}",
            f"of={rootpart}",
            "bs=512",
            f"skip={parts[1]['start']}",
            f"count={parts[1]['size']}",
            "conv=sparse",
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    image.unlink()
    wants = _debugfs(rootpart, "ls /etc/systemd/system/multi-user.target.wants")
    assert "edged.service" in wants and "edged-onboard.service" in wants
    venvs = _debugfs(rootpart, "ls /opt/edged/venvs")
    assert f"edged-{version}-" in venvs
    status = _debugfs(rootpart, "cat /var/lib/dpkg/status")
    assert "Package: fonts-dejavu-core\nStatus: install ok installed" in status
    signers = _debugfs(rootpart, "cat /etc/edged/update-signers")
    assert signers == release_key()[1].read_text()
    assert _debugfs(rootpart, "cat /etc/machine-id") == ""
    # Nothing of the build is left in the image: no emulator, no install staging.
    assert (
        "File not found"
        in subprocess.run(
            ["debugfs", "-R", "stat /usr/bin/qemu-aarch64-static", str(rootpart)],
            capture_output=True,
            text=True,
        ).stderr
    )
    assert "edged-install" not in _debugfs(rootpart, "ls /var/tmp")
