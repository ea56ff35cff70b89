"""Talk to systemd's service manager with the sd_notify protocol, without a dependency.

The protocol: systemd passes ``NOTIFY_SOCKET`` (a unix datagram socket path, or an abstract
socket name starting with ``@``) to a ``Type=notify`` service; the service sends
newline-separated ``KEY=VALUE`` datagrams to it. Without ``NOTIFY_SOCKET`` (a shell, the
tests, ``edged demo`` outside systemd) every function here is a harmless no-op.

Contract with the composition root (``edged/app.py``)
-----------------------------------------------------

* Call :func:`ready` once, after the journal is open and the links (Sinqro, printers, panel,
  bridges, web) are started. systemd holds ``systemctl start`` and every unit ordered after
  ``edged.service`` until then; the unit's ``TimeoutStartSec`` bounds it.
* Call :func:`status` whenever the one-line summary changes (Sinqro link up or down, outbox
  backlog, printer problem). ``systemctl status edged`` shows the last text. Keep it short,
  one line, no secrets.
* Call :func:`stopping` as the first thing on SIGTERM, before the in-flight work is finished,
  then finish inside the unit's ``TimeoutStopSec``.
* Run :func:`watchdog_loop` as a named, supervised task when :func:`watchdog_interval` returns
  a number, with a check that awaits ``journal.ping()``. A ping proves the SQLite writer
  thread answers; the loop itself running proves the event loop is not stuck. If either
  stops, systemd kills and restarts the daemon after ``WatchdogSec``. The loop never raises
  because a check failed: it just stops feeding the watchdog while the check fails.

``NotifyAccess=main`` in the unit means only the main process may notify, so these calls must
come from the daemon's own process, not from a helper subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

__all__ = [
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
    "watchdog_loop",
]


def _address() -> str | bytes | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + path[1:].encode()
    if path.startswith("/"):
        return path
    # systemd also allows vsock:CID:PORT; the box never uses it.
    log.debug("NOTIFY_SOCKET %r is not a unix socket; notifications disabled", path)
    return None


def notify(message: str) -> bool:
    """Send one notification (e.g. ``"READY=1\\nSTATUS=up"``) to systemd.

    Returns True if it was sent, False if there is no ``NOTIFY_SOCKET`` or sending failed.
    Never raises: losing a notification must not take the daemon down (a missed watchdog
    ping is what the watchdog is for).
    """
    address = _address()
    if address is None:
        return False
    try:
        # Non-blocking: this runs on the event loop, and a datagram to a receiver whose
        # queue is full (net.unix.max_dgram_qlen, often 10) would block the whole daemon.
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, kind) as sock:
            sock.connect(address)
            sock.send(message.encode())
    except BlockingIOError:
        log.debug("systemd's notify socket is busy; dropped %r", message.split("\n")[0])
        return False
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ready(status_text: str = "") -> bool:
    """Tell systemd start-up is complete, with an optional status line."""
    message = "READY=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message)


def status(text: str) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    return notify("STATUS=" + _one_line(text))


def stopping(status_text: str = "") -> bool:
    """Tell systemd the daemon is shutting down on purpose."""
    message = "STOPPING=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message)


def watchdog() -> bool:
    """Feed the watchdog once."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """How often to feed the watchdog, in seconds, or None when it is off for this process.

    systemd sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process it expects pings from).
    The answer is half the timeout, as sd_watchdog_enabled(3) recommends.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC %r is not a number; watchdog off", usec)
        return None
    if value <= 0:
        return None
    return value / 2_000_000


async def watchdog_loop(
    checks: Callable[[], Awaitable[None]],
    interval: float,
    *,
    check_timeout: float | None = None,
) -> None:
    """Feed systemd's watchdog every ``interval`` seconds while ``checks()`` succeeds.

    ``checks`` is awaited with a ``check_timeout`` (default: ``interval``); if it raises or does not
    finish in time, no ``WATCHDOG=1`` is sent for that round and a warning is logged, so a
    wedged journal leads systemd to restart the daemon. A later success resumes feeding.
    Runs until cancelled.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    limit = interval if check_timeout is None else check_timeout
    healthy = True
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a stop that
            # arrives as the check finishes, and the daemon would never stop.
            async with asyncio.timeout(limit):
                await checks()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            if healthy:
                log.warning(
                    "health check did not answer in %.1f s; not feeding the watchdog", limit
                )
            healthy = False
        except Exception as exc:
            if healthy:
                log.warning("health check failed (%s); not feeding the watchdog", exc)
            healthy = False
        else:
            if not healthy:
                log.info("health check passes again; feeding the watchdog")
            healthy = True
            watchdog()
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
