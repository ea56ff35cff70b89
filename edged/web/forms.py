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

from edged.decoding import ascii_int, decimal
from edged.i18n import Locale
from edged.printing.settings import ORDER_TYPES, SLIP_STATUSES
from edged.web.labels import ADVANCED, CHOICE_TEXT, FIELD_TEXT, IN_BOX_LANGUAGE

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
    # The on/off switch first, also where a section inherits its other keys.
    ordered = sorted(dataclasses.fields(cls), key=lambda f: f.name != "enabled")
    for f in ordered:
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


def _convert(text: str, hint: Any, point: str = ".") -> Any:
    """Form text to the hinted type when it converts; else the text, for build() to refuse.

    ``point`` is the decimal mark of the page's language: ``0,5`` is a number on a Spanish
    page (``0.5`` too: people type either)."""
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if not text.strip() and len(options) < len(get_args(hint)):
            return None
        for option in options:
            value = _convert(text, option, point)
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
        # ASCII digits only: int() would also take "١٢" and "1_000".
        number = ascii_int(text, signed=True)
        return text if number is None else number
    if hint is float:
        if point != "." and text.count(point) == 1 and "." not in text:
            text = text.replace(point, ".")
        value = decimal(text)  # "nan", "inf", "0x10" and "1_0" stay text, and are refused
        return text if value is None else value
    return text.strip()


def _set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_form(
    cls: type[Any],
    prefix: str,
    form: Mapping[str, Sequence[str]],
    locale: Locale | None = None,
) -> dict[str, Any]:
    """The table for ``cls`` from submitted ``form`` (key -> all submitted values), numbers
    read as ``locale`` writes them.

    Keys are relative to ``prefix``. A checkbox sends a hidden ``false`` then ``true`` when
    ticked, so the last value wins. A blank secret keeps the saved one (it is left out).
    Fields missing from the form are left out too.
    """
    locale = locale or Locale()
    point = locale.decimal_mark
    defaults = _defaults(cls)
    table: dict[str, Any] = {}
    for field in form_fields(cls, prefix):
        values = form.get(field.key)
        if not values:
            continue
        if field.name in CHOICES:
            # A group of checkboxes: every ticked value (a hidden "" says "none ticked").
            _set_dotted(table, field.key[len(prefix) + 1 :], [v for v in values if v])
            continue
        text = values[-1]
        if field.secret and not text:
            continue
        if (section_of(prefix), field.name) in IN_BOX_LANGUAGE:
            default = defaults.get(field.name)
            if isinstance(default, str) and text.strip() == locale.gettext(default):
                text = default  # left as shown: it keeps following the box's language
        _set_dotted(table, field.key[len(prefix) + 1 :], _convert(text, field.hint, point))
    return table


def _shown(value: Any, point: str = ".") -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, float):
        # 0.05 as "0,05" on a Spanish page; no thousands marks (the field reads it back).
        return f"{value:.10f}".rstrip("0").rstrip(".").replace(".", point)
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
    widget: Literal["checkbox", "select", "password", "text", "checks"]
    value: str
    checked: bool = False
    options: tuple[tuple[str, str], ...] = ()
    selected: tuple[str, ...] = ()
    numeric: bool = False
    error: str = ""
    advanced: bool = True
    config_key: str = ""  # shown small beside advanced fields, for support


# List fields whose values come from a fixed set: drawn as a group of checkboxes.
CHOICES: dict[str, tuple[str, ...]] = {"order_types": ORDER_TYPES, "status_slips": SLIP_STATUSES}


def section_of(prefix: str) -> str:
    """``printers[2]`` -> ``printers``; ``orders`` -> ``orders``."""
    return prefix.split("[", 1)[0]


