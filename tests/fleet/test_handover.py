"""Root's side of a staged update on a real file tree: ``python -m edged.fleet.handover`` run
as root over a state directory owned by another user, as edged-update.service runs it. Root
copies the request and the bundle into its own directory and re-verifies them; a symlink, a
FIFO, an oversized request, a tampered manifest, a halted release or a bundle that is not the
manifest's is refused, recorded as the directory's owner, and update-edged never runs.

update-edged is a stand-in here that keeps what it was given (the real one runs in
tests/image/test_image_rootfs.py and the QEMU boot test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from release_support import document, keys, make_bundle, message

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory the state directory's owner (nobody) can reach: pytest's own tmp_path
    sits under a root-only directory."""
    path = Path(tempfile.mkdtemp(prefix="edged-handover-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if os.geteuid() != 0:
        pytest.fail("the hand-over runs as root: run this test as root", pytrace=False)
    root = tmp_path_factory.mktemp("handover")
    key, signers, other, _ = keys(root)
    bundle = make_bundle(root / "out", "9.1.0", key)
    return {"key": key, "signers": signers, "other": other, "bundle": bundle}


class Tree:
    """A box's directories: root's prefix, the daemon's state directory (owned by nobody,
    as /var/lib/edged is the edged user's), and an update-edged stand-in."""

    def __init__(self, tmp_path: Path, material: dict[str, Path]) -> None:
        tmp_path.mkdir(mode=0o755, exist_ok=True)
        self.material = material
        self.prefix = tmp_path / "opt-edged"
        (self.prefix / "bin").mkdir(parents=True)
        self.prefix.chmod(0o755)
        self.state = tmp_path / "state"
        self.update = self.state / "update"
        self.update.mkdir(parents=True)
        for d in (self.state, self.update):
            os.chown(d, NOBODY, NOBODY)
            d.chmod(0o750)
        self.got = tmp_path / "got"
        self.stub = self.prefix / "bin" / "update-edged"
        self.stub.write_text(
            "#!/bin/sh\n"
            f'mkdir -p "{self.got}"\n'
            f'printf "%s\\n" "$@" > "{self.got}/args"\n'
            "for last; do :; done\n"
            f'cp "$(dirname "$last")/bundle" "$last" "{self.got}/"\n'
        )
        self.stub.chmod(0o755)

    def request(self, payload: bytes, wave: int = 1) -> dict[str, Any]:
        return {"v": 1, "box_id": "10000000feedf00d", "wave": wave, "message": payload.decode()}

    def write(self, name: str, body: bytes) -> Path:
        path = self.update / name
        path.write_bytes(body)
        os.chown(path, NOBODY, NOBODY)
        return path

    def hand_over(self, doc: dict[str, Any] | None = None, **kw: Any) -> None:
        doc = doc or document(self.material["bundle"], "https://updates.example.com/b")
        payload = message(doc, kw.pop("key", self.material["key"]))
        self.write("request.json", json.dumps(self.request(payload)).encode())
        self.write("bundle", self.material["bundle"].read_bytes())

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "EDGED_STATE_DIR": str(self.state),
            "EDGED_PREFIX": str(self.prefix),
            "EDGED_SIGNERS": str(self.material["signers"]),
        }
        return subprocess.run(
            [sys.executable, "-m", "edged.fleet.handover"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def events(self) -> list[dict[str, Any]]:
        path = self.state / "box-events.jsonl"
        if not path.exists():
            return []
        assert path.stat().st_uid == NOBODY  # written as the directory's owner, not root
        return [json.loads(line) for line in path.read_text().splitlines()]

    def refused(self, result: subprocess.CompletedProcess[str], why: str) -> dict[str, Any]:
        assert result.returncode == 1, result.stderr
        assert why in result.stderr, result.stderr
        assert not self.got.exists(), "update-edged ran"
        [event] = self.events()
        assert event["kind"] == "update_refused" and why in event["reason"]
        # Nothing is left for the path unit to start on again, nothing in root's staging.
        assert not (self.update / "request.json").exists()
        assert [p.name for p in (self.prefix / "staging").iterdir()] == [".fleet-lock"]
        return event


def test_a_good_request_reaches_update_edged_as_roots_copies(
    tmp_path: Path, material: dict[str, Path]
) -> None:
    tree = Tree(tmp_path, material)
    tree.hand_over()
    result = tree.run()
    assert result.returncode == 0, result.stderr
    args = (tree.got / "args").read_text().splitlines()
    assert args[:4] == ["--release", "9.1.0", "--wave", "1"]
    assert "--allow-downgrade" not in args
    bundle = Path(args[4])
    assert Path(args[5]) == bundle.with_name("bundle.sig")
    # Root's own directory, not the daemon's; gone once update-edged returned.
    assert bundle.parent.parent == tree.prefix / "staging" and not bundle.parent.exists()
    assert (tree.got / "bundle").read_bytes() == material["bundle"].read_bytes()
    # The signature from the signed manifest is the bundle's own: ssh-keygen takes it.
    verify = ["-Y", "verify", "-f", str(material["signers"]), "-I", "edged-release"]
    check = subprocess.run(
        ["ssh-keygen", *verify, "-n", "edged-update", "-s", str(tree.got / "bundle.sig")],
        stdin=(tree.got / "bundle").open("rb"),
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert not (tree.update / "request.json").exists() and not (tree.update / "bundle").exists()


def test_allow_downgrade_only_from_the_signed_manifest(
    tmp_path: Path, material: dict[str, Path]
) -> None:
    tree = Tree(tmp_path, material)
    doc = document(material["bundle"], "https://updates.example.com/b", allow_downgrade=True)
    tree.hand_over(doc)
    assert tree.run().returncode == 0
    assert "--allow-downgrade" in (tree.got / "args").read_text().splitlines()


def test_a_symlinked_request_is_refused(tmp_path: Path, material: dict[str, Path]) -> None:
    tree = Tree(tmp_path, material)
    tree.hand_over()
    real = tmp_path / "elsewhere.json"
    (tree.update / "request.json").rename(real)
    (tree.update / "request.json").symlink_to(real)
    tree.refused(tree.run(), "cannot open request.json")
    assert real.exists()  # root removed the link, not what it points to


def test_a_symlinked_update_directory_is_refused(tmp_path: Path, material: dict[str, Path]) -> None:
    tree = Tree(tmp_path, material)
    tree.hand_over()
    planted = tmp_path / "planted"
    tree.update.rename(planted)
    tree.update.symlink_to(planted)
    result = tree.run()
    assert result.returncode == 1 and "cannot open the directory update" in result.stderr
    assert not tree.got.exists()
    assert (planted / "request.json").exists()  # root took nothing through the link


def test_an_oversized_request_is_refused(tmp_path: Path, material: dict[str, Path]) -> None:
    tree = Tree(tmp_path, material)
    tree.hand_over()
    padded = tree.request(b"{}")
    padded["padding"] = "x" * 100_000
    tree.write("request.json", json.dumps(padded).encode())
    tree.refused(tree.run(), "over the 98304 allowed")


def test_a_fifo_request_does_not_stall_root(tmp_path: Path, material: dict[str, Path]) -> None:
    tree = Tree(tmp_path, material)
    os.mkfifo(tree.update / "request.json")
    tree.refused(tree.run(), "request.json is not a regular file")


def test_a_tampered_or_foreign_manifest_is_refused(
    tmp_path: Path, material: dict[str, Path]
) -> None:
    tree = Tree(tmp_path / "foreign", material)
    tree.hand_over(key=material["other"])
    tree.refused(tree.run(), "not signed by a trusted key")
    assert not (tree.update / "bundle").exists()

    tree = Tree(tmp_path / "tampered", material)
    doc = document(material["bundle"], "https://updates.example.com/b")
    outer = json.loads(message(doc, material["key"]))
    outer["manifest"] = outer["manifest"].replace(
        '"allow_downgrade":false', '"allow_downgrade":true'
    )
    tree.write("request.json", json.dumps(tree.request(json.dumps(outer).encode())).encode())
    tree.write("bundle", material["bundle"].read_bytes())
    tree.refused(tree.run(), "does not verify")


def test_a_halted_release_is_refused(tmp_path: Path, material: dict[str, Path]) -> None:
    tree = Tree(tmp_path, material)
    doc = document(material["bundle"], "https://updates.example.com/b")
    doc["halted"] = {"at": "2026-12-08T03:00:00Z", "reason": "wave 0 failed", "wave": 0}
    tree.hand_over(doc)
    event = tree.refused(tree.run(), "is halted")
    assert event["release"] == "9.1.0" and event["wave"] == 1


def test_a_bundle_that_is_not_the_manifests_is_refused(
    tmp_path: Path, material: dict[str, Path]
) -> None:
    tree = Tree(tmp_path / "changed", material)
    tree.hand_over()
    body = bytearray(material["bundle"].read_bytes())
    body[100] ^= 1
    tree.write("bundle", bytes(body))
    tree.refused(tree.run(), "size or sha256")

    tree = Tree(tmp_path / "longer", material)
    tree.hand_over()
    tree.write("bundle", material["bundle"].read_bytes() + b"more")
    tree.refused(tree.run(), "over the")

    tree = Tree(tmp_path / "link", material)
    tree.hand_over()
    (tree.update / "bundle").unlink()
    (tree.update / "bundle").symlink_to(material["bundle"])
    event = tree.refused(tree.run(), "cannot open bundle")
    assert event["release"] == "9.1.0"
