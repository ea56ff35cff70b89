"""Config schema of the ``[[printers]]`` tables (owned by the printing package)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from edged.configtools import opt
from edged.decoding import ascii_int

# The five documented order types, and "other" for any type Sinqro adds later: a printer
# that takes "other" prints orders of a type the box does not know (with a log line).
KNOWN_ORDER_TYPES = ("delivery", "collection", "reservation", "insitu", "inside")
ORDER_TYPES = (*KNOWN_ORDER_TYPES, "other")
OTHER = "other"
SCHEMES = ("tcp", "usb", "serial", "file", "virtual")
# A printer name is a topic level, a page label and a CLI argument: short.
NAME_MAX = 32
# Status codes a printer may print a short slip for (doc 003, OrderStatus). Cancellations
# have their own switch (``cancel_slip``) because they matter to the kitchen.
SLIP_STATUSES = (
    "accepted",
    "preparation",
    "ready",
    "delivering",
    "delivered",
    "incident",
    "finished",
    "reservation_accepted",
    "payment_authorisation_failed",
)
SERIAL_OPTIONS = {"baudrate", "bytesize", "parity", "stopbits", "rtscts", "xonxoff", "dsrdtr"}


@dataclass(frozen=True)
class PrinterUri:
    """A parsed printer address (see :attr:`PrinterConfig.uri`)."""

    scheme: str
    host: str = ""
    port: int = 9100
    path: str = ""
    vendor_id: int = 0
    product_id: int = 0
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


def parse_uri(uri: str) -> PrinterUri:
    """Parse and validate a printer URI; raises ``ValueError`` saying what is wrong."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"expected one of {', '.join(s + '://' for s in SCHEMES)}, got {uri!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        raise ValueError("control characters in the printer address")
    if scheme == "tcp":
        parts = urlsplit(uri)
        try:
            port = parts.port or 9100
        except ValueError:
            raise ValueError(f"bad port in {uri!r}") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"expected tcp://HOST[:PORT], got {uri!r}")
        return PrinterUri("tcp", host=parts.hostname, port=port)
    if scheme == "usb":
        m = re.fullmatch(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})", rest)
        if not m:
            raise ValueError(f"expected usb://VID:PID in hex (e.g. usb://04b8:0202), got {uri!r}")
        return PrinterUri("usb", vendor_id=int(m[1], 16), product_id=int(m[2], 16))
    if scheme == "serial":
        path, _, query = rest.partition("?")
        if not path.startswith("/"):
            raise ValueError(f"expected serial:///dev/ttyXXX[?baudrate=N], got {uri!r}")
        options = tuple(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
        for key, value in options:
            if key not in SERIAL_OPTIONS:
                known = ", ".join(sorted(SERIAL_OPTIONS))
                raise ValueError(f"unknown serial option {key!r} (known: {known})")
            if key in ("baudrate", "bytesize") and ascii_int(value, max_digits=8) is None:
                raise ValueError(f"serial option {key} must be a number, got {value!r}")
            if key == "parity" and value not in ("N", "E", "O", "M", "S"):
                raise ValueError(f"serial parity must be one of N E O M S, got {value!r}")
            if key == "stopbits" and value not in ("1", "1.5", "2"):
                raise ValueError(f"serial stopbits must be 1, 1.5 or 2, got {value!r}")
            if key in ("rtscts", "xonxoff", "dsrdtr") and value not in ("0", "1"):
                raise ValueError(f"serial option {key} must be 0 or 1, got {value!r}")
        return PrinterUri("serial", path=path, options=options)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"expected file:///absolute/path, got {uri!r}")
        return PrinterUri("file", path=rest)
    # virtual://DIR: a relative DIR is relative to box.state_dir.
    if not rest:
        raise ValueError("expected virtual://DIRECTORY")
    return PrinterUri("virtual", path=rest)


def order_type_key(order_type: str) -> str:
    """The ``order_types`` entry that covers an order of ``order_type``."""
    return order_type if order_type in KNOWN_ORDER_TYPES else OTHER


def uri_from_address(text: str) -> str:
    """What a person types as a printer's address, as a printer URI: ``192.168.1.50``
    and ``printer.local:9100`` are network printers, ``/dev/usb/lp0`` a USB printer,
    ``/dev/ttyUSB0`` a serial one; a full URI stays as it is."""
    text = text.strip()
    if not text or "://" in text:
        return text
    if text.startswith("/dev/tty") or text.startswith("/dev/serial/"):
        return f"serial://{text}"
    if text.startswith("/"):
        return f"file://{text}"
    return f"tcp://{text}"


