"""Setup forms generated from the config dataclasses.

A form field is named by the dotted config key it sets (``orders.default_delay``,
``printers[1].uri``), so a :class:`~edged.configtools.ConfigError` from validation points
straight at the field to show its message beside. Form text is only converted to the
field's type here; whether the value is acceptable is decided by the very code that checks
the config file (:func:`edged.configtools.build` via ``save_web_settings``). Text that does
not even convert is passed through as it is, so that code reports it, in its own words.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

TRUE_WORDS = ("true", "on", "1", "yes")


@dataclass(frozen=True)
class FormField:
    """One input: its dotted key, type hint and metadata."""

    key: str
    name: str
    hint: Any
    doc: str
    secret: bool
    minimum: float | None
    maximum: float | None


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def form_fields(cls: type[Any], prefix: str) -> list[FormField]:
    """The inputs for dataclass ``cls`` whose table sits at ``prefix``; nested tables are
    flattened into dotted keys."""
    out: list[FormField] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{prefix}.{f.name}"
        hint = hints[f.name]
        if _is_dataclass_type(hint):
            out += form_fields(hint, key)
            continue
        meta = f.metadata
        out.append(
            FormField(
                key=key,
                name=f.name,
                hint=hint,
                doc=str(meta.get("doc") or ""),
                secret=bool(meta.get("secret")),
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
            )
        )
    return out


def _convert(text: str, hint: Any) -> Any:
    """Form text to the hinted type when it converts; else the text, for build() to refuse."""
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if not text.strip() and len(options) < len(get_args(hint)):
            return None
        for option in options:
            value = _convert(text, option)
            if not isinstance(value, str) or option is str:
                return value
        return text
    if origin is Literal:
        args = get_args(hint)
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return _convert(text, int)
        return text.strip()
    if origin is list:
        (inner,) = get_args(hint)
        parts = [p.strip() for p in text.replace("\n", ",").split(",")]
        return [_convert(p, inner) for p in parts if p]
    if hint is bool:
        return text.strip().lower() in TRUE_WORDS
    if hint is int:
        try:
            return int(text.strip())
        except ValueError:
            return text
    if hint is float:
        try:
            return float(text.strip())
        except ValueError:
            return text
    return text.strip()


def _set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_form(cls: type[Any], prefix: str, form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The table for ``cls`` from submitted ``form`` (key -> all submitted values).

    Keys are relative to ``prefix``. A checkbox sends a hidden ``false`` then ``true`` when
    ticked, so the last value wins. A blank secret keeps the saved one (it is left out).
    Fields missing from the form are left out too.
    """
    table: dict[str, Any] = {}
    for field in form_fields(cls, prefix):
        values = form.get(field.key)
        if not values:
            continue
        text = values[-1]
        if field.secret and not text:
            continue
        _set_dotted(table, field.key[len(prefix) + 1 :], _convert(text, field.hint))
    return table


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if value is None:
        return ""
    return str(value)


def _current(obj: Any, field: FormField, prefix: str) -> Any:
    node = obj
    for part in field.key[len(prefix) + 1 :].split("."):
        node = getattr(node, part, None)
    return node


def field_id(key: str) -> str:
    """An HTML id for a dotted key (``printers[1].uri`` -> ``f-printers-1-uri``)."""
    return "f-" + "".join(c if c.isalnum() else "-" for c in key).strip("-").replace("--", "-")


@dataclass(frozen=True)
class FieldView:
    """One input as a template draws it."""

    key: str
    id: str
    name: str
    label: str
    help: str
    widget: Literal["checkbox", "select", "password", "text"]
    value: str
    checked: bool = False
    options: tuple[tuple[str, str], ...] = ()
    numeric: bool = False
    error: str = ""


def field_views(
    cls: type[Any],
    prefix: str,
    current: Any,
    *,
    errors: Mapping[str, str] | None = None,
    submitted: Mapping[str, Sequence[str]] | None = None,
    skip: Sequence[str] = (),
) -> list[FieldView]:
    """The inputs for ``cls`` at ``prefix``, filled with ``current`` (or what the user
    submitted, after an error), each with its error."""
    errors = errors or {}
    views: list[FieldView] = []
    for field in form_fields(cls, prefix):
        if field.name in skip:
            continue
        if submitted is not None and field.key in submitted and not field.secret:
            value: Any = submitted[field.key][-1] if submitted[field.key] else ""
        else:
            value = _current(current, field, prefix) if current is not None else None
        hint = field.hint
        bounds = ""
        if field.minimum is not None or field.maximum is not None:
            lo = "" if field.minimum is None else _num(field.minimum)
            hi = "" if field.maximum is None else _num(field.maximum)
            bounds = f" ({lo}…{hi})"
        common: dict[str, Any] = {
            "key": field.key,
            "id": field_id(field.key),
            "name": field.name,
            "label": field.name.replace("_", " "),
            "help": field.doc + bounds,
            "error": errors.get(field.key, ""),
        }
        if hint is bool:
            checked = value is True or (isinstance(value, str) and value.lower() in TRUE_WORDS)
            views.append(FieldView(widget="checkbox", value="true", checked=checked, **common))
        elif get_origin(hint) is Literal:
            options = tuple((str(a), str(a)) for a in get_args(hint))
            views.append(FieldView(widget="select", value=_shown(value), options=options, **common))
        elif field.secret:
            views.append(FieldView(widget="password", value="set" if value else "", **common))
        else:
            views.append(
                FieldView(
                    widget="text", value=_shown(value), numeric=hint in (int, float), **common
                )
            )
    return views


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def place_error(key: str, field_keys: Sequence[str]) -> str | None:
    """The form field a ``ConfigError`` key belongs to, or None (show it atop the form).

    ``printers[1]`` (a rule spanning the table) lands on that table's ``name`` field.
    """
    if key in field_keys:
        return key
    base = key.split("[", 1)[0] if key.endswith("]") else key
    for candidate in (f"{key}.name", f"{base}.name"):
        if candidate in field_keys:
            return candidate
    inside = [k for k in field_keys if k.startswith(key + ".") or k.startswith(key + "[")]
    return inside[0] if inside else None


__all__ = [
    "FieldView",
    "FormField",
    "field_id",
    "field_views",
    "form_fields",
    "parse_form",
    "place_error",
]
