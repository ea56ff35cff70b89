"""Allergy notes told apart from other comments, in the box's three languages, and the
same mark on the kitchen ticket (decoded back from the printer bytes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from escpos_decoder import decode

from edged.allergens import allergy_terms, is_allergy_note
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode
from edged.printing.ticket import TicketOptions, order_ticket
from edged.sinqro.models import parse_order

EXAMPLES = Path(__file__).parents[2] / "edged" / "simulator" / "data" / "examples.json"

ALLERGY = [
    # English
    "Severe peanut allergy, please be careful",
    "I'm allergic to shellfish",
    "Coeliac: gluten free bun please",
    "No nuts at all!",
    "Lactose intolerant",
    # Spanish
    "Alérgico a los frutos secos: ¡mucho cuidado!",
    "Sin gluten, por favor",
    "Soy celíaca",
    "ALERGIA AL MARISCO",
    "Intolerancia a la lactosa",
    "Sin cacahuetes, tiene alergia",
    # Catalan
    "Al·lèrgia als fruits secs",
    "Sóc al·lèrgic a la lactosa",
    "Celíac, sense gluten si us plau",
    "al.lergia al marisc",
]
NOT_ALLERGY = [
    "no onions",
    "Sin cebolla",
    "Sense ceba, gràcies",
    "Bien hecha",
    "Poco picante, para niños",
    "Cortada en 8 trozos",
    "Llamad al timbre, el portero automático está estropeado.",
    "Donuts for the office",
    "No allergies",
    "Sin alergias conocidas",
    "",
]


@pytest.mark.parametrize("text", ALLERGY)
def test_allergy_notes_are_marked(text: str) -> None:
    assert is_allergy_note(text), text


@pytest.mark.parametrize("text", NOT_ALLERGY)
def test_other_comments_are_not(text: str) -> None:
    assert not is_allergy_note(text), allergy_terms(text)


def test_terms_found_and_not_text() -> None:
    assert allergy_terms("Alérgico a los frutos secos") == ["alergico", "frutos secos"]
    # "No allergies, but gluten free": the allergen still counts.
    assert allergy_terms("Sin alergias, pero sin gluten") == ["gluten"]
    for value in (None, 3, ["alergia"], {"comment": "alergia"}):
        assert not is_allergy_note(value)


def _order(comment: str, line_comment: str | None) -> Any:
    raw: dict[str, Any] = copy.deepcopy(json.loads(EXAMPLES.read_text("utf-8"))["delivery"])
    raw["comment"] = comment
    raw["orderLines"][0]["comment"] = line_comment
    return parse_order(raw)


def _kitchen(order: Any, language: str) -> Any:
    options = TicketOptions(columns=42, layout="kitchen", language=language)  # type: ignore[arg-type]
    profile = codepages.get_profile("default")
    settings = EncoderSettings(codepages.resolve("default"), profile, 80)
    return decode(encode(order_ticket(order, options), settings))


@pytest.mark.parametrize(
    ("language", "mark"), [("en", "ALLERGY"), ("es", "ALERGIA"), ("ca", "AL·LÈRGIA")]
)
def test_kitchen_ticket_marks_allergy_notes(language: str, mark: str) -> None:
    printed = _kitchen(_order("Alérgico a los frutos secos", "Sin gluten, por favor"), language)
    [heading] = [line for line in printed.lines if line.text.strip() == mark]
    assert heading.invert and heading.bold and heading.width == 2
    assert "Alérgico a los frutos secos" in printed.text
    line = printed.find(f"> {mark}: Sin gluten, por favor")
    assert line.bold
    # A plain comment keeps its plain heading and no mark.
    plain = _kitchen(_order("Bien hecha, sin cebolla", "no onions"), language)
    assert mark not in plain.text
    assert "> no onions" in plain.text
