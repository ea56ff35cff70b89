"""Opening the journal file: pragmas, a quick check, migrations, and healing a damaged file.

A journal that SQLite reports as damaged (a bad header, a file cut short, pages that do not
add up) is never opened in place: the daemon moves it aside, keeping it for diagnosis under
``<name>.damaged-<UTC time><suffix>``, and starts a fresh one. The open orders come back
from Sinqro with the first reconcile; pairing and the web admin password live in a file of
their own (see :mod:`edged.journal.kept`), so they survive. Only the daemon heals; the CLI
refuses a damaged journal with a clear message instead of moving it under the daemon's feet.

A journal that *vanished* is damaged too: a box that had one (its epoch is kept beside the
pairing, see :mod:`edged.journal.kept`) and finds the file empty or missing takes the same
path (the tickets of the open orders print again marked REPRINT, the owner is told). Only a
first start, with no kept epoch, makes a new journal quietly.

Other failures (permissions, a journal from a newer edged, a card that cannot be read) are
not damage: they are raised as they are, and nothing is moved.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edged.journal.schema import LATEST, MIGRATIONS
from edged.journal.writer import JournalError

log = logging.getLogger(__name__)

# SQLite writes whole pages: every index, cursor or event page a commit touches is copied
# into the WAL in full. Small pages make those copies small (a 1 KiB page per touched index
# instead of 4 KiB); an order payload simply spans a few pages. New journals only: SQLite
# fixes the page size when the file is created.
PAGE_SIZE = 1024
# Pages in the WAL before SQLite copies them into the database file (SQLite's default).
WAL_AUTOCHECKPOINT = 1000
WAL_HEADER = 32
WAL_FRAME_HEADER = 24
KEEP_DAMAGED = 3  # damaged copies kept in the state directory; older ones are deleted
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


class DamagedJournal(JournalError):
    """The journal file is damaged (SQLite says corrupt or not a database)."""


@dataclass(frozen=True)
class Recovery:
    """A damaged journal was moved aside and a fresh one started."""

    at: float  # unix time
    reason: str
    kept_as: str  # file name of the damaged copy, in the same directory ("": none, it vanished)

    def to_dict(self) -> dict[str, object]:
        return {"at": self.at, "reason": self.reason, "kept_as": self.kept_as}


def is_damage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def vanished(path: Path, *, had_journal: bool) -> str | None:
    """Why the journal counts as vanished (None: it does not): a box that had a journal
    (``had_journal``) finds the file missing, or empty with nothing in its WAL either."""
    if not had_journal:
        return None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "the journal file is missing"
    if size > 0:
        return None
    try:
        wal = Path(str(path) + "-wal").stat().st_size
    except FileNotFoundError:
        wal = 0
    # A non-empty WAL beside an empty file is SQLite's to judge (quick_check).
    return "the journal file is empty" if wal == 0 else None


def connect(path: Path, *, check: bool, create: bool = True) -> sqlite3.Connection:
    """Open, set the pragmas, optionally ``PRAGMA quick_check``, and migrate. Without
    ``create``, a missing file is an error, not a new journal (reopening a running one).

    Raises :class:`DamagedJournal` when the file is damaged.
    """
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path) if create else f"{path.absolute().as_uri()}?mode=rw"
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=not create)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning("journal: WAL not available (mode %s)", mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        if check:
            problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise DamagedJournal("; ".join(problems))
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_damage(exc):
            raise DamagedJournal(str(exc)) from exc
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST:
        raise JournalError(f"{path} has schema version {version}, newer than this edged ({LATEST})")
    for target in range(version + 1, LATEST + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_sql(MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("journal: migrated %s to schema version %d", path, target)


def open_or_heal(
    path: Path, *, heal: bool, had_journal: bool = False
) -> tuple[sqlite3.Connection, Recovery | None]:
    """Open the journal; with ``heal``, a damaged one is moved aside and replaced.

    ``had_journal``: this box had a journal before (a kept epoch), so an empty or missing
    file is damage, not a first start.
    """
    gone = vanished(path, had_journal=had_journal)
    try:
        if gone is not None:
            raise DamagedJournal(gone)
        conn = connect(path, check=True)
    except DamagedJournal as exc:
        if not heal:
            raise DamagedJournal(
                f"{path} is damaged ({exc}); the daemon moves it aside and starts a fresh "
                "one when it starts"
            ) from exc
        reason = str(exc)
    else:
        if heal:
            convert_page_size(conn, path)
        return conn, None
    settings = salvage_settings(path) if path.exists() else {}
    kept = move_aside(path)
    log.critical(
        "journal: %s is damaged (%s); kept as %s, starting a fresh journal: open orders "
        "are fetched again from Sinqro",
        path,
        reason,
        kept.name if kept is not None else "nothing (no file)",
    )
    conn = connect(path, check=False)
    for key, value in settings.items():
        conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, value))
    if settings:
        log.info("journal: %d setting(s) saved from the damaged journal", len(settings))
    return conn, Recovery(time.time(), reason, kept.name if kept is not None else "")


def salvage_settings(path: Path) -> dict[str, str]:
    """What can still be read of a damaged journal's ``kv`` table (an older edged kept the
    pairing and the admin password there), best effort; the journal's own keys excepted."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    try:
        rows = conn.execute("SELECT key, value FROM kv").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {
        k: v
        for k, v in rows
        if isinstance(k, str) and isinstance(v, str) and not k.startswith("journal.")
    }


