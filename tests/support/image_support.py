"""What the image tests share: Debian root filesystems, wheelhouses, edged wheels and signed
update bundles, each built once and cached under ``$XDG_CACHE_HOME/edged-ci`` (or
``~/.cache/edged-ci``) where building is slow.

* :func:`rootfs_tarball` debootstraps a minimal Debian (bookworm or trixie) with Python,
  systemd as init, udev and Debian's kernel (``linux-image-amd64``), so the same tree serves
  the chroot tests and the disk image booted in QEMU. Keyed by suite, packages and mirror.
  With ``arch="arm64"`` (the box's own architecture) it is a foreign debootstrap whose
  maintainer scripts run under qemu-user (binfmt_misc), with ``linux-image-arm64``.
* :func:`wheelhouse` downloads every wheel ``requirements.lock`` pins, for one CPython
  version and architecture, checked against the lock's hashes. Keyed by the lock's content.
* :func:`build_wheel` builds edged from a copy of this tree, optionally changed first (a
  new version number, a schema migration, a crash after READY) to make update candidates.
* :func:`make_bundle` signs an update bundle with ``image/make-bundle``.

With cold caches, debootstrap is the slow part (minutes per release). The test modules call
:func:`prefetch` when they are collected, so the tarballs are built on background threads
while the rest of the suite runs, and the fixtures only wait for what is not done yet.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
#: Python of each Debian release: the wheelhouse has to match it.
PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
INCLUDE = (
    "python3",
    "python3-venv",
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "ca-certificates",
    "openssh-client",  # ssh-keygen verifies update bundles, as on Raspberry Pi OS
    "linux-image-amd64",
)
#: Debian's name of each architecture the box can have, and the wheel platform tag's.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_TREE = (
    "LICENSE",
    "pyproject.toml",
    "README.md",
    "edged",
    "config",
    "systemd",
    "image",
    "requirements.lock",
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "edged-ci"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_tools(*tools: str) -> None:
    """The image tests need root and real tools; without them they fail, they do not skip."""
    assert os.geteuid() == 0, "the image tests need root (chroot, mounts, file owners)"
    for tool in tools:
        assert shutil.which(tool), f"{tool} missing: run scripts/install-test-deps"


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 sources first, then sources.list).

    Any suite's entry will do: the same mirror carries bookworm and trixie.
    """
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            )
            suites = fields.get("Suites", "").split()
            if "URIs" in fields and any(s in PYTHON for s in suites):
                return fields["URIs"].split()[0]
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] in PYTHON:
                return parts[1]
    raise AssertionError("no Debian mirror configured for apt")


_prefetched: dict[str, concurrent.futures.Future[Path]] = {}
_builder: concurrent.futures.ThreadPoolExecutor | None = None


def prefetch(*suites: str, arch: str = "amd64") -> None:
    """Start building the tarballs of ``suites`` in the background, if they are not cached
    (and this can build them at all: root and debootstrap; the tests say so otherwise)."""
    global _builder
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        return
    if arch != "amd64" and not foreign_arch_ready(arch):
        return
    for suite in suites:
        name = suite if arch == "amd64" else f"{suite}-{arch}"
        if name in _prefetched:
            continue
        if _builder is None:
            _builder = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="rootfs")
        _prefetched[name] = _builder.submit(_build_rootfs, suite, arch)


def rootfs_tarball(suite: str, arch: str = "amd64") -> Path:
    """A debootstrapped Debian ``suite`` for ``arch`` as a tarball, built once and cached."""
    future = _prefetched.get(suite if arch == "amd64" else f"{suite}-{arch}")
    if future is not None:
        return future.result()
    return _build_rootfs(suite, arch)


#: QEMU's name of the CPU of each foreign Debian architecture.
QEMU_ARCH = {"arm64": "aarch64"}


def foreign_arch_ready(arch: str) -> bool:
    """Whether this kernel runs ``arch`` binaries through qemu-user (binfmt_misc), so a
    chroot into a foreign root works. As root, registers it if the packages are there."""
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{QEMU_ARCH[arch]}"
    if entry.is_file():
        return entry.read_text().startswith("enabled")
    if os.geteuid() != 0 or not shutil.which("update-binfmts"):
        return False
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"],
            check=False,
        )
    subprocess.run(["update-binfmts", "--enable", f"qemu-{QEMU_ARCH[arch]}"], check=False)
    return entry.is_file() and entry.read_text().startswith("enabled")


