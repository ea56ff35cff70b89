"""Shared pieces of the hostile-input tests: Hypothesis settings and strategies.

Every fuzz test runs a fixed, reproducible number of examples in CI (Hypothesis with
``derandomize``). ``pytest --slow`` (or ``EDGED_SLOW=1``) runs ten times as many, with
fresh random examples each run: for a long hunt before a release.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from edged.journal.store import Journal, Tx
from edged.sinqro.models import ORDER_TYPES, Order

SLOW = os.environ.get("EDGED_SLOW", "") not in ("", "0")


def hostile(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings: ``examples`` in CI (fixed seed), ten times more with --slow."""
    return settings(
        max_examples=examples * 10 if SLOW else examples,
        deadline=None,
        derandomize=not SLOW,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


@dataclass(frozen=True)
class Raw:
    """A JSON number token written as it is (see :func:`dumps_loose`)."""

    token: str


# -- strategies -------------------------------------------------------------------------------

# Any code point, lone surrogates and control characters included.
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=30)
# What a sender could really put in a UTF-8 text frame (no lone surrogates).
WIRE_TEXT = st.text(max_size=60)
# Number tokens as a careless or hostile sender writes them; json.dumps cannot (an integer
# past 4,300 digits) or will not (1e999) produce them, so they travel as Raw.
RAW_TOKENS = (
    "9" * 5000,
    "-" + "9" * 4301,
    "1" + "0" * 4299,
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e-999",
    "0." + "0" * 5000 + "1",
    "-0",
    "4" * 400,
)
RAW_NUMBERS = st.sampled_from(RAW_TOKENS)
# Strings that str.isdigit(), int() or float() take but are no plain decimal number.
TRICKY_DIGITS = st.sampled_from(
    ["²", "١٢", "1_000", "+5", " 5", "5\n", "0x10", "𝟓", "５", "9" * 30, "7²", "", "-3", "1e3"]
)
NUMBERS = (
    st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.integers(min_value=10**308, max_value=10**400)
    | st.floats()
    | st.sampled_from(["inf", "-inf", "nan", "1e999", "12.50", " 7 ", "0x10"])
    | TRICKY_DIGITS
    | RAW_NUMBERS.map(lambda token: Raw(token))
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
IDS = (
    st.integers(min_value=1, max_value=10**6)
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(max_value=0)
    | st.from_regex(r"\A ?[0-9]{1,25} ?\Z")
    | TRICKY_DIGITS
    | RAW_NUMBERS.map(lambda token: Raw(token))
    | SCALARS
)
STATUSES = st.sampled_from(
    ["waiting_sp_validation", "accepted", "preparation", "cancelled_by_sp", "finished", ""]
)
TZ_NAMES = st.sampled_from(
    ["Europe/Madrid", "Pacific/Kiritimati", "Etc/GMT+12", "Europe", "America", "", "/", ".."]
) | st.text(max_size=20)


def _stamp(when: datetime, offset: str) -> str:
    return when.isoformat() + offset


TIMES = (
    st.builds(
        _stamp,
        st.datetimes(),
        st.sampled_from(["+14:00", "-14:00", "+0000", "Z", "", "+2359", "-23:59"]),
    )
    | st.sampled_from(["0001-01-01T00:00:00+1400", "9999-12-31T23:59:59-1400"])
    | TEXT
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the given shape, sometimes any JSON value in its place."""
    return strategy | JSON


def opt_dict(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


LINE = opt_dict(
    label=maybe(TEXT),
    quantity=maybe(NUMBERS),
    totalAmount=maybe(NUMBERS),
    comment=maybe(TEXT),
    type=st.sampled_from(["PRODUCT", "DELIVERY", "DISCOUNT"]) | JSON,
    product=maybe(opt_dict(externalId=JSON)),
    childrenOrderLines=st.lists(
        opt_dict(label=maybe(TEXT), quantity=maybe(NUMBERS), comment=maybe(TEXT)), max_size=3
    ),
)
# Everything an order may carry besides the three fields the box relies on.
ORDER_BODY = opt_dict(
    sellingPoint=maybe(opt_dict(id=IDS, timezone=maybe(TZ_NAMES), name=TEXT)),
    consumer=maybe(opt_dict(name=maybe(TEXT), lastname=maybe(TEXT), phone=maybe(TEXT))),
    market=maybe(opt_dict(name=maybe(TEXT))),
    marketOrderCode=maybe(TEXT),
    comment=maybe(TEXT),
    cancellationComment=maybe(TEXT),
    createdAt=TIMES,
    executionTime=TIMES,
    isAsap=JSON,
    totalAmount=maybe(NUMBERS),
    deliveryAmount=maybe(NUMBERS),
    dinersNumber=maybe(NUMBERS),
    currency=maybe(opt_dict(displayPattern=maybe(TEXT), symbol=maybe(TEXT), isoCode=TEXT)),
    orderLines=maybe(st.lists(LINE, max_size=4)),
    deliveryAddress=maybe(opt_dict(street=maybe(TEXT), city=maybe(TEXT), postalCode=JSON)),
    deliveries=maybe(
        st.lists(opt_dict(trackingUrl=maybe(TEXT), deliveryInstructions=maybe(TEXT)), max_size=2)
    ),
    payments=maybe(
        st.lists(opt_dict(amount=maybe(NUMBERS), prepaid=JSON, methodCode=TEXT), max_size=2)
    ),
    serviceLocation=maybe(opt_dict(name=maybe(TEXT), serviceZone=opt_dict(name=maybe(TEXT)))),
)


@st.composite
def order_objects(draw: st.DrawFn, *, sane_core: bool = False) -> dict[str, Any]:
    """An order-shaped object. ``sane_core``: id, type and status are usable, the rest is
    hostile (so the order gets stored and printed)."""
    obj = dict(draw(ORDER_BODY))
    if sane_core:
        obj["id"] = draw(st.integers(min_value=1, max_value=10**9))
        obj["type"] = draw(
            st.sampled_from(ORDER_TYPES) | TEXT.filter(lambda t: t.isprintable() and t)
        )
        obj["status"] = {"code": draw(STATUSES.filter(bool)), "name": draw(TEXT)}
        if draw(st.booleans()):
            obj["status"]["isFinalStatus"] = draw(JSON)
        return obj
    for key, strategy in (
        ("id", st.integers(min_value=1, max_value=10**9) | IDS),
        ("type", maybe(st.sampled_from(ORDER_TYPES))),
        (
            "status",
            st.fixed_dictionaries({"code": STATUSES}, optional={"isFinalStatus": JSON})
            | maybe(opt_dict(code=maybe(STATUSES), isFinalStatus=JSON, name=JSON)),
        ),
    ):
        if draw(st.integers(0, 9)):  # mostly present
            obj[key] = draw(strategy)
    return obj


ENVELOPES = opt_dict(
    event=maybe(st.sampled_from(["new_order", "order_status_changed"])),
    data=maybe(order_objects()),
    sellingPointId=IDS,
    config=JSON,
)


def dumps_loose(value: Any, *, ascii_only: bool = True) -> str:
    """JSON as a careless or hostile sender writes it: NaN and Infinity allowed, \\u
    escapes kept (``ascii_only=False``: raw UTF-8), :class:`Raw` number tokens written as
    they are."""
    tokens: list[str] = []

    def raw(obj: Any) -> str:
        if isinstance(obj, Raw):
            tokens.append(obj.token)
            return f"\x00RAW{len(tokens) - 1}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(value, allow_nan=True, default=raw, ensure_ascii=ascii_only)
    for i, token in enumerate(tokens):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), token, 1)
    return text


FRAME_TEXTS = (
    ENVELOPES.map(dumps_loose)
    | JSON.map(dumps_loose)
    | WIRE_TEXT
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
)


def check_storable(order: Order) -> None:
    """What the journal needs from a parsed order: an SQLite id, UTF-8 text."""
    assert 0 < order.id < 2**63
    assert isinstance(order.type, str) and order.type
    assert isinstance(order.status, str) and order.status
    order.to_json().encode("utf-8")


# -- journal snapshots ------------------------------------------------------------------------


async def snapshot(journal: Journal) -> tuple[int, ...]:
    """Row counts of every table a command or frame could touch, and the last event seq."""

    def run(tx: Tx) -> tuple[int, ...]:
        tables = ("orders", "events", "outbox", "print_jobs", "bridge_commands", "kv")
        counts = [int(tx.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables]
        seq = tx.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return (*counts, int(seq))

    return await journal.transaction(run)
