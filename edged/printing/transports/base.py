"""What every printer transport shares: health states, errors, the status dialect.

Transports are blocking and bounded by timeouts; the spooler runs each printer's on one
dedicated thread, so a hung printer only ever holds its own thread.

How a printer is asked for its health depends on its command set, not on the cable:
ESC/POS printers answer ``DLE EOT n`` (:class:`EscPosStatus`), Star printers send their
automatic status (ASB, :class:`edged.printing.star.StarStatus`). A transport is given the
dialect when it is built. A printer that does not answer is ``unknown``, never ``online``:
silence proves nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from edged.printing.settings import PrinterUri

ONLINE = "online"
OFFLINE = "offline"
PAPER_OUT = "paper_out"
COVER_OPEN = "cover_open"
UNKNOWN = "unknown"
# States in which sending a ticket is pointless: it would be lost or queue up blind.
NOT_READY = (OFFLINE, PAPER_OUT, COVER_OPEN)
CHUNK = 4096
DLE_EOT = b"\x10\x04"

Write = Callable[[bytes], object]
ReadByte = Callable[[], "int | None"]


@dataclass(frozen=True)
class Status:
    """A printer's health: one of online, offline, paper_out, cover_open, unknown."""

    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class JobMeta:
    """What a job is, for transports that care (the virtual printer names its files)."""

    job_id: int
    kind: str
    order_id: int | None
    text: str = ""  # the ticket's text, for a printer that keeps a copy (the virtual one)


class PrinterError(RuntimeError):
    """Sending failed. ``partial``: some bytes may have reached the printer."""

    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


class NotReady(RuntimeError):
    """The printer said it cannot print now (nothing was sent)."""

    def __init__(self, status: Status) -> None:
        super().__init__(f"{status.state}: {status.detail}")
        self.status = status


class StatusDialect(ABC):
    """How to ask one family of printers for its health over a two-way link."""

    @abstractmethod
    def query(self, write: Write, read_byte: ReadByte) -> Status:
        """Ask through ``write(bytes)`` and ``read_byte() -> int | None`` (None: silence)."""


def parse_status(printer: int | None, offline: int | None, paper: int | None) -> Status:
    """Interpret the replies to ESC/POS ``DLE EOT 1``, ``2`` and ``4`` (``None``: no reply)."""
    if printer is None:
        return Status(UNKNOWN, "no reply to status query")
    # Bits 1 and 4 are fixed to 1, bits 0 and 7 to 0: anything else is not a status byte.
    if printer & 0x93 != 0x12:
        return Status(UNKNOWN, f"unexpected status byte 0x{printer:02x}")
    if paper is not None and paper & 0x93 == 0x12 and paper & 0x60:
        return Status(PAPER_OUT, "paper roll empty")
    if offline is not None and offline & 0x93 == 0x12:
        if offline & 0x04:
            return Status(COVER_OPEN, "cover open")
        if offline & 0x20:
            return Status(PAPER_OUT, "stopped: paper end")
        if offline & 0x40:
            return Status(OFFLINE, "printer error")
    if printer & 0x08:
        return Status(OFFLINE, "printer reports offline")
    if paper is not None and paper & 0x93 == 0x12 and paper & 0x0C:
        return Status(ONLINE, "paper low")
    return Status(ONLINE, "")


class EscPosStatus(StatusDialect):
    """ESC/POS real-time status: ``DLE EOT 1`` (printer), ``2`` (offline cause), ``4`` (paper)."""

    def query(self, write: Write, read_byte: ReadByte) -> Status:
        replies: list[int | None] = []
        for n in (1, 2, 4):
            write(DLE_EOT + bytes([n]))
            reply = read_byte()
            replies.append(reply)
            if reply is None:
                break
        replies += [None] * (3 - len(replies))
        return parse_status(replies[0], replies[1], replies[2])


ESCPOS_STATUS = EscPosStatus()


class Transport(ABC):
    """One printer connection kind. Blocking; call from a worker thread."""

    def __init__(
        self, uri: PrinterUri, timeout: float, status_dialect: StatusDialect = ESCPOS_STATUS
    ) -> None:
        self.uri = uri
        self.timeout = timeout
        self.status_dialect = status_dialect
        # Status replies come fast or never; waiting the full I/O timeout for each of
        # three queries would delay every ticket on a printer that never answers.
        self.status_timeout = min(timeout, 1.5)
        self._silent = False

    @abstractmethod
    def status(self) -> Status:
        """Ask the printer how it is. Never raises."""

    @abstractmethod
    def deliver(self, data: bytes, meta: JobMeta) -> Status:
        """Check the printer (when possible) and send ``data``.

        Returns the status seen before sending. Raises :class:`NotReady` (nothing sent) or
        :class:`PrinterError`.
        """

    def describe(self) -> str:
        return self.uri.scheme

    def _ask(self, write: Write, read_byte: ReadByte) -> Status:
        """Run this printer's status dialect; remember a silent printer so tickets are not
        delayed by a query it never answers."""
        status = self.status_dialect.query(write, read_byte)
        self._silent = status.state == UNKNOWN
        return status


def reason(exc: OSError) -> str:
    """A short human reason for an OS error."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc)
