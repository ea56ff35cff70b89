"""Order → ticket (:mod:`edged.printing.model`): pure functions, no I/O.

The order ticket, full or kitchen layout (the slips that follow it are in
:mod:`edged.printing.slips`; the words on both are in :mod:`edged.printing.labels`). Every string
taken from an order goes through :func:`~edged.printing.text.clean` first, so nothing from
outside can become a printer command whatever the encoder does. A ticket has a total cap on
its lines: an absurd order prints its first lines and "N more lines, see the page", never a
kilometre of paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from edged.i18n import Language, Locale, zone
from edged.printing.labels import labels
from edged.printing.model import Align, Element, Feed, Logo, Qr, Rule, Text, Ticket
from edged.printing.text import (
    MAX_FIELD,
    MAX_URL,
    cells,
    clean,
    clean_paragraphs,
    clean_url,
    strip_controls,
    wrap,
)
from edged.sinqro.models import Order, opt_float

__all__ = [
    "MAX_FIELD",
    "MAX_URL",
    "Element",
    "Feed",
    "Logo",
    "Qr",
    "Rule",
    "Text",
    "Ticket",
    "TicketBuilder",
    "TicketOptions",
    "clean",
    "clean_paragraphs",
    "clean_url",
    "item_lines",
    "kitchen_time",
    "local_label",
    "money",
    "order_ticket",
    "parse_time",
    "strip_controls",
    "table_line",
    "zone",
]

# Printed lines on one ticket at most, and of them for the items: an order with thousands
# of lines prints the first ones, then "N more lines, see the page".
MAX_TICKET_LINES = 800
MAX_ITEM_LINES = 600


@dataclass(frozen=True)
class TicketOptions:
    """How a printer wants its tickets."""

    columns: int = 42
    language: Language = "en"
    layout: Literal["full", "kitchen"] = "full"
    qr_tracking: bool = True
    logo: str = ""
    reprint: bool = False
    late: bool = False
    backup_for: str = ""  # name of the failed printer this ticket stands in for
    tz: str = ""  # fallback timezone when the order has none
    currency: str = ""  # sign when neither the order nor its selling point names one


def _dict(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _list(obj: Any, key: str) -> list[dict[str, Any]]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


_num = opt_float


def _str(obj: Any, key: str, limit: int = MAX_FIELD) -> str:
    return clean(obj.get(key) if isinstance(obj, dict) else None, limit)


# -- formatting --------------------------------------------------------------------------


def money(amount: float, currency: dict[str, Any], language: str) -> str:
    """``amount`` per the order's ``currency.displayPattern`` (e.g. ``{{ amount }}€``)."""
    return Locale(language).money(amount, currency)


