"""Printer transports: how bytes reach a printer, and how its health is asked.

One module per backend, side by side, all built on :class:`~.base.Transport`:
``tcp`` (network, port 9100), ``usb`` (usblp), ``serial``, ``file`` (a device file) and
``virtual`` (the null printer: text and PNG files). How a printer is asked for its
health is its command set's dialect: ESC/POS ``DLE EOT`` (``base``) or Star's ASB
(``asb``). :func:`make_transport` is the one place that picks a backend from a printer's
config; the composition root hands it to the spooler, nothing else chooses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from edged.printing.settings import PrinterConfig
from edged.printing.transports.asb import STAR_STATUS
from edged.printing.transports.base import (
    COVER_OPEN,
    ESCPOS_STATUS,
    NOT_READY,
    OFFLINE,
    ONLINE,
    PAPER_OUT,
    UNKNOWN,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    StatusDialect,
    Transport,
    parse_status,
)
from edged.printing.transports.file import FileTransport
from edged.printing.transports.serial import SerialTransport
from edged.printing.transports.tcp import TcpTransport
from edged.printing.transports.usb import UsbTransport
from edged.printing.transports.virtual import VirtualTransport

__all__ = [
    "COVER_OPEN",
    "NOT_READY",
    "OFFLINE",
    "ONLINE",
    "PAPER_OUT",
    "UNKNOWN",
    "FileTransport",
    "JobMeta",
    "NotReady",
    "PrinterError",
    "SerialTransport",
    "Status",
    "StatusDialect",
    "TcpTransport",
    "Transport",
    "TransportFactory",
    "UsbTransport",
    "VirtualTransport",
    "make_transport",
    "parse_status",
]


class TransportFactory(Protocol):
    """Builds the transport of one configured printer (see :func:`make_transport`)."""

    def __call__(
        self, config: PrinterConfig, *, base_dir: Path, codec: str, columns: int
    ) -> Transport: ...


def make_transport(
    config: PrinterConfig, *, base_dir: Path, codec: str, columns: int = 42
) -> Transport:
    """The transport for a printer: its URI picks the backend, its command set the status
    dialect. ``virtual://`` paths are relative to ``base_dir``; ``codec`` and ``columns``
    let the virtual printer read its tickets back."""
    parsed = config.parsed_uri
    dialect: StatusDialect = STAR_STATUS if config.command_set == "star" else ESCPOS_STATUS
    if parsed.scheme == "tcp":
        return TcpTransport(parsed, config.timeout, dialect)
    if parsed.scheme == "serial":
        return SerialTransport(parsed, config.timeout, dialect)
    if parsed.scheme == "file":
        return FileTransport(parsed, config.timeout, dialect)
    if parsed.scheme == "usb":
        return UsbTransport(parsed, config.timeout, dialect)
    directory = Path(parsed.path)
    if not directory.is_absolute():
        directory = base_dir / directory
    return VirtualTransport(
        parsed, config.timeout, directory=directory, codec=codec, columns=columns
    )