def convert_page_size(conn: sqlite3.Connection, path: Path) -> None:
    """Rebuild a journal made with another page size (older edged) with :data:`PAGE_SIZE`,
    once: ``VACUUM`` outside WAL mode. Needs the journal to itself; when another process
    has it open, this is left for the next start."""
    if conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE:
        return
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("VACUUM")
        log.info("journal: %s rebuilt with %d-byte pages", path, PAGE_SIZE)
    except sqlite3.Error as exc:
        log.info("journal: page size kept for now (%s)", exc)
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA journal_mode = WAL")


def presize_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Give the WAL its working size now, in one write.

    SQLite appends commits to the WAL until a checkpoint lets it start again from the top.
    While the file grows, every commit also changes the file system's metadata (size,
    allocated blocks), and each fsync then writes a file system journal commit of several
    blocks: on a fresh WAL that is more than the commit itself. Filled to its working size
    once, later commits overwrite blocks that exist, and an fsync writes only them. The
    zeros past the last frame are not frames (their checksums do not match), so SQLite
    ignores them; the write lock is held so no other process appends meanwhile.
    """
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    target = WAL_HEADER + WAL_AUTOCHECKPOINT * (page + WAL_FRAME_HEADER)
    wal = Path(str(path) + "-wal")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        log.info("journal: WAL not presized (%s)", exc)
        return
    try:
        size = wal.stat().st_size
        if size >= target:
            return
        with wal.open("r+b") as fh:
            fh.seek(size)
            fh.write(bytes(target - size))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # a full disk: SQLite will grow it as it needs
        log.warning("journal: WAL not presized: %s", exc)
    finally:
        conn.execute("ROLLBACK")


def move_aside(path: Path) -> Path | None:
    """Rename the journal and its WAL to ``<stem>.damaged-<stamp><suffix>``; drop its
    shared-memory file (rebuilt from the WAL) and all but the newest damaged copies.
    Returns the copy's path (None: there was no file to keep)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}.damaged-{stamp}-{n}{path.suffix}")
    for extra in ("-wal", "-journal"):
        source = Path(str(path) + extra)
        if source.exists():
            os.replace(source, Path(str(target) + extra))
    moved = path.exists()
    if moved:
        os.replace(path, target)
    with contextlib.suppress(FileNotFoundError):
        Path(str(path) + "-shm").unlink()
    copies = sorted(path.parent.glob(f"{path.stem}.damaged-*{path.suffix}"))
    for old in copies[:-KEEP_DAMAGED]:
        for extra in ("", "-wal", "-journal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(old) + extra).unlink()
    sync_directory(path.parent)
    return target if moved else None


def sync_directory(directory: Path) -> None:
    """fsync a directory so renames and new files in it survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (our scripts have no ';' inside strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
