"""Order → ticket model: pure functions, no I/O.

A :class:`Ticket` is a list of elements (styled text lines already wrapped to the paper,
rules, a QR code, a logo). :mod:`edged.printing.escpos` turns it into printer bytes and the
virtual printer into a picture.

Every string taken from an order went through :func:`clean` first: control characters
(C0, DEL, C1, Unicode format characters) are dropped, so nothing from outside can become a
printer command whatever the encoder does.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from edged.i18n import NP_, Language, Locale, zone
from edged.sinqro.models import CANCELLED_STATUSES, GONE, Order, opt_float

Align = Literal["left", "center", "right"]
MAX_FIELD = 2000  # characters kept from one field from outside (a comment, a label)
MAX_URL = 512

# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """One printed line; ``text`` fits ``columns // width`` characters."""

    text: str
    align: Align = "left"
    bold: bool = False
    width: int = 1  # 1 or 2 (double width)
    height: int = 1  # 1 or 2 (double height)
    invert: bool = False


@dataclass(frozen=True)
class Rule:
    """A full-width line of ``char``."""

    char: str = "-"


@dataclass(frozen=True)
class Qr:
    """A QR code (printed natively or as a picture, whatever the printer can do)."""

    data: str


@dataclass(frozen=True)
class Logo:
    """An image file printed centred."""

    path: str


@dataclass(frozen=True)
class Feed:
    """Blank lines."""

    lines: int = 1


Element = Text | Rule | Qr | Logo | Feed


@dataclass(frozen=True)
class Ticket:
    """What one job prints, before encoding."""

    kind: str  # order | reprint | cancel | status | test | text
    order_id: int | None
    columns: int
    elements: tuple[Element, ...]

    def plain_text(self) -> str:
        """The text lines (for logs, tests and the virtual printer's .txt fallback)."""
        out = []
        for e in self.elements:
            if isinstance(e, Text):
                out.append(e.text)
            elif isinstance(e, Rule):
                out.append(e.char * self.columns)
            elif isinstance(e, Qr):
                out.append(f"[QR {e.data}]")
            elif isinstance(e, Feed):
                out.extend([""] * e.lines)
        return "\n".join(out)


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


# -- labels ------------------------------------------------------------------------------

# English source text per label key; the box's language comes from the gettext catalogs
# (edged/i18n/locale/<lang>/LC_MESSAGES/edged.po). Context "ticket" keeps the paper's
# capitals and wording apart from the page's.
LABELS: dict[str, str] = {
    "delivery": NP_("ticket", "DELIVERY"),
    "collection": NP_("ticket", "TAKEAWAY"),
    "reservation": NP_("ticket", "RESERVATION"),
    "insitu": NP_("ticket", "PRE-ORDER"),
    "inside": NP_("ticket", "TABLE ORDER"),
    "order": NP_("ticket", "Order"),
    "for": NP_("ticket", "For"),
    "asap": NP_("ticket", "ASAP"),
    "placed": NP_("ticket", "Placed"),
    "customer": NP_("ticket", "Customer"),
    "phone": NP_("ticket", "Phone"),
    "address": NP_("ticket", "Address"),
    "instructions": NP_("ticket", "For the driver"),
    "diners": NP_("ticket", "Diners"),
    "table": NP_("ticket", "Table"),
    "delivery_cost": NP_("ticket", "Delivery"),
    "total": NP_("ticket", "TOTAL"),
    "prepaid": NP_("ticket", "PAID"),
    "to_collect": NP_("ticket", "TO COLLECT"),
    "comment": NP_("ticket", "Comment"),
    "tracking": NP_("ticket", "Tracking"),
    "reprint": NP_("ticket", "REPRINT"),
    "late": NP_("ticket", "LATE"),
    "backup_for": NP_("ticket", "Instead of printer"),
    "cancelled": NP_("ticket", "CANCELLED"),
    "reason": NP_("ticket", "Reason"),
    "at": NP_("ticket", "At"),
    "test": NP_("ticket", "TEST PRINT"),
    "printer": NP_("ticket", "Printer"),
    "code_page": NP_("ticket", "Code page"),
    "columns": NP_("ticket", "Columns"),
    "big": NP_("ticket", "Big type"),
    "no_items": NP_("ticket", "(no items)"),
}

