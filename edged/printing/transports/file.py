"""A device file such as ``/dev/usb/lp0`` (usblp, parallel); a regular file is appended to."""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from pathlib import Path

from edged.printing.transports.base import (
    CHUNK,
    NOT_READY,
    OFFLINE,
    ONLINE,
    UNKNOWN,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    Transport,
    reason,
)


class FileTransport(Transport):
    """A device file such as ``/dev/usb/lp0``; a regular file is appended to."""

    def describe(self) -> str:
        return f"file {self.path()}"

    def path(self) -> str:
        return self.uri.path

    def missing(self) -> str:
        return f"{self.uri.path} not found"

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
            raise NotReady(Status(OFFLINE, f"cannot open {path}: {reason(exc)}")) from None

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
                raise PrinterError(f"write failed: {reason(exc)}", partial=sent > 0) from None
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
            return self._ask(write, read_byte)
        except (OSError, PrinterError) as exc:
            return Status(OFFLINE, f"device error: {exc}")

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
