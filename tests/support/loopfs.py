"""A small ext4 file system on a loop device, to count the bytes a box writes to its card.

Usage::

    with LoopFs(tmp_path / "card.img") as card:   # mounted at card.mountpoint
        ...                                        # the daemon's state_dir lives in there
        before = card.bytes_written()              # syncs first, then reads the device's stat
        ...
        written = card.bytes_written() - before

:meth:`LoopFs.shut_down` makes every later read and write of the mounted file system fail
with EIO (``FS_IOC_SHUTDOWN``, as a card pulled out or dying); :meth:`LoopFs.remount` then
mounts the same image again, fresh, at the same place (a card that came back).

The count is what the block layer hands the device (``/sys/block/loopN/stat``, sectors
written), so it holds the file system's own journal and metadata, not just file contents:
what an SD card would really see. Needs root and a free loop device; without them it raises
:class:`LoopFsUnavailable` with the reason (tests fail on it, they do not skip).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

SECTOR = 512
FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
GOING_NOLOGFLUSH = 2  # down at once: what the file system journal had not written is lost
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class LoopFsUnavailable(RuntimeError):
    """No loop device could be set up (not root, no loop driver, tools missing)."""


def _run(*args: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    except FileNotFoundError as exc:
        raise LoopFsUnavailable(f"{args[0]} is not installed ({exc})") from exc
    except subprocess.CalledProcessError as exc:
        raise LoopFsUnavailable(
            f"{' '.join(args)} failed ({exc.returncode}): {exc.stderr.strip()}"
        ) from exc
    return out.stdout.strip()


class LoopFs:
    """An ext4 image of ``size_mib`` MiB, formatted and mounted on a loop device."""

    def __init__(self, image: Path, *, size_mib: int = 64, mountpoint: Path | None = None):
        self.image = Path(image)
        self.size_mib = size_mib
        self.mountpoint = mountpoint or self.image.with_suffix(".mnt")
        self.device = ""
        self._mounted = False
        self._dead: list[str] = []  # devices of shut-down mounts, detached at teardown

    @property
    def name(self) -> str:
        """The block device's name, e.g. ``loop3``."""
        return os.path.basename(self.device)

    def setup(self) -> None:
        if os.geteuid() != 0:
            raise LoopFsUnavailable("mounting a loop device needs root")
        if not Path("/dev/loop-control").exists() and not Path("/dev/loop0").exists():
            raise LoopFsUnavailable("no loop devices (/dev/loop-control is missing)")
        for tool in ("mkfs.ext4", "losetup", "mount", "umount"):
            if shutil.which(tool) is None:
                raise LoopFsUnavailable(f"{tool} is not installed (e2fsprogs, mount)")
        self.image.parent.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as fh:
            fh.truncate(self.size_mib * 1024 * 1024)
        # Inode tables and the journal initialised now, not by a background thread later
        # (whose writes would be counted against the daemon).
        _run(
            "mkfs.ext4",
            "-q",
            "-F",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            str(self.image),
        )
        self.device = _run("losetup", "--find", "--show", str(self.image))
        try:
            self.mountpoint.mkdir(parents=True, exist_ok=True)
            _run("mount", "-t", "ext4", self.device, str(self.mountpoint))
            self._mounted = True
        except BaseException:
            self.teardown()
            raise

    def shut_down(self) -> None:
        """From now on every read and write under the mount point fails with EIO."""
        fd = os.open(self.mountpoint, os.O_RDONLY)
        try:
            flags = ctypes.c_uint32(GOING_NOLOGFLUSH)
            if _LIBC.ioctl(fd, FS_IOC_SHUTDOWN, ctypes.byref(flags)) != 0:
                err = ctypes.get_errno()
                raise LoopFsUnavailable(f"FS_IOC_SHUTDOWN failed: {os.strerror(err)}")
        finally:
            os.close(fd)

    def remount(self) -> None:
        """Mount the image again at the same place, as a fresh file system (a shut-down
        one stays dead while files on it are open: it is detached lazily, and a new loop
        device gives the kernel a new file system to replay the journal of)."""
        if self._mounted:
            _run("umount", "-l", str(self.mountpoint))
            self._mounted = False
        self._dead.append(self.device)
        self.device = _run("losetup", "--find", "--show", str(self.image))
        _run("mount", "-t", "ext4", self.device, str(self.mountpoint))
        self._mounted = True

    def teardown(self) -> None:
        if self._mounted:
            with contextlib.suppress(LoopFsUnavailable):
                _run("umount", str(self.mountpoint))
            self._mounted = False
        for device in [self.device, *self._dead]:
            if device:
                with contextlib.suppress(LoopFsUnavailable):
                    _run("losetup", "--detach", device)
        self.device = ""
        self._dead = []
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()
        with contextlib.suppress(OSError):
            self.image.unlink()

    def sync(self) -> None:
        """Flush this file system (data, metadata and its journal) to the device."""
        fd = os.open(self.mountpoint, os.O_RDONLY)
        try:
            if _LIBC.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def bytes_written(self) -> int:
        """Bytes the device has been asked to write since it was set up (after a sync)."""
        self.sync()
        fields = Path(f"/sys/block/{self.name}/stat").read_text(encoding="ascii").split()
        return int(fields[6]) * SECTOR

    def __enter__(self) -> LoopFs:
        self.setup()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.teardown()
