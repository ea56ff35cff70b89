"""``edged fleet ls`` and ``edged fleet show BOX``: the vendor's fleet as the broker holds it
(each box's retained ``info`` and ``availability``, docs/fleet.md), for people or scripts
(``--json``); ``edged fleet exporter``: the same, kept live, as Prometheus series. Runs
anywhere the broker is reachable; times in this computer's zone."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING, Any

from edged.commandline.base import (
    EX_CONFIG,
    EX_OK,
    EX_REFUSED,
    EX_UNAVAILABLE,
    complain,
    dump_json,
    say,
)
from edged.configtools import ConfigError, build
from edged.fleet.alert_text import word
from edged.i18n import Locale
from edged.mqttclient import BrokerConfig

if TYPE_CHECKING:
    # With the MQTT libraries: loaded by the command only, not with the parser.
    from edged.fleet.view import BoxView, FleetView

PASSWORD_ENV = "EDGED_FLEET_PASSWORD"


def add_broker_arguments(p: argparse.ArgumentParser) -> None:
    """Where the fleet's broker is, and how to log in: every subcommand takes them."""
    p.add_argument(
        "--url",
        action="append",
        required=True,
        help="broker mqtt:// or mqtts:// URL; repeat it for the other nodes of a cluster",
    )
    p.add_argument("--username", default="", help=f"broker user (password: ${PASSWORD_ENV})")
    p.add_argument("--ca-file", default="", help="PEM CA bundle (mqtts://)")
    p.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version")
    p.add_argument("--topic-prefix", default="edged", help="the fleet's first topic level(s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``ls`` and ``show``."""
    add_broker_arguments(p)
    p.add_argument(
        "--wait",
        type=float,
        default=1.0,
        help="seconds without a new box before the list is complete (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.add_argument("--language", choices=["en", "es", "ca"], default="en")


def _broker(args: argparse.Namespace) -> BrokerConfig:
    first, *others = args.url
    return build(
        BrokerConfig,
        {
            "url": first,
            "failover_urls": others,
            "username": args.username,
            "password": os.environ.get(PASSWORD_ENV, ""),
            "ca_file": args.ca_file,
            "protocol": args.protocol,
            "topic_prefix": args.topic_prefix,
        },
        file="command line",
    )


def broker_from(args: argparse.Namespace) -> BrokerConfig | None:
    """The broker the command line names, or None once its error is said."""
    try:
        return _broker(args)
    except ConfigError as exc:
        complain(str(exc))
        return None


def _read(args: argparse.Namespace, box_id: str) -> FleetView | int:
    import aiomqtt

    from edged.fleet.view import read_fleet

    config = broker_from(args)
    if config is None:
        return EX_CONFIG
    try:
        return asyncio.run(read_fleet(config, box_id=box_id, quiet=args.wait))
    except aiomqtt.MqttError as exc:
        complain(f"edged fleet: no broker node answered ({exc})")
        return EX_UNAVAILABLE


def _matches(box: BoxView, args: argparse.Namespace) -> bool:
    if args.availability and box.availability != args.availability:
        return False
    if args.link and box.text("link") != args.link:
        return False
    return not args.with_incidents or bool(box.incidents)


def _printers(box: BoxView, locale: Locale) -> str:
    return ", ".join(f"{n} {word(locale, s, s)}" for n, s in sorted(box.printers.items())) or "-"


def _seen(box: BoxView, locale: Locale) -> str:
    at = box.seen_at
    return locale.datetime(at) if at is not None else "?"


def cmd_ls(args: argparse.Namespace) -> int:
    """One line (or JSON row) per box, sorted by box id."""
    view = _read(args, "+")
    if isinstance(view, int):
        return view
    boxes = [b for _, b in sorted(view.boxes.items()) if _matches(b, args)]
    if args.json:
        dump_json({"boxes": [b.summary() for b in boxes], "unreadable": view.unreadable})
        return EX_OK
    locale = Locale(args.language)
    _ = locale.gettext
    rows = [
        [
            _("box"),
            _("name"),
            _("version"),
            _("connection"),
            _("link to Sinqro"),
            _("printers"),
            _("open incidents"),
            _("last report"),
        ]
    ]
    for box in boxes:
        rows.append(
            [
                box.box_id,
                box.text("name") or "-",
                box.text("version") or "-",
                word(locale, box.availability, box.availability or "?"),
                word(locale, box.text("link"), box.text("link") or "?"),
                _printers(box, locale),
                str(len(box.incidents)),
                _seen(box, locale),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if view.unreadable:
        complain(_("unreadable messages left out: {n}").format(n=view.unreadable))
    return EX_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Everything one box said: its whole info document."""
    if not args.box or "/" in args.box or "+" in args.box or "#" in args.box:
        complain("edged fleet show: a box id, without '/', '+' or '#'")
        return EX_REFUSED
    view = _read(args, args.box)
    if isinstance(view, int):
        return view
    box = view.boxes.get(args.box)
    locale = Locale(args.language)
    _ = locale.gettext
    if box is None:
        complain(_("No box {box} on this broker.").format(box=args.box))
        return EX_REFUSED
    if args.json:
        document: dict[str, Any] = {"availability": box.availability or None, "info": box.info}
        dump_json(document)
        return EX_OK
    lines = [
        (_("box"), box.box_id),
        (_("name"), box.text("name") or "-"),
        (_("version"), box.text("version") or "-"),
        (_("connection"), word(locale, box.availability, box.availability or "?")),
        (_("link to Sinqro"), word(locale, box.text("link"), box.text("link") or "?")),
        (_("printers"), _printers(box, locale)),
        (_("open incidents"), ", ".join(box.incidents) or "-"),
        (_("last report"), _seen(box, locale)),
    ]
    width = max(len(label) for label, _value in lines)
    for label, value in lines:
        say(f"{label.ljust(width)}  {value}")
    return EX_OK


def cmd_exporter(args: argparse.Namespace) -> int:
    """Serve the fleet's Prometheus series until stopped."""
    from edged.fleet.exporter import serve

    config = broker_from(args)
    if config is None:
        return EX_CONFIG
    try:
        return asyncio.run(serve(config, args.host, args.port))
    except OSError as exc:
        complain(f"edged fleet exporter: cannot listen on {args.host}:{args.port} ({exc})")
        return EX_UNAVAILABLE
