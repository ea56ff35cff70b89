"""A test root filesystem booted for real: a disk image, Debian's kernel, QEMU, systemd as PID 1.

:func:`build_disk` turns a prepared root directory into an ext4 disk image (``mkfs.ext4 -d``,
no loop devices or mounts) and :class:`VM` boots it with ``qemu-system-x86_64``: TCG by
default (nested KVM is not dependable on CI machines), ``EDGED_QEMU_ACCEL=kvm`` to try KVM.
The machine has an emulated Intel 6300ESB watchdog, a virtio disk and NIC, and a
virtio-serial port on which a small agent (:data:`AGENT`, installed only into test images)
runs shell commands for the test and answers with their exit code and output. The NIC is
QEMU's user network with ``restrict=on``: the guest reaches nothing but the forwards the test
declares (``guestfwd``, e.g. a Sinqro simulator on the host's loopback).

``arch="arm64"`` boots an arm64 rootfs with ``qemu-system-aarch64 -M virt -cpu cortex-a72``
instead (Debian's arm64 kernel, the same i6300ESB on the board's PCI bus, the same agent).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

AGENT_PORT = "edged-ci"

AGENT = """#!/usr/bin/python3
# Test-only agent: runs the shell commands the host sends over a virtio-serial port and
# answers with exit code, stdout and stderr, one JSON object per line.
import json, os, subprocess, time

PORT = "/dev/virtio-ports/edged-ci"
while not os.path.exists(PORT):
    time.sleep(0.2)
fd = os.open(PORT, os.O_RDWR)
buf = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        time.sleep(0.2)
        continue
    if not chunk:
        time.sleep(0.05)
        continue
    buf += chunk
    while b"\\n" in buf:
        line, buf = buf.split(b"\\n", 1)
        try:
            req = json.loads(line)
        except ValueError:
            continue
        try:
            p = subprocess.run(req["sh"], shell=True, capture_output=True, stdin=subprocess.DEVNULL,
                               timeout=req.get("timeout", 600))
            out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
            resp = {"id": req["id"], "rc": p.returncode, "out": out, "err": err}
        except subprocess.TimeoutExpired:
            resp = {"id": req["id"], "rc": -9, "out": "", "err": "agent: timed out"}
        data = (json.dumps(resp) + "\\n").encode()
        while data:
            data = data[os.write(fd, data):]
"""

AGENT_UNIT = """[Unit]
Description=edged CI test agent (virtio-serial)
DefaultDependencies=no
After=local-fs.target

[Service]
ExecStart=/usr/local/sbin/edged-ci-agent
Restart=always

[Install]
WantedBy=sysinit.target
"""

NETWORK = """[Match]
Name=en*

