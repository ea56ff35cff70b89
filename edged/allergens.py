"""Allergy notes: is a customer's comment about an allergy or an intolerance?

One detector for everything that shows an order (the board marks the note, the kitchen
ticket prints it under an ALLERGY heading), so a note marked on one is marked on the other.
Sinqro's order model (doc 003) has no allergen field: an order line only names its product,
and product tags belong to the menu, so the customer's own words are all there is.

The words are the box's languages' (English, Spanish, Catalan), matched whole, without case
or accents: "allergy", "alérgico", "al·lèrgia", "gluten", "celíaco", "frutos secos",
"fruits secs", "nuts", "lactosa"... A plain dislike ("no onions", "sin cebolla") is not one.
A note that says there is *no* allergy ("no allergies", "sin alergias") is not marked either,
unless it names an allergen besides.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["allergy_terms", "is_allergy_note"]

# Stems and words, accent-free and lower case; "\b" ends a whole word.
_TERMS = (
    # allergy / allergic / allergen (en), alergia / alérgico (es), al·lèrgia / al·lèrgic (ca)
    r"allerg\w*",
    r"alerg\w*",
    r"al[.·l]?lerg\w*",
    r"intoleran\w*",
    r"anaphyla\w*",
    r"anafila\w*",
    r"gluten\w*",
    r"coeliac\w*",
    r"celiac\w*",
    r"celiaqu\w*",
    r"celiac[oa]s?",
    r"nuts?",
    r"peanuts?",
    r"tree ?nuts?",
    r"frutos? secos?",
    r"fruits? secs?",
    r"cacahuet\w*",
    r"cacauets?",
    r"lactos\w*",
    r"shellfish",
    r"mariscos?",
    r"marisc",
)
_PATTERN = re.compile(r"\b(?:" + "|".join(_TERMS) + r")\b")
# "no allergies", "sin alergias", "sense al·lèrgies", "ninguna alergia", "cap al·lèrgia".
_NONE = re.compile(
    r"\b(?:no|without|sin|sense|ninguna|ningun|cap|nothing)\s+(?:known\s+)?"
    r"(?:allerg|alerg|al[.·l]?lerg)\w*"
)


def _plain(text: str) -> str:
    """Lower case without accents; the Catalan middle dot stays (``al·lèrgia``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def allergy_terms(text: Any) -> list[str]:
    """The allergy words in ``text`` (as found, accent-free), none for anything not text."""
    if not isinstance(text, str) or not text:
        return []
    plain = _NONE.sub(" ", _plain(text[:5000]))
    return [m.group(0) for m in _PATTERN.finditer(plain)]


def is_allergy_note(text: Any) -> bool:
    """True when ``text`` speaks of an allergy, an intolerance or an allergen."""
    return bool(allergy_terms(text))
