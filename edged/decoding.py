"""Explicit rules for numbers, ids and text that arrive from outside the box.

Python's own converters are too forgiving for bytes from a websocket, a broker, a serial
line or a form: ``str.isdigit()`` is true for ``"²"`` (which ``int()`` refuses), ``int()``
takes ``"١٢"``, ``"1_000"`` and ``" 7 "``, ``float()`` takes ``"nan"`` and ``"inf"``, and a
long enough digit string raises a plain ``ValueError`` past the interpreter's int-string
limit. Every decoder of outside input uses these functions instead; each returns the typed
value or ``None`` and never raises, so the caller raises its own error type.

JSON from outside (the cloud, a POS bridge, a form body) goes through :func:`decode_json`,
which bounds size and nesting first and raises :class:`PayloadError` naming what it read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

# 2**63 - 1 has 19 digits: nothing longer can be a 64-bit id.
MAX_ID_DIGITS = 19
# SQLite's INTEGER is 64-bit signed: an id beyond it could not be stored.
MAX_ID = 2**63 - 1
MAX_DEPTH = 64
_ASCII_SPACE = " \t\r\n"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[-+]?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?", re.ASCII)
# A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 writer (SQLite, a
# form post, a log file) can encode. Such characters become U+FFFD at the edge, so the
# order that carried one is still stored and printed.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_BRACKETS = re.compile(r"[\[\]{}]")


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


def parse_id(value: Any) -> int | None:
    """An id (an order's, a selling point's): a JSON integer or a string of ASCII digits
    (Sinqro's doc 003 quotes ids, a URL or a form carries text), from 1 to :data:`MAX_ID`;
    None for anything else."""
    return whole_number(value, minimum=1, maximum=MAX_ID)


class PayloadError(ValueError):
    """A payload from outside is unusable; ``path`` points at the offending field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def decode_json(text: str | bytes, *, max_bytes: int, what: str = "message") -> Any:
    """Decode bounded JSON: size and nesting are capped before anything trusts it."""
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > max_bytes:
        raise PayloadError("", f"{what} too large: {size} bytes (limit {max_bytes})")
    # Cheap pre-check so a hostile "[[[[..." never reaches the recursive decoder.
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if _bracket_depth(raw) > MAX_DEPTH * 2:
        raise PayloadError("", f"{what} nested too deeply")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and the plain ValueError of an integer longer
        # than the interpreter's int-string limit (4,300 digits).
        raise PayloadError("", f"{what} is not valid JSON: {str(exc)[:120]}") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise PayloadError("", f"{what} nested too deeply")
    if _SURROGATE_ESCAPE.search(raw) or _SURROGATE.search(raw):
        value = _without_surrogates(value)
    return value


def _bracket_depth(raw: str) -> int:
    """Deepest run of opening brackets, counted without parsing (strings included)."""
    if raw.count("[") + raw.count("{") <= MAX_DEPTH * 2:
        return 0  # counted in C: most messages stop here
    opened = worst = 0
    for match in _BRACKETS.finditer(raw):
        if match.group() in "[{":
            opened += 1
            worst = max(worst, opened)
            if worst > MAX_DEPTH * 2:
                break
        else:
            opened -= 1
    return worst


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259): no Sinqro payload carries them.
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: valid JSON grammar, no usable number
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in strings and keys replaced by U+FFFD.

    Recursion is safe here: :func:`decode_json` has bounded the depth already.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value
