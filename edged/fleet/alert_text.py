"""What an alert says: the box's language (the gettext catalogs, docs/i18n.md) and the
selling point's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edged.i18n import N_, Locale

# A grouped message (a webhook held back by its rate limit) stays short enough for
# Telegram and ntfy (4,096 characters).
MAX_CODES = 10
MAX_LINES = 10
MAX_TEXT = 3500

# (rule, state) -> (title, message); placeholders are filled from the incident's values.
TEXTS: dict[tuple[str, str], tuple[str, str]] = {
    ("order_waiting", "open"): (
        N_("Order {code} is waiting"),
        N_("Order {code} ({type}) has waited for a decision since {since}."),
    ),
    ("order_waiting", "resolved"): (
        N_("Order {code} answered"),
        N_("Order {code} is now {status} (waited {minutes} min)."),
    ),
    ("link_down", "open"): (
        N_("No link to Sinqro"),
        N_("No link to Sinqro since {since} ({detail}). New orders do not arrive."),
    ),
    ("link_down", "resolved"): (
        N_("Sinqro link back"),
        N_("The link to Sinqro is back ({link}) after {minutes} min."),
    ),
    ("printer_down", "open"): (
        N_("Printer {printer}: {problem}"),
        N_("Printer {printer} is {problem} since {since}."),
    ),
    ("printer_down", "resolved"): (
        N_("Printer {printer} back"),
        N_("Printer {printer} is online again after {minutes} min."),
    ),
    ("decision_stuck", "open"): (
        N_("Decisions not reaching Sinqro"),
        N_("{count} decision(s) waiting to reach Sinqro since {since}. {detail}"),
    ),
    ("decision_stuck", "resolved"): (
        N_("Decisions reach Sinqro again"),
        N_("Every decision reached Sinqro (after {minutes} min)."),
    ),
    ("decision_refused", "open"): (
        N_("Sinqro refused a decision on order {code}"),
        N_("The {kind} of order {code} was refused: {detail}"),
    ),
    ("decision_refused", "resolved"): (
        N_("Order {code} settled"),
        N_("Order {code} moved on ({status})."),
    ),
}
# State words that appear inside the messages.
WORDS: dict[str, str] = {
    # Printer problems and link states.
    "offline": N_("offline"),
    "paper_out": N_("out of paper"),
    "cover_open": N_("open (cover)"),
    "unauthorized": N_("token refused"),
    "online": N_("online"),
    "polling": N_("polling"),
    # Decisions.
    "accept": N_("acceptance"),
    "cancel": N_("cancellation"),
    "status": N_("status change"),
}


def word(locale: Locale, key: str, default: str) -> str:
    """A state word (``paper_out`` -> ``out of paper``), or ``default``."""
    return locale.gettext(WORDS[key]) if key in WORDS else default


def clock(locale: Locale, when: float, now: float) -> str:
    """``13:05``, or ``Fri 24/05/2026 13:05`` when not today (people read this)."""
    if locale.local(when).date() == locale.local(now).date():
        return locale.time(when)
    return locale.day_datetime(when)


def iso(locale: Locale, when: float) -> str:
    """ISO 8601 with the selling point's offset (machines read this)."""
    return locale.local(when).isoformat(timespec="seconds")


def render(locale: Locale, rule: str, state: str, values: dict[str, Any]) -> tuple[str, str]:
    """``(title, message)`` for one alert."""
    title, message = TEXTS[(rule, state)]
    text = locale.gettext(message).format(**values)
    return locale.gettext(title).format(**values), " ".join(text.split())


# One message for many alerts: (one, many) by count. en, es and ca take the first form
# for 1 only, so the pair is picked here and each form is its own catalog entry.
COUNTED: dict[str, tuple[str, str]] = {
    "waiting": (
        N_("{n} order waiting, oldest {minutes} min"),
        N_("{n} orders waiting, oldest {minutes} min"),
    ),
    "answered": (N_("{n} order answered"), N_("{n} orders answered")),
    "more_alerts": (N_("and {n} more alert"), N_("and {n} more alerts")),
    "alerts": (N_("{n} alert"), N_("{n} alerts")),
}
MORE_CODES = N_("and {n} more")


def counted(locale: Locale, key: str, n: int, **values: Any) -> str:
    """``COUNTED[key]`` for ``n``, in the box's language, filled in."""
    one, many = COUNTED[key]
    return locale.gettext(one if n == 1 else many).format(n=n, **values)


def digest(locale: Locale, alerts: list[dict[str, Any]], now: float) -> tuple[str, str]:
    """``(title, message)`` of one message carrying many alerts: "12 orders waiting, oldest
    9 min: C1, C2, ..." then the orders answered, then the other alerts one per line."""
    latest: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        latest[str(alert.get("incident"))] = alert  # the last word on each incident
    orders = [a for a in latest.values() if a.get("rule") == "order_waiting"]
    waiting = [a for a in orders if a.get("state") == "open"]
    answered = [a for a in orders if a.get("state") == "resolved"]
    others = [a for a in alerts if a.get("rule") != "order_waiting"]
    lines: list[str] = []
    headline = ""
    if waiting:
        oldest = min(_epoch(a.get("since"), now) for a in waiting)
        minutes = max(0, round((now - oldest) / 60))
        headline = counted(locale, "waiting", len(waiting), minutes=minutes)
        lines.append(f"{headline}: {_codes(locale, waiting)}")
    if answered:
        said = counted(locale, "answered", len(answered))
        lines.append(f"{said}: {_codes(locale, answered)}")
    lines += [str(a.get("message", "")) for a in others[:MAX_LINES]]
    if len(others) > MAX_LINES:
        lines.append(counted(locale, "more_alerts", len(others) - MAX_LINES))
    title = headline or counted(locale, "alerts", len(alerts))
    return title, "\n".join(lines)[:MAX_TEXT]


def _codes(locale: Locale, alerts: list[dict[str, Any]]) -> str:
    codes = []
    for alert in alerts:
        subject = alert.get("subject") or {}
        codes.append(str(subject.get("code") or subject.get("order_id") or "?"))
    shown = ", ".join(codes[:MAX_CODES])
    if len(codes) > MAX_CODES:
        shown += " " + locale.gettext(MORE_CODES).format(n=len(codes) - MAX_CODES)
    return shown


def _epoch(text: Any, default: float) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return default