[Network]
DHCP=ipv4
"""


def prepare_guest(root: Path) -> None:
    """Make an installed rootfs bootable as a VM: the agent, DHCP on the NIC, a hostname
    placeholder (first boot renames it), no root password needed."""
    agent = root / "usr/local/sbin/edged-ci-agent"
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_text(AGENT)
    agent.chmod(0o755)
    units = root / "etc/systemd/system"
    (units / "edged-ci-agent.service").write_text(AGENT_UNIT)
    wants = units / "sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "edged-ci-agent.service").symlink_to("/etc/systemd/system/edged-ci-agent.service")
    network = root / "etc/systemd/network/10-ci.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text(NETWORK)
    for target, unit in (
        ("multi-user.target", "systemd-networkd.service"),
        ("sockets.target", "systemd-networkd.socket"),
        ("network-online.target", "systemd-networkd-wait-online.service"),
    ):
        d = units / f"{target}.wants"
        d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (d / unit).symlink_to(f"/usr/lib/systemd/system/{unit}")
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    (root / "etc/machine-id").write_text("")  # a new one on first boot, as on a flashed box
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")


def build_disk(root: Path, disk: Path, size: str = "3G") -> None:
    """An ext4 filesystem image of ``root`` (owners, modes and symlinks kept)."""
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-E",
            "root_owner=0:0",
            "-d",
            str(root),
            str(disk),
            size,
        ],
        check=True,
    )


def _arm64_argv(
    kernel: Path, initrd: Path, disk: Path, nic: str, sock: Path, console: Path, memory_mb: int
) -> list[str]:
    """The box's architecture: QEMU's generic ``virt`` board with a Cortex-A72 (the
    Raspberry Pi 4's core), always TCG here. ``virt`` has no watchdog of its own; the
    i6300ESB sits on its PCI bus just as well, and Debian's arm64 kernel drives it."""
    return [
        shutil.which("qemu-system-aarch64") or "qemu-system-aarch64",
        "-machine", "virt",
        "-cpu", "cortex-a72",
        "-smp", "2",
        "-m", str(memory_mb),
        "-display", "none",
        "-no-reboot",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", "root=/dev/vda rw console=ttyAMA0 panic=-1 systemd.show_status=0 quiet",
        "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe",
        "-device", "i6300esb",
        "-nic", nic,
        "-chardev", f"socket,id=ci,path={sock},server=on,wait=off",
        "-device", "virtio-serial-pci",
        "-device", f"virtserialport,chardev=ci,name={AGENT_PORT}",
        "-serial", f"file:{console}",
    ]  # fmt: skip


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class VM:
    """One QEMU machine; :meth:`sh` runs a shell command in it through the agent."""

    def __init__(
        self,
        disk: Path,
        kernel: Path,
        initrd: Path,
        workdir: Path,
        *,
        mac: str,
        forwards: dict[str, int] | None = None,
        memory_mb: int = 1024,
        arch: str = "amd64",
    ) -> None:
        self.workdir = workdir
        self.console = workdir / "console.log"
        self.sock_path = workdir / "agent.sock"
        accel = os.environ.get("EDGED_QEMU_ACCEL", "tcg")
        nic = f"user,model=virtio-net-pci,mac={mac},restrict=on"
        for guest, host_port in (forwards or {}).items():
            socat = shutil.which("socat") or "socat"
            nic += f",guestfwd=tcp:{guest}-cmd:{socat} - TCP:127.0.0.1:{host_port}"
        if arch == "arm64":
            self.argv = _arm64_argv(
                kernel, initrd, disk, nic, self.sock_path, self.console, memory_mb
            )
        else:
            self.argv = self._x86_argv(kernel, initrd, disk, nic, accel, memory_mb)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._buf = b""
        self.booted_after = 0.0

    def _x86_argv(
        self, kernel: Path, initrd: Path, disk: Path, nic: str, accel: str, memory_mb: int
    ) -> list[str]:
        return [
            shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
            "-machine", f"q35,accel={accel}",
            "-cpu", "max" if accel == "tcg" else "host",
            "-smp", "2",
            "-m", str(memory_mb),
            "-display", "none",
            "-no-reboot",
            "-kernel", str(kernel),
            "-initrd", str(initrd),
            "-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 quiet",
            "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe",
            "-device", "i6300esb",
            "-nic", nic,
            "-chardev", f"socket,id=ci,path={self.sock_path},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", f"virtserialport,chardev=ci,name={AGENT_PORT}",
            "-serial", f"file:{self.console}",
        ]  # fmt: skip

    def start(self, timeout: float = 600) -> None:
        """Boot and wait until the agent answers."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=(self.workdir / "qemu.log").open("wb")
        )
        deadline = started + timeout
        while self.sock is None:
            self._alive()
            assert time.monotonic() < deadline, f"QEMU socket never appeared\n{self.tail()}"
            with contextlib.suppress(OSError):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.sock_path))
                self.sock = sock
            time.sleep(0.2)
        while True:
            self._alive()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the guest agent never answered\n{self.tail()}"
            with contextlib.suppress(TimeoutError):
                if self.sh("true", timeout=min(5.0, remaining)).rc == 0:
                    break
        self.booted_after = time.monotonic() - started

    def _alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"QEMU exited\n{self.tail()}"

    def tail(self, chars: int = 4000) -> str:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        qemu = self.workdir / "qemu.log"
        errors = qemu.read_text(errors="replace") if qemu.exists() else ""
        return f"--- console (end)\n{text[-chars:]}\n--- qemu\n{errors[-1000:]}"

    def sh(self, command: str, timeout: float = 300) -> Result:
        """Run ``command`` with /bin/sh in the guest, as root; raises TimeoutError when no
        answer comes within ``timeout`` seconds (the command may still run)."""
        assert self.sock is not None
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "sh": command, "timeout": timeout}) + "\n"
        self.sock.sendall(line.encode())
        deadline = time.monotonic() + timeout + 5
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    answer = json.loads(raw)
                    if answer.get("id") == request_id:
                        return Result(int(answer["rc"]), answer["out"], answer["err"])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {command!r}")
            self._alive()
            self.sock.settimeout(min(remaining, 2.0))
            with contextlib.suppress(TimeoutError):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"agent socket closed\n{self.tail()}")
                self._buf += chunk

    def ok(self, command: str, timeout: float = 300) -> str:
        """Run ``command``; assert it succeeded; its stdout."""
        result = self.sh(command, timeout)
        assert result.rc == 0, f"{command}\n{result}"
        return result.out

    def wait_until(self, command: str, what: str, timeout: float = 300) -> str:
        """Repeat ``command`` until it succeeds (within ``timeout`` seconds); its stdout."""
        deadline = time.monotonic() + timeout
        last = Result(-1, "", "")
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                last = self.sh(command, timeout=max(5.0, min(60.0, deadline - time.monotonic())))
                if last.rc == 0:
                    return last.out
            time.sleep(1)
        raise AssertionError(f"{what}: {command}\n{last}\n{self.tail(2000)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None and self.sock is not None:
            with contextlib.suppress(Exception):
                self.sock.sendall(
                    (
                        json.dumps({"id": 0, "sh": "systemctl poweroff", "timeout": 10}) + "\n"
                    ).encode()
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()
