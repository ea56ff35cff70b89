"""The catalogs: every visible string has a translation in every language, the compiled
catalogs are what the .po files say, placeholders survive translation, and numbers,
amounts and times follow the language and the selling point's zone."""

from __future__ import annotations

import gettext
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edged.i18n import LANGUAGES, Locale, locale_dir
from edged.i18n.extract import Message, all_messages

TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def catalog(language: str) -> gettext.GNUTranslations:
    path = Path(locale_dir()) / language / "LC_MESSAGES" / "edged.mo"
    with path.open("rb") as fh:
        return gettext.GNUTranslations(fh)


def key(message: Message) -> str:
    return f"{message.context}\x04{message.text}" if message.context else message.text


def test_the_sources_have_visible_strings() -> None:
    messages = all_messages()
    where = {m.where.split(":")[0] for m in messages}
    # Pages, scripts, tickets, CLI and demo all speak through the catalog.
    for part in (
        "templates/board.html",
        "static/board.js",
        "printing/labels.py",
        "commandline/orders.py",
    ):
        assert any(w.endswith(part) for w in where), part
    assert len(messages) > 250


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_visible_string_is_translated(language: str) -> None:
    translations = catalog(language)._catalog  # type: ignore[attr-defined]
    missing = [f"{m.where}: {m.text!r}" for m in all_messages() if not translations.get(key(m))]
    assert not missing, (
        f"{len(missing)} strings have no {language} translation (run scripts/i18n-update, "
        "translate the empty or fuzzy entries in the .po and run it again):\n" + "\n".join(missing)
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalog_matches_its_po_file(language: str, tmp_path: Path) -> None:
    folder = Path(locale_dir()) / language / "LC_MESSAGES"
    compiled = tmp_path / "edged.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(folder / "edged.po")], check=True)
    assert compiled.read_bytes() == (folder / "edged.mo").read_bytes(), (
        f"{language}: edged.mo is stale; run scripts/i18n-update"
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_placeholders_survive_translation(language: str) -> None:
    translations = catalog(language)._catalog  # type: ignore[attr-defined]
    wrong = []
    for message in all_messages():
        translated = translations.get(key(message), "")
        if sorted(PLACEHOLDER.findall(translated)) != sorted(PLACEHOLDER.findall(message.text)):
            wrong.append(f"{message.text!r} -> {translated!r}")
    assert not wrong, "\n".join(wrong)


def test_numbers_amounts_and_times_follow_the_language_and_zone() -> None:
    euro = {"displayPattern": "{{ amount }}€"}
    assert Locale("en").money(1234.5, euro) == "1,234.50€"
    assert Locale("es").money(1234.5, euro) == "1.234,50€"
    assert Locale("es").money(30.95, euro) == "30,95€"
    assert Locale("en").money(7, {"isoCode": "USD"}) == "7.00 USD"
    noon_utc = datetime(2026, 7, 24, 12, 5, tzinfo=UTC)
    madrid = Locale("es", "Europe/Madrid")
    assert madrid.time(noon_utc) == "14:05"
    assert madrid.time(noon_utc.timestamp()) == "14:05"
    assert madrid.day_datetime(noon_utc) == "vie 24/07/2026 14:05"
    assert madrid.date(noon_utc) == "24/07/2026"
    assert Locale("en", "America/New_York").datetime(noon_utc) == "07/24/2026 08:05"
    assert Locale("es").gettext("Orders") == "Pedidos"
    # Catalan writes numbers, amounts and dates like Spanish, with its own words.
    assert Locale("ca").money(1234.5, euro) == "1.234,50€"
    assert Locale("ca").number(0.005, 3) == "0,005"
    assert Locale("ca").decimal_mark == "," and Locale("en").decimal_mark == "."
    barcelona = Locale("ca", "Europe/Madrid")
    assert barcelona.day_datetime(noon_utc) == "dv. 24/07/2026 14:05"
    assert barcelona.date(noon_utc) == "24/07/2026"
    assert barcelona.gettext("Orders") == "Comandes"
    assert barcelona.pgettext("ticket", "TAKEAWAY") == "PER EMPORTAR"
    assert Locale("xx").language == "en"


def test_english_dates_put_the_day_first_unless_the_selling_point_writes_month_first() -> None:
    noon_utc = datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    assert Locale("en", "Europe/London").datetime(noon_utc) == "07/12/2026 12:05"
    assert Locale("en", "Europe/Madrid").day_datetime(noon_utc) == "Mon 07/12/2026 13:05"
    assert Locale("en", "America/Chicago").datetime(noon_utc) == "12/07/2026 06:05"
    assert Locale("es", "America/New_York").date(noon_utc) == "07/12/2026"
    assert Locale("en", "Asia/Manila").date(noon_utc) == "12/07/2026"
    # A setting wins over the country.
    assert Locale("en", "America/Chicago", "dmy").date(noon_utc) == "07/12/2026"
    assert Locale("ca", "Europe/Madrid", "ymd").date(noon_utc) == "2026-12-07"