def parse_time(value: Any) -> datetime | None:
    """A Sinqro timestamp (``2020-07-24T05:05:53+0000``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return _in_range(datetime.strptime(value, fmt))
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _in_range(parsed: datetime | None) -> datetime | None:
    # Shifting year 1 or year 9999 to the selling point's zone leaves datetime's range.
    return parsed if parsed is not None and 1 < parsed.year < 9999 else None


def local_label(when: datetime, tz: tzinfo, language: str, *, date: bool = True) -> str:
    """``Fri 25/12/2026 14:05`` (or ``14:05``) in zone ``tz`` and ``language``."""
    locale = Locale(language, tz)
    return locale.day_datetime(when) if date else locale.time(when)


# -- building ----------------------------------------------------------------------------


@dataclass
class TicketBuilder:
    columns: int
    language: Language = "en"
    elements: list[Element] = field(default_factory=list)
    lines: int = 0  # text lines so far
    dropped: int = 0  # lines left off past MAX_TICKET_LINES

    @property
    def full(self) -> bool:
        return self.lines >= MAX_TICKET_LINES

    def line(self, line: Text) -> None:
        if self.full:
            self.dropped += 1
            return
        self.lines += 1
        self.elements.append(line)

    def text(
        self,
        text: str,
        *,
        align: Align = "left",
        bold: bool = False,
        width: int = 1,
        height: int = 1,
        invert: bool = False,
        indent: str = "",
    ) -> None:
        if self.full:  # not even wrapped: a capped ticket costs nothing more
            self.dropped += 1
            return
        for line in wrap(text, self.columns // width, indent):
            self.line(Text(line, align, bold, width, height, invert))

    def field(self, label: str, value: str, *, bold: bool = False, height: int = 1) -> None:
        if value:
            self.text(f"{label}: {value}", bold=bold, height=height, indent="  ")

    def pair(self, left: str, right: str, *, bold: bool = False, height: int = 1) -> None:
        """``left`` wrapped, ``right`` (an amount) flush right on the last line."""
        room = self.columns - cells(right) - 1
        if room < 8:
            self.text(left, bold=bold, height=height)
            self.text(right, align="right", bold=bold, height=height)
            return
        if self.full:
            self.dropped += 1
            return
        lines = wrap(left, room, "    ")
        for line in lines[:-1]:
            self.line(Text(line, bold=bold, height=height))
        last = lines[-1]
        self.line(
            Text(
                last + " " * (self.columns - cells(last) - cells(right)) + right,
                "left",
                bold,
                1,
                height,
            )
        )

    def banner(self, text: str) -> None:
        self.text(text, align="center", bold=True, width=2, height=2, invert=True)

    def rule(self, char: str = "-") -> None:
        self.elements.append(Rule(char))

    def build(self, kind: str, order_id: int | None) -> Ticket:
        # No rule right before another rule or at the end: it looks like a misprint.
        tidy: list[Element] = []
        for e in self.elements:
            if isinstance(e, Rule) and tidy and isinstance(tidy[-1], Rule):
                continue
            tidy.append(e)
        while tidy and isinstance(tidy[-1], Rule):
            tidy.pop()
        if self.dropped:
            more = labels(self.language)["more_lines"].format(n=self.dropped)
            tidy += [Rule("-"), *_wrapped(more, self.columns, align="center", bold=True)]
        return Ticket(kind, order_id, self.columns, (*tidy, Feed(1)))


def _wrapped(text: str, columns: int, *, align: Align = "left", bold: bool = False) -> list[Text]:
    return [Text(line, align, bold) for line in wrap(text, columns)]


def _head(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    L = labels(opts.language)
    if opts.logo:
        b.elements.append(Logo(opts.logo))
    if opts.reprint:
        b.banner(L["reprint"])
    if opts.late:
        b.banner(L["late"])
    if opts.backup_for:
        b.text(f"{L['backup_for']}: {opts.backup_for}", align="center", bold=True)
    market = clean(order.market, 200)
    if market:
        b.text(market, align="center", bold=True)
    b.rule("=")
    b.text(L.get(order.type, clean(order.type, 40).upper()), align="center", width=2, height=2)
    b.text(f"#{clean(order.code, 40)}", align="center", bold=True, width=2, height=2)
    b.text(f"{L['order']} {order.id}", align="center")


def _when(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    L = labels(opts.language)
    tz = zone(order.timezone, opts.tz)
    execution = parse_time(order.execution_time)
    if order.is_asap:
        at = f" ({local_label(execution, tz, opts.language)})" if execution else ""
        b.text(f"{L['asap']}{at}", bold=True, height=2)
    elif execution:
        b.text(f"{L['for']}: {local_label(execution, tz, opts.language)}", bold=True, height=2)
    ready = kitchen_time(order)
    if ready is not None and execution is not None:
        label, when = ready
        # The kitchen works to this time, not to the delivery time: big, and only when
        # it says something the line above does not.
        if when.replace(second=0) != execution.replace(second=0):
            same_day = when.astimezone(tz).date() == execution.astimezone(tz).date()
            shown = local_label(when, tz, opts.language, date=not same_day)
            b.text(f"{L[label]}: {shown}", bold=True, width=2, height=2)
    created = parse_time(order.created_at)
    if created:
        b.text(f"{L['placed']}: {local_label(created, tz, opts.language)}")


def kitchen_time(order: Order) -> tuple[str, datetime] | None:
    """When the food must be ready: the courier's agreed pickup, else the preparation time."""
    for delivery in _list(order.raw, "deliveries"):
        pickup = parse_time(delivery.get("pickupAgreedAt"))
        if pickup is not None:
            return "pickup", pickup
    prepared = parse_time(order.raw.get("preparationTime"))
    return ("ready_by", prepared) if prepared is not None else None


