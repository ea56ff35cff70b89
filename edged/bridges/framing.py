"""Line framing for the serial bridge: pure encode/decode, no I/O.

One frame is one line of printable ASCII::

    $SS,T,PAYLOAD*CCCC\\r\\n

* ``$``: start of frame; the decoder resynchronises on it, so junk between frames and a
  frame cut short by a pulled cable cost nothing but that frame;
* ``SS``: sequence number, two upper-case hex digits (``00``-``FF``), counted per
  direction; a repeated number is a retransmission;
* ``T``: frame type, one letter (:data:`TYPES`);
* ``PAYLOAD``: printable ASCII (0x20-0x7E) without ``$``; JSON for ``E``/``R``/``C``/``H``
  (non-ASCII characters and ``$`` travel as ``\\uXXXX`` escapes), a reason word for ``N``,
  empty for ``A``;
* ``CCCC``: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of ``SS,T,PAYLOAD``, four
  upper-case hex digits;
* ``\\r\\n``: end of frame (a bare ``\\n`` is accepted).

docs/bridge-protocol.md has the ACK/NAK rules and a worked example.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

START = 0x24  # $
END = 0x0A  # \n
TYPES = {
    "E": "event (box to POS)",
    "R": "response (box to POS)",
    "C": "command (POS to box)",
    "H": "hello: the sender (re)started, forget its last sequence number",
    "A": "acknowledge the frame with this sequence number",
    "N": "negative acknowledge: resend your unacknowledged frame (or reason says why not)",
}
_HEX = frozenset(b"0123456789ABCDEFabcdef")
# Frames that must be acknowledged; A and N never are.
RELIABLE = frozenset("ERCH")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (check value for ``b"123456789"``: 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class Frame:
    """A frame with a good checksum."""

    seq: int
    kind: str
    payload: bytes = b""


@dataclass(frozen=True)
class FrameError:
    """Bytes that looked like a frame but were not one.

    ``reason``: ``CHECKSUM``, ``PARTIAL`` (cut short by a new ``$``), ``TOO_LARGE``,
    ``BAD_BYTE`` (a byte outside printable ASCII) or ``MALFORMED``.
    """

    reason: str
    size: int


def escape_payload(payload: bytes) -> bytes:
    """Make JSON bytes frame-safe: ``$`` can only sit inside a JSON string, where the
    ``\\u0024`` escape means the same thing."""
    return payload.replace(b"$", b"\\u0024")


def encode_frame(seq: int, kind: str, payload: bytes = b"") -> bytes:
    """One frame, ready for the wire. Raises ValueError on a payload that cannot travel."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number out of range: {seq}")
    if kind not in TYPES:
        raise ValueError(f"unknown frame type {kind!r}")
    for byte in payload:
        if byte < 0x20 or byte > 0x7E or byte == START:
            raise ValueError(f"byte 0x{byte:02X} cannot travel in a frame payload")
    body = b"%02X,%s," % (seq, kind.encode()) + payload
    return b"$" + body + b"*%04X\r\n" % crc16(body)


def _parse(line: bytes) -> Frame | FrameError:
    size = len(line) + 2
    if line.endswith(b"\r"):
        line = line[:-1]
    star = line.rfind(b"*")
    if star < 0 or len(line) - star != 5:
        return FrameError("MALFORMED", size)
    body, check = line[:star], line[star + 1 :]
    if len(body) < 5 or body[2:3] != b"," or body[4:5] != b",":
        return FrameError("MALFORMED", size)
    # Explicit hex digits first: int(..., 16) alone would also take "+F", " F" or "0_F".
    if not all(c in _HEX for c in check + body[:2]):
        return FrameError("MALFORMED", size)
    expected = int(check, 16)
    seq = int(body[:2], 16)
    if crc16(body) != expected:
        return FrameError("CHECKSUM", size)
    kind = chr(body[3])
    if kind not in TYPES:
        return FrameError("MALFORMED", size)
    return Frame(seq=seq, kind=kind, payload=bytes(body[5:]))


class FrameDecoder:
    """Incremental decoder: feed it whatever the line delivered, get frames and errors.

    Never raises on input and never holds more than ``max_frame`` bytes.
    """

    def __init__(self, max_frame: int = 65_536) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._state = "idle"  # idle | frame | skip
        self.junk = 0  # bytes seen outside any frame

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        i, n = 0, len(data)
        while i < n:
            if self._state != "frame":
                # Outside a frame: jump to the next '$' (and, when skipping, a newline ends it).
                start = data.find(b"$", i)
                if self._state == "skip":
                    newline = data.find(b"\n", i)
                    if newline >= 0 and (start < 0 or newline < start):
                        self._state = "idle"
                        i = newline + 1
                        continue
                if start < 0:
                    if self._state == "idle":
                        self.junk += n - i
                    return out
                if self._state == "idle":
                    self.junk += start - i
                self._state = "frame"
                self._buf.clear()
                i = start + 1
                continue
            byte = data[i]
            i += 1
            if byte == START:
                out.append(FrameError("PARTIAL", len(self._buf) + 1))
                self._buf.clear()
            elif byte == END:
                out.append(_parse(bytes(self._buf)))
                self._buf.clear()
                self._state = "idle"
            elif 0x20 <= byte <= 0x7E or byte == 0x0D:
                self._buf.append(byte)
                if len(self._buf) > self.max_frame:
                    out.append(FrameError("TOO_LARGE", len(self._buf) + 1))
                    self._buf.clear()
                    self._state = "skip"
            else:
                out.append(FrameError("BAD_BYTE", len(self._buf) + 1))
                self._buf.clear()
                self._state = "idle"
        return out

    def reset(self) -> None:
        """Forget a half-received frame (the line was reopened)."""
        self._buf.clear()
        self._state = "idle"
