"""The setup page's words: every field of every section has a label and one line of help
in the box's language (a config key cannot land with its raw name as label), advanced
fields show their config key for support, and a Spanish or Catalan box shows none of the
English docstrings of the config dataclasses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

import httpx
import pytest
from markupsafe import escape
from test_web_security import Box, box, client, sign_in  # noqa: F401  (fixtures)

from edged.flow.settings import DEFAULT_CANCEL_COMMENT
from edged.i18n import Locale
from edged.i18n.extract import all_messages
from edged.printing.settings import PrinterConfig
from edged.web.forms import CHOICES, FormField, field_id, form_fields, section_of
from edged.web.labels import ADVANCED, CHOICE_TEXT, FIELD_TEXT
from edged.web.setup import SECTIONS

PAGE_SECTIONS: dict[str, type[Any]] = {**SECTIONS, "printers[0]": PrinterConfig}


def page_fields() -> Iterator[tuple[str, FormField]]:
    """(section, field) for every input the setup page draws."""
    for prefix, cls in PAGE_SECTIONS.items():
        for field in form_fields(cls, prefix):
            yield section_of(prefix), field


def choice_values(field: FormField) -> list[str]:
    if field.name in CHOICES:
        return list(CHOICES[field.name])
    if get_origin(field.hint) is Literal:
        return [str(a) for a in get_args(field.hint)]
    return []


def test_every_setup_field_has_a_label_and_one_line_of_help() -> None:
    missing = [
        f"{section}.{field.name}"
        for section, field in page_fields()
        if not all(FIELD_TEXT.get((section, field.name), ("", "")))
    ]
    assert not missing, (
        "setup fields without a label and help in edged/web/labels.py FIELD_TEXT "
        "(they would show their config key and the English docstring): " + ", ".join(missing)
    )
    for label, help_text in FIELD_TEXT.values():
        assert "\n" not in help_text and len(help_text) <= 100, help_text
        assert label[:1].isupper(), label


def test_field_words_and_the_advanced_set_name_real_fields() -> None:
    real = {(section, field.name) for section, field in page_fields()}
    assert set(FIELD_TEXT) - real == set(), "words for fields the page does not have"
    assert ADVANCED - real == set(), "advanced fields the page does not have"
    assert set(CHOICE_TEXT) - real == set()
    # Owners see the few fields they need; the rest is folded away.
    shown = real - ADVANCED
    assert ("printers", "uri") in shown and ("panel", "buzzer_pin") in ADVANCED
    assert len(shown) < len(ADVANCED)


def test_every_choice_of_every_field_reads_as_words() -> None:
    missing = []
    for section, field in page_fields():
        words = CHOICE_TEXT.get((section, field.name), {})
        for value in choice_values(field):
            # Plain numbers (58 mm, 8 data bits, MQTT 3.1.1) read the same in every language.
            if value not in words and not re.fullmatch(r"[\d.]+", value):
                missing.append(f"{section}.{field.name} = {value}")
    assert not missing, "choices shown as raw values: " + ", ".join(missing)


def test_every_field_word_is_in_the_catalog() -> None:
    catalog = {m.text for m in all_messages() if not m.context}
    words = [w for pair in FIELD_TEXT.values() for w in pair]
    words += [w for choices in CHOICE_TEXT.values() for w in choices.values()]
    assert [w for w in words if w not in catalog] == []


@pytest.mark.parametrize("language", ["es", "ca"])
async def test_a_box_in_another_language_shows_no_english_field_doc(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
    language: str,
) -> None:
    token = await sign_in(box, client)
    chosen = await client.post(
        "/settings/language", data={"csrf": token, "language": language, "back": "/settings"}
    )
    assert chosen.status_code == 303
    page = await client.get("/settings")
    assert page.status_code == 200
    html = page.text
    assert f'<html lang="{language}">' in html
    locale = Locale(language)
    shown = [("printers", f) for f in form_fields(PrinterConfig, "printers[0]")]
    shown += [("printers", f) for f in form_fields(PrinterConfig, "printers[1]")]  # "Add"
    shown += [(name, f) for name, cls in SECTIONS.items() for f in form_fields(cls, name)]
    for section, field in shown:
        if field.doc:
            assert str(escape(field.doc)) not in html, f"{field.key}: English doc shown"
        label, help_text = FIELD_TEXT[(section, field.name)]
        drawn = f'<label for="{field_id(field.key)}">{escape(locale.gettext(label))}</label>'
        assert drawn in html, f"{field.key}: label not in {language}"
        assert str(escape(locale.gettext(help_text))) in html, f"{field.key}: help"
        hint = f'<small class="config-key" translate="no">{field.key}</small>'
        assert (hint in html) == ((section, field.name) in ADVANCED), field.key
    for words in CHOICE_TEXT.values():
        for word in words.values():
            assert str(escape(locale.gettext(word))) in html, word
    # Bounds in the language's numbers: 0,005 s, not 0.005 s.
    assert "(0,005…0,5)" in html and "(256…16.777.216)" in html
    # The raw-key label of old is gone: no label reads like a config key.
    labels = re.findall(r'<label for="f-[^"]+">([^<]*)</label>', html)
    assert labels and not [t for t in labels if re.fullmatch(r"[a-z_.]+", t)]


async def test_a_spanish_page_takes_and_shows_decimal_commas(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    token = await sign_in(box, client)
    english = await client.post(
        "/settings/panel", data={"csrf": token, "panel.bounce_time": "0,02"}
    )
    assert english.status_code == 400  # "0,02" is not a number on an English page
    assert 'id="f-panel-bounce-time-error"' in english.text
    await client.post("/settings/language", data={"csrf": token, "language": "es"})
    saved = await client.post("/settings/panel", data={"csrf": token, "panel.bounce_time": "0,02"})
    assert saved.status_code == 303, saved.text
    assert box.server.services.config().panel.bounce_time == 0.02
    page = (await client.get("/settings")).text
    assert 'name="panel.bounce_time" value="0,02"' in page
    assert 'name="panel.repeat_every" value="5"' in page
    # A dot still reads as the decimal mark; thousands marks are not numbers.
    dotted = await client.post("/settings/panel", data={"csrf": token, "panel.bounce_time": "0.03"})
    assert dotted.status_code == 303
    assert box.server.services.config().panel.bounce_time == 0.03
    grouped = await client.post(
        "/settings/panel", data={"csrf": token, "panel.repeat_every": "1.000,5"}
    )
    assert grouped.status_code == 400


async def test_the_default_cancel_comment_is_shown_and_kept_in_the_box_language(
    box: Box,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    token = await sign_in(box, client)
    await client.post("/settings/language", data={"csrf": token, "language": "ca"})
    page = (await client.get("/settings")).text
    assert 'name="orders.cancel_comment" value="Cancel·lada pel restaurant"' in page
    # Saved as shown: still the default, so it follows a later change of language.
    form = {"csrf": token, "orders.cancel_comment": "Cancel·lada pel restaurant"}
    assert (await client.post("/settings/orders", data=form)).status_code == 303
    assert box.server.services.config().orders.cancel_comment == DEFAULT_CANCEL_COMMENT
    await client.post("/settings/language", data={"csrf": token, "language": "es"})
    page = (await client.get("/settings")).text
    assert 'name="orders.cancel_comment" value="Cancelado por el restaurante"' in page
    # Words of the owner's own are kept as typed.
    form["orders.cancel_comment"] = "Tancat per vacances"
    assert (await client.post("/settings/orders", data=form)).status_code == 303
    assert box.server.services.config().orders.cancel_comment == "Tancat per vacances"
