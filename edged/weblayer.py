"""What the web page's saved settings (``settings.toml`` in the state directory) may set.

That file belongs to the daemon's own user, so it is a claim, not configuration: anything
the ``edged`` user can write must not steer what root does or what the daemon reads and
writes outside its own data. It may set only the keys the setup page edits
(:data:`WEB_KEYS`, :data:`PRINTER_KEYS`); never a path (``journal.path``,
``box.state_dir``, TLS files, a printer's logo) unless it merely repeats what the root-owned
files say; and printer addresses only of the kinds a printer is reached by (network, USB,
a device under ``/dev``, a virtual printer in the state directory). Anything else is
dropped by :func:`screen` with a :class:`Refusal` saying why; the rest of the file applies.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edged.i18n import N_

# The keys the setup page writes (edged/web/setup.py): the box's language, the sections it
# shows a form for, and the printer list. Every other table or key is refused.
WEB_KEYS: dict[str, frozenset[str]] = {
    "box": frozenset({"language"}),
    "orders": frozenset(
        {
            "auto_accept",
            "auto_accept_delay",
            "default_delay",
            "long_press_delay",
            "cancel_comment",
            "retry_max",
        }
    ),
    "panel": frozenset(
        {
            "enabled",
            "pin_factory",
            "accept_pin",
            "cancel_pin",
            "button_pull",
            "button_active",
            "buzzer_pin",
            "buzzer_type",
            "buzzer_active_high",
            "led_pin",
            "led_active_high",
            "bounce_time",
            "accept_hold",
            "cancel_hold",
            "setup_hold",
            "max_hold",
            "repeat_every",
            "escalate_after",
            "command_wait",
        }
    ),
    "mqtt": frozenset(
        {
            "enabled",
            "url",
            "failover_urls",
            "client_id",
            "box_id",
            "topic_prefix",
            "username",
            "password",
            "protocol",
            "tls_insecure",
            "keepalive",
            "reconnect_min",
            "reconnect_max",
            "publish_timeout",
            "full_payload",
            "max_command_bytes",
            "max_catalog_bytes",
            "max_pending_commands",
            "homeassistant",
            "homeassistant_prefix",
            "homeassistant_products",
        }
    ),
    "serial": frozenset(
        {
            "enabled",
            "port",
            "baudrate",
            "bytesize",
            "parity",
            "stopbits",
            "rtscts",
            "ack_timeout",
            "max_retries",
            "reconnect_min",
            "reconnect_max",
            "max_frame_bytes",
            "max_command_bytes",
            "full_payload",
        }
    ),
}
PRINTER_KEYS = frozenset(
    {
        "name",
        "uri",
        "paper_width",
        "layout",
        "copies",
        "order_types",
        "profile",
        "command_set",
        "render",
        "code_page",
        "columns",
        "print_on",
        "cancel_slip",
        "status_slips",
        "update_slip",
        "qr_tracking",
        "cut",
        "backup",
        "failover_after",
        "timeout",
        "retry_max",
        "health_interval",
    }
)
# Path-typed keys the page's forms carry: accepted only empty or as the root-owned files
# have them (the form sends back what it shows).
PATH_KEYS: dict[str, frozenset[str]] = {
    "mqtt": frozenset({"ca_file", "cert_file", "key_file"}),
}
PRINTER_PATH_KEYS = frozenset({"logo"})
# Every (section, key) the setup page's forms carry ("printers" for each printer's keys);
# the box's language has a switch of its own.
PAGE_KEYS: frozenset[tuple[str, str]] = frozenset(
    {(table, key) for table, keys in WEB_KEYS.items() if table != "box" for key in keys}
    | {(table, key) for table, keys in PATH_KEYS.items() for key in keys}
    | {("printers", key) for key in PRINTER_KEYS | PRINTER_PATH_KEYS}
)
# pyserial URLs that reach a device over the network, or nothing at all.
SERIAL_URLS = ("socket://", "rfc2217://", "loop://")
# Why a key was refused: message ids, shown on the setup page in the box's language.
WHY_NOT_HERE = N_("not a setting the web page may change (set it in /etc/edged/edged.toml)")
WHY_PATH = N_("a path is not a setting the web page may change")
WHY_TABLE = N_("expected a table")
WHY_PRINTERS = N_("expected a list of printer tables")
WHY_DEVICE = N_("a printer address from the web page must be a network, USB or /dev device")
WHY_VIRTUAL = N_("a virtual printer from the web page must be a directory inside the state dir")
WHY_SERIAL = N_("the serial port from the web page must be a device under /dev")


@dataclass(frozen=True)
class Refusal:
    """One key of the web layer that was ignored, and why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}; ignored"


