"""Values that must outlive the journal: the web pairing, the web admin password hash, and
the journal's epoch (so a journal that vanished is known for damage, not a first start).

They live in ``credentials.json`` beside the journal (mode 0600), not in it, so a damaged
journal that is moved aside and replaced does not also unpair the box or lock the owner out.
The file is small and written rarely: only when a value really changes, atomically (write a
temporary file, fsync, rename, fsync the directory), so a power cut leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from edged.journal.opening import sync_directory
from edged.journal.writer import JournalError

log = logging.getLogger(__name__)

FILE_NAME = "credentials.json"


class KeptValues:
    """A small string-to-string store in one JSON file. Reads come from memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self.damaged_copy: str | None = None

    def load(self) -> None:
        """Read the file (blocking). A damaged file is moved aside and treated as empty."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._set_aside(f"unreadable: {exc}")
            return
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._set_aside(f"not JSON: {exc}")
            return
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            self._set_aside("not an object of strings")
            return
        self._values = data

    def _set_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.stem}.damaged-{stamp}{self.path.suffix}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            log.error("journal: %s is damaged (%s) and cannot be moved: %s", self.path, why, exc)
            return
        self.damaged_copy = target.name
        log.error("journal: %s was damaged (%s); kept as %s", self.path, why, target.name)

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def set(self, key: str, value: str | None) -> None:
        """Set (``None``: delete) and write the file if anything changed.

        Raises :class:`JournalError` when the file cannot be written (disk full...).
        """
        async with self._lock:
            if self._values.get(key) == value:
                return
            values = dict(self._values)
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
            try:
                await asyncio.to_thread(self._write, values)
            except OSError as exc:
                raise JournalError(f"cannot write {self.path.name}: {exc}") from exc
            self._values = values

    def set_now(self, key: str, value: str) -> bool:
        """Set and write at once (blocking: for the journal's opening, before anything else
        uses this store); nothing is written when the value is already there. True when
        written. Raises :class:`OSError` when the file cannot be written."""
        if self._values.get(key) == value:
            return False
        values = {**self._values, key: value}
        self._write(values)
        self._values = values
        return True

    def _write(self, values: dict[str, str]) -> None:
        text = json.dumps(values, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        sync_directory(self.path.parent)
