"""``edged orders | accept | cancel | set-status | reprint | test-print``.

Commands that act on orders write to the journal, whether the daemon is running or not: a
running daemon notices within a second and delivers them; a stopped one delivers them when
it starts. Nothing bypasses the outbox. Orders are named by id or by code (``OP4ES5``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from edged.commandline.base import (
    EX_OK,
    EX_REFUSED,
    EX_UNAVAILABLE,
    EX_USAGE,
    cli_locale,
    complain,
    dump_json,
    load,
    say,
)
from edged.config import Config
from edged.i18n import N_, Locale
from edged.i18n.words import status_word, type_word
from edged.journal.rows import StoredOrder
from edged.journal.store import Journal, JournalError
from edged.sinqro.models import parse_order

Work = Callable[[Config, Journal, Locale], Awaitable[int]]

# Refusals in words, by code (the board says the same).
REFUSALS = {
    "DECISION_QUEUED": N_(
        "Refused: this order already has a decision waiting to be sent. Wait until Sinqro has it."
    ),
    "NOT_WAITING": N_("Refused: this order is no longer waiting."),
    "ORDER_FINAL": N_("Refused: this order is already finished or cancelled."),
    "UNKNOWN_ORDER": N_("Refused: this box does not know that order."),
    "REPRINT_LIMIT": N_(
        "Refused: this order was reprinted too often, or too many reprints were asked in the "
        "last minute."
    ),
    "ORDER_CANCELLATION_COMMENT_IS_REQUIRED": N_(
        "Please say why: Sinqro needs a cancellation comment."
    ),
}
# What a command does, as the object of a sentence ("accept of order OP4ES5" reads wrong).
ACTIONS = {
    "accept": N_("Accepting order {code}"),
    "cancel": N_("Cancelling order {code}"),
    "status": N_("Moving order {code} on"),
}


async def with_journal(args: argparse.Namespace, work: Work) -> int:
    """Open the journal of the configured box and run ``work`` with it."""
    config = load(args)
    if not config.journal_path.exists():
        _ = cli_locale(args, config).gettext
        complain(_("no journal at {path} (has edged run yet?)").format(path=config.journal_path))
        return EX_UNAVAILABLE
    try:
        journal = await Journal.open(config.journal_path, watch_interval=0)
    except JournalError as exc:  # damaged, locked, unreadable: say so, no traceback
        _ = cli_locale(args, config).gettext
        complain(_("cannot open the journal: {reason}").format(reason=exc))
        return EX_UNAVAILABLE
    try:
        from edged.flow.pairing import load_pairing

        pairing = await load_pairing(journal, config.sinqro)
        return await work(config, journal, cli_locale(args, config, pairing.timezone))
    finally:
        await journal.close()


async def resolve_order(journal: Journal, ref: str, locale: Locale) -> tuple[int | None, str]:
    """An order id from what was typed: an id, or the order's code (``OP4ES5``, any
    case, a leading ``#`` allowed). Returns ``(id, "")`` or ``(None, why)``."""
    _ = locale.gettext
    text = ref.strip().lstrip("#")
    if text.isdigit() and len(text) <= 19 and await journal.get_order(int(text)) is not None:
        return int(text), ""
    matches = [
        o
        for o in await journal.list_orders(search=text, limit=50)
        if o.code.upper() == text.upper()
    ]
    if len(matches) == 1:
        return matches[0].id, ""
    if matches:
        ids = ", ".join(str(o.id) for o in matches)
        return None, _("code {code} matches several orders ({ids}): give the id").format(
            code=text, ids=ids
        )
    return None, _("no order with id or code {ref} in the journal").format(ref=text)


def due_at(order: StoredOrder) -> float:
    """When the order is due, as the board says: Sinqro's time, else when it came."""
    from edged.printing.ticket import parse_time

    for value in (order.execution_time, parse_order(order.payload).created_at):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed.timestamp()
    return order.first_seen