class WebLayer(dict[str, Any]):
    """A screened web layer: what applies, with :attr:`refused` saying what did not."""

    def __init__(self, kept: Mapping[str, Any], refused: list[Refusal]) -> None:
        super().__init__(kept)
        self.refused = tuple(refused)


def _under_dev(path: str) -> bool:
    """``path`` names something under ``/dev`` once ``..`` and ``//`` are resolved."""
    return path.startswith("/") and posixpath.normpath(path).startswith("/dev/")


def printer_uri_problem(uri: Any) -> str:
    """Why the web layer may not set printer address ``uri``; ``""`` when it may (whether
    the address is well formed is for the printer schema to say)."""
    if not isinstance(uri, str):
        return ""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme in ("tcp", "usb"):
        return ""
    if scheme in ("serial", "file"):
        path = rest.partition("?")[0] if scheme == "serial" else rest
        if _under_dev(path):
            return ""
        return WHY_DEVICE
    if scheme == "virtual":
        parts = rest.split("/")
        if rest and not rest.startswith("/") and ".." not in parts:
            return ""
        return WHY_VIRTUAL
    return ""  # an unknown scheme: the printer schema refuses it in its own words


def serial_port_problem(port: Any) -> str:
    """Why the web layer may not set the serial bridge's ``port``; ``""`` when it may."""
    if not isinstance(port, str) or _under_dev(port) or port.startswith(SERIAL_URLS):
        return ""
    return WHY_SERIAL


def _printers_by_name(root: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    printers = root.get("printers")
    if not isinstance(printers, list):
        return {}
    return {str(p.get("name")): p for p in printers if isinstance(p, Mapping) and "name" in p}


def screen(
    doc: Mapping[str, Any], root: Mapping[str, Any], file: str
) -> tuple[dict[str, Any], list[Refusal]]:
    """The part of web layer ``doc`` that may apply on top of the root-owned layers
    (``root``: main file and drop-ins, merged), and what was refused."""
    kept: dict[str, Any] = {}
    refused: list[Refusal] = []

    def refuse(key: str, reason: str = WHY_NOT_HERE) -> None:
        refused.append(Refusal(file, key, reason))

    for table, value in doc.items():
        if table == "printers":
            printers = _screen_printers(value, root, refuse)
            if printers is not None:
                kept["printers"] = printers
            continue
        allowed = WEB_KEYS.get(table)
        if allowed is None:
            refuse(table)
            continue
        if not isinstance(value, Mapping):
            refuse(table, WHY_TABLE)
            continue
        base = root.get(table)
        base = base if isinstance(base, Mapping) else {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            dotted = f"{table}.{key}"
            if key in PATH_KEYS.get(table, ()):
                if item in ("", base.get(key, "")):
                    out[key] = item
                else:
                    refuse(dotted, WHY_PATH)
                continue
            if key not in allowed:
                refuse(dotted)
                continue
            problem = serial_port_problem(item) if dotted == "serial.port" else ""
            if problem and item != base.get(key):
                refuse(dotted, problem)
                continue
            out[key] = item
        kept[table] = out
    return kept, refused


def _screen_printers(
    value: Any, root: Mapping[str, Any], refuse: Callable[..., None]
) -> list[dict[str, Any]] | None:
    """The printer list of the web layer with refused keys left out; ``None`` when the
    whole list is refused (it replaces the root-owned list, so a printer that loses its
    address is left out rather than changed)."""
    if not isinstance(value, list) or not all(isinstance(p, Mapping) for p in value):
        refuse("printers", WHY_PRINTERS)
        return None
    root_printers = _printers_by_name(root)
    out: list[dict[str, Any]] = []
    for i, printer in enumerate(value):
        same = root_printers.get(str(printer.get("name")), {})
        entry: dict[str, Any] = {}
        for key, item in printer.items():
            dotted = f"printers[{i}].{key}"
            if key in PRINTER_PATH_KEYS:
                if item in ("", same.get(key, "")):
                    entry[key] = item
                else:
                    refuse(dotted, WHY_PATH)
                    if key in same:  # the list replaces root's: keep root's value
                        entry[key] = same[key]
            elif key not in PRINTER_KEYS:
                refuse(dotted)
            elif key == "uri" and item != same.get("uri") and (why := printer_uri_problem(item)):
                refuse(dotted, why)
            else:
                entry[key] = item
        if "uri" in printer and "uri" not in entry:
            # A printer without its address would not validate: leave the list as root has it.
            return None
        out.append(entry)
    return out
