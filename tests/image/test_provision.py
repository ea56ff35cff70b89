"""First-boot provisioning: a file on a fake boot partition applied to a fake /etc/edged."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from edged import provision
from edged.config import load_config

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[sinqro]
server_token = "srv-0123456789abcdef"
user_token = "usr.ABCdef_42"
selling_point_id = 1234

[box]
name = "Casa Pepe"
language = "es"

[[printers]]
name = "kitchen"
uri = "tcp://192.168.1.50:9100"
layout = "kitchen"

[wifi]
ssid = "Casa Pepe WiFi"
psk = "tortilla-2024"
"""


class Box:
    def __init__(self, root: Path) -> None:
        self.boot = root / "boot"
        self.etc = root / "etc" / "edged"
        self.nm = root / "etc" / "NetworkManager" / "system-connections"
        self.state = root / "var" / "lib" / "edged"
        for d in (self.boot, self.etc / "edged.toml.d", self.nm, self.state):
            d.mkdir(parents=True)
        shutil.copy(REPO / "config" / "edged.toml", self.etc / "edged.toml")
        (self.etc / "edged.toml.d" / "10-test.toml").write_text(
            f'[box]\nstate_dir = "{self.state}"\n'
        )

    @property
    def source(self) -> Path:
        return self.boot / provision.PROVISION_FILE

    def drop(self, text: str) -> None:
        self.source.write_text(text)

    def run(self) -> bool | None:
        return provision.provision(self.boot, self.etc, nm_dir=self.nm, group=os.getgid())

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        out = {}
        for base in (self.etc, self.nm):
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    out[str(p)] = (p.stat().st_mode, p.read_bytes())
        return out


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Box:
    for name in ("EDGED_SERVER_TOKEN", "EDGED_USER_TOKEN", "EDGED_METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return Box(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_good_file_is_applied_and_removed(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    box.drop(GOOD)
    assert box.run() is True

    assert not box.source.exists()
    assert list(box.boot.iterdir()) == []

    env = box.etc / "edged.env"
    assert mode(env) == 0o600
    assert env.stat().st_gid == os.getgid()
    pairs = provision.read_env_file(env)
    assert pairs == {
        "EDGED_SERVER_TOKEN": "srv-0123456789abcdef",
        "EDGED_USER_TOKEN": "usr.ABCdef_42",
    }

    dropin = box.etc / "edged.toml.d" / "50-provision.toml"
    assert mode(dropin) == 0o640
    assert dropin.stat().st_gid == os.getgid()
    text = dropin.read_text()
    assert "srv-0123456789abcdef" not in text
    assert "usr.ABCdef_42" not in text
    assert "wifi" not in text

    wifi = box.nm / "edged-wifi.nmconnection"
    assert mode(wifi) == 0o600
    keyfile = wifi.read_text()
    assert "ssid=Casa Pepe WiFi\n" in keyfile
    assert "psk=tortilla-2024\n" in keyfile
    assert "key-mgmt=wpa-psk" in keyfile

    # The daemon, given edged.env by systemd, loads the result.
    for key, value in pairs.items():
        monkeypatch.setenv(key, value)
    config = load_config(box.etc / "edged.toml")
    assert config.sinqro.server_token == "srv-0123456789abcdef"
    assert config.sinqro.selling_point_id == 1234
    assert config.box.name == "Casa Pepe"
    assert [p.name for p in config.printers] == ["kitchen"]
    assert config.box.state_dir == str(box.state)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[sinqro]\nserver_token = 'x'\nselling_pont_id = 3\n", "sinqro.selling_pont_id"),
        ("[sinqro]\nserver_token = 'x'\n[[printers]]\nname = 'a b'\nuri = 'x'\n", "printers"),
        ("[sinqro]\nselling_point_id = 3\n", "sinqro.server_token"),
        ("[sinqro]\nserver_token = 'has space'\n", "sinqro.server_token"),
        ("[sinqro]\nserver_token = 'x'\n[wifi]\nssid = 'Shop'\npsk = 'short'\n", "wifi.psk"),
        ("[sinqro]\nserver_token = 'x'\n[wifi]\npsk = '12345678'\n", "wifi.ssid"),
        ("[sinqro]\nserver_token = 'x'\n[wifi]\nssid = 'S'\nchannel = 6\n", "wifi.channel"),
        ("this is = not [toml\n", ""),
        # Paths and devices a file on the boot partition must not decide for root.
        ("[box]\nstate_dir = '../../../../etc'\n", "box.state_dir"),
        ("[box]\nstate_dir = '/var/lib/edged/../../../etc'\n", "box.state_dir"),
        ("[journal]\npath = '../../etc/passwd'\n", "journal.path"),
        ("[journal]\npath = '/etc/edged/edged.env'\n", "journal.path"),
        ("[box]\nserial_file = '/etc/shadow'\n", "box.serial_file"),
        (
            "[[printers]]\nname = 'p'\nuri = 'file:///etc/edged/edged.env'\n",
            "printers[0].uri",
        ),
        ("[[printers]]\nname = 'p'\nuri = 'file:///dev/../etc/passwd'\n", "printers[0].uri"),
        ("[[printers]]\nname = 'p'\nuri = 'serial:///tmp/fifo'\n", "printers[0].uri"),
        ("[[printers]]\nname = 'p'\nuri = 'virtual:///etc/cron.d'\n", "printers[0].uri"),
        ("[[printers]]\nname = 'p'\nuri = 'tcp://1.2.3.4'\nlogo = '../../x.png'\n", "logo"),
        ("[sinqro]\nserver_token = 'x'\n[box]\nname = '" + "N" * 49 + "'\n", "box.name"),
        ("[sinqro]\nserver_token = 'x'\n[box]\nname = \"Bar\\u001b[2J\"\n", "box.name"),
        (
            "[sinqro]\nserver_token = 'x'\n[[printers]]\nname = 'bar'\nuri = 'tcp://1.2.3.4'\n"
            "[[printers]]\nname = 'Bar'\nuri = 'tcp://1.2.3.5'\n",
            "differ only in case",
        ),
    ],
)
def test_bad_file_is_renamed_and_nothing_changes(box: Box, text: str, key: str) -> None:
    before = box.snapshot()
    box.drop(text)
    assert box.run() is False

    assert not box.source.exists()
    invalid = box.boot / "edged-provision.toml.invalid"
    assert invalid.read_text() == text
    reason = (box.boot / "edged-provision.toml.invalid.txt").read_text()
    assert key in reason
    assert "short" not in reason  # never echo a passphrase
    assert box.snapshot() == before


