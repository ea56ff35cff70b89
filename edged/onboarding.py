"""Wi-Fi onboarding: a hotspot with a captive page when the box has no network.

``edged-onboard.service`` (root, NetworkManager's ``nmcli``) runs ``python -m
edged.onboarding``. When the box has had no network connection for a minute (no active
NetworkManager connection other than the hotspot), it raises a WPA2 hotspot named after the
box (``edged-<box id>``, its hostname) with the password from ``/etc/edged/hotspot-password``
(made when this service first starts, root:edged 0640, so the daemon prints it on the setup
ticket), and serves a small page on port 80 of the hotspot's address. NetworkManager's
shared mode gives phones an address; a dnsmasq drop-in sends every name to the box, so the
phone opens the page as a captive portal. The owner picks the shop's Wi-Fi and types its
password; the box writes the connection (the same keyfile as provisioning), drops the
hotspot and joins. If it cannot join, the hotspot comes back a minute later with the reason.
Once any other connection is up (Ethernet, or the chosen Wi-Fi), the hotspot goes down.

The decisions are :func:`decide` (pure); :class:`Nmcli` is the only place that runs nmcli.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import grp
import hmac
import html
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from edged.config import load_box_config
from edged.configtools import ConfigError
from edged.i18n import Locale
from edged.provision import Wifi, nmconnection_text, parse_wifi, write_atomic

log = logging.getLogger(__name__)

HOTSPOT_ID = "edged-hotspot"
WIFI_ID = "edged-wifi"
HOTSPOT_ADDRESS = "10.42.0.1"  # NetworkManager's default for ipv4.method=shared
GRACE = 60.0  # seconds without network before the hotspot comes up
PASSWORD_FILE = Path("/etc/edged/hotspot-password")
NM_DIR = Path("/etc/NetworkManager/system-connections")
# Networks listed on the page at the most (a crowded street lists dozens).
MAX_NETWORKS = 40
# The page's own headers: nothing loads from elsewhere, nothing frames it, nothing is kept.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Alphabet without look-alikes (0/O, 1/l/I): the password is read off paper.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class Action(enum.Enum):
    KEEP = "keep"
    RAISE = "raise"
    LOWER = "lower"


@dataclasses.dataclass(frozen=True)
class NetState:
    """What NetworkManager says, reduced to what the decision needs."""

    #: Active connections other than the hotspot and loopback (Ethernet, a Wi-Fi client).
    connected: bool
    #: The box has a Wi-Fi device that can be an access point.
    wifi_device: bool
    hotspot_up: bool


def decide(state: NetState, offline_for: float, *, grace: float = GRACE) -> Action:
    """Raise the hotspot after ``grace`` seconds offline; lower it once connected."""
    if state.connected:
        return Action.LOWER if state.hotspot_up else Action.KEEP
    if not state.hotspot_up and state.wifi_device and offline_for >= grace:
        return Action.RAISE
    return Action.KEEP


def hotspot_password(path: Path = PASSWORD_FILE, *, group: str = "edged") -> str:
    """The hotspot's WPA2 password: read, or made once (12 characters, ~59 bits) and kept
    (root:edged 0640, so the daemon can print it on the setup ticket)."""
    if path.is_file():
        text = path.read_text(encoding="ascii").strip()
        if 8 <= len(text) <= 63:
            return text
        log.warning("onboarding: %s is not a usable WPA2 password; making a new one", path)
    password = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = -1
    write_atomic(path, password + "\n", mode=0o640, gid=gid)
    return password


def read_hotspot_password(path: Path = PASSWORD_FILE) -> str | None:
    """The hotspot password for the setup ticket, or None on a box without onboarding
    (nothing is made here: only the onboarding service makes it)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if 8 <= len(text) <= 63 else None


def hotspot_text(ssid: str, password: str) -> str:
    """The NetworkManager keyfile of the hotspot (WPA2-PSK, shared IPv4, not autoconnect)."""
    return "\n".join(
        [
            "# Written by edged onboarding: the box's setup hotspot. Not started by itself.",
            "[connection]",
            f"id={HOTSPOT_ID}",
            "type=wifi",
            "autoconnect=false",
            "",
            "[wifi]",
            "mode=ap",
            "band=bg",
            f"ssid={ssid}",
            "",
            "[wifi-security]",
            "key-mgmt=wpa-psk",
            "proto=rsn",
            "pairwise=ccmp",
            "group=ccmp",
            f"psk={password}",
            "",
            "[ipv4]",
            "method=shared",
            f"address1={HOTSPOT_ADDRESS}/24",
            "",
            "[ipv6]",
            "method=disabled",
            "",
        ]
    )


