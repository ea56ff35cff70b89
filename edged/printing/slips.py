"""The slips that follow an order ticket, and the box's own tickets: pure functions.

Cancelled (with the table and the items, so the kitchen knows what to stop making),
status changes, UPDATED (an accepted delay moved the time), the printer test page and
free text (the setup ticket). Their words are in :mod:`edged.printing.labels`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from edged.printing.labels import labels
from edged.printing.model import Feed, Logo, Qr, Text, Ticket
from edged.printing.text import clean, clean_paragraphs, clean_url
from edged.printing.ticket import (
    TicketBuilder,
    TicketOptions,
    item_lines,
    kitchen_time,
    local_label,
    parse_time,
    table_line,
    zone,
)
from edged.sinqro.models import CANCELLED_STATUSES, GONE, Order


def _slip_head(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    L = labels(opts.language)
    if opts.reprint:
        b.banner(L["reprint"])
    if opts.backup_for:
        b.text(f"{L['backup_for']}: {opts.backup_for}", align="center", bold=True)
    b.text(L.get(order.type, clean(order.type, 40).upper()), align="center", width=2, height=2)
    b.text(f"#{clean(order.code, 40)}", align="center", bold=True, width=2, height=2)
    b.text(f"{L['order']} {order.id}", align="center")


def cancel_slip(order: Order, status: str, opts: TicketOptions, at: datetime | None) -> Ticket:
    """The slip that tells the kitchen what to stop making: who cancelled, why (unless
    that only repeats who), the table, and the items again in the kitchen layout."""
    L = labels(opts.language)
    b = TicketBuilder(opts.columns, opts.language)
    b.banner(L["cancelled"])
    _slip_head(b, order, opts)
    b.rule()
    who = L.status(status) or clean(order.status_name, 200)
    b.text(who, bold=True, height=2)
    said = {_plain(who), _plain(order.status_name), _plain(status)}
    reason = [p for p in clean_paragraphs(order.raw.get("cancellationComment")) if p]
    if reason and not (len(reason) == 1 and _plain(reason[0]) in said):
        b.text(f"{L['reason']}:", bold=True)
        for paragraph in reason:
            b.text(paragraph)
    table_line(b, order, opts)
    if order.consumer_name:
        b.field(L["customer"], clean(order.consumer_name, 200))
    if at is not None:
        b.field(L["at"], local_label(at, zone(order.timezone, opts.tz), opts.language))
    b.rule()
    item_lines(b, order, _kitchen(opts))
    return b.build("cancel", order.id)


def _plain(text: str) -> str:
    return " ".join(clean(text, 400).casefold().replace(".", " ").split())


def _kitchen(opts: TicketOptions) -> TicketOptions:
    return TicketOptions(
        columns=opts.columns,
        language=opts.language,
        layout="kitchen",
        tz=opts.tz,
        currency=opts.currency,
    )


def updated_slip(order: Order, previous: str, opts: TicketOptions, at: datetime | None) -> Ticket:
    """An already printed order has a new time (an accepted delay): "UPDATED", the new
    time in big type, and the old one crossed out in words."""
    L = labels(opts.language)
    b = TicketBuilder(opts.columns, opts.language)
    tz = zone(order.timezone, opts.tz)
    b.banner(L["updated"])
    _slip_head(b, order, opts)
    b.rule()
    new = parse_time(order.execution_time)
    if new is not None:
        b.text(
            f"{L['new_time']}: {local_label(new, tz, opts.language, date=False)}",
            bold=True,
            width=2,
            height=2,
        )
        ready = kitchen_time(order)
        if ready is not None and ready[1].replace(second=0) != new.replace(second=0):
            label, when = ready
            b.text(
                f"{L[label]}: {local_label(when, tz, opts.language, date=False)}",
                bold=True,
                height=2,
            )
    old = parse_time(previous)
    if old is not None:
        b.field(L["was"], local_label(old, tz, opts.language))
    table_line(b, order, opts)
    if order.consumer_name:
        b.field(L["customer"], clean(order.consumer_name, 200))
    if at is not None:
        b.field(L["at"], local_label(at, tz, opts.language))
    return b.build("updated", order.id)


def status_slip(order: Order, status: str, opts: TicketOptions, at: datetime | None) -> Ticket:
    """A short slip for a configured status change (ready, out for delivery...)."""
    if status in CANCELLED_STATUSES or status == GONE:
        return cancel_slip(order, status, opts, at)
    L = labels(opts.language)
    b = TicketBuilder(opts.columns, opts.language)
    _slip_head(b, order, opts)
    b.rule()
    label = L.status(status) or clean(order.status_name, 200).upper()
    b.text(label, align="center", bold=True, width=2, height=2)
    if order.consumer_name:
        b.field(L["customer"], clean(order.consumer_name, 200))
    if at is not None:
        b.field(L["at"], local_label(at, zone(order.timezone, opts.tz), opts.language))
    return b.build("status", order.id)


def printer_test_ticket(
    printer: str, box_name: str, code_page: str, opts: TicketOptions, at: datetime
) -> Ticket:
    """A page that shows the printer works: accents, euro, width, big type, QR."""
    L = labels(opts.language)
    b = TicketBuilder(opts.columns, opts.language)
    if opts.logo:
        b.elements.append(Logo(opts.logo))
    b.text(L["test"], align="center", bold=True, width=2, height=2)
    b.text(clean(box_name, 200), align="center", bold=True)
    b.rule("=")
    b.field(L["printer"], clean(printer, 80))
    b.field(L["code_page"], clean(code_page, 40))
    b.field(L["columns"], str(opts.columns))
    b.field(L["at"], local_label(at, zone(opts.tz), opts.language))
    b.rule()
    b.text("ñ á é í ó ú ü ç à è ò ï l·l €")
    b.text("Ñ Á É Í Ó Ú Ü Ç ª º ¿ ¡")
    digits = "".join(str(i % 10) for i in range(1, opts.columns + 1))
    b.elements.append(Text(digits))
    b.text(L["big"], bold=True, width=2, height=2)
    if opts.qr_tracking:
        b.elements.append(Qr("https://example.com/edged-test"))
    return b.build("test", None)


def text_ticket(
    lines: Sequence[str] | Iterable[str],
    opts: TicketOptions,
    *,
    qr: str = "",
    big: Iterable[int] = (),
) -> Ticket:
    """Free text (the setup ticket); every line is cleaned and wrapped. Lines at indexes
    ``big`` print in large type (the setup code); ``qr`` (a URL) ends the ticket."""
    b = TicketBuilder(opts.columns, opts.language)
    large = set(big)
    for count, line in enumerate(lines):
        if count >= 200:
            break
        text = clean(line, 500)
        if text and count in large:
            b.text(text, align="center", bold=True, width=2, height=2)
        elif text:
            b.text(text)
        else:
            b.elements.append(Feed(1))
    url = clean_url(qr)
    if url:
        b.elements.append(Qr(url))
    return b.build("text", None)
