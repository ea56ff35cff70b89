"""The box's language: one gettext catalog per language, and numbers, amounts and times as
that language writes them.

Catalogs are ``locale/<lang>/LC_MESSAGES/edged.po`` (the source people edit) compiled to
``edged.mo`` beside it (what Python's :mod:`gettext` reads; a test checks they match).
English is the source language: its strings are the message ids, so ``en`` needs no catalog.

Everything a person reads goes through a :class:`Locale`: pages, tickets, slips, the setup
ticket, the demo terminal and the command line.
"""

from __future__ import annotations

import gettext
import re
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Language = Literal["en", "es", "ca"]
LANGUAGES: Final[tuple[str, ...]] = get_args(Language)
DOMAIN: Final = "edged"
# What each language calls itself, for the language picker.
NATIVE_NAMES: Final[dict[str, str]] = {"en": "English", "es": "Español", "ca": "Català"}
# (decimal mark, thousands separator) per language.
_NUMBER_MARKS: Final[dict[str, tuple[str, str]]] = {
    "en": (".", ","),
    "es": (",", "."),
    "ca": (",", "."),
}
_AMOUNT = re.compile(r"\{\{\s*amount\s*\}\}")


def _clean(value: Any, limit: int) -> str:
    """Outside text for a printed or shown amount: printable characters only, bounded."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value[:limit] if c.isprintable())


def locale_dir() -> str:
    return str(resources.files("edged.i18n").joinpath("locale"))


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language``; English (the message ids) needs none."""
    if language not in LANGUAGES or language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, locale_dir(), languages=[language])


def N_(message: str) -> str:
    """Marks ``message`` for the catalog without translating it here."""
    return message


def NP_(context: str, message: str) -> str:
    """Marks ``message`` in ``context`` (read with ``pgettext``) for the catalog."""
    return message


def zone(name: str, fallback: str = "") -> ZoneInfo:
    """The first of ``name``, ``fallback`` that is a known time zone; UTC otherwise."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def box_zone(name: str) -> tzinfo:
    """The zone ``name``, or the box's own system zone when ``name`` is empty or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


class Locale:
    """Text, numbers and times in one language and one time zone."""

    def __init__(self, language: str = "en", timezone: str | tzinfo = "") -> None:
        self.language = language if language in LANGUAGES else "en"
        self.tz = timezone if isinstance(timezone, tzinfo) else box_zone(timezone)
        self._t = translations(self.language)

    def gettext(self, message: str) -> str:
        return self._t.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self._t.pgettext(context, message)

    __call__ = gettext

    # -- numbers ---------------------------------------------------------------------------

    @property
    def decimal_mark(self) -> str:
        """``.`` (en) or ``,`` (es, ca)."""
        return _NUMBER_MARKS[self.language][0]

    def number(self, value: float, decimals: int = 0) -> str:
        """``1234.5`` as ``1,234.50`` (en) or ``1.234,50`` (es, ca)."""
        point, thousands = _NUMBER_MARKS[self.language]
        text = f"{value:,.{decimals}f}"
        return text.replace(",", "\x00").replace(".", point).replace("\x00", thousands)

    def money(self, amount: float, currency: dict[str, Any] | None = None) -> str:
        """``amount`` per the order's ``currency.displayPattern`` (``{{ amount }}€``), with
        this language's decimal mark."""
        currency = currency or {}
        number = self.number(amount, 2)
        pattern = _clean(currency.get("displayPattern"), 40)
        if not _AMOUNT.search(pattern):
            symbol = _clean(currency.get("symbol"), 8) or _clean(currency.get("isoCode"), 8)
            pattern = "{{ amount }}" + (symbol if symbol in ("€", "") else " " + symbol)
        return _AMOUNT.sub(number, pattern, count=1)

    # -- times -----------------------------------------------------------------------------

    def local(self, when: datetime | float) -> datetime:
        """``when`` (aware datetime or Unix time) in the selling point's zone."""
        if isinstance(when, (int, float)):
            return datetime.fromtimestamp(when, self.tz)
        return when.astimezone(self.tz)

    def time(self, when: datetime | float) -> str:
        """``14:05``: the 24-hour clock all three languages use at a counter."""
        return f"{self.local(when):%H:%M}"

    def weekday(self, when: datetime | float) -> str:
        names = (
            self.pgettext("weekday", "Mon"),
            self.pgettext("weekday", "Tue"),
            self.pgettext("weekday", "Wed"),
            self.pgettext("weekday", "Thu"),
            self.pgettext("weekday", "Fri"),
            self.pgettext("weekday", "Sat"),
            self.pgettext("weekday", "Sun"),
        )
        return names[self.local(when).weekday()]

    def date(self, when: datetime | float) -> str:
        """``25/12/2026`` (es, ca) or ``12/25/2026`` (en)."""
        local = self.local(when)
        return f"{local:%m/%d/%Y}" if self.language == "en" else f"{local:%d/%m/%Y}"

    def short_datetime(self, when: datetime | float) -> str:
        """``Fri 25/12 14:05``: the ticket's day, date and time (day first everywhere, as on
        the paper tickets restaurants already keep)."""
        local = self.local(when)
        return f"{self.weekday(local)} {local:%d/%m} {local:%H:%M}"

    def datetime(self, when: datetime | float) -> str:
        return f"{self.date(when)} {self.time(when)}"


__all__ = ["LANGUAGES", "NATIVE_NAMES", "NP_", "N_", "Language", "Locale", "translations", "zone"]