class Nmcli:
    """NetworkManager through its command line tool (``nmcli``, terse output)."""

    def __init__(self, binary: str = "nmcli", nm_dir: Path = NM_DIR) -> None:
        self.binary = binary
        self.nm_dir = nm_dir

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _lines(self, *args: str) -> list[list[str]]:
        result = self._run("-t", *args)
        if result.returncode != 0:
            raise OSError(f"nmcli {' '.join(args)}: {result.stderr.strip()}")
        return [_split_terse(line) for line in result.stdout.splitlines() if line]

    def state(self) -> NetState:
        active = self._lines("-f", "NAME,TYPE", "connection", "show", "--active")
        devices = self._lines("-f", "DEVICE,TYPE", "device")
        return NetState(
            connected=any(
                len(row) >= 2 and row[0] != HOTSPOT_ID and row[1] != "loopback" for row in active
            ),
            wifi_device=any(len(row) >= 2 and row[1] == "wifi" for row in devices),
            hotspot_up=any(row and row[0] == HOTSPOT_ID for row in active),
        )

    def scan(self) -> list[str]:
        """Networks in range, strongest first (SSIDs, no duplicates, no hidden ones)."""
        rows = self._lines("-f", "SSID,SIGNAL", "device", "wifi", "list", "--rescan", "yes")
        ranked: dict[str, int] = {}
        for row in rows:
            if len(row) >= 2 and row[0]:
                signal = int(row[1]) if row[1].isdecimal() else 0
                ranked[row[0]] = max(signal, ranked.get(row[0], 0))
        return listable(sorted(ranked, key=lambda ssid: -ranked[ssid]))

    def raise_hotspot(self, ssid: str, password: str) -> None:
        write_atomic(
            self.nm_dir / f"{HOTSPOT_ID}.nmconnection", hotspot_text(ssid, password), mode=0o600
        )
        self._checked("connection", "reload")
        self._checked("connection", "up", HOTSPOT_ID)

    def lower_hotspot(self) -> None:
        self._run("connection", "down", HOTSPOT_ID)

    def join(self, wifi: Wifi) -> str | None:
        """Write the shop's Wi-Fi, drop the hotspot, connect; None or why it failed."""
        write_atomic(self.nm_dir / f"{WIFI_ID}.nmconnection", nmconnection_text(wifi), mode=0o600)
        self._checked("connection", "reload")
        self.lower_hotspot()
        result = self._run("--wait", "45", "connection", "up", WIFI_ID, timeout=90)
        if result.returncode != 0:
            return result.stderr.strip() or f"nmcli exited with {result.returncode}"
        return None

    def _checked(self, *args: str) -> None:
        result = self._run(*args)
        if result.returncode != 0:
            raise OSError(f"nmcli {' '.join(args)}: {result.stderr.strip()}")


def listable(ssids: Sequence[str]) -> list[str]:
    """The scanned names a person can choose: those :func:`parse_wifi` would take (1 to 32
    bytes, no control characters: a name that could never be joined is not offered), at most
    :data:`MAX_NETWORKS`."""
    chosen: list[str] = []
    for ssid in ssids:
        try:
            parse_wifi({"ssid": ssid}, "scan")
        except ConfigError:
            log.info("onboarding: a scanned network name was left off the list: %r", ssid[:40])
            continue
        chosen.append(ssid)
        if len(chosen) == MAX_NETWORKS:
            break
    return chosen


def _split_terse(line: str) -> list[str]:
    """One line of ``nmcli -t``: fields split on unescaped colons, ``\\:`` unescaped."""
    fields, current, escaped = [], [], False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


# -- the captive page ----------------------------------------------------------------------

