"""Writing TOML: whatever the validator accepts comes back equal after a write and a read.

The strategies are derived from the config dataclasses themselves (types, Literal choices,
minimum and maximum), so a key added to the schema is covered without touching this file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.config import Config
from edged.configtools import ConfigError, build, dump_toml, to_plain

INT64 = 2**63 - 1


def _scalar(tp: Any, meta: dict[str, Any]) -> st.SearchStrategy[Any]:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if tp is bool:
        return st.booleans()
    if tp is int:
        lower = -INT64 if lo is None else math.ceil(lo)
        upper = INT64 if hi is None else math.floor(hi)
        return st.integers(lower, upper)
    if tp is float:
        floats = st.floats(
            min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False, width=64
        )
        # An integer in a float field is accepted too (TOML `30` for 30.0).
        ints = st.integers(
            -(10**6) if lo is None else math.ceil(lo), 10**6 if hi is None else math.floor(hi)
        )
        return floats | ints if (lo is None or hi is None or hi - lo >= 1) else floats
    if tp is str:
        # Any Unicode but lone surrogates (TOML is UTF-8): accents, emoji flags, quotes,
        # backslashes, control characters, newlines.
        return st.text(max_size=40)
    raise TypeError(f"no strategy for {tp!r}")


def value_of(tp: Any, meta: dict[str, Any]) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return st.one_of([value_of(a, meta) for a in get_args(tp) if a is not type(None)])
    if origin is list:
        (inner,) = get_args(tp)
        return st.lists(value_of(inner, {}), max_size=3)
    if dataclasses.is_dataclass(tp):
        return table_of(typing.cast(type[Any], tp))
    return _scalar(tp, meta)


def table_of(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Tables of ``cls`` with any subset of its keys, each of its declared type."""
    hints = get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    per_key = {f.name: value_of(hints[f.name], dict(f.metadata)) for f in fields}
    return st.fixed_dictionaries({}, optional=per_key).map(lambda d: accepted(cls, d))


def accepted(cls: type[Any], doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` less the keys the validator refuses, so what is left is a valid table."""
    doc = dict(doc)
    while True:
        try:
            build(cls, doc, file="generated")
            return doc
        except ConfigError as exc:
            first = exc.key.split(".")[0].split("[")[0]
            if first in doc:
                del doc[first]
            else:  # a rule across keys: drop the whole table's content
                return {}


configs = table_of(Config).filter(lambda d: "sinqro" in d)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_any_accepted_config_round_trips(doc: dict[str, Any]) -> None:
    config = build(Config, doc, file="generated")
    text = dump_toml(doc)
    back = tomllib.loads(text)
    assert back == doc
    assert build(Config, back, file="written") == config


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_the_effective_config_round_trips(doc: dict[str, Any]) -> None:
    """What ``edged check-config --show`` prints (every value, defaults included) is
    writable, and reads back as the same config."""
    config = build(Config, doc, file="generated")
    plain = to_plain(config, hide_secrets=False)
    plain.pop("source")  # where it was read from, not a setting
    assert build(Config, tomllib.loads(dump_toml(plain)), file="written") == config


toml_keys = st.text(min_size=1, max_size=12)
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-INT64, INT64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
toml_docs = st.recursive(
    st.dictionaries(toml_keys, toml_scalars, max_size=4),
    lambda inner: st.dictionaries(
        toml_keys, inner | st.lists(inner, min_size=1, max_size=2), max_size=3
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(toml_docs)
def test_any_document_round_trips(doc: dict[str, Any]) -> None:
    """Keys with accents, dots, spaces or quotes, and strings beyond U+FFFF."""
    assert tomllib.loads(dump_toml(doc)) == doc


def test_non_ascii_keys_and_astral_characters() -> None:
    doc = {"box": {"name": "Casa \U0001f1ea\U0001f1f8 Pepe \U0001f355"}, "cañas": {"ñ": 1}}
    text = dump_toml(doc)
    assert tomllib.loads(text) == doc
    assert '["cañas"]' in text  # quoted: a bare non-ASCII key is not TOML


def test_none_is_left_out() -> None:
    assert tomllib.loads(dump_toml({"a": {"b": None, "c": 1}, "d": None})) == {"a": {"c": 1}}
