"""Wi-Fi onboarding against a stand-in nmcli (tests/stubs/nmcli): when the hotspot comes up
and goes down, the NetworkManager keyfiles it writes, and the captive page over real HTTP."""

from __future__ import annotations

import configparser
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import free_port

from edged.onboarding import (
    HOTSPOT_ID,
    WIFI_ID,
    Action,
    NetState,
    Nmcli,
    Onboarding,
    _split_terse,
    decide,
)

STUB = Path(__file__).resolve().parent / "stubs" / "nmcli"
ETHERNET = ["Wired connection 1", "802-3-ethernet"]
LOOPBACK = ["lo", "loopback"]


class Network:
    """The stand-in's state file, read and written between steps."""

    def __init__(self, tmp: Path) -> None:
        self.file = tmp / "nmcli.json"
        self.nm_dir = tmp / "system-connections"
        self.nm_dir.mkdir()
        self.write(
            {
                "active": [LOOPBACK],
                "devices": [["lo", "loopback"], ["eth0", "ethernet"], ["wlan0", "wifi"]],
                "scan": [["Casa Pepe: 5G", "40"], ["Bar Sol", "70"], ["Casa Pepe: 5G", "55"]],
            }
        )

    def read(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.file.read_text())
        return result

    def write(self, state: dict[str, object]) -> None:
        self.file.write_text(json.dumps(state))

    def update(self, **changes: object) -> None:
        state = self.read()
        state.update(changes)
        self.write(state)

    def calls(self) -> list[list[str]]:
        return list(self.read().get("calls", []))  # type: ignore[call-overload]

    def active(self) -> list[str]:
        return [row[0] for row in self.read()["active"]]  # type: ignore[attr-defined]

    def keyfile(self, name: str) -> configparser.ConfigParser:
        path = self.nm_dir / f"{name}.nmconnection"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text())
        return parser


@pytest.fixture
def network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    net = Network(tmp_path)
    monkeypatch.setenv("NMCLI_STATE", str(net.file))
    monkeypatch.setenv("NM_DIR", str(net.nm_dir))
    yield net


def onboarding(network: Network, tmp_path: Path, grace: float = 0.0) -> Onboarding:
    return Onboarding(
        Nmcli(str(STUB), network.nm_dir),
        ssid="edged-9ed1",
        password_file=tmp_path / "hotspot-password",
        grace=grace,
        http_host="127.0.0.1",
        http_port=free_port(),
    )


def test_decide() -> None:
    offline = NetState(connected=False, wifi_device=True, hotspot_up=False)
    assert decide(offline, 30, grace=60) is Action.KEEP
    assert decide(offline, 60, grace=60) is Action.RAISE
    no_wifi = NetState(connected=False, wifi_device=False, hotspot_up=False)
    assert decide(no_wifi, 600, grace=60) is Action.KEEP  # nothing to raise it on
    up = NetState(connected=False, wifi_device=True, hotspot_up=True)
    assert decide(up, 600, grace=60) is Action.KEEP
    assert decide(NetState(True, True, True), 0, grace=60) is Action.LOWER
    assert decide(NetState(True, True, False), 0, grace=60) is Action.KEEP


def test_terse_fields_with_escaped_colons() -> None:
    assert _split_terse(r"Casa Pepe\: 5G:55") == ["Casa Pepe: 5G", "55"]
    assert _split_terse(r"a\\b:") == ["a\\b", ""]


async def test_online_box_never_raises_the_hotspot(network: Network, tmp_path: Path) -> None:
    network.update(active=[LOOPBACK, ETHERNET])
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.KEEP
    assert not (network.nm_dir / f"{HOTSPOT_ID}.nmconnection").exists()
    assert not (tmp_path / "hotspot-password").exists()


