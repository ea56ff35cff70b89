"""What an alert says: the box's language (the gettext catalogs, docs/i18n.md) and the
selling point's time zone."""

from __future__ import annotations

from typing import Any

from edged.i18n import N_, Locale

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
