"""Commands from POS terminals, checked at the edge (the decoder half of the bridge protocol).

:func:`parse_command` turns the bytes of one MQTT message or serial frame into a
:class:`Request` or raises :class:`BadRequest` with a protocol error code, whatever the
bytes are: no other exception leaves this module. Numbers, ids and names are checked by
explicit rules (ASCII digits, ranges, lengths; :mod:`edged.decoding`), never by
``str.isdigit()``. docs/bridge-protocol.md lists the commands, their fields and the codes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from edged.bridges.catalog import CatalogError, validate_catalog
from edged.decoding import MAX_ID, PayloadError, decode_json, whole_number

VERSION = 1

# Error codes of the bridge itself; CommandRefused and Sinqro codes pass through as they are.
BAD_JSON = "BAD_JSON"
TOO_LARGE = "TOO_LARGE"
UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
BAD_FIELD = "BAD_FIELD"
BAD_CATALOG = "BAD_CATALOG"
BUSY = "BUSY"

SINQRO_COMMANDS = ("accept", "cancel", "status", "catalog", "availability")
COMMANDS = (*SINQRO_COMMANDS, "reprint", "acknowledge", "ping")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
_PRINTER = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_ENVELOPE = ("v", "id", "command")
# Which fields each command takes, and which of them are required.
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accept": (("order_id", "delay"), ("order_id",)),
    "cancel": (("order_id", "comment"), ("order_id", "comment")),
    "status": (("order_id", "status", "reason"), ("order_id", "status")),
    "catalog": (("catalog",), ("catalog",)),
    "availability": (("product", "option", "available", "until"), ("available",)),
    "reprint": (("order_id", "printer"), ("order_id",)),
    "acknowledge": (("order_id",), ()),
    "ping": ((), ()),
}
_MAX_TEXT = 500
_MAX_STATUS = 64
_UNTIL = re.compile(r"[A-Za-z0-9:. ]{1,16}", re.ASCII)
# A delay is whole minutes; the desk decides which are allowed (BAD_DELAY), the edge only
# keeps numbers that fit SQLite and the outbox's JSON.
_MAX_DELAY = 2**31


@dataclass(frozen=True)
class Request:
    """A command that passed every check at the edge."""

    name: str
    request_id: str
    params: dict[str, Any]
    digest: str


class BadRequest(ValueError):
    """A command refused at the edge; nothing was changed."""

    def __init__(
        self, code: str, message: str, request_id: str | None = None, name: str | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.name = name
        super().__init__(f"{code}: {message}")


def clean_request_id(value: Any) -> str | None:
    """A command id: 1 to 64 of ``A-Z a-z 0-9 _ . : -`` (a JSON integer counts as its
    digits); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not -(10**63) < value < 10**64:
            return None
        value = str(value)
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return None


def command_name(name: str | None) -> str | None:
    """``name`` when it is a known command (as a transport carries it, e.g. a topic level)."""
    return name if name in COMMANDS else None


def request_id_of(payload: bytes | str, *, fallback: str | None, max_bytes: int) -> str | None:
    """The command id in ``payload`` (or ``fallback``) without checking the rest: to answer
    a command the box cannot take now (BUSY) under its own id. Never raises."""
    if len(payload) > max_bytes:
        return fallback
    try:
        obj = decode_json(payload, max_bytes=max_bytes, what="command")
    except PayloadError:
        return fallback
    if isinstance(obj, dict) and "id" in obj:
        return clean_request_id(obj["id"]) or fallback
    return fallback