@dataclass(frozen=True)
class PrinterConfig:
    """One receipt printer (ESC/POS, or Star in its own command set)."""

    name: str = field(metadata=opt(doc="Short unique name, used by reprint and the web page"))
    uri: str = field(
        metadata=opt(
            doc="tcp://host:9100, usb://VID:PID, serial:///dev/ttyUSB0?baudrate=19200, "
            "file:///dev/usb/lp0 or virtual://DIR"
        )
    )
    paper_width: Literal[58, 80] = field(default=80, metadata=opt(doc="Paper width in mm"))
    layout: Literal["full", "kitchen"] = field(
        default="full", metadata=opt(doc="full ticket, or kitchen (no prices, big type)")
    )
    copies: int = field(default=1, metadata=opt(minimum=1, maximum=5))
    order_types: list[str] = field(default_factory=lambda: list(ORDER_TYPES))
    profile: str = field(
        default="default",
        metadata=opt(
            doc="Printer profile: escpos-printer-db name (TM-T20III, TM-m30III, POS-5890...) "
            "or, with command_set = star, TSP100, TSP143, TSP650II, TSP700II, mC-Print3..."
        ),
    )
    command_set: Literal["escpos", "star"] = field(
        default="escpos",
        metadata=opt(
            doc="escpos, or star: Star Graphic mode for the TSP100 family, StarPRNT for others"
        ),
    )
    render: Literal["text", "raster", "auto"] = field(
        default="text",
        metadata=opt(
            doc="text (fast, crisp), raster (the ticket drawn as a picture: every script), "
            "or auto (a picture only when the code page cannot print the ticket)"
        ),
    )
    code_page: str = field(
        default="",
        metadata=opt(doc="Forced code page (CP858, CP1252, ISO_8859-15); empty: best of profile"),
    )
    columns: int = field(
        default=0, metadata=opt(minimum=0, maximum=80, doc="Characters per line; 0: from paper")
    )
    print_on: Literal["new", "accepted"] = field(
        default="new", metadata=opt(doc="Print when the order arrives, or once it is accepted")
    )
    cancel_slip: bool = field(
        default=True, metadata=opt(doc="Print a slip when an already printed order is cancelled")
    )
    status_slips: list[str] = field(
        default_factory=list, metadata=opt(doc="Status codes that print a short slip")
    )
    update_slip: bool = field(
        default=True,
        metadata=opt(
            doc="Print an UPDATED slip when an accepted delay moves a printed ticket's time"
        ),
    )
    qr_tracking: bool = field(default=True, metadata=opt(doc="QR code of the tracking link"))
    logo: str = field(default="", metadata=opt(doc="Image file printed at the top"))
    cut: bool = field(default=True, metadata=opt(doc="Cut the paper after each ticket"))
    backup: str = field(default="", metadata=opt(doc="Printer that takes over when this one fails"))
    failover_after: float = field(
        default=60.0, metadata=opt(minimum=0, maximum=3600, doc="Seconds down before failover")
    )
    timeout: float = field(
        default=10.0, metadata=opt(minimum=0.1, maximum=120, doc="I/O timeout, seconds")
    )
    retry_max: float = field(
        default=30.0, metadata=opt(minimum=0.01, maximum=600, doc="Longest wait between retries")
    )
    health_interval: float = field(
        default=30.0, metadata=opt(minimum=0, maximum=3600, doc="Status poll when idle; 0: off")
    )

    def check(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("name: use letters, digits, '-' or '_'")
        if len(self.name) > NAME_MAX:
            raise ValueError(f"name: at most {NAME_MAX} characters")
        try:
            parse_uri(self.uri)
        except ValueError as exc:
            raise ValueError(f"uri: {exc}") from None
        for t in self.order_types:
            if t not in ORDER_TYPES:
                raise ValueError(f"order_types: unknown order type {t!r}")
        for s in self.status_slips:
            if s not in SLIP_STATUSES:
                raise ValueError(
                    f"status_slips: unknown status {s!r} (known: {', '.join(SLIP_STATUSES)})"
                )
        if self.backup == self.name:
            raise ValueError("backup: a printer cannot be its own backup")
        if self.command_set == "star" and self.parsed_uri.scheme == "virtual":
            raise ValueError('command_set: the virtual printer reads ESC/POS; use "escpos"')
        # Imported here: the profile database is only needed once a printer is configured.
        from edged.printing import codepages

        try:
            codepages.get_profile(self.profile, self.command_set)
        except ValueError as exc:
            raise ValueError(f"profile: {exc}") from None
        try:
            codepages.resolve(self.profile, self.code_page, self.command_set)
        except ValueError as exc:
            raise ValueError(f"code_page: {exc}") from None

    @property
    def parsed_uri(self) -> PrinterUri:
        return parse_uri(self.uri)


def check_printers(printers: list[PrinterConfig]) -> None:
    """Rules across printers (backup names); raises ``ValueError("printers: why")``."""
    names = {p.name for p in printers}
    for p in printers:
        if p.backup and p.backup not in names:
            raise ValueError(f"printers: {p.name}: backup {p.backup!r} is not a configured printer")
