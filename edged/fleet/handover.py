"""Root's side of a staged update: ``edged-update.service`` (started by ``edged-update.path``
when the daemon writes ``/var/lib/edged/update/request.json``) runs
``/opt/edged/venv/bin/python -I -m edged.fleet.handover``.

Everything in ``/var/lib/edged`` is the ``edged`` user's, so root takes nothing there on
trust and acts on no path there:

1. the state directory and its ``update`` directory are opened once, without following a
   symlink (``O_NOFOLLOW | O_DIRECTORY``), and every file below is opened relative to that
   descriptor, again with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a FIFO must not stall root):
   only regular files, only up to a size cap (:data:`MAX_REQUEST_BYTES` for the request,
   the signed manifest's ``size`` for the bundle), read once into a fresh root-only
   directory under ``/opt/edged/staging``; the names are removed from the edged user's
   directory (``unlinkat``, which follows nothing) whether they are taken or refused;
2. the manifest inside the request is verified again, from root's copy, against
   ``/etc/edged/update-signers`` (:func:`edged.fleet.manifest.read`: the same
   ``ssh-keygen`` check as the daemon's and the bundles'), and its fields checked; a halted
   release is refused;
3. root's copy of the bundle must have the manifest's size and sha256; the bundle's own
   signature, from the signed manifest, is written beside it in root's directory;
4. ``update-edged`` installs root's copies (checking the bundle's signature once more,
   the version, the health window, the rollback), with ``--allow-downgrade`` only when the
   signed manifest says ``allow_downgrade``, and ``--release``/``--wave`` for its event line.

A refusal is logged and recorded in ``box-events.jsonl`` (written as the directory's owner,
never by root) with the release it concerned, and nothing is installed. The request's
``wave`` and ``box_id`` are the daemon's claims: they are only reported.

Variables for tests: ``EDGED_STATE_DIR`` (/var/lib/edged), ``EDGED_PREFIX`` (/opt/edged),
``EDGED_SIGNERS`` (/etc/edged/update-signers), ``EDGED_UPDATE_EDGED``
(``$EDGED_PREFIX/bin/update-edged``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from edged import __version__
from edged.fleet.manifest import Manifest, ManifestError, read

MAX_REQUEST_BYTES = 96 * 1024
REQUEST = "request.json"
BUNDLE = "bundle"
EVENTS = "box-events.jsonl"
CHUNK = 1 << 20


class Refused(Exception):
    """The request is not installed; the message says why (logged and recorded)."""


def log(message: str) -> None:
    print(f"edged-update: {message}", file=sys.stderr, flush=True)


def open_dir(path: str | Path, *, dir_fd: int | None = None) -> int:
    """A directory descriptor; a symlink (or anything but a directory) is refused."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise Refused(f"cannot open the directory {path} ({exc.strerror})") from None


def take(dir_fd: int, name: str, stage: Path, limit: int) -> tuple[Path, str]:
    """``name`` (relative to ``dir_fd``) read once into ``stage``: a regular file of at most
    ``limit`` bytes, no symlink followed; returns the copy and its sha256."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise Refused(f"cannot open {name} ({exc.strerror})") from None
    copy = stage / name
    digest = hashlib.sha256()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{name} is not a regular file")
        if info.st_size > limit:
            raise Refused(f"{name} is {info.st_size} bytes, over the {limit} allowed")
        got = 0
        out = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            while chunk := os.read(fd, min(CHUNK, limit + 1 - got)):
                got += len(chunk)
                if got > limit:  # it grew after the fstat
                    raise Refused(f"{name} is over the {limit} bytes allowed")
                digest.update(chunk)
                os.write(out, chunk)
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return copy, digest.hexdigest()


def forget(dir_fd: int, name: str) -> None:
    """Remove ``name`` from the edged user's directory (unlinkat follows no symlink)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        os.unlink(name, dir_fd=dir_fd)


def record(state_dir: Path, event: dict[str, Any]) -> None:
    """One event line in box-events.jsonl, appended as the directory's owner (root never
    opens a file in a directory the edged user owns), as update-edged does."""
    try:
        owner = os.stat(state_dir, follow_symlinks=False)
    except OSError:
        return
    line = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "journal_restored": False,
            **event,
        },
        ensure_ascii=False,
    )
    code = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW"
        " | os.O_NOCTTY | os.O_NONBLOCK, 0o640)\n"
        "os.write(fd, sys.argv[2].encode() + b'\\n'); os.fsync(fd); os.close(fd)\n"
    )
    as_owner: dict[str, Any] = {}
    if owner.st_uid != os.geteuid():
        as_owner = {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}
    # The system's Python, as update-edged uses: any user can run it.
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    done = subprocess.run(
        [python, "-I", "-c", code, str(state_dir / EVENTS), line],
        cwd="/",
        check=False,
        capture_output=True,
        **as_owner,
    )
    if done.returncode != 0:
        log(f"could not record the event in {state_dir / EVENTS}")


