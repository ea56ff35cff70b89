"""A network printer on a raw TCP port (9100, "raw" / JetDirect)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

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
    reason,
)


class TcpTransport(Transport):
    """A network printer on a raw TCP port."""

    def describe(self) -> str:
        return f"tcp {self.uri.host}:{self.uri.port}"

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.uri.host, self.uri.port), timeout=self.timeout)
        except OSError as exc:
            raise NotReady(Status(OFFLINE, f"cannot connect: {reason(exc)}")) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _query_on(self, sock: socket.socket) -> Status:
        sock.settimeout(self.status_timeout)

        def read_byte() -> int | None:
            try:
                data = sock.recv(1)
            except OSError:  # includes the timeout: no reply
                return None
            return data[0] if data else None

        try:
            return self._ask(sock.sendall, read_byte)
        except OSError as exc:
            return Status(OFFLINE, f"connection lost: {reason(exc)}")
        finally:
            sock.settimeout(self.timeout)

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
            raise PrinterError(f"send failed: {reason(exc)}", partial=sent > 0) from None
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
