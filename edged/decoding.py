"""Explicit rules for numbers, ids and text that arrive from outside the box.

Python's own converters are too forgiving for bytes from a websocket, a broker, a serial
line or a form: ``str.isdigit()`` is true for ``"²"`` (which ``int()`` refuses), ``int()``
takes ``"١٢"``, ``"1_000"`` and ``" 7 "``, ``float()`` takes ``"nan"`` and ``"inf"``, and a
long enough digit string raises a plain ``ValueError`` past the interpreter's int-string
limit. Every decoder of outside input uses these functions instead; each returns the typed
value or ``None`` and never raises, so the caller raises its own error type.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

# 2**63 - 1 has 19 digits: nothing longer can be a 64-bit id.
MAX_ID_DIGITS = 19
_ASCII_SPACE = " \t\r\n"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[-+]?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?", re.ASCII)


def ascii_int(text: str, *, max_digits: int = MAX_ID_DIGITS, signed: bool = False) -> int | None:
    """``text`` as an integer when it is ASCII digits (an optional ``-`` when ``signed``),
    at most ``max_digits`` of them, with nothing around but ASCII spaces; else None."""
    core = text.strip(_ASCII_SPACE)
    negative = signed and core.startswith("-")
    if negative:
        core = core[1:]
    if not 0 < len(core) <= max_digits or not _DIGITS.fullmatch(core):
        return None
    value = int(core)
    return -value if negative else value


def whole_number(value: Any, *, minimum: int, maximum: int) -> int | None:
    """A JSON integer (never a boolean) or a string of ASCII digits, within
    ``minimum..maximum``; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number: int | None = value
    elif isinstance(value, str):
        digits = max(len(str(abs(minimum))), len(str(abs(maximum))))
        number = ascii_int(value, max_digits=digits, signed=minimum < 0)
    else:
        return None
    if number is None or not minimum <= number <= maximum:
        return None
    return number


def decimal(value: Any) -> float | None:
    """A finite number from a JSON number or a plain decimal string (``"12.50"``,
    ``"-3"``, ``"1e3"``); ``"nan"``, ``"inf"``, ``"0x10"``, ``"1_0"`` and non-ASCII digits
    are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip(_ASCII_SPACE)
        if not _DECIMAL.fullmatch(text):
            return None
        number = float(text)
    elif isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
    elif isinstance(value, float):
        number = value
    else:
        return None
    return number if math.isfinite(number) else None


def digest(payload: bytes | str) -> str:
    """A short, stable fingerprint of a message, to name it in a log without its content."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return hashlib.sha256(data).hexdigest()[:16]