def test_process_environment_does_not_count(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon only sees edged.env, so a token in the provisioning tool's own
    environment must not make a file without one look valid."""
    monkeypatch.setenv("EDGED_SERVER_TOKEN", "from-my-shell")
    box.drop("[sinqro]\nselling_point_id = 7\n")
    assert box.run() is False
    assert os.environ["EDGED_SERVER_TOKEN"] == "from-my-shell"


def test_existing_env_file_is_updated_not_replaced(box: Box) -> None:
    env = box.etc / "edged.env"
    env.write_text("# mine\nEDGED_SERVER_TOKEN=old\nEDGED_METRICS_TOKEN=scrape-me\n")
    box.drop("[sinqro]\nuser_token = 'new-user'\nselling_point_id = 9\n")
    assert box.run() is True
    assert env.read_text() == (
        "# mine\nEDGED_SERVER_TOKEN=old\nEDGED_METRICS_TOKEN=scrape-me\nEDGED_USER_TOKEN=new-user\n"
    )
    assert mode(env) == 0o600


def test_wifi_only_keeps_previous_settings(box: Box) -> None:
    box.drop(GOOD)
    assert box.run() is True
    dropin = box.etc / "edged.toml.d" / "50-provision.toml"
    before = dropin.read_bytes()
    box.drop('[wifi]\nssid = "New;Net\\\\"\n')
    assert box.run() is True
    assert dropin.read_bytes() == before
    keyfile = (box.nm / "edged-wifi.nmconnection").read_text()
    # Unusual characters are written as NetworkManager's byte list; open network: no psk.
    assert "ssid=78;101;119;59;78;101;116;92;\n" in keyfile
    assert "wifi-security" not in keyfile


def test_no_file_is_nothing_to_do(box: Box) -> None:
    before = box.snapshot()
    assert box.run() is None
    assert box.snapshot() == before


def test_command_line(box: Box) -> None:
    box.drop("[nonsense]\n")
    argv = ["--boot", str(box.boot), "--etc", str(box.etc), "--nm-dir", str(box.nm)]
    argv += ["--group", str(os.getgid())]
    assert provision.main(argv) == 1
    box.drop(GOOD)
    assert provision.main(argv) == 0
    assert provision.main(argv) == 0  # nothing left to do


def test_a_huge_file_is_refused_unread(box: Box) -> None:
    """A 20 MB box name never reaches the TOML parser (nor the tickets)."""
    before = box.snapshot()
    box.drop("[box]\nname = '" + "x" * 20_000_000 + "'\n")
    assert box.run() is False
    reason = (box.boot / "edged-provision.toml.invalid.txt").read_text()
    assert "larger than 64 KiB" in reason
    assert box.snapshot() == before


def test_device_uris_under_dev_are_taken(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    box.drop(
        "[sinqro]\nserver_token = 'x'\n"
        "[[printers]]\nname = 'kitchen'\nuri = 'file:///dev/usb/lp0'\n"
        "[[printers]]\nname = 'bar'\nuri = 'serial:///dev/ttyUSB0?baudrate=19200'\n"
    )
    assert box.run() is True
    monkeypatch.setenv("EDGED_SERVER_TOKEN", "x")
    config = load_config(box.etc / "edged.toml")
    assert [p.uri for p in config.printers] == [
        "file:///dev/usb/lp0",
        "serial:///dev/ttyUSB0?baudrate=19200",
    ]
