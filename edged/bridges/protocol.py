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
journal's ``bridge_commands`` table (:mod:`edged.journal.bridgecmds`), which also
remembers where the final response must go.

This module is the command handler; the answers are :mod:`edged.bridges.responses`, the
events :mod:`edged.bridges.published`, the checks at the edge :mod:`edged.bridges.commands`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from edged.bridges.commands import (
    BAD_CATALOG,
    BAD_FIELD,
    BAD_JSON,
    BUSY,
    COMMANDS,
    SINQRO_COMMANDS,
    TOO_LARGE,
    UNKNOWN_COMMAND,
    BadRequest,
    Request,
    clean_request_id,
    command_name,
    parse_command,
)
from edged.bridges.published import PUBLISHED_KINDS, encode_event, order_summary
from edged.bridges.responses import FinalResponse, Response, dumps, final_response
from edged.decoding import digest as message_digest
from edged.flow.desk import OrderDesk
from edged.flow.refusals import CommandRefused
from edged.journal import bridgecmds
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Command, Journal, JournalError, Tx
from edged.printing.jobs import PrintRefused, UnknownOrder, request_print

log = logging.getLogger(__name__)

# Codes of the handler; the edge's own (BAD_JSON, BAD_FIELD, BUSY, ...) are in commands.
DUPLICATE_ID = "DUPLICATE_ID"
UNKNOWN_ORDER = "UNKNOWN_ORDER"
REPRINT_LIMIT = "REPRINT_LIMIT"
INTERNAL = "INTERNAL"

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
    "order_summary",
    "parse_command",
]


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
        found = await self.journal.transaction(
            lambda tx: bridgecmds.answer_of(tx, self.bridge, request_id)
        )
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
        command = await self.journal.command_by_key(key)
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
            final_response(queued, command.state == "done", command.error_code, command.error)
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

    async def _reprint(self, request: Request) -> Response:
        order_id = request.params["order_id"]
        printer = request.params["printer"]
        response = Response(request.request_id, "ok", request.name, extra={"order_id": order_id})

        def run(tx: Tx) -> None:
            try:
                request_print(
                    tx,
                    "reprint",
                    order_id=order_id,
                    printer=printer,
                    source=self.bridge,
                    known_order=True,
                )
            except UnknownOrder as exc:
                raise CommandRefused(UNKNOWN_ORDER, str(exc)) from None
            except PrintRefused as exc:
                raise CommandRefused(REPRINT_LIMIT, str(exc)) from None
            # The event and the dedup row commit together: a repeat never prints twice.
            bridgecmds.remember(tx, self.bridge, _kept(request, response))

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
        kept = _kept(request, response, command_id, reply_to, correlation, final)
        await self.journal.transaction(lambda tx: bridgecmds.remember(tx, self.bridge, kept))

    async def finals(self, events: list[Event]) -> list[FinalResponse]:
        """Final responses owed for the ``command.done`` / ``command.failed`` events in
        ``events`` (to commands this bridge received). Recorded, so a later repeat of the
        command gets the final answer too. Call again after a crash: it is idempotent."""
        outcomes: dict[int, ev.CommandDone | ev.CommandFailed] = {}
        for e in events:
            data = ev.payload(e)
            if isinstance(data, ev.CommandDone | ev.CommandFailed):
                outcomes[data.command_id] = data
        if not outcomes:
            return []

        def run(tx: Tx) -> list[FinalResponse]:
            out = []
            for row in bridgecmds.awaiting_final(tx, self.bridge, outcomes):
                outcome = outcomes[row.command_id]
                try:
                    first = Response.from_row(row.response)
                except ValueError as exc:
                    # One damaged row costs that one final answer, not the bridge.
                    log.error("%s bridge: command %s: %s", self.bridge, row.request_id, exc)
                    continue
                if isinstance(outcome, ev.CommandDone):
                    final = final_response(first, True, None, None, outcome.status)
                else:
                    final = final_response(first, False, outcome.code, outcome.message)
                bridgecmds.set_final(tx, self.bridge, row.request_id, json.dumps(final.to_dict()))
                out.append(FinalResponse(final, row.reply_to, row.correlation))
            return out

        return await self.journal.transaction(run)

    async def prune(self, days: float = 7.0) -> int:
        """Forget command ids older than ``days`` (a POS repeats within seconds, not weeks)."""
        cutoff = time.time() - days * 86400
        return await self.journal.transaction(
            lambda tx: bridgecmds.forget_before(tx, self.bridge, cutoff)
        )


def _kept(
    request: Request,
    response: Response,
    command_id: int | None = None,
    reply_to: str | None = None,
    correlation: bytes | None = None,
    final: Response | None = None,
) -> bridgecmds.Remembered:
    return bridgecmds.Remembered(
        request_id=request.request_id,
        name=request.name,
        digest=request.digest,
        response=json.dumps(response.to_dict()),
        command_id=command_id,
        final=json.dumps(final.to_dict()) if final else None,
        reply_to=reply_to,
        correlation=correlation,
    )
