"""Journal rows as typed values, and the rule for rows that cannot be read.

Every decoder here returns its value or raises :class:`RowError`, whatever the row holds
(broken JSON, a JSON array where an object belongs, a wrong column type, bytes that are not
UTF-8). The journal moves such a row to its ``quarantine`` table and carries on without it:
one damaged row never stops the box.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

from edged.journal.events import Event


class OrderRecord(Protocol):
    """What the journal reads of an order it is handed to store or hold: the flow passes
    what the wire parsed (:class:`edged.sinqro.models.Order`), the journal keeps the fields
    it indexes and the whole payload."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def is_final(self) -> bool: ...
    @property
    def is_waiting(self) -> bool: ...
    @property
    def code(self) -> str: ...
    @property
    def execution_time(self) -> str: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    def to_json(self) -> str:
        """The whole payload as compact JSON, as stored."""
        ...


class RowError(ValueError):
    """A journal row that cannot be decoded."""


class BadText:
    """A TEXT value that is not valid UTF-8, kept as its bytes (see :func:`lenient_text`)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"BadText({self.raw!r})"


def lenient_text(raw: bytes) -> str | BadText:
    """A ``text_factory`` that never raises: undecodable text becomes :class:`BadText`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw)


def payload_digest(raw: dict[str, Any]) -> str:
    """Digest of an order payload, independent of key order: a refresh that brings the
    same order again compares equal and writes nothing."""
    canonical = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


#: Top-level payload keys a status change rewrites: Sinqro's status object and what follows
#: from it. :func:`payload_text` stores them first, in a head of fixed size.
VOLATILE_KEYS = ("status", "isAcceptable", "isCancellable", "cancellationComment")
HEAD_BYTES = 320  # the ``status`` column and the payload's head share this many bytes


def payload_text(raw: dict[str, Any], status: str) -> str:
    """The payload as stored in ``orders.payload``: JSON, the volatile keys first, then
    JSON whitespace so that ``status`` (the column before it) and this head always take
    :data:`HEAD_BYTES` between them.

    The row then keeps its size, and every byte after the head its offset, when only the
    status changes: SQLite overwrites such a row in place and writes only the pages whose
    bytes differ (the order's leaf, not the payload's overflow pages). Without it each
    status change wrote the whole payload again, 4 to 5 pages of a typical order, plus the
    free list. A head that does not fit is stored unpadded: correct, just not spared."""
    head = {k: raw[k] for k in VOLATILE_KEYS if k in raw}
    rest = {k: v for k, v in raw.items() if k not in head}
    if not head or not rest:
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    head_text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1] + ","
    rest_text = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))[1:]
    used = len(status.encode("utf-8", "surrogatepass")) + len(
        head_text.encode("utf-8", "surrogatepass")
    )
    return head_text + " " * max(0, HEAD_BYTES - used) + rest_text


def _text(row: sqlite3.Row, name: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise RowError(f"{name}: expected text, found {type(value).__name__}")
    return value


def _opt_text(row: sqlite3.Row, name: str) -> str | None:
    return None if row[name] is None else _text(row, name)


def _int(row: sqlite3.Row, name: str) -> int:
    value = row[name]
    if not isinstance(value, int):
        raise RowError(f"{name}: expected an integer, found {type(value).__name__}")
    return value


def _opt_int(row: sqlite3.Row, name: str) -> int | None:
    return None if row[name] is None else _int(row, name)


def _real(row: sqlite3.Row, name: str) -> float:
    value = row[name]
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowError(f"{name}: expected a number, found {value!r}")
    return float(value)


def json_object(text: object, name: str) -> dict[str, Any]:
    """Decode a JSON column that must hold an object."""
    if not isinstance(text, str):
        raise RowError(f"{name}: expected JSON text, found {type(text).__name__}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: also over-long integers
        raise RowError(f"{name}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RowError(f"{name}: expected a JSON object, found {type(value).__name__}")
    return value


@dataclass(frozen=True)
class StoredOrder:
    """An order row."""

    id: int
    type: str
    status: str
    is_final: bool
    code: str
    execution_time: str
    payload: dict[str, Any]
    first_seen: float
    updated: float
    acknowledged: bool

    @property
    def is_waiting(self) -> bool:
        return self.status == "waiting_sp_validation"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredOrder:
        """Decode an ``orders`` row; :class:`RowError` when it cannot be."""
        return cls(
            id=_int(row, "id"),
            type=_text(row, "type"),
            status=_text(row, "status"),
            is_final=bool(_int(row, "is_final")),
            code=_text(row, "code"),
            execution_time=_text(row, "execution_time"),
            payload=json_object(row["payload"], "payload"),
            first_seen=_real(row, "first_seen"),
            updated=_real(row, "updated"),
            acknowledged=bool(_int(row, "acknowledged")),
        )


@dataclass(frozen=True)
class Command:
    """An outbox row: one staff decision on its way to Sinqro."""

    id: int
    key: str | None
    order_id: int
    kind: str
    params: dict[str, Any]
    source: str
    state: str
    attempts: int
    created: float
    updated: float
    error_code: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Command:
        """Decode an ``outbox`` row; :class:`RowError` when it cannot be."""
        return cls(
            id=_int(row, "id"),
            key=_opt_text(row, "key"),
            order_id=_int(row, "order_id"),
            kind=_text(row, "kind"),
            params=json_object(row["params"], "params"),
            source=_text(row, "source"),
            state=_text(row, "state"),
            attempts=_int(row, "attempts"),
            created=_real(row, "created"),
            updated=_real(row, "updated"),
            error_code=_opt_text(row, "error_code"),
            error=_opt_text(row, "error"),
        )


def event_from_row(row: sqlite3.Row) -> Event:
    """Decode an ``events`` row; :class:`RowError` when it cannot be."""
    return Event(
        seq=_int(row, "seq"),
        ts=_real(row, "ts"),
        kind=_text(row, "kind"),
        order_id=_opt_int(row, "order_id"),
        data=json_object(row["data"], "data"),
    )


@dataclass(frozen=True)
class UpsertResult:
    """What storing an order changed."""

    order: StoredOrder
    new: bool
    status_changed: bool
    events: list[Event]


def row_as_json(row: sqlite3.Row) -> str:
    """A row for the quarantine table: every column, undecodable text as hex."""

    def plain(value: object) -> object:
        if isinstance(value, BadText):
            return {"not_utf8": value.raw.hex()}
        if isinstance(value, bytes):
            return {"blob": value.hex()}
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value

    columns = row.keys()  # iterating a Row gives values, not names
    return json.dumps({key: plain(row[key]) for key in columns}, ensure_ascii=True)
