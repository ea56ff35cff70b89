"""The systemd unit and its companions, read by systemd's own tools where they exist."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
FIRSTBOOT = REPO / "image" / "firstboot"
UNIT = SYSTEMD / "edged.service"
FAILURE_UNIT = SYSTEMD / "edged-failure.service"
MAX_EXPOSURE = 1.7
UNITS = (
    UNIT,
    FAILURE_UNIT,
    FIRSTBOOT / "edged-hostname.service",
    FIRSTBOOT / "edged-provision.service",
    FIRSTBOOT / "edged-provision.path",
    SYSTEMD / "edged-onboard.service",
    SYSTEMD / "edged-update.service",
    SYSTEMD / "edged-update.path",
)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, by key, in order (sections folded)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def fake_root(tmp_path: Path) -> Path:
    """A root with the host's stock units, edged's units, and the programs they start."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, units / unit.name)
        settings = unit_settings(unit)
        for key in (
            "ExecStartPre",
            "ExecStart",
            "ExecStartPost",
            "ExecStopPost",
            "ExecReload",
            "ExecCondition",
        ):
            for command in settings.get(key, []):
                program = root / shlex.split(command)[0].lstrip("+-@!:").lstrip("/")
                if program.exists():
                    continue
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    return root


def test_units_verify_cleanly(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            f"--root={root}",
            "--man=no",
            *(unit.name for unit in UNITS),
        ],
        capture_output=True,
        text=True,
    )
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    unit = root / "etc/systemd/system/edged.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strikt"))
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", "edged.service"],
        capture_output=True,
        text=True,
    )
    assert "strikt" in result.stderr


