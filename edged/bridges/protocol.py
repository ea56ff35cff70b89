"""The POS bridge protocol, independent of the transport (MQTT topics or serial frames).

Three kinds of message, all JSON objects (docs/bridge-protocol.md has the full reference):

* **events**, box to POS: built from journal events, each carrying the journal ``seq`` as
  its ``id``. Delivery is at-least-once and in order; a POS drops an ``id`` it has seen.
* **commands**, POS to box: ``accept``, ``cancel``, ``status``, ``reprint``,
  ``acknowledge``, ``catalog``, ``ping``. Each carries the terminal's own command ``id``.
  They are checked here, at the edge, then turned into :class:`~edged.flow.desk.OrderDesk`
  calls; nothing malformed gets further than this module.
* **responses**, box to POS: ``status`` ``ok`` | ``queued`` | ``error`` with a ``code``.
  Commands that go to Sinqro answer ``queued`` at once, then a second, final response
  (``ok`` or ``error``) when Sinqro's outcome lands in the journal.

A command repeated with the same ``id`` is applied once and answered with the same result:
Sinqro commands through the outbox key ``<bridge>:<id>``, local ones through the
``bridge_commands`` table, which also remembers where the final response must go.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from edged.bridges.commands import (
    BAD_CATALOG,
    BAD_FIELD,
    BAD_JSON,
    BUSY,
    COMMANDS,
    SINQRO_COMMANDS,
    TOO_LARGE,
    UNKNOWN_COMMAND,
    VERSION,
    BadRequest,
    Request,
    clean_request_id,
    command_name,
    parse_command,
)
from edged.decoding import digest as message_digest
from edged.flow.desk import OrderDesk
from edged.flow.refusals import CommandRefused
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError, StoredOrder, Tx
from edged.printing.jobs import reprint_refusal
from edged.sinqro.models import parse_order

log = logging.getLogger(__name__)

# Codes of the handler; the edge's own (BAD_JSON, BAD_FIELD, BUSY, ...) are in commands.
DUPLICATE_ID = "DUPLICATE_ID"
UNKNOWN_ORDER = "UNKNOWN_ORDER"
REPRINT_LIMIT = "REPRINT_LIMIT"
INTERNAL = "INTERNAL"

# Journal events a POS sees. print.requested, print.done and link.* stay inside the box.
PUBLISHED_KINDS = (
    ev.ORDER_NEW,
    ev.ORDER_STATUS,
    ev.ORDER_ACKNOWLEDGED,
    ev.COMMAND_QUEUED,
    ev.COMMAND_DONE,
    ev.COMMAND_FAILED,
    ev.PRINTER_HEALTH,
    ev.PRINT_FAILED,
    ev.CATALOG_CHANGED,
)


__all__ = [
    "BAD_CATALOG",
    "BAD_FIELD",
    "BAD_JSON",
    "BUSY",
    "COMMANDS",
    "DUPLICATE_ID",
    "INTERNAL",
    "PUBLISHED_KINDS",
    "SINQRO_COMMANDS",
    "TOO_LARGE",
    "UNKNOWN_COMMAND",
    "UNKNOWN_ORDER",
    "BadRequest",
    "CommandHandler",
    "FinalResponse",
    "Request",
    "Response",
    "dumps",
    "encode_event",
    "parse_command",
]


# -- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One answer to one command."""

    request_id: str | None
    status: Literal["ok", "queued", "error"]
    command: str | None = None
    code: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "id": self.request_id, "status": self.status}
        if self.command is not None:
            out["command"] = self.command
        if self.status == "error":
            out["code"] = self.code
            out["message"] = self.message
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Response:
        known = {"v", "id", "status", "command", "code", "message"}
        return cls(
            request_id=obj.get("id"),
            status=obj["status"],
            command=obj.get("command"),
            code=obj.get("code", ""),
            message=obj.get("message", ""),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    @classmethod
    def from_row(cls, text: str) -> Response:
        """A response the journal kept (``bridge_commands``); ValueError when the row is
        unreadable (a damaged journal)."""
        try:
            obj = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"unreadable stored response: {str(exc)[:80]}") from None
        status = obj.get("status") if isinstance(obj, dict) else None
        if status not in ("ok", "queued", "error"):
            raise ValueError("unreadable stored response: no status")
        return cls.from_dict(obj)

    @classmethod
    def error(
        cls, request_id: str | None, command: str | None, code: str, message: str
    ) -> Response:
        return cls(request_id, "error", command, code=code, message=message)


@dataclass(frozen=True)
class FinalResponse:
    """The final answer to a command that went to Sinqro, and where it must go."""

    response: Response
    reply_to: str | None
    correlation: bytes | None