def parse_command(
    payload: bytes | str,
    *,
    name: str | None = None,
    request_id: str | None = None,
    max_bytes: int,
    max_catalog_bytes: int,
) -> Request:
    """Check one command message. ``name`` comes from the transport when it carries one
    (the MQTT topic); ``request_id`` is the transport's fallback id (MQTT 5 correlation).

    Raises :class:`BadRequest` with a protocol error code.
    """
    size = len(payload)
    known = name is None or name in COMMANDS
    request_id = clean_request_id(request_id)
    # Decode up to the catalog bound even for small commands, so an oversized command can
    # still be answered under its own id.
    limit = max(max_bytes, max_catalog_bytes)
    if size > limit:
        raise BadRequest(TOO_LARGE, f"{size} bytes (limit {limit})", request_id, name)
    try:
        obj = decode_json(payload, max_bytes=limit, what="command")
    except PayloadError as exc:
        if name not in (None, "catalog") and size > max_bytes:
            raise BadRequest(
                TOO_LARGE, f"{size} bytes (limit {max_bytes})", request_id, name
            ) from None
        raise BadRequest(BAD_JSON, str(exc)[:200], request_id, name if known else None) from None
    rid = request_id
    if isinstance(obj, dict) and "id" in obj:
        rid = clean_request_id(obj["id"])
        if rid is None:
            raise BadRequest(BAD_FIELD, "id: 1 to 64 of A-Z a-z 0-9 _ . : -", request_id, name)
    if not known:
        assert name is not None
        raise BadRequest(UNKNOWN_COMMAND, f"unknown command {name[:40]!r}", rid, None)
    if not isinstance(obj, dict):
        raise BadRequest(BAD_FIELD, "a command is a JSON object", rid, name)
    body_name = obj.get("command")
    if body_name is not None and not isinstance(body_name, str):
        raise BadRequest(BAD_FIELD, "command: expected a string", rid, name)
    if name is None:
        if body_name is None:
            raise BadRequest(BAD_FIELD, "command: missing", rid, None)
        if body_name not in COMMANDS:
            raise BadRequest(UNKNOWN_COMMAND, f"unknown command {body_name[:40]!r}", rid, None)
        name = body_name
    elif body_name is not None and body_name != name:
        raise BadRequest(BAD_FIELD, f"command: {body_name[:40]!r} does not match", rid, name)
    if rid is None:
        raise BadRequest(BAD_FIELD, "id: missing", None, name)
    if name != "catalog" and size > max_bytes:
        raise BadRequest(TOO_LARGE, f"{size} bytes (limit {max_bytes})", rid, name)
    version = obj.get("v", VERSION)
    if isinstance(version, bool) or version != VERSION or not isinstance(version, int):
        raise BadRequest(BAD_FIELD, f"v: this box speaks version {VERSION}", rid, name)
    allowed, required = _FIELDS[name]
    for key in obj:
        if key not in allowed and key not in _ENVELOPE:
            raise BadRequest(BAD_FIELD, f"{key[:40]}: unknown field for {name}", rid, name)
    for key in required:
        if obj.get(key) is None:
            raise BadRequest(BAD_FIELD, f"{key}: missing", rid, name)
    params = _params(name, obj, rid)
    canonical = json.dumps([name, params], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return Request(name=name, request_id=rid, params=params, digest=digest)


def _order_id(value: Any, name: str, rid: str, key: str = "order_id") -> int:
    order_id = whole_number(value, minimum=1, maximum=MAX_ID)
    if order_id is None:
        raise BadRequest(BAD_FIELD, f"{key}: expected a positive integer", rid, name)
    return order_id


def _text(value: Any, key: str, name: str, rid: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(BAD_FIELD, f"{key}: expected a string", rid, name)
    if len(value) > _MAX_TEXT:
        raise BadRequest(BAD_FIELD, f"{key}: longer than {_MAX_TEXT} characters", rid, name)
    # Control bytes never reach Sinqro, a printer or a serial line.
    return "".join(c for c in value if c >= " " or c in "\n\t").strip()


def _params(name: str, obj: dict[str, Any], rid: str) -> dict[str, Any]:
    if name == "ping":
        return {}
    if name == "catalog":
        try:
            summary = validate_catalog(obj["catalog"])
        except CatalogError as exc:
            raise BadRequest(BAD_CATALOG, str(exc)[:300], rid, name) from None
        return {"catalog": obj["catalog"], "summary": summary.to_dict()}
    if name == "availability":
        return _availability(obj, rid)
    if name == "acknowledge":
        value = obj.get("order_id")
        return {"order_id": None if value is None else _order_id(value, name, rid)}
    params: dict[str, Any] = {"order_id": _order_id(obj["order_id"], name, rid)}
    if name == "accept":
        delay = obj.get("delay")
        if delay is not None and not (
            isinstance(delay, int) and not isinstance(delay, bool) and abs(delay) < _MAX_DELAY
        ):
            raise BadRequest(BAD_FIELD, "delay: expected whole minutes or null", rid, name)
        params["delay"] = delay
    elif name == "cancel":
        params["comment"] = _text(obj["comment"], "comment", name, rid)
    elif name == "status":
        status = obj["status"]
        if not isinstance(status, str) or not 0 < len(status) <= _MAX_STATUS:
            raise BadRequest(BAD_FIELD, "status: expected a status code", rid, name)
        if not status.isprintable():
            raise BadRequest(BAD_FIELD, "status: expected a status code", rid, name)
        params["status"] = status
        params["reason"] = _text(obj.get("reason") or "", "reason", name, rid)
    elif name == "reprint":
        printer = obj.get("printer")
        if printer is not None and (
            not isinstance(printer, str) or not _PRINTER.fullmatch(printer)
        ):
            raise BadRequest(BAD_FIELD, "printer: expected a printer name", rid, name)
        params["printer"] = printer
    return params


def _availability(obj: dict[str, Any], rid: str) -> dict[str, Any]:
    """``product`` or ``option`` (an id, or an external id as a string), ``available``,
    and for sold out an optional ``until`` (closing, 1h, 2h, 90m, HH:MM)."""
    name = "availability"
    given = [key for key in ("product", "option") if obj.get(key) is not None]
    if len(given) != 1:
        raise BadRequest(BAD_FIELD, "give one of product or option", rid, name)
    kind = given[0]
    value = obj[kind]
    if isinstance(value, int) and not isinstance(value, bool):
        number = whole_number(value, minimum=1, maximum=MAX_ID)
        if number is None:
            raise BadRequest(BAD_FIELD, f"{kind}: expected an id or an external id", rid, name)
        ref = str(number)
    elif isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable():
        ref = value
    else:
        raise BadRequest(BAD_FIELD, f"{kind}: expected an id or an external id", rid, name)
    available = obj["available"]
    if not isinstance(available, bool):
        raise BadRequest(BAD_FIELD, "available: expected true or false", rid, name)
    until = obj.get("until")
    if until is not None and (
        available or not isinstance(until, str) or not _UNTIL.fullmatch(until)
    ):
        raise BadRequest(
            BAD_FIELD, "until: only with available false: closing, 1h, HH:MM", rid, name
        )
    return {"kind": kind, "ref": ref, "available": available, "until": until}