def test_security_exposure() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for edged\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_onboarding_unit_exposure() -> None:
    """The hotspot helper runs as root (NetworkManager's keyfiles and D-Bus): nothing but
    port 80, a syscall filter and the Protect*/Restrict* set."""
    unit = SYSTEMD / "edged-onboard.service"
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
    )
    match = re.search(
        r"Overall exposure level for edged-onboard\.service: ([0-9.]+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
    settings = unit_settings(unit)
    assert settings["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]


def test_unit_contract() -> None:
    """What the daemon, the image and the docs rely on."""
    s = unit_settings(UNIT)

    def one(key: str) -> str:
        (value,) = s[key]
        return value

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert shlex.split(one("ExecStart")) == [
        "/opt/edged/venv/bin/edged",
        "run",
        "--config",
        "/etc/edged/edged.toml",
    ]
    assert one("EnvironmentFile") == "-/etc/edged/edged.env"
    assert one("User") == "edged"
    assert set(one("SupplementaryGroups").split()) == {"gpio", "lp", "dialout"}
    assert one("StateDirectory") == "edged"
    assert one("ConfigurationDirectory") == "edged"
    assert one("Restart") == "always"
    assert int(one("StartLimitBurst")) > 1
    assert one("WatchdogSec").endswith("s")
    assert one("KillSignal") == "SIGTERM"
    assert one("UMask") == "0077"
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    assert one("DevicePolicy") == "closed"
    assert one("MemoryDenyWriteExecute") == "yes"
    assert "PrivateUsers" not in s  # breaks device access through supplementary groups
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    for device in ("char-gpiochip", "char-ttyUSB", "char-ttyACM", "char-ttyAMA", "/dev/serial0"):
        assert device in allowed
    assert "char-usb" in allowed  # usblp's /dev/usb/lp*
    # No libusb in edged: no raw USB device nodes, no netlink hot-plug socket.
    assert "char-usb_device" not in allowed
    assert "AF_NETLINK" not in one("RestrictAddressFamilies").split()
    # The stop timeout covers one Sinqro request in flight (request_timeout's default is 10 s).
    assert int(one("TimeoutStopSec").rstrip("s")) >= 20
    # Bounded resources; descriptors well above the 1024 a slowloris exhausted.
    assert int(one("LimitNOFILE")) >= 4096
    assert one("MemoryMax").endswith("M") and int(one("MemoryMax")[:-1]) >= 256
    assert 32 <= int(one("TasksMax")) <= 256
    # Time: pulled in, ordered after, never waited for by a dependency on time-wait-sync.
    assert "time-sync.target" in one("Wants").split()
    assert "time-sync.target" in one("After").split()
    # A crash loop is never the end: the failure unit blinks, logs and starts edged again.
    assert one("OnFailure") == "edged-failure.service"
    assert int(one("StartLimitBurst")) >= 3


def test_failure_unit_restarts_edged_only_after_its_full_time() -> None:
    s = unit_settings(FAILURE_UNIT)
    (start,) = s["ExecStart"]
    argv = shlex.split(start)
    assert argv[:2] == ["/opt/edged/venv/bin/edged", "failure-led"]
    assert float(argv[argv.index("--retry-after") + 1]) >= 60
    assert "Conflicts" not in s  # it would cancel edged's own restart (OnFailure= runs first)
    # An alarm only when edged is still down after its restart delay.
    (condition,) = s["ExecCondition"]
    assert condition.startswith("+")  # systemd's own socket: no D-Bus needed
    assert shlex.split(condition)[1:] == ["failure-led", "--check", "edged.service"]
    edged = unit_settings(UNIT)
    assert "-+/bin/systemctl stop edged-failure.service" in edged["ExecStartPre"]
    (stop_post,) = s["ExecStopPost"]
    assert stop_post.startswith("+/bin/sh -c ")
    script = shlex.split(stop_post[1:])[2]
    # The script with a stand-in systemctl that records its calls: the 5 minutes ran out
    # (exit 0), edged started by hand (SIGTERM from Conflicts=), the alarm itself failed.
    assert _run_stop_post(script, "exited", "0") == [
        "reset-failed edged.service",
        "--no-block start edged.service",
    ]
    assert _run_stop_post(script, "killed", "TERM") == []
    assert _run_stop_post(script, "exited", "1") == []
    assert s["User"] == ["edged"] and "char-gpiochip rw" in s["DeviceAllow"]


def _run_stop_post(script: str, code: str, status: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "calls"
        stand_in = Path(tmp) / "systemctl"
        stand_in.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
        stand_in.chmod(0o755)
        env = {"PATH": f"{tmp}:/usr/bin:/bin", "EXIT_CODE": code, "EXIT_STATUS": status}
        subprocess.run(["/bin/sh", "-c", script], env=env, check=True)
        return log.read_text().splitlines() if log.exists() else []


def test_hardware_watchdog_dropin() -> None:
    text = (SYSTEMD / "edged-watchdog.conf").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert "[Manager]" in text
    # The Pi's bcm2835 watchdog cannot count past about 15 s.
    assert 5 <= int(settings["RuntimeWatchdogSec"].rstrip("s")) <= 15


def test_sysusers() -> None:
    lines = [
        line.split()
        for line in (SYSTEMD / "edged.sysusers").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[[x[:2] for x in lines].index(["u", "edged"])][:3] == ["u", "edged", "-"]
    members = {x[2] for x in lines if x[0] == "m" and x[1] == "edged"}
    assert members == {"gpio", "lp", "dialout"}


def test_sysusers_applies_to_an_empty_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        (tmp_path / "etc" / name).write_text("")
    conf = tmp_path / "edged.conf"
    shutil.copy(SYSTEMD / "edged.sysusers", conf)
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    group = (tmp_path / "etc/group").read_text()
    for name in ("gpio", "lp", "dialout"):
        assert re.search(rf"^{name}:x:\d+:edged$", group, re.M), group
    assert re.search(
        r"^edged:x:\d+:\d+:.*:/usr/sbin/nologin$", (tmp_path / "etc/passwd").read_text(), re.M
    )


# -- udev rules: systemd 252 has no `udevadm verify`, so check the syntax here --------------

_MATCH_OPS = ("==", "!=")
_ASSIGN_OPS = ("=", "+=", "-=", ":=")
_KEYS = re.compile(
    r"^(ACTION|DEVPATH|KERNEL|KERNELS|NAME|SYMLINK|SUBSYSTEM|SUBSYSTEMS|DRIVER|DRIVERS|"
    r"ATTR\{[^}]+\}|ATTRS\{[^}]+\}|ENV\{[^}]+\}|TAG|TAGS|TEST|PROGRAM|RESULT|GROUP|OWNER|MODE|"
    r"RUN|IMPORT\{[^}]+\}|OPTIONS|LABEL|GOTO)$"
)
_TOKEN = re.compile(r'\s*([A-Z]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse_udev_line(line: str) -> list[tuple[str, str, str]]:
    tokens = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        assert m, f"cannot parse at {line[pos:]!r}"
        key, op, value = m.group(1), m.group(2), m.group(3)
        assert _KEYS.match(key), f"unknown key {key}"
        assert op in _MATCH_OPS + _ASSIGN_OPS
        tokens.append((key, op, value))
        pos = m.end()
    return tokens


@pytest.mark.parametrize("name", ["99-edged-printers.rules", "99-edged-gpio.rules"])
def test_udev_rules(name: str) -> None:
    rules = [
        line
        for line in (SYSTEMD / name).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules
    for line in rules:
        tokens = parse_udev_line(line)
        assert any(op in _MATCH_OPS for _, op, _ in tokens), line
        assigned = {k: v for k, op, v in tokens if op in _ASSIGN_OPS}
        assert assigned.get("MODE") == "0660", line
        assert assigned.get("GROUP") in {"lp", "gpio"}, line


def test_udev_parser_rejects_mistakes() -> None:
    with pytest.raises(AssertionError):
        parse_udev_line('SUBSYSTEM=="usb", GROUP="lp" MODE="0660"')
    with pytest.raises(AssertionError):
        parse_udev_line('SUBSYTEM=="usb", GROUP="lp"')


def test_avahi_service_matches_the_web_port() -> None:
    tree = ET.parse(SYSTEMD / "edged-http.avahi.service")
    service = tree.getroot().find("service")
    assert service is not None
    assert service.findtext("type") == "_http._tcp"
    config = tomllib.loads((REPO / "config" / "edged.toml").read_text())
    assert service.findtext("port") == str(config["web"]["port"])


def test_journald_dropin() -> None:
    text = (SYSTEMD / "edged-journald.conf").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert text.count("[Journal]") == 1
    assert settings["Storage"] == "volatile"
    assert settings["RuntimeMaxUse"].endswith("M")
    assert settings["SystemMaxUse"].endswith("M")


def test_tmpfiles() -> None:
    entries = [
        line.split()
        for line in (SYSTEMD / "edged.tmpfiles").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    modes = {e[1]: (e[2], e[3], e[4]) for e in entries}
    assert modes["/etc/edged"] == ("0750", "root", "edged")
    assert modes["/etc/edged/edged.env"] == ("0600", "root", "edged")
    assert modes["/var/lib/edged"] == ("0750", "edged", "edged")


def test_shell_scripts_are_shellcheck_clean() -> None:
    scripts = [
        REPO / "image" / "build-image",
        REPO / "image" / "install-into-rootfs",
        REPO / "image" / "update-edged",
        FIRSTBOOT / "edged-hostname",
    ]
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_shell_scripts_are_strict() -> None:
    for script in (
        "build-image",
        "install-into-rootfs",
        "update-edged",
        "firstboot/edged-hostname",
    ):
        text = (REPO / "image" / script).read_text()
        assert text.startswith("#!/bin/bash\n"), script
        assert "\nset -euo pipefail\n" in text, script
        assert (REPO / "image" / script).stat().st_mode & 0o111, script


def test_hostname_from_serial(tmp_path: Path) -> None:
    root = tmp_path
    (root / "proc").mkdir()
    (root / "proc/cpuinfo").write_text("processor\t: 0\nSerial\t\t: 10000000A1B2C3D4\n")
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    env = {"EDGED_ROOT": str(root), "EDGED_SET_HOSTNAME": "0", "PATH": "/usr/bin:/bin"}
    script = str(FIRSTBOOT / "edged-hostname")
    subprocess.run([script], env=env, check=True, capture_output=True)
    assert (root / "etc/hostname").read_text() == "edged-c3d4\n"
    assert "127.0.1.1\tedged-c3d4\n" in (root / "etc/hosts").read_text()
    # Only once: a box renamed afterwards keeps its name.
    (root / "etc/hostname").write_text("front-counter\n")
    subprocess.run([script], env=env, check=True, capture_output=True)
    assert (root / "etc/hostname").read_text() == "front-counter\n"


def test_hostname_from_devicetree_or_mac(tmp_path: Path) -> None:
    env = {"EDGED_ROOT": str(tmp_path), "EDGED_SET_HOSTNAME": "0", "PATH": "/usr/bin:/bin"}
    (tmp_path / "etc").mkdir()
    dt = tmp_path / "sys/firmware/devicetree/base"
    dt.mkdir(parents=True)
    (dt / "serial-number").write_bytes(b"00000000deadbeef\0")
    subprocess.run([str(FIRSTBOOT / "edged-hostname")], env=env, check=True, capture_output=True)
    assert (tmp_path / "etc/hostname").read_text() == "edged-beef\n"

    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    nic = other / "sys/class/net/eth0"
    nic.mkdir(parents=True)
    (nic / "address").write_text("dc:a6:32:01:AB:CD\n")
    env["EDGED_ROOT"] = str(other)
    subprocess.run([str(FIRSTBOOT / "edged-hostname")], env=env, check=True, capture_output=True)
    assert (other / "etc/hostname").read_text() == "edged-abcd\n"
