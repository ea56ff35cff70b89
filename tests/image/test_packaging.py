"""The package as PyPI and pip see it: built from a copy of the tree with every build
warning an error (setuptools' deprecations end builds on a date), and checked by twine."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from image_support import REPO, copy_tree

import edged


def test_the_package_builds_without_a_warning_and_passes_twine(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "tree")
    dist = tmp_path / "dist"
    # setuptools prints its deprecations (the old license table, say) in the build's
    # output: any "Warning" there fails the test. (PYTHONWARNINGS=error would also fail
    # pip's own install of the build requirements, which warns about itself.)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(tree)],
        capture_output=True,
        text=True,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-4000:]
    assert "Warning" not in output, output[-4000:]
    (wheel,) = dist.glob("edged-*.whl")
    (sdist,) = dist.glob("edged-*.tar.gz")

    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in meta
    assert f"Version: {edged.__version__}" in meta
    assert "Classifier: Topic :: Office/Business :: Financial :: Point-Of-Sale" in meta


def test_floors_are_above_the_published_advisories() -> None:
    """Pillow before 11.3 and Jinja2 before 3.1.6 have published advisories; the lock is
    current, but a floor is what other installs (a distribution, a vendor's pip) honour."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floors = {}
    for spec in project["dependencies"]:
        name, _, rest = spec.partition(">=")
        floors[name.strip().lower()] = tuple(int(p) for p in rest.split(",")[0].split("."))
    assert floors["pillow"] >= (11, 3)
    assert floors["jinja2"] >= (3, 1, 6)