# -- events ------------------------------------------------------------------------------------


def order_summary(order: StoredOrder) -> dict[str, Any]:
    """The part of an order a POS needs to ring it up: who, when, what, how much."""
    raw = order.payload
    consumer_raw = raw.get("consumer")
    consumer: dict[str, Any] = consumer_raw if isinstance(consumer_raw, dict) else {}
    parsed = parse_order(order.payload)
    return {
        "id": order.id,
        "type": order.type,
        "status": order.status,
        "code": order.code,
        "market": parsed.market,
        "created_at": parsed.created_at,
        "execution_time": order.execution_time,
        "asap": parsed.is_asap,
        "customer": parsed.consumer_name,
        "phone": consumer.get("phone") if isinstance(consumer.get("phone"), str) else None,
        "comment": raw.get("comment") if isinstance(raw.get("comment"), str) else None,
        "total": parsed.total_amount,
        "lines": _lines(raw.get("orderLines")),
    }


def _lines(value: Any, depth: int = 0) -> list[dict[str, Any]]:
    if not isinstance(value, list) or depth > 4:
        return []
    out = []
    for line in value:
        if not isinstance(line, dict):
            continue
        ref = line.get("product") or line.get("productOption") or {}
        ref = ref if isinstance(ref, dict) else {}
        out.append(
            {
                "label": line.get("label") if isinstance(line.get("label"), str) else "",
                "quantity": line.get("quantity"),
                "total": line.get("totalAmount"),
                "comment": line.get("comment") if isinstance(line.get("comment"), str) else None,
                "external_id": ref.get("externalId"),
                "options": _lines(line.get("childrenOrderLines"), depth + 1),
            }
        )
    return out


async def encode_event(
    event: Event, journal: Journal, *, full_payload: bool
) -> dict[str, Any] | None:
    """The POS message for a journal event, or None when the POS does not see that kind."""
    if event.kind not in PUBLISHED_KINDS:
        return None
    data = dict(event.data)
    if event.kind == ev.COMMAND_QUEUED and isinstance(data.get("params"), dict):
        # A catalog push can be a megabyte: the POS sent it, it does not need it back.
        params = dict(data["params"])
        if "catalog" in params:
            params["catalog"] = "..."
        data["params"] = params
    message: dict[str, Any] = {
        "v": VERSION,
        "id": event.seq,
        # Ids count up within one journal; a new epoch means a new journal (ids restart).
        "epoch": journal.epoch,
        "ts": round(event.ts, 3),
        "kind": event.kind,
        "order_id": event.order_id,
        "data": data,
    }
    if event.kind == ev.ORDER_NEW and event.order_id is not None:
        stored = await journal.get_order(event.order_id)
        if stored is not None:
            message["order"] = order_summary(stored)
            if full_payload:
                message["payload"] = stored.payload
    return message


def dumps(obj: Any, *, ascii_only: bool = False) -> bytes:
    """Compact JSON. ``ascii_only`` escapes everything outside printable ASCII (serial)."""
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":")).encode()


# -- the command handler -----------------------------------------------------------------------


