"""Printer transports: how bytes reach a printer, and how its health is asked.

All methods here are blocking and bounded by timeouts; the spooler runs them on one
dedicated thread per printer so that a hung printer only ever holds its own thread.

Status uses ``DLE EOT`` (real-time status transmission) where the transport can read
back: TCP, serial and bidirectional device files. A printer that does not answer is
``unknown``, never ``online``: silence proves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import stat
import struct
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from edged.printing.settings import PrinterUri, parse_uri

log = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
ONLINE = "online"
OFFLINE = "offline"
PAPER_OUT = "paper_out"
COVER_OPEN = "cover_open"
UNKNOWN = "unknown"
# States in which sending a ticket is pointless: it would be lost or queue up blind.
NOT_READY = (OFFLINE, PAPER_OUT, COVER_OPEN)
CHUNK = 4096


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


def parse_status(printer: int | None, offline: int | None, paper: int | None) -> Status:
    """Interpret the replies to ``DLE EOT 1``, ``2`` and ``4`` (``None``: no reply)."""
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


class Transport(ABC):
    """One printer connection kind. Blocking; call from a worker thread."""

    def __init__(self, uri: PrinterUri, timeout: float) -> None:
        self.uri = uri
        self.timeout = timeout
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


def _query(write: object, read_byte: object) -> Status:
    """Run the three DLE EOT queries through ``write(bytes)`` / ``read_byte() -> int|None``."""
    assert callable(write) and callable(read_byte)
    replies: list[int | None] = []
    for n in (1, 2, 4):
        write(DLE_EOT + bytes([n]))
        reply = read_byte()
        replies.append(reply)
        if reply is None:
            break
    replies += [None] * (3 - len(replies))
    return parse_status(replies[0], replies[1], replies[2])


# -- TCP (port 9100, "raw" / JetDirect) ----------------------------------------------------


class TcpTransport(Transport):
    """A network printer on a raw TCP port."""

    def describe(self) -> str:
        return f"tcp {self.uri.host}:{self.uri.port}"

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.uri.host, self.uri.port), timeout=self.timeout)
        except OSError as exc:
            raise NotReady(Status(OFFLINE, f"cannot connect: {_reason(exc)}")) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _query_on(self, sock: socket.socket) -> Status:
        sock.settimeout(self.status_timeout)

        def read_byte() -> int | None:
            try:
                data = sock.recv(1)
            except TimeoutError:
                return None
            except OSError:
                return None
            return data[0] if data else None

        try:
            status = _query(sock.sendall, read_byte)
        except OSError as exc:
            return Status(OFFLINE, f"connection lost: {_reason(exc)}")
        finally:
            sock.settimeout(self.timeout)
        self._silent = status.state == UNKNOWN
        return status

    def status(self) -> Status:
        try:
            sock = self._connect()
        except NotReady as exc:
            return exc.status
        try:
            return self._query_on(sock)
        finally:
            _close_socket(sock)

    def deliver(self, data: bytes, meta: JobMeta) -> Status:
        sock = self._connect()
        sent = 0
        try:
            seen = Status(UNKNOWN, "no reply to status query")
            if not self._silent:
                seen = self._query_on(sock)
                if seen.state in NOT_READY:
                    raise NotReady(seen)
            deadline = time.monotonic() + self.timeout
            view = memoryview(data)
            while sent < len(data):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                sent += sock.send(view[sent : sent + CHUNK])
            self._wait_taken(sock, len(data))
            # Half-close and give the printer a moment to read everything: closing with
            # unread replies pending would reset the connection and could cut the ticket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(min(1.0, self.timeout))
                with contextlib.suppress(OSError):
                    while sock.recv(256):
                        pass
            return seen
        except TimeoutError:
            raise PrinterError(
                f"timed out after {sent} of {len(data)} bytes", partial=sent > 0
            ) from None
        except OSError as exc:
            raise PrinterError(f"send failed: {_reason(exc)}", partial=sent > 0) from None
        finally:
            _close_socket(sock)

    def _wait_taken(self, sock: socket.socket, total: int) -> None:
        """Wait until the printer acknowledged every byte of the ticket.

        ``send`` only hands bytes to the kernel, whose send buffer holds a whole ticket:
        a printer that stops reading mid-ticket (firmware hang, jammed buffer) would
        otherwise count as printed and the ticket be lost. Fails when the printer takes
        nothing more for ``timeout`` seconds. Where the kernel cannot tell (not Linux),
        behaves as before.
        """
        left = _unacknowledged(sock)
        if left is None:
            return
        last = left
        give_up = time.monotonic() + self.timeout
        while left > 0:
            now = time.monotonic()
            if left < last:
                last, give_up = left, now + self.timeout
            elif now >= give_up:
                taken = total - left
                raise PrinterError(
                    f"printer stopped reading after {taken} of {total} bytes",
                    partial=taken > 0,
                )
            time.sleep(0.01)
            left = _unacknowledged(sock) or 0


def _unacknowledged(sock: socket.socket) -> int | None:
    """Bytes sent but not yet acknowledged by the peer (Linux ``SIOCOUTQ``), else None."""
    try:
        import fcntl
        import termios

        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # == SIOCOUTQ
    except (ImportError, AttributeError, OSError):
        return None
    return int(struct.unpack("i", raw)[0])


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc)


# -- serial --------------------------------------------------------------------------------


class SerialTransport(Transport):
    """A printer on a serial line (RS-232, USB-serial adapter)."""

    def describe(self) -> str:
        return f"serial {self.uri.path}"

    def _open(self, read_timeout: float) -> object:
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

    def _query_on(self, port: object) -> Status:
        import serial

        assert isinstance(port, serial.Serial)
        port.reset_input_buffer()

        def read_byte() -> int | None:
            data = port.read(1)
            return data[0] if data else None

        try:
            status = _query(port.write, read_byte)
        except (serial.SerialException, OSError) as exc:
            return Status(OFFLINE, f"serial error: {exc}")
        self._silent = status.state == UNKNOWN
        return status

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
        assert isinstance(port, serial.Serial)
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


def _close_port(port: object) -> None:
    close = getattr(port, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


# -- device files (usblp, parallel) and USB ----------------------------------------------


class FileTransport(Transport):
    """A device file such as ``/dev/usb/lp0``; a regular file is appended to."""

    def describe(self) -> str:
        return f"file {self.path()}"

    def path(self) -> str:
        return self.uri.path

    def _is_device(self, path: str) -> bool:
        try:
            return stat.S_ISCHR(os.stat(path).st_mode)
        except OSError:
            return False

    def _open(self, path: str, device: bool) -> int:
        flags = os.O_NONBLOCK | os.O_NOCTTY
        flags |= os.O_RDWR if device else os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            return os.open(path, flags, 0o644)
        except OSError as exc:
            raise NotReady(Status(OFFLINE, f"cannot open {path}: {_reason(exc)}")) from None

    def _write_all(self, fd: int, data: bytes, timeout: float) -> int:
        """Write with a deadline: a stalled printer must not hold the thread for ever."""
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(data):
            left = deadline - time.monotonic()
            if left <= 0:
                raise PrinterError(f"timed out after {sent} of {len(data)} bytes", partial=sent > 0)
            _, writable, _ = select.select([], [fd], [], left)
            if not writable:
                continue
            try:
                sent += os.write(fd, data[sent : sent + CHUNK])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise PrinterError(f"write failed: {_reason(exc)}", partial=sent > 0) from None
        return sent

    def _query_fd(self, fd: int) -> Status:
        def write(data: bytes) -> None:
            self._write_all(fd, data, self.status_timeout)

        def read_byte() -> int | None:
            readable, _, _ = select.select([fd], [], [], self.status_timeout)
            if not readable:
                return None
            try:
                data = os.read(fd, 1)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINVAL, errno.EIO):
                    return None
                raise
            return data[0] if data else None

        try:
            status = _query(write, read_byte)
        except (OSError, PrinterError) as exc:
            return Status(OFFLINE, f"device error: {exc}")
        self._silent = status.state == UNKNOWN
        return status

    def status(self) -> Status:
        path = self.path()
        if not path:
            return Status(OFFLINE, self.missing())
        if not self._is_device(path):
            return (
                Status(ONLINE, "writes to a file")
                if _writable_place(path)
                else Status(OFFLINE, f"cannot write {path}")
            )
        try:
            fd = self._open(path, True)
        except NotReady as exc:
            return exc.status
        try:
            return self._query_fd(fd)
        finally:
            os.close(fd)

    def missing(self) -> str:
        return f"{self.uri.path} not found"

    def deliver(self, data: bytes, meta: JobMeta) -> Status:
        path = self.path()
        if not path:
            raise NotReady(Status(OFFLINE, self.missing()))
        device = self._is_device(path)
        fd = self._open(path, device)
        try:
            seen = Status(ONLINE, "writes to a file")
            if device:
                seen = Status(UNKNOWN, "no reply to status query")
                if not self._silent:
                    seen = self._query_fd(fd)
                    if seen.state in NOT_READY:
                        raise NotReady(seen)
            self._write_all(fd, data, self.timeout)
            if not device:
                os.fsync(fd)
            return seen
        finally:
            os.close(fd)


def _writable_place(path: str) -> bool:
    p = Path(path)
    return os.access(p, os.W_OK) if p.exists() else os.access(p.parent, os.W_OK)


class UsbTransport(FileTransport):
    """A USB printer through the kernel's usblp driver (``/dev/usb/lpN``), found by
    vendor and product id in sysfs, so no user-space USB library is needed."""

    SYSFS = Path("/sys/class/usbmisc")

    def describe(self) -> str:
        return f"usb {self.uri.vendor_id:04x}:{self.uri.product_id:04x}"

    def missing(self) -> str:
        return (
            f"no USB printer {self.uri.vendor_id:04x}:{self.uri.product_id:04x} "
            "(plugged in? usblp driver loaded?)"
        )

    def path(self) -> str:
        want = (f"{self.uri.vendor_id:04x}", f"{self.uri.product_id:04x}")
        try:
            entries = sorted(self.SYSFS.glob("lp*"))
        except OSError:
            return ""
        for entry in entries:
            # lpN/device is the USB interface; its parent directory is the USB device.
            device = (entry / "device").resolve().parent
            try:
                ids = (
                    (device / "idVendor").read_text().strip().lower(),
                    (device / "idProduct").read_text().strip().lower(),
                )
            except OSError:
                continue
            if ids == want:
                return f"/dev/usb/{entry.name}"
        return ""


def make_transport(
    uri: str, timeout: float, *, base_dir: Path, codec: str, columns: int = 42
) -> Transport:
    """The transport for a printer URI (``virtual://`` paths are relative to ``base_dir``)."""
    parsed = parse_uri(uri)
    if parsed.scheme == "tcp":
        return TcpTransport(parsed, timeout)
    if parsed.scheme == "serial":
        return SerialTransport(parsed, timeout)
    if parsed.scheme == "file":
        return FileTransport(parsed, timeout)
    if parsed.scheme == "usb":
        return UsbTransport(parsed, timeout)
    from edged.virtual.printer import VirtualTransport

    directory = Path(parsed.path)
    if not directory.is_absolute():
        directory = base_dir / directory
    return VirtualTransport(parsed, timeout, directory=directory, codec=codec, columns=columns)
