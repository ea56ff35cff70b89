"""Strict, typed configuration building blocks.

Every config section is a frozen dataclass. :func:`build` turns a parsed TOML table into
that dataclass and refuses anything it does not understand: an unknown key, a wrong type,
a value out of range or a missing required value raises :class:`ConfigError` naming the
file, the dotted key and what was expected. The same function validates web forms, so a
setting is checked by one piece of code whichever way it arrives.

Field options go in ``dataclasses.field(metadata=opt(...))``:

* ``minimum`` / ``maximum``: numeric bounds (inclusive);
* ``env``: name of an environment variable that may supply the value (secrets);
* ``secret``: never shown back (web forms, ``edged check-config`` output);
* ``doc``: one-line description, used by the web setup forms.

A section class may define ``check(self) -> None`` that raises ``ValueError("key: why")``
for rules that span several fields.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import tomli_w

from edged.decoding import decimal

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unusable. ``str()`` reads as ``FILE: KEY: problem``."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


def from_environment(name: str) -> str | None:
    """A secret from systemd's credentials, else from the environment variable ``name``.

    A unit given ``LoadCredential=NAME:/etc/edged/credentials/FILE`` (systemd 247 and later)
    finds the file at ``$CREDENTIALS_DIRECTORY/NAME``, readable by the service only and never
    in ``/proc/*/environ`` of what it starts; one trailing newline is dropped. Without the
    credential, ``EnvironmentFile=`` and the environment still work."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and "/" not in name:
        try:
            text = (Path(directory) / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                "$CREDENTIALS_DIRECTORY", name, f"unreadable credential: {exc}"
            ) from None
        else:
            return text.removesuffix("\n")
    return os.environ.get(name)


class _Reported(ConfigError):
    """A table that could not be built because its errors are already in the list."""


def opt(
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    env: str | None = None,
    secret: bool = False,
    doc: str = "",
) -> dict[str, Any]:
    """Metadata for a config field (see module docstring)."""
    return {"minimum": minimum, "maximum": maximum, "env": env, "secret": secret, "doc": doc}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp)
        return f"a list of {_type_name(inner)}"
    if tp is type(None):
        return "nothing"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(
    value: Any, tp: Any, key: str, file: str, errors: list[ConfigError] | None = None
) -> Any:
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        errors = []
        for option in get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, option, key, file)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(file, key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp) and type(value) is type(get_args(tp)[0]):
            return value
        raise ConfigError(file, key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(file, key, f"expected {_type_name(tp)}, got {value!r}")
        items, failed = [], False
        for i, v in enumerate(value):
            try:
                items.append(_convert(v, inner, f"{key}[{i}]", file, errors))
            except ConfigError as exc:
                if errors is None:
                    raise
                if not isinstance(exc, _Reported):
                    errors.append(exc)
                failed = True  # go on: the next items may hold errors of their own
        if failed:
            raise _Reported(file, key, "see the errors above")
        return items
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(file, key, f"expected a table, got {value!r}")
        return _build(typing.cast(type[Any], tp), value, file=file, where=key, errors=errors)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                raise ConfigError(file, key, "integer out of range")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = decimal(value)  # None for NaN, inf, and an integer past any float
            if number is None:
                shown = repr(value) if isinstance(value, float) else "a huge integer"
                raise ConfigError(file, key, f"expected a finite number, got {shown}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigError(file, key, f"expected {_type_name(tp)}, got {value!r}")


def build(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    file: str,
    where: str = "",
    errors: list[ConfigError] | None = None,
) -> T:
    """Build the dataclass ``cls`` from ``data``, strictly.

    ``where`` is the dotted path of this table inside the file, used in messages.
    Raises :class:`ConfigError` on the first problem found; with an ``errors`` list, every
    problem is appended to it instead and the first one raised at the end
    (``edged check-config`` shows them all).
    """
    if errors is None:
        return _build(cls, data, file=file, where=where, errors=None)
    before = len(errors)
    try:
        return _build(cls, data, file=file, where=where, errors=errors)
    except _Reported:
        raise errors[before] from None


def _build(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    file: str,
    where: str,
    errors: list[ConfigError] | None,
) -> T:
    assert dataclasses.is_dataclass(cls)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    found: list[ConfigError] = []

    def fail(error: ConfigError) -> None:
        if errors is None:
            raise error
        if not isinstance(error, _Reported):
            errors.append(error)
        found.append(error)

    def dotted(name: str) -> str:
        return f"{where}.{name}" if where else name

    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            fail(ConfigError(file, dotted(str(key)), f"unknown key (known keys here: {known})"))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        meta = f.metadata
        key = dotted(name)
        if name in data:
            raw = data[name]
        elif meta.get("env") and (supplied := from_environment(meta["env"])) is not None:
            raw = supplied
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        else:
            hint = f" (or set ${meta['env']})" if meta.get("env") else ""
            fail(ConfigError(file, key, f"missing required value: {_type_name(hints[name])}{hint}"))
            continue
        try:
            value = _convert(raw, hints[name], key, file, errors)
        except ConfigError as exc:
            fail(exc)
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = meta.get("minimum"), meta.get("maximum")
            if lo is not None and value < lo:
                fail(ConfigError(file, key, f"must be at least {lo}, got {value!r}"))
                continue
            if hi is not None and value > hi:
                fail(ConfigError(file, key, f"must be at most {hi}, got {value!r}"))
                continue
        values[name] = value
    if found:  # only reached when collecting: this table cannot be built
        raise _Reported(file, where, "see the errors above")
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:
            sub, _, problem = str(exc).partition(": ")
            error = ConfigError(file, dotted(sub), problem) if problem else None
            fail(error or ConfigError(file, where, str(exc)))
            raise _Reported(file, where, "see the errors above") from None
    return obj


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two parsed TOML documents; tables merge, everything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def to_plain(obj: Any, *, hide_secrets: bool = True) -> Any:
    """A config dataclass back to plain dicts and lists; secrets become ``"***"`` when set."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if hide_secrets and f.metadata.get("secret") and value:
                out[f.name] = "***"
            else:
                out[f.name] = to_plain(value, hide_secrets=hide_secrets)
        return out
    if isinstance(obj, list):
        return [to_plain(v, hide_secrets=hide_secrets) for v in obj]
    return obj


def _without_none(value: Any) -> Any:
    """``value`` with ``None`` left out of every table (TOML has no null: unset means default)."""
    if isinstance(value, Mapping):
        return {str(k): _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def dump_toml(doc: Mapping[str, Any]) -> str:
    """Write a parsed-TOML-shaped document (tables, arrays of tables, scalars, lists).

    tomli-w quotes keys that are not bare-key safe and escapes every string correctly (an
    emoji flag in a box name, a key with accents); ``None`` values are left out. Raises
    :class:`TypeError` for a value TOML cannot hold.
    """
    return tomli_w.dumps(_without_none(doc))


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")


def _parts(dotted: str) -> list[str]:
    return [a or b or c for a, b, c in _PART.findall(dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Where each key and table of a TOML text starts: ``{"printers[1].uri": 12}``.

    tomllib gives no positions, so this is a small scan of headers and ``key =`` lines
    (multi-line strings skipped; keys inside inline tables take their table's line). Keys
    are written as :class:`ConfigError` names them: ``a.b``, ``list[2].c``.
    """
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    quote = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if quote:  # inside a multi-line string
            if line.count(quote) % 2:
                quote = ""
            continue
        header = _HEADER.match(line)
        if header:
            path = ".".join(_parts(header.group(2)))
            if header.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                lines.setdefault(path, number)
                path = f"{path}[{index}]"
            table = path
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = ".".join(_parts(assign.group(1)))
            lines.setdefault(f"{table}.{key}" if table else key, number)
            rest = line[assign.end() :]
            for mark in ('"""', "'''"):
                if rest.count(mark) % 2:
                    quote = mark
    return lines


def key_line(text: str, dotted: str) -> int | None:
    """The line of ``dotted`` (as a :class:`ConfigError` names it) in the TOML ``text``, or
    of the nearest table above it that is written there (a missing key: its table)."""
    lines = key_lines(text)
    key = dotted
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None
