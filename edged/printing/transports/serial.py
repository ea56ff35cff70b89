"""A printer on a serial line (RS-232, USB-serial adapter)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from edged.printing.transports.base import (
    CHUNK,
    NOT_READY,
    OFFLINE,
    UNKNOWN,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    Transport,
)


class SerialTransport(Transport):
    """A printer on a serial line (RS-232, USB-serial adapter)."""

    def describe(self) -> str:
        return f"serial {self.uri.path}"

    def _open(self, read_timeout: float) -> Any:
        import serial

        opts = dict(self.uri.options)
        try:
            return serial.Serial(
                self.uri.path,
                baudrate=int(opts.get("baudrate", "19200")),
                bytesize=int(opts.get("bytesize", "8")),
                parity=opts.get("parity", "N"),
                stopbits=float(opts.get("stopbits", "1")),
                rtscts=opts.get("rtscts") == "1",
                xonxoff=opts.get("xonxoff") == "1",
                dsrdtr=opts.get("dsrdtr") == "1",
                timeout=read_timeout,
                write_timeout=self.timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise NotReady(Status(OFFLINE, f"cannot open {self.uri.path}: {exc}")) from None

    def _query_on(self, port: Any) -> Status:
        import serial

        port.reset_input_buffer()

        def read_byte() -> int | None:
            data = port.read(1)
            return data[0] if data else None

        try:
            return self._ask(port.write, read_byte)
        except (serial.SerialException, OSError) as exc:
            return Status(OFFLINE, f"serial error: {exc}")

    def status(self) -> Status:
        try:
            port = self._open(self.status_timeout)
        except NotReady as exc:
            return exc.status
        try:
            return self._query_on(port)
        finally:
            _close_port(port)

    def deliver(self, data: bytes, meta: JobMeta) -> Status:
        import serial

        port = self._open(self.status_timeout)
        sent = 0
        try:
            seen = Status(UNKNOWN, "no reply to status query")
            if not self._silent:
                seen = self._query_on(port)
                if seen.state in NOT_READY:
                    raise NotReady(seen)
            deadline = time.monotonic() + self.timeout
            while sent < len(data):
                if time.monotonic() > deadline:
                    raise serial.SerialTimeoutException("write deadline")
                sent += port.write(data[sent : sent + CHUNK]) or 0
            return seen
        except serial.SerialTimeoutException:
            raise PrinterError(
                f"timed out after {sent} of {len(data)} bytes", partial=sent > 0
            ) from None
        except (serial.SerialException, OSError) as exc:
            raise PrinterError(f"serial error: {exc}", partial=sent > 0) from None
        finally:
            _close_port(port)


def _close_port(port: Any) -> None:
    close = getattr(port, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