STATUS_LABELS: dict[str, str] = {
    "accepted": NP_("ticket", "ACCEPTED"),
    "preparation": NP_("ticket", "IN PREPARATION"),
    "ready": NP_("ticket", "READY"),
    "delivering": NP_("ticket", "OUT FOR DELIVERY"),
    "delivered": NP_("ticket", "DELIVERED"),
    "incident": NP_("ticket", "INCIDENT"),
    "finished": NP_("ticket", "FINISHED"),
    "reservation_accepted": NP_("ticket", "RESERVATION ACCEPTED"),
    "payment_authorisation_failed": NP_("ticket", "PAYMENT FAILED"),
    "cancelled": NP_("ticket", "Cancelled"),
    "cancelled_by_sp": NP_("ticket", "Cancelled by the restaurant"),
    "cancelled_by_client": NP_("ticket", "Cancelled by the customer"),
    "cancelled_by_driver": NP_("ticket", "Cancelled by the driver"),
    "cancelled_by_team": NP_("ticket", "Cancelled by the Sinqro team"),
    "gone": NP_("ticket", "Closed: unknown to Sinqro"),
}


class _Labels:
    """The ticket's labels in one language: ``L["total"]``, ``L.get(order.type, ...)``."""

    def __init__(self, language: str) -> None:
        self.locale = Locale(language)

    def __getitem__(self, key: str) -> str:
        return self.locale.pgettext("ticket", LABELS[key])

    def get(self, key: str, default: str) -> str:
        return self[key] if key in LABELS else default

    def status(self, status: str) -> str | None:
        known = STATUS_LABELS.get(status)
        return self.locale.pgettext("ticket", known) if known else None


# -- text from outside -------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def strip_controls(text: str) -> str:
    """``text`` without control or format characters; whitespace becomes plain spaces."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def clean(value: Any, limit: int = MAX_FIELD) -> str:
    """One line of printable text from an untrusted value (``""`` for non-text).

    Drops C0/C1 controls, DEL and Unicode format characters (bidi overrides, zero-width);
    any whitespace run becomes one space.
    """
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return ""
    value = unicodedata.normalize("NFC", value[: limit * 2])
    return " ".join(strip_controls(value).split())[:limit]


def clean_paragraphs(value: Any, limit: int = MAX_FIELD) -> list[str]:
    """Like :func:`clean` but keeps the writer's line breaks (comments)."""
    if not isinstance(value, str):
        text = clean(value, limit)
        return [text] if text else []
    parts = [clean(p, limit) for p in _LINE_BREAK.split(value[: limit * 2])]
    return [p for p in parts if p][:50]


