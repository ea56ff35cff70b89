"""The relay's systemd unit, read by systemd's own tools."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edged-relay.service"


def settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and line[0] not in "#;[":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_relay_unit_verifies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / UNIT.name)
    program = root / shlex.split(settings(UNIT)["ExecStart"][0])[0].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", UNIT.name],
        capture_output=True,
        text=True,
    )
    assert result.stderr == "" and result.returncode == 0, result.stderr


def test_the_relay_unit_is_tight() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for edged-relay\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
    s = settings(UNIT)
    assert shlex.split(s["ExecStart"][0]) == [
        "/opt/edged/venv/bin/edged",
        "relay",
        "--config",
        "/etc/edged/relay.toml",
    ]
    assert s["EnvironmentFile"] == ["-/etc/edged/relay.env"]
    assert s["DynamicUser"] == ["yes"] and s["Restart"] == ["always"]
    assert s["RestartPreventExitStatus"] == ["78"]
    # Room for relay.max_connections (512) beside the broker, logs and TLS.
    assert int(s["LimitNOFILE"][0]) >= 4096
