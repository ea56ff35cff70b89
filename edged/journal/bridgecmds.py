"""The ``bridge_commands`` table: commands POS terminals sent, by the terminal's own id.

A bridge (``mqtt``, ``serial``) remembers each command it applied with the answer it gave,
so a repeat of the same id gets the same answer, and, for commands that went to Sinqro,
where the final answer must go once Sinqro's outcome lands. The answers are kept as the
JSON text the bridge gives; what they mean is the bridge's business
(:mod:`edged.bridges.responses`).

These functions run inside one :meth:`Journal.transaction <edged.journal.store.Journal>`
callback, so a remembered command commits together with what the command did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edged.journal.tx import Tx

__all__ = [
    "Awaiting",
    "Remembered",
    "answer_of",
    "awaiting_final",
    "forget_before",
    "remember",
    "set_final",
]


@dataclass(frozen=True)
class Remembered:
    """One command to keep: the request's id, name and digest, and the answers."""

    request_id: str
    name: str
    digest: str
    response: str
    command_id: int | None = None
    final: str | None = None
    reply_to: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class Awaiting:
    """A remembered command that went to Sinqro as outbox command ``command_id``."""

    request_id: str
    command_id: int
    response: str
    reply_to: str | None
    correlation: bytes | None


def answer_of(tx: Tx, bridge: str, request_id: str) -> tuple[str, str] | None:
    """``(digest, answer)`` of a command ``bridge`` already handled (its final answer when
    there is one, else its first), or None when the id is new."""
    row = tx.execute(
        "SELECT digest, COALESCE(final, response) FROM bridge_commands"
        " WHERE bridge = ? AND request_id = ?",
        (bridge, request_id),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def remember(tx: Tx, bridge: str, command: Remembered) -> None:
    """Keep ``command``; a command already kept under its id stays as it was."""
    tx.execute(
        "INSERT OR IGNORE INTO bridge_commands (bridge, request_id, name, digest, command_id,"
        " response, final, reply_to, correlation, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            bridge,
            command.request_id,
            command.name,
            command.digest,
            command.command_id,
            command.response,
            command.final,
            command.reply_to,
            command.correlation,
            tx.now,
        ),
    )


def awaiting_final(tx: Tx, bridge: str, command_ids: Iterable[int]) -> list[Awaiting]:
    """The commands of ``bridge`` that went to Sinqro as any of ``command_ids``."""
    ids = list(command_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = tx.execute(
        "SELECT request_id, command_id, response, reply_to, correlation"
        f" FROM bridge_commands WHERE bridge = ? AND command_id IN ({marks})",
        (bridge, *ids),
    ).fetchall()
    return [
        Awaiting(str(request_id), int(command_id), text, reply_to, correlation)
        for request_id, command_id, text, reply_to, correlation in rows
    ]


def set_final(tx: Tx, bridge: str, request_id: str, final: str) -> None:
    """Record the final answer, so a later repeat of the command gets it too."""
    tx.execute(
        "UPDATE bridge_commands SET final = ? WHERE bridge = ? AND request_id = ?",
        (final, bridge, request_id),
    )


def forget_before(tx: Tx, bridge: str, cutoff: float) -> int:
    """Forget the commands of ``bridge`` kept before ``cutoff`` (epoch seconds); returns
    how many."""
    return int(
        tx.execute(
            "DELETE FROM bridge_commands WHERE bridge = ? AND created < ?", (bridge, cutoff)
        ).rowcount
    )