def clean_url(value: Any) -> str:
    """A tracking link safe for a QR code: http(s), printable ASCII only."""
    # A link with control characters in it was mangled on the way: drop it, don't guess.
    if not isinstance(value, str) or not re.fullmatch(r"[\x21-\x7e]+", value.strip()):
        return ""
    text = clean(value, MAX_URL)
    if not re.fullmatch(r"https?://[\x21-\x7e]+", text):
        return ""
    return text


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
    """``Fri 25/12 14:05`` (or ``14:05``) in zone ``tz`` and ``language``."""
    locale = Locale(language, tz)
    return locale.short_datetime(when) if date else locale.time(when)


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Wrap to ``width`` characters; continuation lines get ``indent``."""
    width = max(width, 8)
    lines = textwrap.wrap(
        text,
        width=width,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )
    return lines or [""]


# -- building ----------------------------------------------------------------------------


@dataclass
class _Builder:
    columns: int
    elements: list[Element] = field(default_factory=list)

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
        for line in wrap(text, self.columns // width, indent):
            self.elements.append(Text(line, align, bold, width, height, invert))

    def field(self, label: str, value: str, *, bold: bool = False, height: int = 1) -> None:
        if value:
            self.text(f"{label}: {value}", bold=bold, height=height, indent="  ")

    def pair(self, left: str, right: str, *, bold: bool = False, height: int = 1) -> None:
        """``left`` wrapped, ``right`` (an amount) flush right on the last line."""
        room = self.columns - len(right) - 1
        if room < 8:
            self.text(left, bold=bold, height=height)
            self.text(right, align="right", bold=bold, height=height)
            return
        lines = wrap(left, room, "    ")
        for line in lines[:-1]:
            self.elements.append(Text(line, bold=bold, height=height))
        last = lines[-1]
        self.elements.append(
            Text(
                last + " " * (self.columns - len(last) - len(right)) + right,
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
        return Ticket(kind, order_id, self.columns, (*tidy, Feed(1)))


def _head(b: _Builder, order: Order, opts: TicketOptions) -> None:
    L = _Labels(opts.language)
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


def _when(b: _Builder, order: Order, opts: TicketOptions) -> None:
    L = _Labels(opts.language)
    tz = zone(order.timezone, opts.tz)
    execution = parse_time(order.execution_time)
    if order.is_asap:
        at = f" ({local_label(execution, tz, opts.language)})" if execution else ""
        b.text(f"{L['asap']}{at}", bold=True, height=2)
    elif execution:
        b.text(f"{L['for']}: {local_label(execution, tz, opts.language)}", bold=True, height=2)
    created = parse_time(order.created_at)
    if created:
        b.text(f"{L['placed']}: {local_label(created, tz, opts.language)}")


def _people(b: _Builder, order: Order, opts: TicketOptions) -> None:
    L = _Labels(opts.language)
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
    diners = _num(raw, "dinersNumber")
    if diners is not None and diners > 0:
        b.field(L["diners"], str(int(diners)), bold=True, height=2)
    location = _dict(raw, "serviceLocation")
    if location:
        zone_name = _str(_dict(location, "serviceZone"), "name", 80)
        spot = _str(location, "name", 80) or _str(location, "code", 40)
        table = " · ".join(p for p in (zone_name, spot) if p)
        b.field(L["table"], table, bold=True, height=2)


def _items(b: _Builder, order: Order, opts: TicketOptions) -> None:
    currency = _dict(order.raw, "currency")
    kitchen = opts.layout == "kitchen"
    height = 2 if kitchen else 1
    lines = [
        line for line in _list(order.raw, "orderLines") if line.get("type") not in _TOTAL_LINES
    ]
    if not lines:
        if order.type != "reservation":
            b.text(_Labels(opts.language)["no_items"])
        return

    def emit(line: dict[str, Any], depth: int) -> None:
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


_TOTAL_LINES = ("DELIVERY", "DISCOUNT")


def _totals(b: _Builder, order: Order, opts: TicketOptions) -> None:
    L = _Labels(opts.language)
    raw = order.raw
    currency = _dict(raw, "currency")
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
    b = _Builder(opts.columns)
    L = _Labels(opts.language)
    _head(b, order, opts)
    b.rule()
    _when(b, order, opts)
    b.rule()
    _people(b, order, opts)
    b.rule()
    _items(b, order, opts)
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


def _slip_head(b: _Builder, order: Order, opts: TicketOptions) -> None:
    L = _Labels(opts.language)
    if opts.reprint:
        b.banner(L["reprint"])
    if opts.backup_for:
        b.text(f"{L['backup_for']}: {opts.backup_for}", align="center", bold=True)
    b.text(L.get(order.type, clean(order.type, 40).upper()), align="center", width=2, height=2)
    b.text(f"#{clean(order.code, 40)}", align="center", bold=True, width=2, height=2)
    b.text(f"{L['order']} {order.id}", align="center")


def cancel_slip(order: Order, status: str, opts: TicketOptions, at: datetime | None) -> Ticket:
    """A short slip telling the kitchen a printed order was cancelled, by whom and why."""
    L = _Labels(opts.language)
    b = _Builder(opts.columns)
    b.banner(L["cancelled"])
    _slip_head(b, order, opts)
    b.rule()
    who = L.status(status) or clean(order.status_name, 200)
    b.text(who, bold=True, height=2)
    reason = clean_paragraphs(order.raw.get("cancellationComment"))
    if reason:
        b.text(f"{L['reason']}:", bold=True)
        for paragraph in reason:
            b.text(paragraph)
    if order.consumer_name:
        b.field(L["customer"], clean(order.consumer_name, 200))
    if at is not None:
        b.field(L["at"], local_label(at, zone(order.timezone, opts.tz), opts.language))
    return b.build("cancel", order.id)


def status_slip(order: Order, status: str, opts: TicketOptions, at: datetime | None) -> Ticket:
    """A short slip for a configured status change (ready, out for delivery...)."""
    if status in CANCELLED_STATUSES or status == GONE:
        return cancel_slip(order, status, opts, at)
    L = _Labels(opts.language)
    b = _Builder(opts.columns)
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
    L = _Labels(opts.language)
    b = _Builder(opts.columns)
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
    b.text("ñ á é í ó ú ü ç €")
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
    b = _Builder(opts.columns)
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


def is_late(order: Order, now: datetime) -> bool:
    """True when the order's execution time has passed (the ticket gets a LATE banner)."""
    if order.is_final:
        return False
    execution = parse_time(order.execution_time)
    return execution is not None and execution < now