_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{box}: Wi-Fi</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:1em auto;padding:0 1em}}
label,select,input,button{{display:block;width:100%;margin:.4em 0;font-size:1.1em}}
.error{{color:#a00}}</style></head><body>
<h1>{box}</h1><p>{intro}</p>
{message}
<form method="post" action="/"><input type="hidden" name="csrf" value="{csrf}">
<label>{network} <select name="ssid">{options}</select></label>
<label>{hidden} <input name="hidden_ssid" autocomplete="off"></label>
<label>{password} <input name="psk" type="password" autocomplete="off"></label>
<button type="submit">{connect}</button></form></body></html>"""


class Onboarding:
    """The loop: watch NetworkManager, raise or lower the hotspot, serve the page."""

    def __init__(
        self,
        nm: Nmcli,
        *,
        ssid: str,
        password_file: Path = PASSWORD_FILE,
        grace: float = GRACE,
        interval: float = 5.0,
        http_host: str = HOTSPOT_ADDRESS,
        http_port: int = 80,
        locale: Locale | None = None,
    ) -> None:
        self.nm = nm
        # The page speaks the box's language (box.language), like every page of the box.
        self.locale = locale or Locale()
        self.ssid = ssid
        self.password_file = password_file
        self.grace = grace
        self.interval = interval
        self.http_host = http_host
        self.http_port = http_port
        self.networks: list[str] = []
        self.message = ""
        self.offline_since: float | None = None
        self._runner: web.AppRunner | None = None
        self._joining: asyncio.Task[None] | None = None
        # The form's token: a page from elsewhere cannot post a network to the box.
        self.csrf = secrets.token_urlsafe(18)

    async def step(self) -> Action:
        """One look at the network and the action taken."""
        state = await asyncio.to_thread(self.nm.state)
        now = time.monotonic()
        if state.connected:
            self.offline_since = None
        elif self.offline_since is None:
            self.offline_since = now
        offline_for = 0.0 if self.offline_since is None else now - self.offline_since
        if self._joining is not None and not self._joining.done():
            return Action.KEEP  # a join in progress decides for itself
        action = decide(state, offline_for, grace=self.grace)
        if action is Action.RAISE:
            with_scan = await asyncio.to_thread(self._scan_quietly)
            self.networks = with_scan or self.networks
            password = await asyncio.to_thread(hotspot_password, self.password_file)
            await asyncio.to_thread(self.nm.raise_hotspot, self.ssid, password)
            await self._serve()
            log.warning(
                "onboarding: no network for %.0f s; hotspot %s is up", offline_for, self.ssid
            )
        elif action is Action.LOWER:
            await self._stop_serving()
            await asyncio.to_thread(self.nm.lower_hotspot)
            log.info("onboarding: connected; hotspot %s is down", self.ssid)
        return action

    def _scan_quietly(self) -> list[str]:
        try:
            return self.nm.scan()
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("onboarding: Wi-Fi scan failed: %s", exc)
            return []

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.step()
                except (OSError, subprocess.SubprocessError) as exc:
                    log.error("onboarding: %s", exc)
                await asyncio.sleep(self.interval)
        finally:
            await self._stop_serving()

    # -- the page --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4096, middlewares=[self._guard])
        app.router.add_get("/", self.page)
        app.router.add_post("/", self.choose)
        # Any other address a phone probes (captive-portal checks) lands on the page.
        app.router.add_route("*", "/{tail:.*}", self.redirect)
        return app

    async def _serve(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.http_host, self.http_port, reuse_address=True).start()
        self._runner = runner

    async def _stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _hosts(self) -> set[str]:
        """``Host`` values of the page itself; any other name is a captive-portal probe or a
        rebinding attempt and is sent to the page."""
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return {f"{self.http_host}{port}", f"{self.ssid}.local{port}"}

    @web.middleware
    async def _guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.host not in self._hosts():
            raise web.HTTPFound(self._home())
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin.removeprefix("http://") not in self._hosts():
                log.warning("onboarding: refused a form posted from %r", origin[:80])
                return self._page_response(self._refused(), status=403)
        response = await handler(request)
        response.headers.update(_HEADERS)
        return response

    def _home(self) -> str:
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{self.http_host}{port}/"

    def _refused(self) -> str:
        return self.locale.gettext("This form has expired. Reload the page and choose again.")

    def _page_response(self, message: str, *, status: int) -> web.Response:
        response = web.Response(
            text=self.render(message, error=True), content_type="text/html", status=status
        )
        response.headers.update(_HEADERS)
        return response

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self._home())

    def render(self, message: str = "", *, error: bool = False) -> str:
        options = "".join(
            f'<option value="{html.escape(s, quote=True)}">{html.escape(s)}</option>'
            for s in self.networks
        )
        shown = message or self.message
        note = (
            f'<p class="{"error" if error else "note"}">{html.escape(shown)}</p>' if shown else ""
        )
        _ = self.locale.gettext
        return _PAGE.format(
            lang=self.locale.language,
            box=html.escape(self.ssid),
            csrf=html.escape(self.csrf, quote=True),
            intro=html.escape(_("Choose the shop's Wi-Fi network for this box.")),
            message=note,
            network=html.escape(_("Network")),
            options=options,
            hidden=html.escape(_("Or a hidden network's name")),
            password=html.escape(_("Password")),
            connect=html.escape(_("Connect")),
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.render(), content_type="text/html")

    async def choose(self, request: web.Request) -> web.StreamResponse:
        _ = self.locale.gettext
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf") or ""), self.csrf):
            log.warning("onboarding: refused a form without the page's token")
            return self._page_response(self._refused(), status=403)
        ssid = str(form.get("hidden_ssid") or form.get("ssid") or "").strip()
        psk = str(form.get("psk") or "")
        hidden = bool(str(form.get("hidden_ssid") or "").strip())
        try:
            wifi = parse_wifi({"ssid": ssid, "psk": psk, "hidden": hidden}, "the form")
        except ConfigError as exc:
            log.info("onboarding: refused a Wi-Fi choice: %s", exc.problem)
            return web.Response(
                text=self.render(self._wifi_problem(exc.key), error=True),
                content_type="text/html",
                status=400,
            )
        self._joining = asyncio.create_task(self._join(wifi), name="onboarding-join")
        return web.Response(
            text=self.render(
                _(
                    "Connecting to {network}. This hotspot goes away now; if the box cannot "
                    "join, {hotspot} comes back in a minute with the reason."
                ).format(network=wifi.ssid, hotspot=self.ssid)
            ),
            content_type="text/html",
        )

    def _wifi_problem(self, key: str) -> str:
        """What a person reads about a refused choice (never the password itself)."""
        _ = self.locale.gettext
        if key == "wifi.psk":
            return _("The Wi-Fi password is 8 to 63 letters, digits or signs (or 64 hex digits).")
        return _("Choose a network, or type a hidden network's name (at most 32 characters).")

    async def _join(self, wifi: Wifi) -> None:
        await asyncio.sleep(1.0)  # let the answer reach the phone before the hotspot drops
        await self._stop_serving()
        error = await asyncio.to_thread(self.nm.join, wifi)
        if error is None:
            self.message = ""
            log.info("onboarding: joined %s", wifi.ssid)
        else:
            self.message = self.locale.gettext("Could not join {network}: {error}").format(
                network=wifi.ssid, error=error
            )
            self.offline_since = time.monotonic()
            log.warning("onboarding: could not join %s: %s", wifi.ssid, error)


def _language(config: Path) -> str:
    """The box's language; English when the config cannot be read (the hotspot must come
    up whatever state the box's files are in)."""
    try:
        return load_box_config(config).language
    except (ConfigError, OSError) as exc:
        log.warning("onboarding: config not read (%s); the page speaks English", exc)
        return "en"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edged.onboarding", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nmcli", default="nmcli")
    parser.add_argument("--nm-dir", type=Path, default=NM_DIR)
    parser.add_argument("--password-file", type=Path, default=PASSWORD_FILE)
    parser.add_argument("--grace", type=float, default=GRACE)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("-c", "--config", type=Path, default=Path("/etc/edged/edged.toml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    # Made at the first start, before it is needed: the daemon prints it on the setup ticket.
    hotspot_password(args.password_file)
    onboarding = Onboarding(
        Nmcli(args.nmcli, args.nm_dir),
        ssid=socket.gethostname().split(".")[0],
        password_file=args.password_file,
        grace=args.grace,
        http_port=args.port,
        locale=Locale(_language(args.config)),
    )
    try:
        asyncio.run(onboarding.run())
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