def root_only(path: Path) -> bool:
    """Owned by root, writable by root only, no symlink."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022


def _request(copy: Path) -> tuple[bytes, int | None, str]:
    try:
        raw = json.loads(copy.read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise Refused("the request is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("message"), str):
        raise Refused("the request carries no manifest message")
    wave = raw.get("wave")
    wave = wave if isinstance(wave, int) and not isinstance(wave, bool) and 0 <= wave < 50 else None
    box = raw.get("box_id")
    return raw["message"].encode(), wave, box[:63] if isinstance(box, str) else ""


def prepare(
    state_dir: Path, stage: Path, signers: str | Path
) -> tuple[Manifest, int | None, Path, Path]:
    """Steps 1 to 3: root's verified copies; Refused when anything is wrong."""
    state_fd = open_dir(state_dir)
    try:
        update_fd = open_dir("update", dir_fd=state_fd)
    finally:
        os.close(state_fd)
    try:
        try:
            copy, _ = take(update_fd, REQUEST, stage, MAX_REQUEST_BYTES)
        finally:
            forget(update_fd, REQUEST)
        message, wave, box = _request(copy)
        try:
            manifest, _text, signer = read(message, signers)
        except ManifestError as exc:
            forget(update_fd, BUNDLE)
            raise Refused(f"the release manifest: {exc}") from None
        log(f"release {manifest.version} (wave {wave}, box {box!r}) signed by {signer}")
        if manifest.halted is not None:
            forget(update_fd, BUNDLE)
            raise Refused(f"release {manifest.version} is halted", manifest.version, wave)
        try:
            bundle, sha256 = take(update_fd, BUNDLE, stage, manifest.size)
        except Refused as exc:
            raise Refused(str(exc), manifest.version, wave) from None
        finally:
            forget(update_fd, BUNDLE)
        if bundle.stat().st_size != manifest.size or sha256 != manifest.sha256:
            raise Refused(
                f"the bundle is not release {manifest.version}'s (size or sha256)",
                manifest.version,
                wave,
            )
        signature = stage / "bundle.sig"
        signature.write_text(manifest.bundle_signature, encoding="utf-8")
        return manifest, wave, bundle, signature
    finally:
        os.close(update_fd)


def main() -> int:
    """Run one hand-over; the exit code is update-edged's (1 when refused here)."""
    state_dir = Path(os.environ.get("EDGED_STATE_DIR", "/var/lib/edged"))
    prefix = Path(os.environ.get("EDGED_PREFIX", "/opt/edged"))
    signers = os.environ.get("EDGED_SIGNERS", "/etc/edged/update-signers")
    update_edged = os.environ.get("EDGED_UPDATE_EDGED", str(prefix / "bin" / "update-edged"))
    if os.geteuid() != 0:
        log("must run as root")
        return 1
    if not root_only(prefix):
        log(f"{prefix} must be a directory owned by root and writable by root only")
        return 1
    staging = prefix / "staging"
    staging.mkdir(mode=0o700, exist_ok=True)
    if not root_only(staging):
        log(f"{staging} must be owned by root and writable by root only")
        return 1
    with open(staging / ".fleet-lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another hand-over is running")
            return 1
        stage = Path(tempfile.mkdtemp(prefix="fleet.", dir=staging))
        try:
            try:
                manifest, wave, bundle, signature = prepare(state_dir, stage, signers)
            except Refused as exc:
                release = exc.args[1] if len(exc.args) > 1 else ""
                wave_claim = exc.args[2] if len(exc.args) > 2 else None
                log(f"refused: {exc.args[0]}; nothing changed")
                event: dict[str, Any] = {
                    "kind": "update_refused",
                    "from": __version__,
                    "to": release,
                    "reason": str(exc.args[0])[:200],
                }
                if release:
                    event["release"] = release
                if wave_claim is not None:
                    event["wave"] = wave_claim
                record(state_dir, event)
                return 1
            command = [update_edged, "--release", manifest.version]
            if wave is not None:
                command += ["--wave", str(wave)]
            if manifest.allow_downgrade:
                command.append("--allow-downgrade")
            log(f"handing release {manifest.version} to {update_edged}")
            return subprocess.run([*command, str(bundle), str(signature)], check=False).returncode
        finally:
            shutil.rmtree(stage, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
