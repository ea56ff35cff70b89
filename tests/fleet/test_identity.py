"""The box id: from the config, the board serial, the machine id, or made once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edged.configtools import ConfigError, dump_toml
from edged.fleet.identity import (
    BoxIdentity,
    machine_id_box_id,
    resolve_identity,
    serial_id,
    valid_box_id,
)

MACHINE_ID = "3d1219c7c4c5404aaa1f6d2a48adfda4"


def identity_of(
    tmp_path: Path,
    serial: bytes | None,
    machine_id: str | None,
    *,
    configured: str = "",
    state_dir: Path | None = None,
) -> BoxIdentity:
    """The identity of a box whose serial and machine-id files hold these (None: absent)."""
    serial_file = tmp_path / "serial-number"
    machine_file = tmp_path / "machine-id"
    serial_file.unlink(missing_ok=True)
    machine_file.unlink(missing_ok=True)
    if serial is not None:
        serial_file.write_bytes(serial)
    if machine_id is not None:
        machine_file.write_text(machine_id + "\n")
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    return resolve_identity(
        configured=configured,
        serial_file=str(serial_file),
        machine_id_file=str(machine_file),
        state_dir=state_dir,
        model_files=(str(model),),
    )


def test_the_board_serial_comes_first(tmp_path: Path) -> None:
    # The device tree's serial-number ends in a NUL byte.
    identity = identity_of(tmp_path, b"10000000A1b2C3d4\x00", MACHINE_ID)
    assert identity.box_id == "10000000a1b2c3d4"
    assert identity.source == "serial"
    assert identity.serial == "10000000a1b2c3d4"
    assert identity.board_model == "Raspberry Pi 4 Model B Rev 1.5"
    assert identity.hostname == "edged-10000000a1b2c3d4"


def test_the_machine_id_is_hashed_never_shown(tmp_path: Path) -> None:
    for blank in (None, b"", b"0000000000000000\x00", b"\x00"):
        identity = identity_of(tmp_path, blank, MACHINE_ID)
        assert identity.source == "machine-id"
        assert MACHINE_ID[:8] not in identity.box_id
        assert len(identity.box_id) == 16 and valid_box_id(identity.box_id)
    # Stable: the same machine always gets the same id; another machine another one.
    assert machine_id_box_id(MACHINE_ID) == machine_id_box_id(MACHINE_ID.upper())
    assert machine_id_box_id(MACHINE_ID) != machine_id_box_id("f" * 32)
    assert machine_id_box_id("not a machine id") == ""


def test_made_once_and_kept_when_nothing_else(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = identity_of(tmp_path, None, None, state_dir=state)
    again = identity_of(tmp_path, None, None, state_dir=state)
    assert first.source == "state" and first.box_id == again.box_id
    assert (state / "box-id").read_text().strip() == first.box_id
    other = identity_of(tmp_path, None, None, state_dir=tmp_path / "s2")
    assert other.box_id != first.box_id


def test_configured_id_wins_and_is_checked(tmp_path: Path) -> None:
    identity = identity_of(tmp_path, b"abc1", MACHINE_ID, configured="shop-12")
    assert (identity.box_id, identity.source, identity.serial) == ("shop-12", "config", "abc1")
    with pytest.raises(ValueError):
        identity_of(tmp_path, None, None, configured="Shop 12")


def test_serial_forms() -> None:
    assert serial_id("  00000000 ") == ""
    assert serial_id("SN-12:34") == "sn1234"
    long = serial_id("x" * 80)
    assert len(long) == 16 and valid_box_id(long)
    for bad in ("", "-a", "a-", "A", "a/b", "a" * 64, "été"):
        assert not valid_box_id(bad), bad


def test_config_key_and_cli(tmp_path: Path) -> None:
    serial = tmp_path / "serial"
    serial.write_bytes(b"00000000deadbeef\x00")
    doc = {
        "box": {
            "state_dir": str(tmp_path / "st"),
            "serial_file": str(serial),
            "machine_id_file": str(tmp_path / "none"),
        },
        "sinqro": {"server_token": "t"},
    }
    path = tmp_path / "edged.toml"
    path.write_text(dump_toml(doc))
    run = subprocess.run(
        [sys.executable, "-m", "edged.cli", "box-id", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["00000000deadbeef"]
    verbose = subprocess.run(
        [sys.executable, "-m", "edged.cli", "box-id", "--verbose", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "source: serial" in verbose.stdout and "hostname: edged-00000000deadbeef" in (
        verbose.stdout
    )
    doc["box"]["id"] = "Not Valid"
    path.write_text(dump_toml(doc))
    from edged.config import load_config

    with pytest.raises(ConfigError, match=r"box\.id"):
        load_config(path)
