"""``edged fleet release`` and ``edged fleet rollout status``: the vendor's side of staged
updates (docs/fleet.md "Staged updates"; the manifest in :mod:`edged.fleet.manifest`, the
counting and halting in :mod:`edged.fleet.releases`)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from edged.commandline.base import (
    EX_CONFIG,
    EX_FAILED,
    EX_OK,
    EX_REFUSED,
    EX_UNAVAILABLE,
    complain,
    dump_json,
    say,
)
from edged.commandline.fleet import add_broker_arguments, broker_from
from edged.i18n import Locale


def _when(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the UTC offset (Z or +hh:mm)")
    return at


def _wave(text: str) -> tuple[float, datetime]:
    percent, _, start = text.partition("@")
    try:
        return float(percent), _when(start)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT@TIME ({exc})") from None


def _window(text: str) -> tuple[time, time]:
    start, _, end = text.partition("-")
    try:
        return time.fromisoformat(start), time.fromisoformat(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: HH:MM-HH:MM") from None


def add_release_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``edged fleet release``."""
    add_broker_arguments(p)
    p.add_argument("--key", required=True, type=Path, help="the release signing key (SSH)")
    p.add_argument("--bundle", required=True, type=Path, help="the bundle (image/make-bundle)")
    p.add_argument("--signature", type=Path, help="its signature (default BUNDLE.sig)")
    p.add_argument("--bundle-url", required=True, help="https:// address boxes fetch it from")
    p.add_argument(
        "--start", type=_when, default="now", help="the canary's start (ISO 8601 or now)"
    )
    p.add_argument("--canary", type=float, default=5.0, help="canary percent (%(default)s)")
    p.add_argument(
        "--wave",
        type=_wave,
        action="append",
        default=[],
        help="PERCENT@TIME: the boxes up to PERCENT (cumulative) from TIME; the last is 100",
    )
    p.add_argument("--window", type=_window, help="HH:MM-HH:MM in each selling point's time zone")
    p.add_argument(
        "--allow-waiting-orders",
        action="store_true",
        help="install even while an order waits for a decision (default: never)",
    )
    p.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.1,
        help="failed share of a wave's finished boxes that halts the rollout (%(default)s)",
    )
    p.add_argument("--allow-downgrade", action="store_true", help="an older version on purpose")
    p.add_argument("--print", action="store_true", help="print the signed message, publish nothing")


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``edged fleet rollout status``."""
    add_broker_arguments(p)
    p.add_argument(
        "--wait", type=float, default=1.0, help="seconds without a new box (%(default)s)"
    )
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.add_argument("--language", choices=["en", "es", "ca"], default="en")
    p.add_argument(
        "--halt",
        action="store_true",
        help="when a wave passed the threshold, publish the manifest halted (needs --key)",
    )
    p.add_argument("--key", type=Path, help="the release signing key (for --halt)")


def cmd_release(args: argparse.Namespace) -> int:
    """Build, sign and publish (retained) the release manifest of a bundle."""
    import aiomqtt

    from edged.fleet.manifest import ManifestError, open_envelope, parse
    from edged.fleet.releases import publish, release_document, signed

    config = broker_from(args)
    if config is None:
        return EX_CONFIG
    waves = sorted(args.wave, key=lambda w: w[0])
    if waves and waves[-1][0] != 100:
        complain("edged fleet release: the last --wave must be 100 (percent)")
        return EX_REFUSED
    try:
        document = release_document(
            bundle=args.bundle,
            bundle_url=args.bundle_url,
            signature=args.signature or args.bundle.with_name(args.bundle.name + ".sig"),
            start=args.start,
            canary_percent=args.canary,
            waves=waves,
            window=args.window,
            never_while_order_waits=not args.allow_waiting_orders,
            max_failure_rate=args.max_failure_rate,
            allow_downgrade=args.allow_downgrade,
        )
        payload = signed(document, args.key)
        parse(open_envelope(payload)[0])  # what a box will check, before anyone sees it
    except (OSError, ValueError) as exc:
        complain(f"edged fleet release: {exc}")
        return EX_REFUSED if isinstance(exc, ManifestError | ValueError) else EX_FAILED
    if args.print:
        say(payload.decode())
        return EX_OK
    try:
        asyncio.run(publish(config, payload))
    except aiomqtt.MqttError as exc:
        complain(f"edged fleet release: no broker node took the manifest ({exc})")
        return EX_UNAVAILABLE
    say(f"release {document['version']} published ({len(document['rollout']['waves']) + 1} waves)")
    return EX_OK


def cmd_rollout_status(args: argparse.Namespace) -> int:
    """Per wave: boxes, installed, failed, refused, pending; 1 when a wave passed the
    threshold (unless ``--halt`` halted the rollout)."""
    import aiomqtt

    from edged.fleet.manifest import ManifestError, open_envelope, parse
    from edged.fleet.releases import count, halted, over_threshold, publish, signed
    from edged.fleet.view import read_fleet

    if args.halt and args.key is None:
        complain("edged fleet rollout status: --halt needs --key")
        return EX_REFUSED
    config = broker_from(args)
    if config is None:
        return EX_CONFIG
    try:
        view = asyncio.run(read_fleet(config, quiet=args.wait, release=True))
    except aiomqtt.MqttError as exc:
        complain(f"edged fleet rollout: no broker node answered ({exc})")
        return EX_UNAVAILABLE
    locale = Locale(args.language)
    _ = locale.gettext
    if view.release is None:
        complain(_("No release manifest on this broker."))
        return EX_REFUSED
    try:
        text = open_envelope(view.release)[0]
        manifest = parse(text)
    except ManifestError as exc:
        complain(f"edged fleet rollout: the retained manifest: {exc}")
        return EX_REFUSED
    waves = count(view.boxes, manifest)
    over = over_threshold(waves, manifest)
    halt_now = over is not None and manifest.halted is None and args.halt
    if halt_now:
        assert over is not None
        reason = f"wave {over.wave}: {over.failed} of {over.installed + over.failed} failed"
        document: dict[str, Any] = halted(json.loads(text), over.wave, reason)
        try:
            asyncio.run(publish(config, signed(document, args.key)))
        except (aiomqtt.MqttError, ManifestError) as exc:
            complain(f"edged fleet rollout: could not publish the halt ({exc})")
            return EX_UNAVAILABLE
    state = "halted" if manifest.halted is not None or halt_now else "running"
    if args.json:
        dump_json(
            {
                "release": manifest.version,
                "state": state,
                "halted": manifest.halted,
                "max_failure_rate": manifest.max_failure_rate,
                "over_threshold": over.wave if over is not None else None,
                "waves": [w.as_json() for w in waves],
            }
        )
    else:
        word = _("halted") if state == "halted" else _("running")
        say(_("Release {version}: {state}").format(version=manifest.version, state=word))
        # Counts of boxes: the context keeps them apart from the same English words elsewhere.
        heads = [
            _("wave"),
            _("boxes"),
            locale.pgettext("boxes", "installed"),
            locale.pgettext("boxes", "failed"),
            locale.pgettext("boxes", "refused"),
            locale.pgettext("boxes", "pending"),
        ]
        rows = [[*heads, _("failure rate")]]
        for w in waves:
            counts = [w.boxes, w.installed, w.failed, w.refused, w.pending]
            rows.append([str(w.wave), *map(str, counts), f"{w.failure_rate:.0%}"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            say("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if over is not None:
            say(
                _("Wave {wave} passed the failure threshold ({rate}).").format(
                    wave=over.wave, rate=f"{manifest.max_failure_rate:.0%}"
                )
            )
    return EX_FAILED if over is not None and state != "halted" else EX_OK
