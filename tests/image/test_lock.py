"""requirements.lock: every runtime dependency pinned, within pyproject's ranges, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's ``name==version ; marker \\`` entries."""
    out: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        entry = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if entry:
            current = canonicalize_name(entry.group(1))
            out[current] = (entry.group(2), [])
        elif "--hash=sha256:" in line:
            out[current][1].append(line.split("--hash=sha256:")[1].split()[0])
    return out


def test_every_dependency_is_pinned_within_its_range() -> None:
    locked = pins()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in deps:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock (run scripts/lock)"
        assert req.specifier.contains(locked[name][0], prereleases=True), (spec, locked[name])


def test_every_pin_has_sha256_hashes() -> None:
    locked = pins()
    assert len(locked) >= 20
    for name, (version, hashes) in locked.items():
        assert hashes, f"{name}=={version} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