def field_views(
    cls: type[Any],
    prefix: str,
    current: Any,
    *,
    errors: Mapping[str, str] | None = None,
    submitted: Mapping[str, Sequence[str]] | None = None,
    skip: Sequence[str] = (),
    locale: Locale | None = None,
) -> list[FieldView]:
    """The inputs for ``cls`` at ``prefix``, filled with ``current`` (or what the user
    submitted, after an error), each with its error, label and help in ``locale``'s
    language; the fields an owner does not need are marked ``advanced``."""
    errors = errors or {}
    locale = locale or Locale()
    _ = locale.gettext
    section = section_of(prefix)
    views: list[FieldView] = []
    defaults = _defaults(cls)
    for field in form_fields(cls, prefix):
        if field.name in skip:
            continue
        all_submitted: Sequence[str] = ()
        if submitted is not None and field.key in submitted and not field.secret:
            all_submitted = submitted[field.key]
            value: Any = all_submitted[-1] if all_submitted else ""
        elif current is not None:
            value = _current(current, field, prefix)
        else:
            # A new entry starts from the field's default: only what matters is typed.
            value = defaults.get(field.name)
        if (section, field.name) in IN_BOX_LANGUAGE and value == defaults.get(field.name):
            value = _(str(value))
        hint = field.hint
        label, help_text = field_text(section, field.name)
        advanced = (section, field.name) in ADVANCED
        common: dict[str, Any] = {
            "key": field.key,
            "id": field_id(field.key),
            "name": field.name,
            "label": _(label),
            "help": " ".join(p for p in (_(help_text), _bounds(field, locale)) if p),
            "error": errors.get(field.key, ""),
            "advanced": advanced,
            "config_key": field.key if advanced else "",
        }
        words = CHOICE_TEXT.get((section, field.name), {})
        if field.name in CHOICES:
            if all_submitted:
                chosen = tuple(v for v in all_submitted if v)
            else:
                chosen = tuple(value or ()) if isinstance(value, (list, tuple)) else ()
            options = tuple((c, _(words.get(c, c))) for c in CHOICES[field.name])
            views.append(
                FieldView(widget="checks", value="", options=options, selected=chosen, **common)
            )
        elif hint is bool:
            checked = value is True or (isinstance(value, str) and value.lower() in TRUE_WORDS)
            views.append(FieldView(widget="checkbox", value="true", checked=checked, **common))
        elif get_origin(hint) is Literal:
            options = tuple((str(a), _(words.get(str(a), str(a)))) for a in get_args(hint))
            views.append(FieldView(widget="select", value=_shown(value), options=options, **common))
        elif field.secret:
            views.append(FieldView(widget="password", value="set" if value else "", **common))
        else:
            views.append(
                FieldView(
                    widget="text",
                    value=_shown(value, locale.decimal_mark),
                    numeric=hint in (int, float),
                    **common,
                )
            )
    return views


def _defaults(cls: type[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def field_problems(
    cls: type[Any], prefix: str, form: Mapping[str, Sequence[str]], locale: Locale
) -> dict[str, str]:
    """Every field's problem at once, in words, before the whole config is checked (which
    stops at the first): missing required values, numbers that are not numbers or out of
    range, choices not offered."""
    _ = locale.gettext
    problems: dict[str, str] = {}
    required = {f.name for f in dataclasses.fields(cls) if _no_default(f)}
    for field in form_fields(cls, prefix):
        values = form.get(field.key)
        if field.name in CHOICES:
            continue
        text = values[-1].strip() if values else ""
        if not text:
            if field.name in required:
                problems[field.key] = _("Required.")
            continue
        hint = field.hint
        if hint in (int, float):
            value = _convert(text, hint, locale.decimal_mark)
            if isinstance(value, str):
                problems[field.key] = (
                    _("Enter a whole number.") if hint is int else _("Enter a number.")
                )
                continue
            if field.minimum is not None and value < field.minimum:
                problems[field.key] = _("At least {n}.").format(n=_num(field.minimum, locale))
            elif field.maximum is not None and value > field.maximum:
                problems[field.key] = _("At most {n}.").format(n=_num(field.maximum, locale))
        elif get_origin(hint) is Literal and text not in [str(a) for a in get_args(hint)]:
            problems[field.key] = _("Choose one of the offered values.")
    return problems


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def field_text(section: str, name: str) -> tuple[str, str]:
    """The (label, help) message ids of a field; a field without words (a test keeps that
    from landing) falls back to its name and no help rather than failing the page."""
    return FIELD_TEXT.get((section, name), (name, ""))


def _bounds(field: FormField, locale: Locale) -> str:
    """``(0,01…600)``: the accepted range, in the locale's numbers."""
    if field.minimum is None and field.maximum is None:
        return ""
    lo = "" if field.minimum is None else _num(field.minimum, locale)
    hi = "" if field.maximum is None else _num(field.maximum, locale)
    return f"({lo}…{hi})"


def _num(value: float, locale: Locale) -> str:
    """``value`` with as many decimals as it has (``0.005`` -> ``0,005`` in es)."""
    decimals = len(f"{float(value):.10f}".rstrip("0").partition(".")[2])
    return locale.number(value, decimals)


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
    "field_problems",
    "field_text",
    "field_views",
    "form_fields",
    "parse_form",
    "place_error",
]