async def test_offline_box_raises_a_wpa2_hotspot_after_the_grace_time(
    network: Network, tmp_path: Path
) -> None:
    box = onboarding(network, tmp_path, grace=3600)
    assert await box.step() is Action.KEEP  # offline, but not for long enough
    box.grace = 0
    try:
        assert await box.step() is Action.RAISE
        password_file = tmp_path / "hotspot-password"
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o640
        assert len(password) >= 12 and password.isalnum()
        hotspot = network.keyfile(HOTSPOT_ID)
        assert hotspot["connection"]["id"] == HOTSPOT_ID
        assert hotspot["connection"]["autoconnect"] == "false"
        assert hotspot["wifi"]["mode"] == "ap"
        assert hotspot["wifi"]["ssid"] == "edged-9ed1"
        assert hotspot["wifi-security"]["key-mgmt"] == "wpa-psk"
        assert hotspot["wifi-security"]["proto"] == "rsn"
        assert hotspot["wifi-security"]["psk"] == password
        assert hotspot["ipv4"]["method"] == "shared"
        assert ["connection", "reload"] in network.calls()
        assert ["connection", "up", HOTSPOT_ID] in network.calls()
        assert HOTSPOT_ID in network.active()
        # Raised once: the next look keeps it.
        assert await box.step() is Action.KEEP
        # The captive page lists what the scan found, strongest first, once each.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
            page = (await client.get("/")).text
            assert page.index("Bar Sol") < page.index("Casa Pepe: 5G")
            assert page.count("<option") == 2
            probe = await client.get("/generate_204")  # a phone's captive-portal check
            assert probe.status_code == 302
            assert probe.headers["location"] == "http://127.0.0.1/"
        # The same password next time: it is printed on the box's label.
        await box._stop_serving()
        network.update(active=[LOOPBACK])
        assert await box.step() is Action.RAISE
        assert network.keyfile(HOTSPOT_ID)["wifi-security"]["psk"] == password
    finally:
        await box._stop_serving()


async def test_ethernet_coming_up_lowers_the_hotspot(network: Network, tmp_path: Path) -> None:
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.RAISE
    network.update(active=[*network.read()["active"], ETHERNET])  # type: ignore[misc]
    assert await box.step() is Action.LOWER
    assert HOTSPOT_ID not in network.active()
    assert ["connection", "down", HOTSPOT_ID] in network.calls()
    with pytest.raises(httpx.ConnectError):  # the page is gone with the hotspot
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{box.http_port}/", timeout=2)


async def test_choosing_the_shops_wifi_on_the_page(network: Network, tmp_path: Path) -> None:
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.RAISE
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
        short = await client.post("/", data={"ssid": "Bar Sol", "psk": "short"})
        assert short.status_code == 400
        assert "8 to 63" in short.text and "short" not in short.text.split("<form")[0]
        chosen = await client.post("/", data={"ssid": "Bar Sol", "psk": "cortado-con-leche"})
        assert chosen.status_code == 200
        assert "Connecting to Bar Sol" in chosen.text
    assert box._joining is not None
    await box._joining
    wifi = network.keyfile(WIFI_ID)
    assert wifi["wifi"]["ssid"] == "Bar Sol"
    assert wifi["wifi-security"]["psk"] == "cortado-con-leche"
    calls = network.calls()
    down = calls.index(["connection", "down", HOTSPOT_ID])
    assert calls.index(["--wait", "45", "connection", "up", WIFI_ID]) > down
    assert network.active() == ["lo", WIFI_ID]
    assert await box.step() is Action.KEEP  # connected; no hotspot


async def test_a_failed_join_brings_the_hotspot_back_with_the_reason(
    network: Network, tmp_path: Path
) -> None:
    network.update(up_fails={WIFI_ID: "Secrets were required, but not provided"})
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.RAISE
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
        await client.post("/", data={"hidden_ssid": "Trastienda", "psk": "wrong-password"})
    assert box._joining is not None
    await box._joining
    assert network.keyfile(WIFI_ID)["wifi"]["hidden"] == "true"
    try:
        assert await box.step() is Action.RAISE
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
            page = (await client.get("/")).text
        assert "Could not join Trastienda" in page and "Secrets were required" in page
    finally:
        await box._stop_serving()


def test_stub_refuses_an_unknown_connection(network: Network) -> None:
    nm = Nmcli(str(STUB), network.nm_dir)
    with pytest.raises(OSError, match="unknown connection"):
        nm._checked("connection", "up", "nothing-written")
