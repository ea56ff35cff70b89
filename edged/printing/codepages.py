"""Printer profiles and the one forced code page per printer.

ESC/POS profiles come from python-escpos's printer database (``capabilities.json``), with
the newer profiles of the maintained escpos-printer-db it lacks (TM-T20III, TM-m30III)
laid over it from ``data/escpos-profiles.json`` (CC BY 4.0). It is read as plain JSON
rather than through ``escpos.capabilities``, whose import configures logging and writes a
cache into a fresh temporary directory every time. Star printers in their own command set
have the few profiles in :data:`STAR_PROFILES`.

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

REQUIRED = "ñÑáÁéÉíÍóÓúÚüÜçÇàèòïº·€"  # · for the Catalan l·l
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
    """What the box needs from a printer profile."""

    name: str
    columns_font_a: int
    dots: int  # printable width in dots, 0 when unknown
    qr_native: bool
    cut: bool
    code_pages: dict[str, int]
    raster_only: bool = False  # no fonts on board (Star TSP100 family): pictures only


# Star code page numbers for ``ESC GS t n`` (StarPRNT), the ones that print REQUIRED.
_STAR_PAGES = {"CP858": 4, "CP1252": 32}
STAR_PROFILES = {
    # Star Graphic mode only: the TSP100 family (TSP143, TSP100III/IV) has no fonts.
    "TSP100": Profile("TSP100", 48, 576, False, True, _STAR_PAGES, raster_only=True),
    "TSP143": Profile("TSP143", 48, 576, False, True, _STAR_PAGES, raster_only=True),
    # StarPRNT text mode.
    "default": Profile("default", 48, 576, True, True, _STAR_PAGES),
    "TSP650II": Profile("TSP650II", 48, 576, True, True, _STAR_PAGES),
    "TSP700II": Profile("TSP700II", 48, 576, True, True, _STAR_PAGES),
    "mC-Print3": Profile("mC-Print3", 48, 576, True, True, _STAR_PAGES),
    "mC-Print2": Profile("mC-Print2", 32, 384, True, True, _STAR_PAGES),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "codePages":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.cache
def database() -> dict[str, Any]:
    """The printer database: python-escpos's profiles with the newer ones laid over."""
    text = (importlib.resources.files("escpos") / "capabilities.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    newer = (
        importlib.resources.files("edged.printing") / "data" / "escpos-profiles.json"
    ).read_text("utf-8")
    for name, profile in json.loads(newer)["profiles"].items():
        parent = data["profiles"][profile.pop("inherits", "default")]
        data["profiles"][name] = _merge(parent, profile)
    return data


def profile_names(command_set: str = "escpos") -> list[str]:
    if command_set == "star":
        return list(STAR_PROFILES)
    return sorted(database()["profiles"])


@functools.cache
def get_profile(name: str, command_set: str = "escpos") -> Profile:
    """The named profile; ``ValueError`` if the database does not know it."""
    if command_set == "star":
        if name not in STAR_PROFILES:
            known = ", ".join(STAR_PROFILES)
            raise ValueError(f"unknown Star printer profile {name!r} (known: {known})")
        return STAR_PROFILES[name]
    profiles = database()["profiles"]
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
    info = database()["encodings"].get(name, {})
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
def resolve(profile: str, forced: str = "", command_set: str = "escpos") -> CodePage:
    """The code page a printer uses: ``forced`` if given, else the best one it supports.

    Raises ``ValueError`` when the profile is unknown, the forced page is not supported by
    the profile, or it cannot print :data:`REQUIRED`.
    """
    prof = get_profile(profile, command_set)
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
