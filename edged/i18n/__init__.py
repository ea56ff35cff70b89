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
import zoneinfo
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args
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
DateOrder = Literal["dmy", "mdy", "ymd"]
DATE_ORDERS: Final[tuple[str, ...]] = get_args(DateOrder)
# Where English writes the month first (CLDR's M/d/y): the United States, the places that
# follow its usage, and the Philippines. Everywhere else, and in Spanish and Catalan, the day
# comes first.
_MONTH_FIRST: Final = frozenset({"US", "PR", "GU", "VI", "AS", "MP", "UM", "PH"})


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


def zone(name: str, fallback: str = "") -> tzinfo:
    """The first of ``name``, ``fallback`` that is a known time zone; the box's own system
    zone otherwise (as the page and the command line do)."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return box_zone("")


@cache
def _zone_countries() -> dict[str, str]:
    """Zone name -> ISO country code, from the tz database's ``zone.tab``."""
    out: dict[str, str] = {}
    for folder in zoneinfo.TZPATH:
        try:
            text = (Path(folder) / "zone.tab").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            cells = line.split("\t")
            if len(cells) >= 3 and not line.startswith("#"):
                out[cells[2]] = cells[0]
        break
    return out


def zone_country(tz: tzinfo | str) -> str:
    """The country of a time zone (``America/New_York`` -> ``US``); "" when unknown."""
    name = tz if isinstance(tz, str) else getattr(tz, "key", "")
    return _zone_countries().get(name or "", "")


def resolve_date_order(language: str, tz: tzinfo | str, setting: str = "") -> DateOrder:
    """How dates are written: ``setting`` when it is one of :data:`DATE_ORDERS`, else the
    day first, except English in a country that writes the month first (from the selling
    point's time zone)."""
    if setting in DATE_ORDERS:
        return cast(DateOrder, setting)
    if language == "en" and zone_country(tz) in _MONTH_FIRST:
        return "mdy"
    return "dmy"


def box_zone(name: str) -> tzinfo:
    """The zone ``name``, or the box's own system zone when ``name`` is empty or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


class Locale:
    """Text, numbers and times in one language and one time zone.

    Every date a person reads (page, board, command line, tickets, slips, alerts) is written
    by :meth:`date`, :meth:`datetime` or :meth:`day_datetime`, so they agree everywhere.
    ``date_order`` (``dmy``, ``mdy``, ``ymd``; empty: :func:`resolve_date_order` picks)
    fixes their order.
    """

    def __init__(
        self, language: str = "en", timezone: str | tzinfo = "", date_order: str = ""
    ) -> None:
        self.language = language if language in LANGUAGES else "en"
        self.tz = timezone if isinstance(timezone, tzinfo) else box_zone(timezone)
        self.date_order: DateOrder = resolve_date_order(self.language, self.tz, date_order)
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
        """``25/12/2026`` (day first), ``12/25/2026`` (month first) or ``2026-12-25``."""
        local = self.local(when)
        if self.date_order == "mdy":
            return f"{local:%m/%d/%Y}"
        if self.date_order == "ymd":
            return f"{local:%Y-%m-%d}"
        return f"{local:%d/%m/%Y}"

    def day_datetime(self, when: datetime | float) -> str:
        """``Fri 25/12/2026 14:05``: tickets, slips and alerts (the weekday helps at a
        counter); the same date as :meth:`datetime`."""
        return f"{self.weekday(when)} {self.datetime(when)}"

    def datetime(self, when: datetime | float) -> str:
        """``25/12/2026 14:05``: the board, the command line."""
        return f"{self.date(when)} {self.time(when)}"


__all__ = [
    "DATE_ORDERS",
    "LANGUAGES",
    "NATIVE_NAMES",
    "NP_",
    "N_",
    "DateOrder",
    "Language",
    "Locale",
    "resolve_date_order",
    "translations",
    "zone",
    "zone_country",
]
