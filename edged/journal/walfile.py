"""Keep the journal's WAL file across closes, so a start does not write it again.

When its last connection closes, SQLite checkpoints the WAL into the database file and
deletes it (``wal_checkpoint(TRUNCATE)`` did the same before); the next start then creates it
afresh, and :func:`edged.journal.opening.presize_wal` writes its working size (about 1 MiB)
to the card once more. SQLite keeps the file when a connection sets
``SQLITE_FCNTL_PERSIST_WAL``. :func:`fold_back` then closes the way TRUNCATE did, minus the
truncation: every frame checkpointed into the database file (which alone stays a complete
copy), then the WAL's 32-byte header zeroed, so the next open finds an empty WAL of the
right size instead of old frames it would take for live ones (and checkpoint again, or let
them hide a damaged database file). One block written at a stop instead of 1 MiB at a start.

Python's :mod:`sqlite3` has no ``file_control``: this calls SQLite's own C function through
:mod:`ctypes`, on the ``sqlite3 *`` handle that CPython keeps as the first field after the
object header of every ``sqlite3.Connection`` (3.11 to 3.14). Before using the handle it is
checked: SQLite must name this very file for it. On any other interpreter, or if anything
does not match, the WAL is simply not kept (logged once): correct, only a start costs more.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sqlite3
import sys
from pathlib import Path

from edged.journal.writer import JournalError

log = logging.getLogger(__name__)

SQLITE_FCNTL_PERSIST_WAL = 10
WAL_HEADER = 32
_KNOWN = ((3, 11), (3, 12), (3, 13), (3, 14))  # CPython versions whose layout is known


@functools.cache
def _library() -> ctypes.CDLL | None:
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in _KNOWN:
        return None
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)  # its symbols and SQLite's, which it links
    lib.sqlite3_db_filename.restype = ctypes.c_char_p
    lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.sqlite3_file_control.restype = ctypes.c_int
    lib.sqlite3_file_control.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    return lib


def _handle(conn: sqlite3.Connection, path: Path) -> tuple[ctypes.CDLL, int] | None:
    """SQLite's library and ``conn``'s ``sqlite3 *``, if SQLite names ``path`` for it."""
    lib = _library()
    if lib is None:
        return None
    # object.__basicsize__: the object header's size in this build.
    handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    if not handle:
        return None
    named = lib.sqlite3_db_filename(handle, b"main")
    if named is None or os.path.realpath(named.decode()) != os.path.realpath(path):
        return None
    return lib, handle


def _persist(conn: sqlite3.Connection, path: Path, value: int) -> bool:
    """Set (1, 0) or only read (-1) SQLITE_FCNTL_PERSIST_WAL; True when it is on."""
    try:
        found = _handle(conn, path)
        if found is None:
            return False
        lib, handle = found
        flag = ctypes.c_int(value)
        if lib.sqlite3_file_control(handle, b"main", SQLITE_FCNTL_PERSIST_WAL, ctypes.byref(flag)):
            return False
        if value == -1:
            return flag.value == 1
        return _persist(conn, path, -1)
    except (OSError, AttributeError, ImportError, ValueError):
        return False


def keep_wal(conn: sqlite3.Connection, path: Path, keep: bool = True) -> bool:
    """Ask SQLite to keep ``path``'s WAL file when ``conn`` closes it (or, ``keep`` False,
    to delete it again, as before leaving WAL mode); True when it will keep it."""
    kept = _persist(conn, path, 1 if keep else 0)
    if keep and not kept:
        log.info("journal: the WAL is deleted at close (this Python cannot keep it)")
    return kept


def fold_back(conn: sqlite3.Connection, path: Path) -> None:
    """Before ``conn`` closes: the WAL checkpointed into the database file and emptied,
    without truncating it when it is kept. Errors are SQLite's (the caller logs them)."""
    if not _persist(conn, path, -1):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
    if busy or frames != copied:
        return  # a reader still needs frames: leave the WAL whole, SQLite copes
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")  # no other writer while the header goes
    try:
        if conn.execute("PRAGMA data_version").fetchone()[0] != version:
            return  # another process committed since the checkpoint: its frames stay
        wal = Path(str(path) + "-wal")
        try:
            with wal.open("r+b") as fh:
                if fh.read(WAL_HEADER) == bytes(WAL_HEADER):
                    return  # empty already: nothing to write
                fh.seek(0)
                fh.write(bytes(WAL_HEADER))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise JournalError(f"cannot empty the journal's WAL: {exc}") from exc
    finally:
        conn.execute("ROLLBACK")