def _people(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    L = labels(opts.language)
    raw = order.raw
    consumer = _dict(raw, "consumer")
    name = " ".join(p for p in (_str(consumer, "name"), _str(consumer, "lastname")) if p)
    b.field(L["customer"], name, bold=True)
    b.field(L["phone"], _str(consumer, "phone", 40))
    if order.type == "delivery":
        address = _dict(raw, "deliveryAddress")
        street = _str(address, "street")
        town = " ".join(p for p in (_str(address, "postalCode"), _str(address, "city")) if p)
        if street or town:
            b.text(f"{L['address']}:", bold=True)
            for part in (street, _str(address, "details"), town):
                if part:
                    b.text("  " + part, bold=True, indent="  ")
        for delivery in _list(raw, "deliveries"):
            b.field(L["instructions"], _str(delivery, "deliveryInstructions"))
        _courier(b, order, opts)
    diners = _num(raw, "dinersNumber")
    # Diners belong to orders eaten at the restaurant (doc 003: reservation, insitu, inside).
    if diners is not None and diners > 0 and order.type in _DINER_TYPES:
        b.field(L["diners"], str(int(diners)), bold=True, height=2)
    table_line(b, order, opts)


_DINER_TYPES = ("reservation", "insitu", "inside")


def _courier(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    """Who collects a delivery: the delivery company and the driver, with phones."""
    L = labels(opts.language)
    for delivery in _list(order.raw, "deliveries")[:3]:
        company = " ".join(
            p
            for p in (
                _str(delivery, "deliveryAccountName", 120),
                _str(delivery, "deliveryAccountPhone", 40),
            )
            if p
        )
        b.field(L["courier"], company, bold=True)
        driver = _dict(delivery, "driver")
        name = " ".join(
            p
            for p in (
                _str(driver, "name", 80),
                _str(driver, "lastname", 80),
                _str(driver, "phone", 40),
            )
            if p
        )
        b.field(L["driver"], name)


def table_line(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    location = _dict(order.raw, "serviceLocation")
    if location:
        zone_name = _str(_dict(location, "serviceZone"), "name", 80)
        spot = _str(location, "name", 80) or _str(location, "code", 40)
        table = " · ".join(p for p in (zone_name, spot) if p)
        b.field(labels(opts.language)["table"], table, bold=True, height=2)


def _currency(order: Order, opts: TicketOptions) -> dict[str, Any]:
    """The order's currency, else its selling point's, else the configured sign."""
    for candidate in (
        _dict(order.raw, "currency"),
        _dict(_dict(order.raw, "sellingPoint"), "currency"),
    ):
        if any(clean(candidate.get(k), 40) for k in ("displayPattern", "symbol", "isoCode")):
            return candidate
    return {"symbol": opts.currency} if opts.currency else {}


def item_lines(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    currency = _currency(order, opts)
    kitchen = opts.layout == "kitchen"
    height = 2 if kitchen else 1
    lines = [
        line for line in _list(order.raw, "orderLines") if line.get("type") not in _TOTAL_LINES
    ]
    if not lines:
        if order.type != "reservation":
            b.text(labels(opts.language)["no_items"])
        return

    budget = b.lines + MAX_ITEM_LINES
    skipped = 0

    def emit(line: dict[str, Any], depth: int) -> None:
        nonlocal skipped
        if b.lines >= budget:
            skipped += _count_lines(line, depth)
            return
        qty = _num(line, "quantity")
        whole = qty is not None and qty == int(qty)
        # Options say "+ Bacon"; a count only when it is not the obvious one.
        count = f"{int(qty)} x " if whole and qty is not None and (not depth or qty != 1) else ""
        label = _str(line, "label", 300) or "?"
        pad = "  " * depth
        prefix = f"{pad}+ " if depth else ""
        amount = _num(line, "totalAmount")
        # Option prices are already in their product's amount: only products show one,
        # so the amount column adds up to the total.
        if kitchen or depth or amount is None:
            b.text(f"{prefix}{count}{label}", bold=not depth, height=height, indent=pad + "    ")
        else:
            b.pair(f"{count}{label}", money(amount, currency, opts.language), bold=True)
        for child in _list(line, "childrenOrderLines")[:100]:
            if depth < 4:
                emit(child, depth + 1)
        for comment in clean_paragraphs(line.get("comment"), 500):
            b.text(f"{pad}  > {comment}", bold=kitchen, height=height, indent=pad + "    ")

    for line in lines[:300]:
        emit(line, 0)
    if skipped:
        more = labels(opts.language)["more_lines"].format(n=skipped)
        b.text(more, align="center", bold=True)


def _count_lines(line: dict[str, Any], depth: int) -> int:
    """Lines an item would print (at least: one per option and comment), without the
    cost of laying it out."""
    count = 0
    stack = [(line, depth)]
    while stack:
        node, level = stack.pop()
        count += 1 + (1 if node.get("comment") else 0)
        if level < 4:
            stack.extend((child, level + 1) for child in _list(node, "childrenOrderLines")[:100])
    return count


_TOTAL_LINES = ("DELIVERY", "DISCOUNT")


def _totals(b: TicketBuilder, order: Order, opts: TicketOptions) -> None:
    L = labels(opts.language)
    raw = order.raw
    currency = _currency(order, opts)
    total_lines = [line for line in _list(raw, "orderLines") if line.get("type") in _TOTAL_LINES]
    has_delivery_line = any(line.get("type") == "DELIVERY" for line in total_lines)
    for line in total_lines:
        amount = _num(line, "totalAmount")
        if amount is None:
            continue
        label = L["delivery_cost"] if line.get("type") == "DELIVERY" else _str(line, "label", 200)
        b.pair(label or "?", money(amount, currency, opts.language))
    delivery_amount = _num(raw, "deliveryAmount")
    if not has_delivery_line and delivery_amount:
        b.pair(L["delivery_cost"], money(delivery_amount, currency, opts.language))
    total = order.total_amount
    payments = _list(raw, "payments")
    if total is None or (total == 0 and not payments and not _list(raw, "orderLines")):
        return
    b.pair(L["total"], money(total, currency, opts.language), bold=True, height=2)
    to_collect = 0.0
    for payment in payments:
        amount = _num(payment, "amount") or 0.0
        method = _str(payment, "paymentMethodName", 80) or _str(payment, "methodCode", 40)
        prepaid = payment.get("prepaid") is True
        if not prepaid:
            to_collect += amount
        state = L["prepaid"] if prepaid else L["to_collect"]
        b.pair(f"{method} ({state})", money(amount, currency, opts.language))
    if payments:
        if to_collect > 0.005:
            b.text(
                f"{L['to_collect']}: {money(to_collect, currency, opts.language)}",
                align="center",
                bold=True,
                width=2 if b.columns >= 32 else 1,
                height=2,
            )
        else:
            b.text(L["prepaid"], align="center", bold=True, width=2, height=2)


def _tracking(order: Order) -> str:
    for delivery in _list(order.raw, "deliveries"):
        url = clean_url(delivery.get("trackingUrl"))
        if url:
            return url
    return ""


def order_ticket(order: Order, opts: TicketOptions) -> Ticket:
    """The full or kitchen ticket of an order of any of the five types."""
    b = TicketBuilder(opts.columns, opts.language)
    L = labels(opts.language)
    _head(b, order, opts)
    b.rule()
    _when(b, order, opts)
    b.rule()
    _people(b, order, opts)
    b.rule()
    item_lines(b, order, opts)
    if opts.layout == "full":
        b.rule()
        _totals(b, order, opts)
    comment = clean_paragraphs(order.raw.get("comment"))
    if comment:
        b.rule()
        b.text(f"{L['comment']}:", bold=True)
        for paragraph in comment:
            b.text(paragraph, bold=True, height=2 if opts.layout == "kitchen" else 1)
    url = _tracking(order) if opts.qr_tracking and opts.layout == "full" else ""
    if url:
        b.rule()
        b.text(L["tracking"], align="center")
        b.elements.append(Qr(url))
    return b.build("reprint" if opts.reprint else "order", order.id)


def is_late(order: Order, now: datetime) -> bool:
    """True when the order's execution time has passed (the ticket gets a LATE banner)."""
    if order.is_final:
        return False
    execution = parse_time(order.execution_time)
    return execution is not None and execution < now
