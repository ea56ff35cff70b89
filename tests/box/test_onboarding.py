"""Wi-Fi onboarding against a stand-in nmcli (tests/support/stubs/nmcli): when the hotspot comes up
and goes down, the NetworkManager keyfiles it writes, and the captive page over real HTTP."""

from __future__ import annotations

import configparser
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ports import free_port

from edged.i18n import Locale
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
from edged.onboarding import _language as onboarding_language

STUB = Path(__file__).resolve().parents[1] / "support" / "stubs" / "nmcli"
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


def onboarding(
    network: Network, tmp_path: Path, grace: float = 0.0, language: str = "en"
) -> Onboarding:
    return Onboarding(
        Nmcli(str(STUB), network.nm_dir),
        ssid="edged-9ed1",
        password_file=tmp_path / "hotspot-password",
        grace=grace,
        http_host="127.0.0.1",
        http_port=free_port(),
        locale=Locale(language),
    )


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page carries its form token"
    return match.group(1)


async def post(client: httpx.AsyncClient, data: dict[str, str]) -> httpx.Response:
    """The form as a phone sends it: the page first, then the form with the page's token."""
    token = csrf_of((await client.get("/")).text)
    return await client.post("/", data={"csrf": token, **data})


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
            assert probe.headers["location"] == f"http://127.0.0.1:{box.http_port}/"
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
        short = await post(client, {"ssid": "Bar Sol", "psk": "short"})
        assert short.status_code == 400
        assert "8 to 63" in short.text and "short" not in short.text.split("<form")[0]
        chosen = await post(client, {"ssid": "Bar Sol", "psk": "cortado-con-leche"})
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
        await post(client, {"hidden_ssid": "Trastienda", "psk": "wrong-password"})
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


async def test_the_page_speaks_the_boxs_language(network: Network, tmp_path: Path) -> None:
    """The box's language comes from [box] of its config, web settings included."""
    config = tmp_path / "edged.toml"
    config.write_text('[box]\nlanguage = "es"\n', encoding="utf-8")  # no token needed
    box = onboarding(network, tmp_path, language=onboarding_language(config))
    assert await box.step() is Action.RAISE
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
            page = (await client.get("/")).text
            short = await post(client, {"ssid": "Bar Sol", "psk": "corto"})
        assert '<html lang="es">' in page and "Elija la red Wi-Fi del local" in page
        assert "Conectar" in page and "Connect" not in page
        assert short.status_code == 400 and "La contraseña de la Wi-Fi tiene" in short.text
    finally:
        await box._stop_serving()


def test_stub_refuses_an_unknown_connection(network: Network) -> None:
    nm = Nmcli(str(STUB), network.nm_dir)
    with pytest.raises(OSError, match="unknown connection"):
        nm._checked("connection", "up", "nothing-written")


HOSTILE_SSIDS = [
    '<script>alert("ssid")</script>',
    '"><img src=x onerror=alert(1)>',
    "Bar {csrf} {box}",
    "Caf\u00e9 \u2603 \u5bff\u53f8",
]


async def test_hostile_network_names_are_escaped_or_left_off(
    network: Network, tmp_path: Path
) -> None:
    """Names from a scan are the neighbours' words: escaped on the page, and those no one could
    join (control characters, over 32 bytes) are not offered at all."""
    unjoinable = ["Esc\x1b[2Jape", "x" * 33, "\u00e9" * 17]
    network.update(scan=[[ssid, "50"] for ssid in HOSTILE_SSIDS + unjoinable])
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.RAISE
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
            page = await client.get("/")
        text = page.text
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(&quot;ssid&quot;)&lt;/script&gt;" in text
        assert "Bar {csrf} {box}" in text  # shown as typed, never formatted into the page
        assert "Caf\u00e9 \u2603 \u5bff\u53f8" in text
        assert box.networks == HOSTILE_SSIDS
        assert "\x1b" not in text and "x" * 33 not in text
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cache-Control"] == "no-store"
    finally:
        await box._stop_serving()


async def test_a_form_from_elsewhere_changes_nothing(network: Network, tmp_path: Path) -> None:
    """The page's own token and origin: a page on another site (or a stale form) cannot make
    the box leave its hotspot for a network of someone else's choosing."""
    box = onboarding(network, tmp_path)
    assert await box.step() is Action.RAISE
    wanted = {"ssid": "Bar Sol", "psk": "cortado-con-leche"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.http_port}") as client:
            no_token = await client.post("/", data=wanted)
            wrong = await client.post("/", data={"csrf": "guessed", **wanted})
            token = csrf_of((await client.get("/")).text)
            foreign = await client.post(
                "/", data={"csrf": token, **wanted}, headers={"Origin": "http://evil.example"}
            )
            rebound = await client.post(
                "/", data={"csrf": token, **wanted}, headers={"Host": "evil.example"}
            )
        for refused in (no_token, wrong, foreign):
            assert refused.status_code == 403
            assert "This form has expired" in refused.text
        assert rebound.status_code == 302  # another name: sent to the page, nothing done
        assert rebound.headers["Location"] == f"http://127.0.0.1:{box.http_port}/"
        assert box._joining is None
        assert not (network.nm_dir / f"{WIFI_ID}.nmconnection").exists()
    finally:
        await box._stop_serving()
