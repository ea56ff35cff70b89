"""Printer profiles and the one forced code page per printer.

Profiles come from python-escpos's printer database (``capabilities.json``). It is read as
plain JSON rather than through ``escpos.capabilities``, whose import configures logging and
writes a cache into a fresh temporary directory every time.

A ticket must print Spanish and Catalan text and the euro sign. Each printer is forced into
one code page that holds all of :data:`REQUIRED`; the table number for ``ESC t n`` differs
between printer makes, which is exactly what the profile tells us.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass
from typing import Any

REQUIRED = "ñÑáÁéÉíÍóÓúÚüÜçÇàèòïº€"
# Best first: CP858 is CP850 with the euro, the Epson default; CP1252 next.
PREFERRED = ("CP858", "CP1252", "ISO_8859-15")


@dataclass(frozen=True)
class CodePage:
    """A code page as the printer knows it: ``ESC t number`` and the Python codec."""

    name: str
    number: int
    codec: str


@dataclass(frozen=True)
class Profile:
    """What the box needs from a python-escpos profile."""

    name: str
    columns_font_a: int
    dots: int  # printable width in dots, 0 when unknown
    qr_native: bool
    cut: bool
    code_pages: dict[str, int]


@functools.cache
def _database() -> dict[str, Any]:
    text = (importlib.resources.files("escpos") / "capabilities.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def profile_names() -> list[str]:
    return sorted(_database()["profiles"])


@functools.cache
def get_profile(name: str) -> Profile:
    """The named profile; ``ValueError`` if python-escpos does not know it."""
    profiles = _database()["profiles"]
    if name not in profiles:
        raise ValueError(f"unknown printer profile {name!r} (known: {', '.join(profile_names())})")
    data = profiles[name]
    fonts = data.get("fonts", {})
    columns = int(fonts.get("0", {}).get("columns", 42))
    pixels = data.get("media", {}).get("width", {}).get("pixels", 0)
    features = data.get("features", {})
    return Profile(
        name=name,
        columns_font_a=columns,
        dots=pixels if isinstance(pixels, int) else 0,
        qr_native=bool(features.get("qrCode")),
        cut=bool(features.get("paperPartCut") or features.get("paperFullCut")),
        code_pages={str(v): int(k) for k, v in data.get("codePages", {}).items()},
    )


def codec_for(name: str) -> str:
    """Python codec of a code page name from the database."""
    info = _database()["encodings"].get(name, {})
    codec = info.get("python_encode")
    if not isinstance(codec, str):
        raise ValueError(f"code page {name!r} has no Python codec")
    return codec


def covers(codec: str, text: str = REQUIRED) -> bool:
    try:
        encoded = text.encode(codec)
    except (UnicodeEncodeError, LookupError):
        return False
    return encoded.decode(codec) == text


@functools.cache
def resolve(profile: str, forced: str = "") -> CodePage:
    """The code page a printer uses: ``forced`` if given, else the best one it supports.

    Raises ``ValueError`` when the profile is unknown, the forced page is not supported by
    the profile, or it cannot print :data:`REQUIRED`.
    """
    prof = get_profile(profile)
    candidates = (forced,) if forced else PREFERRED
    for name in candidates:
        if name not in prof.code_pages:
            if forced:
                known = ", ".join(n for n in prof.code_pages if n != "Unknown")
                raise ValueError(f"{name!r} is not a code page of profile {profile} ({known})")
            continue
        try:
            codec = codec_for(name)
        except ValueError:
            if forced:
                raise
            continue
        if not covers(codec):
            if forced:
                raise ValueError(f"{name} cannot print all of {REQUIRED}")
            continue
        return CodePage(name=name, number=prof.code_pages[name], codec=codec)
    raise ValueError(f"profile {profile} has no code page that prints {REQUIRED}; set code_page")
