"""Text from outside, made safe and measured for a ticket.

Every string taken from an order goes through :func:`clean` first: control characters
(C0, DEL, C1, Unicode format characters) are dropped, so nothing from outside can become a
printer command whatever the encoder does. Widths are counted in character cells: a
Chinese or Japanese character takes two, as on every receipt printer and terminal.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from typing import Any

MAX_FIELD = 2000  # characters kept from one field from outside (a comment, a label)
MAX_URL = 512

_LINE_BREAK = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def strip_controls(text: str) -> str:
    """``text`` without control or format characters; whitespace becomes plain spaces."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def clean(value: Any, limit: int = MAX_FIELD) -> str:
    """One line of printable text from an untrusted value (``""`` for non-text).

    Drops C0/C1 controls, DEL and Unicode format characters (bidi overrides, zero-width);
    any whitespace run becomes one space.
    """
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return ""
    value = unicodedata.normalize("NFC", value[: limit * 2])
    return " ".join(strip_controls(value).split())[:limit]


def clean_paragraphs(value: Any, limit: int = MAX_FIELD) -> list[str]:
    """Like :func:`clean` but keeps the writer's line breaks (comments)."""
    if not isinstance(value, str):
        text = clean(value, limit)
        return [text] if text else []
    parts = [clean(p, limit) for p in _LINE_BREAK.split(value[: limit * 2])]
    return [p for p in parts if p][:50]


def clean_url(value: Any) -> str:
    """A tracking link safe for a QR code: http(s), printable ASCII only."""
    # A link with control characters in it was mangled on the way: drop it, don't guess.
    if not isinstance(value, str) or not re.fullmatch(r"[\x21-\x7e]+", value.strip()):
        return ""
    text = clean(value, MAX_URL)
    if not re.fullmatch(r"https?://[\x21-\x7e]+", text):
        return ""
    return text


def char_cells(ch: str) -> int:
    """Cells one character takes: 2 for East Asian wide and full-width characters."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    """Width of ``text`` in character cells."""
    if text.isascii():
        return len(text)
    return sum(char_cells(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """The longest start of ``text`` that fits ``width`` cells."""
    if cells(text) <= width:
        return text
    used = 0
    for i, ch in enumerate(text):
        used += char_cells(ch)
        if used > width:
            return text[:i]
    return text


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Wrap to ``width`` characters; continuation lines get ``indent``."""
    width = max(width, 8)
    if cells(text) != len(text):
        return _wrap_cells(text, width, indent)
    lines = textwrap.wrap(
        text,
        width=width,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )
    return lines or [""]


def _wrap_cells(text: str, width: int, indent: str) -> list[str]:
    """Greedy wrap by cells: words where there are spaces, any character where there are
    none (Chinese and Japanese have no spaces between words)."""
    lines: list[str] = []
    line = text[: len(text) - len(text.lstrip(" "))]  # keep the caller's indent
    for word in text.split():
        candidate = f"{line} {word}" if line.strip() else line + word
        if cells(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
            line = indent
        for ch in word:
            if cells(line) + char_cells(ch) > width and line.strip():
                lines.append(line)
                line = indent
            line += ch
    if line.strip():
        lines.append(line)
    return lines or [""]