def order_row(order: StoredOrder, locale: Locale) -> dict[str, Any]:
    """One order for ``--json``: codes as they are, times as Unix times and in words."""
    due = due_at(order)
    return {
        "id": order.id,
        "code": order.code,
        "type": order.type,
        "type_text": type_word(order.type, locale),
        "status": order.status,
        "status_text": status_word(order.status, locale),
        "final": order.is_final,
        "due": due,
        "due_text": locale.datetime(due),
        "first_seen": order.first_seen,
        "first_seen_text": locale.datetime(order.first_seen),
    }


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first column right-aligned (ids)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].rjust(widths[0])]
        cells += [c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


def cmd_orders(args: argparse.Namespace) -> int:
    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        _ = locale.gettext
        if args.all:
            orders = await journal.list_orders(limit=args.limit)
        else:
            orders = await journal.open_orders()
        if args.json:
            dump_json([order_row(o, locale) for o in orders])
            return EX_OK
        if not orders:
            say(_("no orders") if args.all else _("no open orders"))
            return EX_OK
        rows = [(_("ID"), _("CODE"), _("TYPE"), _("STATUS"), _("DUE"), _("SEEN"))]
        rows += [
            (
                str(o.id),
                o.code,
                type_word(o.type, locale),
                status_word(o.status, locale),
                locale.datetime(due_at(o)),
                locale.datetime(o.first_seen),
            )
            for o in orders
        ]
        for line in table(rows):
            say(line)
        return EX_OK

    return asyncio.run(with_journal(args, work))


def refusal(code: str, message: str, locale: Locale) -> str:
    """A refusal in words, and its stable code for scripts."""
    known = REFUSALS.get(code)
    text = locale.gettext(known) if known else locale.gettext("Refused: {why}").format(why=message)
    return f"{text} ({code})"


def decide(args: argparse.Namespace, action: str) -> int:
    from edged.flow.desk import OrderDesk
    from edged.flow.refusals import CommandRefused
    from edged.state import BoxState

    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        _ = locale.gettext
        desk = OrderDesk(journal, BoxState(), config.orders)
        order_id, why = await resolve_order(journal, args.order, locale)
        if order_id is None:
            complain(f"{why} (UNKNOWN_ORDER)")
            return EX_REFUSED
        order = await journal.get_order(order_id)
        code = order.code if order is not None and order.code else str(order_id)
        try:
            if action == "accept":
                command = await desk.accept(order_id, args.delay, source="cli")
            elif action == "cancel":
                command = await desk.cancel(order_id, args.comment, source="cli")
            else:
                command = await desk.set_status(
                    order_id, args.status, reason=args.reason or "", source="cli"
                )
        except CommandRefused as exc:
            complain(refusal(exc.code, exc.message, locale))
            return EX_REFUSED
        doing = _(ACTIONS[action]).format(code=code)
        say(_("{doing}: queued (command {id})").format(doing=doing, id=command.id))
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            current = await journal.get_command(command.id)
            if current is not None and current.state == "done":
                say(_("{doing}: done, Sinqro has it").format(doing=doing))
                return EX_OK
            if current is not None and current.state == "failed":
                complain(
                    _("{doing}: refused by Sinqro: {reason}").format(
                        doing=doing, reason=f"{current.error} ({current.error_code})"
                    )
                )
                return EX_REFUSED
            await asyncio.sleep(0.2)
        if args.wait:
            say(
                _("{doing}: still queued; the daemon sends it when Sinqro answers").format(
                    doing=doing
                )
            )
        return EX_OK

    return asyncio.run(with_journal(args, work))


def unknown_printer(config: Config, name: str | None, locale: Locale) -> bool:
    """True (after saying so) when ``name`` is given but not a configured printer."""
    names = [p.name for p in config.printers]
    if name is None or name in names:
        return False
    if names:
        why = locale.gettext("no printer named {name}; configured: {names}")
    else:
        why = locale.gettext("no printer named {name}: this box has no printer configured")
    complain(why.format(name=name, names=", ".join(names)))
    return True


def cmd_reprint(args: argparse.Namespace) -> int:
    from edged.printing.jobs import PrintRefused, append_print_request

    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        _ = locale.gettext
        if unknown_printer(config, args.printer, locale):
            return EX_USAGE
        order_id, why = await resolve_order(journal, args.order, locale)
        if order_id is None:
            complain(f"{why} (UNKNOWN_ORDER)")
            return EX_REFUSED
        try:
            await append_print_request(
                journal, "reprint", order_id=order_id, printer=args.printer, source="cli"
            )
        except PrintRefused as exc:
            complain(refusal("REPRINT_LIMIT", str(exc), locale))
            return EX_REFUSED
        order = await journal.get_order(order_id)
        code = order.code if order is not None and order.code else str(order_id)
        say(_("Reprint of order {code} requested").format(code=code))
        return EX_OK

    return asyncio.run(with_journal(args, work))


def cmd_test_print(args: argparse.Namespace) -> int:
    from edged.printing.spooler import append_print_request

    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        if unknown_printer(config, args.name, locale):
            return EX_USAGE
        await append_print_request(journal, "test", printer=args.name, source="cli")
        say(locale.gettext("Test page on {printer} requested").format(printer=args.name))
        return EX_OK

    return asyncio.run(with_journal(args, work))