@contextlib.contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """One builder at a time for a cache entry, across processes (the test workers each
    collect these modules and prefetch): the others wait, then find it built."""
    with (cache_dir() / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def include(arch: str) -> tuple[str, ...]:
    """The packages debootstrapped for ``arch``: the same, with that architecture's kernel."""
    if arch == "amd64":
        return INCLUDE
    return tuple(f"linux-image-{arch}" if p == "linux-image-amd64" else p for p in INCLUDE)


def _build_rootfs(suite: str, arch: str = "amd64") -> Path:
    mirror = debian_mirror()
    packages = ",".join(include(arch))
    # The x86 key (and so its cached tarball) stays what it was before arm64 came.
    spec = f"{suite} minbase {packages} {mirror}" + ("" if arch == "amd64" else f" {arch}")
    key = hashlib.sha256(spec.encode()).hexdigest()
    name = suite if arch == "amd64" else f"{suite}-{arch}"
    tarball = cache_dir() / f"rootfs-{name}-{key[:16]}.tar"
    if tarball.is_file():
        return tarball
    with _cache_lock(tarball.name):
        if tarball.is_file():
            return tarball
        return _debootstrap(suite, mirror, tarball, arch)


def _debootstrap(suite: str, mirror: str, tarball: Path, arch: str = "amd64") -> Path:
    build = cache_dir() / f"build-{suite}-{arch}-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    try:
        started = time.monotonic()
        if arch != "amd64":
            # One stage: the second stage's maintainer scripts run under qemu-user.
            assert foreign_arch_ready(arch), (
                f"qemu-{QEMU_ARCH[arch]} is not registered with binfmt_misc: "
                "run scripts/install-test-deps (qemu-user-static, binfmt-support)"
            )
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={','.join(include(arch))}",
                suite,
                str(build),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Nothing of the host's apt state, and no package lists: smaller and reproducible.
        shutil.rmtree(build / "var/cache/apt/archives", ignore_errors=True)
        (build / "var/cache/apt/archives/partial").mkdir(parents=True)
        tmp = tarball.with_suffix(".tmp")
        subprocess.run(
            ["tar", "-C", str(build), "--numeric-owner", "-cpf", str(tmp), "."], check=True
        )
        tmp.rename(tarball)
        print(f"built and cached {tarball.name} in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tarball


def unpack(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="fully_trusted")


def wheelhouse(python: str, arch: str = "x86_64") -> Path:
    """Every wheel the lock pins, for CPython ``python`` on ``arch``, hash-checked, cached."""
    key = hashlib.sha256(LOCK.read_bytes() + f"{python} {arch}".encode()).hexdigest()
    wheels = cache_dir() / f"wheelhouse-{python}-{arch}-{key[:16]}"
    if (wheels / ".complete").is_file():
        return wheels
    with _cache_lock(wheels.name):
        if not (wheels / ".complete").is_file():
            _download_wheels(python, arch, wheels)
    return wheels


def _download_wheels(python: str, arch: str, wheels: Path) -> None:
    shutil.rmtree(wheels, ignore_errors=True)
    abi = "cp" + python.replace(".", "")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps"]
        + ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
        + ["--abi", abi, "--abi", "abi3", "--abi", "none"]
        + [f"--platform={p}_{arch}" for p in ("manylinux2014", "manylinux_2_28", "linux")]
        + ["-r", str(LOCK), "-d", str(wheels)],
        check=True,
    )
    (wheels / ".complete").touch()


def copy_tree(dest: Path) -> Path:
    """The parts of this source tree a wheel and the image scripts need, copied to ``dest``."""
    dest.mkdir(parents=True)
    for name in _TREE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def set_version(tree: Path, version: str) -> None:
    """Give the copied tree another version number (pyproject and ``edged.__version__``)."""
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(
        re.sub(r'(?m)^version = "[^"]+"', f'version = "{version}"', pyproject.read_text())
    )
    init = tree / "edged" / "__init__.py"
    init.write_text(
        re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text())
    )


def add_migration(tree: Path) -> None:
    """A schema migration one past the newest: the journal's user_version moves."""
    schema = tree / "edged" / "journal" / "schema.py"
    text = schema.read_text()
    assert "\nLATEST = max(MIGRATIONS)" in text
    text = text.replace(
        "\nLATEST = max(MIGRATIONS)",
        "\nMIGRATIONS[max(MIGRATIONS) + 1] = 'CREATE TABLE ci_update_probe (x INTEGER);'\n"
        "LATEST = max(MIGRATIONS)",
    )
    schema.write_text(text)


def crash_after_ready(tree: Path, seconds: float = 5.0) -> None:
    """The daemon exits ``seconds`` after it said READY=1: it fails any health window."""
    sdnotify = tree / "edged" / "sdnotify.py"
    sdnotify.write_text(
        sdnotify.read_text()
        + f"""

_ready_before_ci = ready


def ready(status_text: str = "") -> bool:  # type: ignore[no-redef]
    import threading

    threading.Timer({seconds}, os._exit, (70,)).start()
    return _ready_before_ci(status_text)
"""
    )
    assert "\nimport os\n" in sdnotify.read_text()


