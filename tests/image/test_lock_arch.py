"""requirements.lock installs on the box's own architectures, from wheels alone.

For arm64 (Raspberry Pi 3/4/5 with a 64-bit OS) every locked file must exist as a wheel on
PyPI: ``pip download --platform ... --only-binary :all: --no-deps --require-hashes``
into a temp dir. For armv7l (32-bit Raspberry Pi OS) PyPI has no wheel of a few compiled
packages; the image takes those from Debian instead, and this test checks that the list
below is exactly what is missing and that Debian has each package (``apt-cache``).
PyPI must be reachable (as for ``make test``'s installs); each test stays under a minute.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
PYTHON = ["--python-version", "3.11", "--implementation", "cp"]
ABIS = ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
AARCH64 = ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"]
# Raspberry Pi OS Bookworm has glibc 2.36: any manylinux tag up to that fits.
ARMV7L = ["linux_armv7l", "manylinux2014_armv7l", "manylinux_2_17_armv7l", "manylinux_2_31_armv7l"]
# Locked packages with no armv7l wheel on PyPI -> the Debian package the image uses.
DEBIAN_ON_ARMV7L = {"pillow": "python3-pil", "pyyaml": "python3-yaml"}
# Pins no Linux box installs (their marker is false there).
NOT_ON_LINUX = {"colorama"}


def entries() -> dict[str, str]:
    """name -> that pin's requirement text (its line and hash lines), markers dropped."""
    out: dict[str, str] = {}
    name = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        entry = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if entry:
            name = entry.group(1).lower().replace("_", "-")
            out[name] = f"{entry.group(1)}=={entry.group(2)} \\\n"
        elif name and "--hash=" in line:
            out[name] += line + "\n"
    return {k: v for k, v in out.items() if k not in NOT_ON_LINUX}


def download(requirements: Path, platforms: list[str], dest: Path) -> subprocess.Popen[str]:
    flags = [arg for platform in [*platforms, "any"] for arg in ("--platform", platform)]
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary", ":all:", "--no-deps", "--require-hashes", *PYTHON, *ABIS, *flags,
         "-r", str(requirements), "-d", str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.timeout(60)
def test_every_locked_file_has_an_aarch64_wheel(tmp_path: Path) -> None:
    reqs = tmp_path / "lock.txt"
    reqs.write_text("".join(entries().values()), encoding="utf-8")
    proc = download(reqs, AARCH64, tmp_path / "wheels")
    _, err = proc.communicate(timeout=55)
    assert proc.returncode == 0, err[-3000:]
    assert len(list((tmp_path / "wheels").glob("*.whl"))) == len(entries())


@pytest.mark.timeout(60)
def test_armv7l_takes_wheels_or_the_listed_debian_packages(tmp_path: Path) -> None:
    pins = entries()
    wheels = tmp_path / "wheels"
    rest = tmp_path / "wheels.txt"
    rest.write_text(
        "".join(text for name, text in pins.items() if name not in DEBIAN_ON_ARMV7L),
        encoding="utf-8",
    )
    procs = {"": download(rest, ARMV7L, wheels)}
    for name in DEBIAN_ON_ARMV7L:  # each must really lack a wheel: else drop it from the list
        one = tmp_path / f"{name}.txt"
        one.write_text(pins[name], encoding="utf-8")
        procs[name] = download(one, ARMV7L, wheels)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=55)
        if not name:
            assert proc.returncode == 0, f"a locked package lost its armv7l wheel:\n{err[-3000:]}"
        else:
            assert proc.returncode != 0, f"{name} has an armv7l wheel now: use it, not Debian's"
            assert "No matching distribution" in err or "Could not find" in err, err[-2000:]
    for package in DEBIAN_ON_ARMV7L.values():
        shown = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", package],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert shown.returncode == 0 and f"Package: {package}" in shown.stdout, shown.stderr
