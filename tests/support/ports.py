"""Free local ports for tests: one way to pick one, so no test binds a fixed port."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).

    Another process may take it before the test binds it; the tests that must never race
    bind port 0 themselves and read the port back.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
