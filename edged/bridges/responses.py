"""Box-to-POS answers of the bridge protocol: one :class:`Response` per command.

``status`` is ``ok`` | ``queued`` | ``error`` (with a ``code``). A command that goes to
Sinqro is answered ``queued`` at once, then with a :class:`FinalResponse` (``ok`` or
``error``, see :func:`final_response`) when Sinqro's outcome lands in the journal.
docs/bridge-protocol.md has the full reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from edged.bridges.commands import VERSION

__all__ = ["FinalResponse", "Response", "dumps", "final_response"]


@dataclass(frozen=True)
class Response:
    """One answer to one command."""

    request_id: str | None
    status: Literal["ok", "queued", "error"]
    command: str | None = None
    code: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "id": self.request_id, "status": self.status}
        if self.command is not None:
            out["command"] = self.command
        if self.status == "error":
            out["code"] = self.code
            out["message"] = self.message
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Response:
        known = {"v", "id", "status", "command", "code", "message"}
        return cls(
            request_id=obj.get("id"),
            status=obj["status"],
            command=obj.get("command"),
            code=obj.get("code", ""),
            message=obj.get("message", ""),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    @classmethod
    def from_row(cls, text: str) -> Response:
        """A response the journal kept (``bridge_commands``); ValueError when the row is
        unreadable (a damaged journal)."""
        try:
            obj = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"unreadable stored response: {str(exc)[:80]}") from None
        status = obj.get("status") if isinstance(obj, dict) else None
        if status not in ("ok", "queued", "error"):
            raise ValueError("unreadable stored response: no status")
        return cls.from_dict(obj)

    @classmethod
    def error(
        cls, request_id: str | None, command: str | None, code: str, message: str
    ) -> Response:
        return cls(request_id, "error", command, code=code, message=message)


@dataclass(frozen=True)
class FinalResponse:
    """The final answer to a command that went to Sinqro, and where it must go."""

    response: Response
    reply_to: str | None
    correlation: bytes | None


def final_response(
    queued: Response,
    ok: bool,
    code: str | None,
    message: str | None,
    status: str | None = None,
) -> Response:
    """The final answer to ``queued``: ``ok`` (with the order's new ``status``), or the
    error Sinqro gave."""
    extra = dict(queued.extra)
    if ok:
        if status:
            extra["order_status"] = status
        return Response(queued.request_id, "ok", queued.command, extra=extra)
    return Response(
        queued.request_id,
        "error",
        queued.command,
        code=code or "ERROR",
        message=message or "",
        extra=extra,
    )


def dumps(obj: Any, *, ascii_only: bool = False) -> bytes:
    """Compact JSON. ``ascii_only`` escapes everything outside printable ASCII (serial)."""
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":")).encode()
