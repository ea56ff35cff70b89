"""Star printers' health: the automatic status (ASB), after Star's command specification.

``ESC ACK SOH`` asks for it. Header 1 (bit 0 set, bits 4 and 7 clear) holds the length
in bits 1-3 and 5-6; the third byte is the printer status (bit 3 offline, bit 5 cover
open), the fourth the errors (bit 2 mechanical, bit 3 auto-cutter, bit 5 non-recoverable,
bit 6 head too hot), the sixth the paper sensors (bit 2 near end, bit 3 paper end).
"""

from __future__ import annotations

from edged.printing.transports.base import (
    COVER_OPEN,
    OFFLINE,
    ONLINE,
    PAPER_OUT,
    UNKNOWN,
    ReadByte,
    Status,
    StatusDialect,
    Write,
)

ASB_REQUEST = b"\x1b\x06\x01"  # ESC ACK SOH: send the automatic status now
MAX_ASB = 64


def asb_length(header: int) -> int | None:
    """Bytes in an automatic status, from its first byte (None: not an ASB header).

    Header 1 has bit 0 set and bits 4 and 7 clear; bits 1-3 and 5-6 hold the count.
    """
    if header & 0x91 != 0x01:
        return None
    count = ((header >> 1) & 0x07) | ((header >> 2) & 0x18)
    return count if count >= 3 else None


def parse_asb(data: bytes) -> Status:
    """Map a Star automatic status to online / paper out / cover open / offline."""
    if not data:
        return Status(UNKNOWN, "no reply to status query")
    length = asb_length(data[0])
    if length is None or len(data) < min(length, 6):
        return Status(UNKNOWN, f"unexpected status bytes {data[:8].hex(' ')}")
    printer = data[2]
    errors = data[3] if length > 3 else 0
    sensors = data[5] if length > 5 else 0
    if printer & 0x20:
        return Status(COVER_OPEN, "cover open")
    if sensors & 0x08:
        return Status(PAPER_OUT, "paper roll empty")
    if errors & 0x20:
        return Status(OFFLINE, "non-recoverable error")
    if errors & 0x08:
        return Status(OFFLINE, "auto-cutter error")
    if errors & 0x04:
        return Status(OFFLINE, "mechanical error")
    if errors & 0x40:
        return Status(OFFLINE, "stopped: head too hot")
    if printer & 0x08:
        return Status(OFFLINE, "printer reports offline")
    if sensors & 0x04:
        return Status(ONLINE, "paper low")
    return Status(ONLINE, "")


class StarStatus(StatusDialect):
    """Ask for the automatic status (``ESC ACK SOH``) and read it whole.

    A networked Star printer also volunteers an ASB when a connection opens; whichever
    arrives first is read, which is the printer's present state either way.
    """

    def query(self, write: Write, read_byte: ReadByte) -> Status:
        write(ASB_REQUEST)
        header = read_byte()
        if header is None:
            return Status(UNKNOWN, "no reply to status query")
        length = asb_length(header)
        if length is None:
            return Status(UNKNOWN, f"unexpected status byte 0x{header:02x}")
        data = bytearray([header])
        while len(data) < min(length, MAX_ASB):
            byte = read_byte()
            if byte is None:
                return Status(UNKNOWN, "status cut short")
            data.append(byte)
        return parse_asb(bytes(data))


STAR_STATUS = StarStatus()