class CommandHandler:
    """Turns checked commands into OrderDesk calls, once per command id.

    One instance per bridge (``bridge`` is ``mqtt`` or ``serial``); commands of one
    bridge are handled one at a time by that bridge.
    """

    def __init__(
        self,
        journal: Journal,
        desk: OrderDesk,
        *,
        bridge: str,
        max_command_bytes: int,
        max_catalog_bytes: int,
    ) -> None:
        self.journal = journal
        self.desk = desk
        self.bridge = bridge
        self.max_command_bytes = max_command_bytes
        self.max_catalog_bytes = max_catalog_bytes
        self.handled = 0
        self.rejected = 0

    async def handle(
        self,
        payload: bytes | str,
        *,
        name: str | None = None,
        request_id: str | None = None,
        reply_to: str | None = None,
        correlation: bytes | None = None,
    ) -> Response:
        """Check and apply one command; always returns a response, never raises for bad
        input. ``reply_to`` / ``correlation`` are kept for the final response."""
        try:
            request = parse_command(
                payload,
                name=name,
                request_id=request_id,
                max_bytes=self.max_command_bytes,
                max_catalog_bytes=self.max_catalog_bytes,
            )
        except BadRequest as exc:
            self.rejected += 1
            log.warning(
                "%s bridge: command %s refused: %s %s",
                self.bridge,
                exc.request_id or "?",
                exc.code,
                exc.message,
            )
            return Response.error(exc.request_id, exc.name, exc.code, exc.message)
        log.debug("%s bridge: command %s %s", self.bridge, request.request_id, request.name)
        try:
            previous = await self._previous(request.request_id)
            if previous is not None:
                digest, answer = previous
                if digest != request.digest:
                    return Response.error(
                        request.request_id,
                        request.name,
                        DUPLICATE_ID,
                        "this id was already used for a different command",
                    )
                return answer
            response = await self._apply(request, reply_to, correlation)
        except CommandRefused as exc:
            self.rejected += 1
            log.info(
                "%s bridge: command %s (%s) refused: %s",
                self.bridge,
                request.request_id,
                request.name,
                exc.code,
            )
            return Response.error(request.request_id, request.name, exc.code, exc.message)
        except JournalError as exc:
            log.error("%s bridge: command %s failed: %s", self.bridge, request.request_id, exc)
            return Response.error(
                request.request_id, request.name, INTERNAL, "journal unavailable, try again"
            )
        self.handled += 1
        return response

    async def handle_safely(
        self,
        payload: bytes | str,
        *,
        name: str | None = None,
        request_id: str | None = None,
        reply_to: str | None = None,
        correlation: bytes | None = None,
    ) -> Response:
        """:meth:`handle`, with the last line of defence: an unexpected error is logged with
        the message's digest and answered ``INTERNAL``; the bridge goes on."""
        try:
            return await self.handle(
                payload,
                name=name,
                request_id=request_id,
                reply_to=reply_to,
                correlation=correlation,
            )
        except Exception:
            self.rejected += 1
            mark = message_digest(payload)
            log.exception(
                "%s bridge: command %s dropped after an unexpected error", self.bridge, mark
            )
            return Response.error(
                clean_request_id(request_id),
                command_name(name),
                INTERNAL,
                f"the box could not handle this command ({mark})",
            )

    async def _previous(self, request_id: str) -> tuple[str, Response] | None:
        def run(tx: Tx) -> tuple[str, str] | None:
            row = tx.execute(
                "SELECT digest, COALESCE(final, response) FROM bridge_commands"
                " WHERE bridge = ? AND request_id = ?",
                (self.bridge, request_id),
            ).fetchone()
            return (str(row[0]), str(row[1])) if row else None

        found = await self.journal.transaction(run)
        if found is None:
            return None
        return found[0], Response.from_row(found[1])

    async def _apply(
        self, request: Request, reply_to: str | None, correlation: bytes | None
    ) -> Response:
        if request.name in SINQRO_COMMANDS:
            return await self._sinqro(request, reply_to, correlation)
        if request.name == "reprint":
            return await self._reprint(request)
        if request.name == "acknowledge":
            ids = await self.desk.acknowledge(request.params["order_id"], source=self.bridge)
            response = Response(request.request_id, "ok", request.name, extra={"acknowledged": ids})
            await self._remember(request, response)
            return response
        # ping: nothing to remember, nothing changes.
        return Response(
            request.request_id, "ok", request.name, extra={"last_event": self.journal.last_seq}
        )

    async def _sinqro(
        self, request: Request, reply_to: str | None, correlation: bytes | None
    ) -> Response:
        key = f"{self.bridge}:{request.request_id}"
        command = await self._command_by_key(key)
        if command is None:
            p = request.params
            source = self.bridge
            if request.name == "accept":
                command = await self.desk.accept(p["order_id"], p["delay"], source=source, key=key)
            elif request.name == "cancel":
                command = await self.desk.cancel(
                    p["order_id"], p["comment"], source=source, key=key
                )
            elif request.name == "status":
                command = await self.desk.set_status(
                    p["order_id"], p["status"], reason=p["reason"], source=source, key=key
                )
            elif request.name == "availability":
                command = await self._availability(p, key)
            else:
                command = await self.desk.push_catalog(p["catalog"], source=source, key=key)
        extra: dict[str, Any] = {"command_id": command.id}
        if request.name == "catalog":
            extra["catalog"] = request.params["summary"]
        elif command.order_id:
            extra["order_id"] = command.order_id
        queued = Response(request.request_id, "queued", request.name, extra=extra)
        final = (
            _final(queued, command.state == "done", command.error_code, command.error)
            if command.state in ("done", "failed")
            else None
        )
        await self._remember(request, queued, command.id, reply_to, correlation, final)
        return final or queued

    async def _availability(self, p: dict[str, Any], key: str) -> Command:
        keeper = self.desk.catalog
        if keeper is None:
            raise CommandRefused("NO_CATALOG", "this box keeps no catalog (not running)")
        command, _ = await keeper.set_available(
            p["ref"],
            p["available"],
            until=p["until"],
            kind=p["kind"],
            source=self.bridge,
            request_key=key,
        )
        return command

    async def _command_by_key(self, key: str) -> Command | None:
        def run(tx: Tx) -> Command | None:
            row = tx.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
            return Command.from_row(row) if row else None

        return await self.journal.transaction(run)

    async def _reprint(self, request: Request) -> Response:
        order_id = request.params["order_id"]
        printer = request.params["printer"]
        response = Response(request.request_id, "ok", request.name, extra={"order_id": order_id})

        def run(tx: Tx) -> None:
            if tx.get_order(order_id) is None:
                raise CommandRefused(UNKNOWN_ORDER, f"order {order_id} is not in the journal")
            refused = reprint_refusal(tx, order_id)
            if refused is not None:
                raise CommandRefused(REPRINT_LIMIT, refused)
            data: dict[str, Any] = {"kind": "reprint", "order_id": order_id, "source": self.bridge}
            if printer is not None:
                data["printer"] = printer
            # The event and the dedup row commit together: a repeat never prints twice.
            tx.append_event(ev.PRINT_REQUESTED, order_id, data)
            self._insert(tx, request, response, None, None, None, None)

        await self.journal.transaction(run)
        log.info("%s bridge: reprint of order %s requested", self.bridge, order_id)
        return response

    async def _remember(
        self,
        request: Request,
        response: Response,
        command_id: int | None = None,
        reply_to: str | None = None,
        correlation: bytes | None = None,
        final: Response | None = None,
    ) -> None:
        await self.journal.transaction(
            lambda tx: self._insert(tx, request, response, command_id, reply_to, correlation, final)
        )

    def _insert(
        self,
        tx: Tx,
        request: Request,
        response: Response,
        command_id: int | None,
        reply_to: str | None,
        correlation: bytes | None,
        final: Response | None,
    ) -> None:
        tx.execute(
            "INSERT OR IGNORE INTO bridge_commands (bridge, request_id, name, digest, command_id,"
            " response, final, reply_to, correlation, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                self.bridge,
                request.request_id,
                request.name,
                request.digest,
                command_id,
                json.dumps(response.to_dict()),
                json.dumps(final.to_dict()) if final else None,
                reply_to,
                correlation,
                tx.now,
            ),
        )

    async def finals(self, events: list[Event]) -> list[FinalResponse]:
        """Final responses owed for the ``command.done`` / ``command.failed`` events in
        ``events`` (to commands this bridge received). Recorded, so a later repeat of the
        command gets the final answer too. Call again after a crash: it is idempotent."""
        outcomes = {
            int(e.data.get("command_id", 0)): e
            for e in events
            if e.kind in (ev.COMMAND_DONE, ev.COMMAND_FAILED)
        }
        if not outcomes:
            return []

        def run(tx: Tx) -> list[FinalResponse]:
            marks = ",".join("?" * len(outcomes))
            rows = tx.execute(
                "SELECT request_id, command_id, response, reply_to, correlation"
                f" FROM bridge_commands WHERE bridge = ? AND command_id IN ({marks})",
                (self.bridge, *outcomes),
            ).fetchall()
            out = []
            for request_id, command_id, text, reply_to, correlation in rows:
                event = outcomes[int(command_id)]
                try:
                    first = Response.from_row(text)
                except ValueError as exc:
                    # One damaged row costs that one final answer, not the bridge.
                    log.error("%s bridge: command %s: %s", self.bridge, request_id, exc)
                    continue
                final = _final(
                    first,
                    event.kind == ev.COMMAND_DONE,
                    event.data.get("code"),
                    event.data.get("message"),
                    event.data.get("status"),
                )
                tx.execute(
                    "UPDATE bridge_commands SET final = ? WHERE bridge = ? AND request_id = ?",
                    (json.dumps(final.to_dict()), self.bridge, request_id),
                )
                out.append(FinalResponse(final, reply_to, correlation))
            return out

        return await self.journal.transaction(run)

    async def prune(self, days: float = 7.0) -> int:
        """Forget command ids older than ``days`` (a POS repeats within seconds, not weeks)."""
        cutoff = time.time() - days * 86400
        return await self.journal.transaction(
            lambda tx: (
                tx.execute(
                    "DELETE FROM bridge_commands WHERE bridge = ? AND created < ?",
                    (self.bridge, cutoff),
                ).rowcount
            )
        )


def _final(
    queued: Response,
    ok: bool,
    code: str | None,
    message: str | None,
    status: str | None = None,
) -> Response:
    extra = dict(queued.extra)
    if ok:
        if status:
            extra["order_status"] = status
        return Response(queued.request_id, "ok", queued.command, extra=extra)
    return Response(
        queued.request_id,
        "error",
        queued.command,
        code=code or "ERROR",
        message=message or "",
        extra=extra,
    )