def _tree_key(version: str | None, change: Callable[[Path], None] | None) -> str:
    digest = hashlib.sha256(f"{version} {change.__name__ if change else ''}".encode())
    for name in ("pyproject.toml", "README.md", "edged"):
        path = REPO / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes())
    if change is not None:  # the change's own code is part of what is built
        digest.update(change.__code__.co_code + repr(change.__code__.co_consts).encode())
    return digest.hexdigest()[:16]


def build_wheel(
    out: Path, *, version: str | None = None, change: Callable[[Path], None] | None = None
) -> Path:
    """An edged wheel from this tree, or from a copy with a new version and a ``change``.

    Cached by the tree's content: a run with unchanged sources builds nothing.
    """
    cached = cache_dir() / "edged-wheels" / _tree_key(version, change)
    found = list(cached.glob("edged-*.whl"))
    if not found:
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            # Always from a copy: setuptools writes build/ and edged.egg-info/ next to the
            # sources, and the checkout is in use by the tests running beside this build.
            source = copy_tree(Path(tmp) / "tree")
            if version:
                set_version(source, version)
            if change:
                change(source)
            pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
            subprocess.run(
                [*pip_wheel, "-w", f"{tmp}/dist", str(source)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (built,) = Path(tmp, "dist").glob("edged-*.whl")
            cached.mkdir(parents=True, exist_ok=True)
            shutil.copy(built, cached / f".{built.name}.tmp")
            os.replace(cached / f".{built.name}.tmp", cached / built.name)
        found = list(cached.glob("edged-*.whl"))
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / found[0].name
    shutil.copy(found[0], wheel)
    return wheel


def signing_key(directory: Path, name: str = "edged-release") -> tuple[Path, Path]:
    """A new ed25519 signing key and an allowed_signers file that trusts it."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    public = (directory / f"{name}.pub").read_text().split()
    signers = directory / f"{name}.signers"
    signers.write_text(f'{name} namespaces="edged-update" {public[0]} {public[1]}\n')
    return key, signers


_session: dict[str, tuple[Path, float]] = {}


def _session_dir() -> Path:
    if "dir" not in _session:
        path = Path(tempfile.mkdtemp(prefix="edged-image-session-"))
        atexit.register(shutil.rmtree, path, True)
        _session["dir"] = (path, 0.0)
    return _session["dir"][0]


def release_key() -> tuple[Path, Path]:
    """This test session's release signing key and the signers file boxes get."""
    directory = _session_dir() / "keys"
    if not (directory / "edged-release").exists():
        return signing_key(directory)
    return directory / "edged-release", directory / "edged-release.signers"


def installed_rootfs(suite: str, dest: Path, arch: str = "amd64") -> float:
    """Copy to ``dest`` a ``suite`` rootfs with this tree's edged installed, exactly as the
    image build does it (``install-into-rootfs`` from the lock's wheelhouse, with the
    session's update signers), in a network namespace of its own so nothing but the
    wheelhouse can serve pip. Installed once per session; returns how long that took.
    A foreign ``arch`` (arm64) runs the rootfs's own binaries under qemu-user."""
    name = suite if arch == "amd64" else f"{suite}-{arch}"
    if name not in _session:
        base = _session_dir() / name
        unpack(rootfs_tarball(suite, arch), base / "root")
        wheel = build_wheel(base / "dist")
        started = time.monotonic()
        wheels = wheelhouse(PYTHON[suite], WHEEL_ARCH[arch])
        install = [str(REPO / "image" / "install-into-rootfs"), "--wheels"]
        install += [str(wheels), "--signers", str(release_key()[1])]
        subprocess.run(["unshare", "--net", *install, str(base / "root"), str(wheel)], check=True)
        _session[name] = (base / "root", time.monotonic() - started)
    template, took = _session[name]
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", f"{template}/.", str(dest)], check=True)
    return took


def make_bundle(wheel: Path, wheels: Path, key: Path, out: Path) -> Path:
    """A signed update bundle (``.bundle`` and ``.bundle.sig``) made by image/make-bundle."""
    subprocess.run(
        [
            str(REPO / "image" / "make-bundle"),
            "--key",
            str(key),
            "--wheel",
            str(wheel),
            "--wheelhouse",
            str(wheels),
            "--arch",
            "x86_64",
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    version = wheel.name.split("-")[1]
    return out / f"edged-{version}-x86_64.bundle"
