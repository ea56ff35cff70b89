"""What the image build writes beside edged: the boot partition's first-boot files (cloud-init
on Trixie, edged-provision.toml on Bookworm), checked with cloud-init's own schema validator,
and the Raspberry Pi Imager os_list entry."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edged import provision

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image" / "build-image"
PROVISION = """[sinqro]
server_token = "srv-0123456789abcdef"
selling_point_id = 1234

[box]
name = "Casa Pepe \U0001f1ea\U0001f1f8"
language = "es"
"""
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl vendor"


def boot_files(tmp_path: Path, **env: str) -> Path:
    out = tmp_path / "boot"
    result = subprocess.run(
        [str(BUILD), "--boot-files", str(out)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def cloud_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#cloud-config\n")
    doc: dict[str, Any] = json.loads(text.split("\n", 1)[1])  # JSON is YAML
    return doc


def schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True
    )


def known_keys() -> set[str]:
    """Top-level keys cloud-init's schema defines (it lets unknown keys pass silently)."""
    out = subprocess.run(
        ["/usr/bin/python3", "-c", "import json; from cloudinit.config.schema import "
         "get_schema; s = get_schema(); "
         "keys = set(s.get('properties', {})); "
         "[keys.update(d.get('properties', {})) for d in s.get('$defs', {}).values()]; "
         "print(json.dumps(sorted(keys)))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return set(json.loads(out))


@pytest.fixture
def trixie(tmp_path: Path) -> Path:
    (tmp_path / "provision.toml").write_text(PROVISION, encoding="utf-8")
    (tmp_path / "keys").write_text(f"# the vendor's key\n{KEY}\n")
    return boot_files(
        tmp_path,
        RPIOS_RELEASE="trixie",
        EDGED_PROVISION=str(tmp_path / "provision.toml"),
        SSH_KEYS=str(tmp_path / "keys"),
        TIMEZONE="Europe/Madrid",
        LOCALE="es_ES.UTF-8",
        WIFI_SSID="Casa Pepe WiFi",
        WIFI_PSK="tortilla-2024",
        WIFI_COUNTRY="ES",
    )


def test_trixie_user_data_passes_cloud_inits_schema(trixie: Path) -> None:
    result = schema(trixie / "user-data")
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout, result.stderr
    doc = cloud_config(trixie / "user-data")
    assert set(doc) <= known_keys(), set(doc) - known_keys()
    assert doc["timezone"] == "Europe/Madrid" and doc["locale"] == "es_ES.UTF-8"
    assert doc["preserve_hostname"] is True  # the box names itself edged-<box id>
    (user,) = doc["users"]
    assert user["ssh_authorized_keys"] == [KEY] and user["lock_passwd"] is True
    assert doc["ssh_pwauth"] is False
    (written,) = doc["write_files"]
    assert written["path"] == "/boot/firmware/edged-provision.toml"
    assert written["content"] == PROVISION
    assert json.loads((trixie / "meta-data").read_text())["instance-id"].startswith("edged-")


def test_the_schema_check_catches_a_mistake(trixie: Path, tmp_path: Path) -> None:
    doc = cloud_config(trixie / "user-data")
    doc["users"][0]["lock_passwd"] = "sometimes"
    broken = tmp_path / "broken"
    broken.write_text("#cloud-config\n" + json.dumps(doc))
    assert schema(broken).returncode != 0


def test_trixie_network_config_is_netplan_wifi(trixie: Path) -> None:
    network = json.loads((trixie / "network-config").read_text())["network"]
    assert network["version"] == 2 and network["renderer"] == "NetworkManager"
    wlan = network["wifis"]["wlan0"]
    assert wlan["access-points"] == {"Casa Pepe WiFi": {"password": "tortilla-2024"}}
    assert wlan["regulatory-domain"] == "ES" and wlan["dhcp4"] is True


def netplan_generate(config: str, root: Path) -> subprocess.CompletedProcess[str]:
    """netplan itself, as cloud-init hands it the network-config on the box."""
    netplan = root / "etc" / "netplan"
    netplan.mkdir(parents=True)
    target = netplan / "50-cloud-init.yaml"
    target.write_text(config, encoding="utf-8")
    target.chmod(0o600)  # netplan warns about (and may one day refuse) readable files
    return subprocess.run(
        ["netplan", "generate", "--root-dir", str(root)], capture_output=True, text=True
    )


def test_trixie_network_config_is_accepted_by_netplan(trixie: Path, tmp_path: Path) -> None:
    generated = netplan_generate((trixie / "network-config").read_text(), tmp_path / "root")
    assert generated.returncode == 0, generated.stderr
    connections = list((tmp_path / "root" / "run" / "NetworkManager").rglob("*.nmconnection"))
    assert len(connections) == 1, generated.stderr
    keyfile = connections[0].read_text()
    assert "ssid=Casa Pepe WiFi" in keyfile and "psk=tortilla-2024" in keyfile


def test_netplan_refuses_a_broken_network_config(trixie: Path, tmp_path: Path) -> None:
    network = json.loads((trixie / "network-config").read_text())
    network["network"]["wifis"]["wlan0"]["dhcp4"] = "sometimes"
    generated = netplan_generate(json.dumps(network), tmp_path / "root")
    assert generated.returncode != 0


def test_user_data_settings_are_applied_by_the_same_provisioning(
    trixie: Path, tmp_path: Path
) -> None:
    """What cloud-init writes to the boot partition is applied as a hand-copied file is."""
    content = cloud_config(trixie / "user-data")["write_files"][0]["content"]
    boot, etc, nm = tmp_path / "fw", tmp_path / "etc", tmp_path / "nm"
    for d in (boot, etc, nm):
        d.mkdir()
    (boot / provision.PROVISION_FILE).write_text(content, encoding="utf-8")
    assert provision.provision(boot, etc, nm_dir=nm, group=os.getgid()) is True
    assert "EDGED_SERVER_TOKEN=srv-0123456789abcdef" in (etc / "edged.env").read_text()
    assert "Casa Pepe \U0001f1ea\U0001f1f8" in (etc / "edged.toml.d/50-provision.toml").read_text()


def test_no_wifi_means_no_network_config(tmp_path: Path) -> None:
    out = boot_files(tmp_path, RPIOS_RELEASE="trixie")
    assert not (out / "network-config").exists()
    assert schema(out / "user-data").returncode == 0
    assert "users" not in cloud_config(out / "user-data")  # no keys: the image's defaults


def test_bookworm_gets_edged_provision_toml(tmp_path: Path) -> None:
    (tmp_path / "provision.toml").write_text(PROVISION, encoding="utf-8")
    out = boot_files(
        tmp_path, RPIOS_RELEASE="bookworm", EDGED_PROVISION=str(tmp_path / "provision.toml")
    )
    assert (out / "edged-provision.toml").read_text(encoding="utf-8") == PROVISION
    assert not (out / "user-data").exists()
    refused = subprocess.run(
        [str(BUILD), "--boot-files", str(tmp_path / "other")],
        env={"PATH": os.environ["PATH"], "RPIOS_RELEASE": "bookworm", "TIMEZONE": "UTC"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "cloud-init" in refused.stderr


@pytest.mark.parametrize(
    ("release", "init"), [("trixie", "cloudinit-rpi"), ("bookworm", "systemd")]
)
def test_imager_os_list(tmp_path: Path, release: str, init: str) -> None:
    raw = os.urandom(300_000)
    image = tmp_path / f"edged-0.1.0-rpios-{release}-arm64.img.xz"
    image.write_bytes(lzma.compress(raw))
    subprocess.run(
        [str(REPO / "image" / "make-os-list"), str(image), "--release", release,
         "--url-base", "https://boxes.example/edged/"],
        check=True, capture_output=True,
    )  # fmt: skip
    manifest = json.loads((tmp_path / "edged.rpi-imager-manifest").read_text())
    assert set(manifest) == {"imager", "os_list"}
    (entry,) = manifest["os_list"]
    assert entry["init_format"] == init  # Imager offers its customisation only with this
    assert entry["url"] == f"https://boxes.example/edged/{image.name}"
    assert entry["extract_size"] == len(raw)
    assert entry["extract_sha256"] == hashlib.sha256(raw).hexdigest()
    assert entry["image_download_size"] == image.stat().st_size
    assert entry["image_download_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert {"pi5-64bit", "pi4-64bit"} <= set(entry["devices"])
    assert "0.1.0" in entry["name"]
    # Imager's device step lists what imager.devices declares, and shows a board only the
    # OS entries that carry one of its tags (matching_type exclusive).
    boards = manifest["imager"]["devices"]
    assert [b["name"] for b in boards] == ["Raspberry Pi 5", "Raspberry Pi 4", "Raspberry Pi 3"]
    for board in boards:
        assert set(board) <= {"name", "description", "icon", "tags", "matching_type",
                              "architecture", "capabilities"}  # fmt: skip
        assert board["description"] and board["matching_type"] == "exclusive"
        assert board["architecture"] == "armv8"
        assert set(board["tags"]) <= set(entry["devices"])
    assert sorted(t for b in boards for t in b["tags"]) == sorted(entry["devices"])
    for key, kind in (("name", str), ("description", str), ("icon", str), ("url", str),
                      ("extract_size", int), ("extract_sha256", str),
                      ("image_download_size", int), ("release_date", str)):  # fmt: skip
        assert isinstance(entry[key], kind), key  # the fields Imager's schema requires
