"""``edged status``: the journal's counts and the running daemon's health, for people
(one fact a line, incidents one per line, times in the selling point's zone) or scripts
(``--json``)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from edged.commandline.base import EX_OK, EX_UNAVAILABLE, dump_json, say
from edged.commandline.orders import with_journal
from edged.config import Config
from edged.fleet.alert_text import word
from edged.i18n import N_, Locale
from edged.journal.store import Journal

# Phrases, not single words: "orders" alone would also read as an MQTT topic on a page.
COUNT_WORDS = {
    "orders": N_("orders in the journal"),
    "open_orders": N_("open orders"),
    "waiting_orders": N_("waiting for you"),
    "queued_commands": N_("decisions not yet sent"),
    "events": N_("events in the journal"),
}


async def daemon_health(config: Config) -> dict[str, Any] | None:
    """The daemon's ``/health`` answer, or None when it does not answer (stopped, or the
    web page is off)."""
    if not config.web.enabled:
        return None
    import httpx

    host = "127.0.0.1" if config.web.host in ("0.0.0.0", "::") else config.web.host
    if ":" in host:
        host = f"[{host}]"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://{host}:{config.web.port}/health")
            body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def incident_lines(incidents: Any, locale: Locale) -> list[str]:
    """``  07/12/2026 14:05  Printer kitchen is offline``, oldest first."""
    lines = []
    for incident in incidents if isinstance(incidents, list) else []:
        if not isinstance(incident, dict):
            continue
        since = incident.get("since")
        when = locale.datetime(since) if isinstance(since, (int, float)) else "?"
        title = str(incident.get("title") or incident.get("rule") or "?")
        lines.append(f"    {when}  {title}")
    return lines


def human(
    config: Config, counts: dict[str, int], health: dict[str, Any] | None, locale: Locale
) -> list[str]:
    """The status as lines people read."""
    _ = locale.gettext
    lines = [_("journal: {path}").format(path=config.journal_path)]
    lines += [
        f"  {_(COUNT_WORDS[key]) if key in COUNT_WORDS else key}: {value}"
        for key, value in counts.items()
    ]
    if health is None:
        lines.append(_("daemon: not answering on its web port (stopped, or web disabled)"))
        return lines
    yes, no = _("yes"), _("no")
    lines.append(_("daemon: running, edged {version}").format(version=health.get("version", "?")))
    link = str(health.get("link", "?"))
    lines.append("  " + _("link to Sinqro: {state}").format(state=word(locale, link, link)))
    lines.append("  " + _("paired: {answer}").format(answer=yes if health.get("paired") else no))
    lines.append("  " + _("journal: {state}").format(state=health.get("journal", "?")))
    printers = health.get("printers")
    if isinstance(printers, dict) and printers:
        shown = ", ".join(f"{name} {word(locale, str(s), str(s))}" for name, s in printers.items())
        lines.append("  " + _("printers: {list}").format(list=shown))
    parts = health.get("parts")
    if isinstance(parts, dict):
        failing = [
            f"{name} ({state})"
            for name, state in parts.items()
            if state not in ("running", "disabled")
        ]
        if failing:
            lines.append("  " + _("parts not running: {list}").format(list=", ".join(failing)))
    incidents = incident_lines(health.get("incidents"), locale)
    if incidents:
        lines.append("  " + _("open incidents ({count}):").format(count=len(incidents)))
        lines += incidents
    else:
        lines.append("  " + _("open incidents: none"))
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        counts = await journal.counts()
        health = await daemon_health(config)
        if args.json:
            dump_json(
                {
                    "journal": {"path": str(config.journal_path), **counts},
                    "daemon": health,
                    "running": health is not None,
                }
            )
        else:
            for line in human(config, counts, health, locale):
                say(line)
        # Scripts ask "is it up?": a stopped daemon is "unavailable".
        return EX_OK if health is not None else EX_UNAVAILABLE

    return asyncio.run(with_journal(args, work))
