"""Why a command for the desk or the catalog was refused: one error type for every caller
(bridges, the page, the panel, the CLI), with a stable code word."""

from __future__ import annotations


class CommandRefused(ValueError):
    """A decision that cannot be taken (unknown order, already decided, no comment...).

    ``code`` is a stable word for bridges and the web page (see docs/bridge-protocol.md).
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)
