"""The box's update history for its ``info``: the last update, rollback and refusal, and
the last health window's result, from ``box-events.jsonl`` in the state directory.

``image/update-edged`` (root) appends one JSON object per line there (image/README.md:
``id``, ``time``, ``kind``, ``from``, ``to``, ``reason``, ``journal_restored``, ``health``,
``forced``, and ``release``/``wave`` for a staged update). The daemon's user can write
that directory too, so the file is a claim: only its last :data:`TAIL_BYTES` are read
(never the whole of a file that may have grown without bound), only regular files (a FIFO
planted there must not stall the daemon), every line and field is checked and trimmed, and
a line that is not an event is skipped and counted. The file is parsed again only when its
size, time or inode changed; nothing is ever written.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edged.decoding import PayloadError, decode_json

log = logging.getLogger(__name__)

TAIL_BYTES = 65_536
MAX_LINE_BYTES = 4_096
MAX_TEXT = 200  # characters kept of a version or a reason
KINDS = ("update", "rollback", "update_refused")
HEALTH_RESULTS = {"pass": True, "fail": False, "skipped": None}


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _event(raw: dict[str, Any]) -> dict[str, Any] | None:
    """One checked event, in the shape ``info`` carries; None when it is no event."""
    kind = raw.get("kind")
    if kind not in KINDS:
        return None
    try:
        at = datetime.fromisoformat(_text(raw.get("time"))).timestamp()
    except ValueError:
        return None
    event: dict[str, Any] = {
        "at": round(at),
        "from": _text(raw.get("from")),
        "to": _text(raw.get("to")),
    }
    if kind != "update":
        event["reason"] = _text(raw.get("reason"))
    if kind == "rollback":
        event["journal_restored"] = raw.get("journal_restored") is True
    if isinstance(raw.get("forced"), str):
        event["forced"] = _text(raw["forced"])
    # A staged update's (apply-fleet-update): which release, which wave.
    if isinstance(raw.get("release"), str):
        event["release"] = _text(raw["release"])
    if isinstance(raw.get("wave"), int) and not isinstance(raw.get("wave"), bool):
        event["wave"] = raw["wave"]
    return event


def _health(raw: dict[str, Any], at: int) -> dict[str, Any] | None:
    health = raw.get("health")
    if not isinstance(health, dict) or health.get("result") not in HEALTH_RESULTS:
        return None
    result = health["result"]
    return {
        "result": result,
        "ok": HEALTH_RESULTS[result],
        "reason": _text(health.get("reason")),
        "version": _text(raw.get("to") if raw.get("kind") == "update" else raw.get("from")),
        "at": at,
    }


def summarize(lines: list[bytes]) -> tuple[dict[str, Any], int]:
    """The ``updates`` part of ``info`` from event lines (oldest first), and how many lines
    were no event."""
    out: dict[str, Any] = {
        "last_update": None,
        "last_rollback": None,
        "last_refused": None,
        "health": None,
    }
    bad = 0
    slot = {"update": "last_update", "rollback": "last_rollback", "update_refused": "last_refused"}
    for line in lines:
        if not line.strip():
            continue
        try:
            raw = decode_json(line, max_bytes=MAX_LINE_BYTES, what="box event")
        except PayloadError:
            bad += 1
            continue
        event = _event(raw) if isinstance(raw, dict) else None
        if event is None or not isinstance(raw, dict):
            bad += 1
            continue
        out[slot[raw["kind"]]] = event
        if (health := _health(raw, event["at"])) is not None:
            out["health"] = health
    return out, bad


def read_tail(path: Path, limit: int = TAIL_BYTES) -> tuple[list[bytes], os.stat_result] | None:
    """The whole lines among the last ``limit`` bytes of a regular file, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        start = max(0, info.st_size - limit)
        os.lseek(fd, start, os.SEEK_SET)
        data = b""
        while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # began inside a line
    return lines, info


@dataclass
class BoxEvents:
    """The cached reading of one events file."""

    path: Path
    _key: tuple[int, int, int] | None = None
    _summary: dict[str, Any] | None = field(default=None, repr=False)

    def updates(self) -> dict[str, Any] | None:
        """The ``updates`` part of ``info``; None while there is no readable file."""
        try:
            now = os.stat(self.path)
        except OSError:
            self._key = self._summary = None
            return None
        key = (now.st_ino, now.st_size, now.st_mtime_ns)
        if key == self._key:
            return self._summary
        read = read_tail(self.path)
        if read is None:
            self._key = key
            self._summary = None
            log.warning("fleet info: %s is not a readable regular file", self.path)
            return None
        lines, info = read
        summary, bad = summarize(lines)
        if bad:
            log.warning(
                "fleet info: %s: %d line(s) that are no update event skipped", self.path, bad
            )
        self._key = (info.st_ino, info.st_size, info.st_mtime_ns)
        self._summary = summary
        return summary
