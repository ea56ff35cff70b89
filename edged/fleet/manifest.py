"""The signed release manifest of a staged update (docs/fleet.md "Staged updates").

The vendor publishes it, retained, on ``<prefix>/releaseManifest``: a JSON envelope
``{"manifest": "<the manifest document, as JSON text>", "signature": "<SSH signature>"}``.
The signature covers the exact bytes of the ``manifest`` text, made with the bundles' own
scheme (``ssh-keygen -Y sign``, namespace ``edged-update``, the keys of
``/etc/edged/update-signers``), so the box checks a manifest with the same tool and the same
trust file as ``image/update-edged`` checks a bundle. A manifest is JSON whose ``kind`` is
``edged-release``, which no bundle (a tar) can be, so neither signature stands for the other.

Everything here is a claim until :func:`verify` said otherwise; :func:`parse` then checks
every field (bounded sizes, types, ranges) and lists the keys it does not know, which are
ignored. :func:`wave_of` picks a box's wave from its id alone, the same on the box and in
the vendor's ``edged fleet rollout status``.

The topic has an upper-case letter on purpose: a box id never has one, so no box's own tree
(``<prefix>/<box id>/#``, all a box may write) can hold it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Any

TOPIC = "releaseManifest"  # under the fleet's topic prefix
KIND = "edged-release"
NAMESPACE = "edged-update"  # the bundles' (image/make-bundle, image/update-edged)
MAX_MESSAGE_BYTES = 64 * 1024
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
SIGNERS = "/etc/edged/update-signers"
SSH_KEYGEN = "ssh-keygen"
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
KNOWN = {
    "": {"kind", "v", "version", "published", "bundle", "allow_downgrade", "rollout", "halted"},
    "bundle": {"url", "sha256", "size", "signature"},
    "rollout": {
        "start",
        "canary_percent",
        "waves",
        "window",
        "never_while_order_waits",
        "max_failure_rate",
    },
    "waves[]": {"percent", "start"},
    "window": {"from", "to"},
    "halted": {"at", "reason", "wave"},
}


class ManifestError(ValueError):
    """A manifest that is not one, or not signed by a trusted key. ``code`` says which:
    ``unreadable`` (not an envelope), ``unknown_signer`` (a key not in the signers file),
    ``bad_signature`` (a trusted key, but the text was changed), ``no_signers``, ``invalid``
    (signed, but a field is wrong)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Wave:
    """Boxes whose bucket is below ``percent`` (cumulative) and at or above the previous
    wave's, from ``start`` on."""

    percent: float
    start: datetime


@dataclass(frozen=True)
class Manifest:
    """A verified, checked release manifest."""

    version: str
    published: datetime
    bundle_url: str
    sha256: str
    size: int
    bundle_signature: str
    allow_downgrade: bool
    waves: tuple[Wave, ...]  # waves[0] is the canary
    window: tuple[time, time] | None
    never_while_order_waits: bool
    max_failure_rate: float
    halted: dict[str, Any] | None
    unknown_keys: tuple[str, ...] = field(default=())

    def in_window(self, now: datetime, zone: tzinfo) -> bool:
        """Whether ``now`` is inside the maintenance window, in ``zone`` (the selling
        point's); no window: always."""
        if self.window is None:
            return True
        start, end = self.window
        local = now.astimezone(zone).time().replace(tzinfo=None)
        if start <= end:
            return start <= local < end
        return local >= start or local < end  # across midnight


def envelope(document: dict[str, Any], signature: str) -> bytes:
    """The retained message for a manifest ``document`` and its signature."""
    text = manifest_text(document)
    return json.dumps({"manifest": text, "signature": signature}).encode()


def manifest_text(document: dict[str, Any]) -> str:
    """The manifest's signed text: sorted keys, compact."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def open_envelope(payload: bytes) -> tuple[str, str]:
    """``(manifest text, signature)`` from a retained message, or ManifestError."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ManifestError("unreadable", f"a manifest message over {MAX_MESSAGE_BYTES} bytes")
    try:
        outer = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("unreadable", "the manifest message is not JSON") from None
    if not isinstance(outer, dict):
        raise ManifestError("unreadable", "the manifest message is not a JSON object")
    text, signature = outer.get("manifest"), outer.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        raise ManifestError("unreadable", "the manifest message needs 'manifest' and 'signature'")
    return text, signature


def verify(text: str, signature: str, signers: str | Path = SIGNERS) -> str:
    """The principal that signed ``text``, or ManifestError: ``unknown_signer`` when the
    signature is from a key the signers file does not hold, ``bad_signature`` when a trusted
    key's signature does not match the text. The same two steps as image/update-edged."""
    path = Path(signers)
    try:
        if path.stat().st_size == 0:
            raise OSError("empty")
    except OSError:
        raise ManifestError("no_signers", f"no trusted update signers in {path}") from None
    data = text.encode()
    with tempfile.TemporaryDirectory(prefix="edged-manifest-") as tmp:
        sig = Path(tmp) / "manifest.sig"
        sig.write_text(signature, encoding="utf-8")
        try:
            found = subprocess.run(
                [SSH_KEYGEN, "-Y", "find-principals", "-f", str(path), "-s", str(sig)],
                input=data,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except FileNotFoundError:
            raise ManifestError("no_signers", "ssh-keygen is missing: cannot check") from None
        principal = found.stdout.decode(errors="replace").strip().splitlines()
        if found.returncode != 0 or not principal:
            raise ManifestError("unknown_signer", "the manifest is not signed by a trusted key")
        check = ["-Y", "verify", "-f", str(path), "-I", principal[0], "-n", NAMESPACE]
        checked = subprocess.run(
            [SSH_KEYGEN, *check, "-s", str(sig)],
            input=data,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if checked.returncode != 0:
            raise ManifestError("bad_signature", "the manifest's signature does not verify")
    return principal[0]


def sign(text: str, key: str | Path) -> str:
    """The SSH signature of ``text`` with the release key (the vendor's side)."""
    with tempfile.TemporaryDirectory(prefix="edged-release-") as tmp:
        data = Path(tmp) / "manifest"
        data.write_text(text, encoding="utf-8")
        done = subprocess.run(
            [SSH_KEYGEN, "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(data)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ManifestError(
                "no_signers", f"ssh-keygen could not sign: {done.stderr.decode().strip()}"
            )
        return (Path(tmp) / "manifest.sig").read_text(encoding="utf-8")


# -- fields ---------------------------------------------------------------------------------


def _time(value: object, key: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ManifestError("invalid", f"{key}: an ISO 8601 time with its UTC offset")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ManifestError("invalid", f"{key}: an ISO 8601 time with its UTC offset") from None
    if at.tzinfo is None:
        raise ManifestError("invalid", f"{key}: the time needs its UTC offset (Z or +hh:mm)")
    return at.astimezone(UTC)


def _number(value: object, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ManifestError("invalid", f"{key}: a number from {low:g} to {high:g}")
    return float(value)


def _object(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError("invalid", f"{key}: expected an object")
    return value


def _unknown(value: dict[str, Any], where: str, out: list[str]) -> None:
    prefix = f"{where.removesuffix('[]')}." if where else ""
    out.extend(f"{prefix}{k}"[:80] for k in value if k not in KNOWN[where])


def parse(text: str) -> Manifest:
    """Check a verified manifest's fields; ManifestError(``invalid``) names the first wrong
    one. Unknown keys are ignored and listed in ``unknown_keys``."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise ManifestError("invalid", "the signed manifest is not JSON") from None
    doc = _object(raw, "manifest")
    unknown: list[str] = []
    _unknown(doc, "", unknown)
    if doc.get("kind") != KIND or doc.get("v") != 1:
        raise ManifestError("invalid", f"kind: not an {KIND} manifest of version 1")
    version = doc.get("version")
    if not isinstance(version, str) or not VERSION.match(version):
        raise ManifestError("invalid", "version: a version number")
    bundle = _object(doc.get("bundle"), "bundle")
    _unknown(bundle, "bundle", unknown)
    url = bundle.get("url")
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > 2048:
        raise ManifestError("invalid", "bundle.url: an https:// address")
    sha = bundle.get("sha256")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise ManifestError("invalid", "bundle.sha256: 64 lower-case hex digits")
    size = _number(bundle.get("size"), "bundle.size", 1, MAX_BUNDLE_BYTES)
    sig = bundle.get("signature")
    if not isinstance(sig, str) or "BEGIN SSH SIGNATURE" not in sig or len(sig) > 8192:
        raise ManifestError("invalid", "bundle.signature: the bundle's SSH signature")
    downgrade = doc.get("allow_downgrade", False)
    if not isinstance(downgrade, bool):
        raise ManifestError("invalid", "allow_downgrade: true or false")
    rollout = _object(doc.get("rollout"), "rollout")
    _unknown(rollout, "rollout", unknown)
    start = _time(rollout.get("start"), "rollout.start")
    canary = _number(rollout.get("canary_percent", 0), "rollout.canary_percent", 0, 100)
    waves = [Wave(canary, start)]
    raw_waves = rollout.get("waves", [])
    if not isinstance(raw_waves, list) or len(raw_waves) > 20:
        raise ManifestError("invalid", "rollout.waves: a list of at most 20 waves")
    for n, item in enumerate(raw_waves):
        wave = _object(item, f"rollout.waves[{n}]")
        _unknown(wave, "waves[]", unknown)
        percent = _number(wave.get("percent"), f"rollout.waves[{n}].percent", 0, 100)
        at = _time(wave.get("start"), f"rollout.waves[{n}].start")
        if percent < waves[-1].percent or at < waves[-1].start:
            raise ManifestError(
                "invalid", f"rollout.waves[{n}]: percent and start must not go back"
            )
        waves.append(Wave(percent, at))
    if waves[-1].percent != 100:
        raise ManifestError("invalid", "rollout.waves: the last wave must reach 100 percent")
    window = None
    if rollout.get("window") is not None:
        spec = _object(rollout["window"], "rollout.window")
        _unknown(spec, "window", unknown)
        ends = []
        for end in ("from", "to"):
            m = HHMM.match(str(spec.get(end, "")))
            if not m:
                raise ManifestError("invalid", f"rollout.window.{end}: HH:MM")
            ends.append(time(int(m[1]), int(m[2])))
        window = (ends[0], ends[1])
    waits = rollout.get("never_while_order_waits", True)
    if not isinstance(waits, bool):
        raise ManifestError("invalid", "rollout.never_while_order_waits: true or false")
    rate = _number(rollout.get("max_failure_rate", 0.0), "rollout.max_failure_rate", 0, 1)
    halted = doc.get("halted")
    if halted is not None:
        halted = _object(halted, "halted")
        _unknown(halted, "halted", unknown)
        halted = {
            "at": str(halted.get("at", ""))[:40],
            "reason": str(halted.get("reason", ""))[:200],
            "wave": halted.get("wave") if isinstance(halted.get("wave"), int) else None,
        }
    return Manifest(
        version=version,
        published=_time(doc.get("published"), "published"),
        bundle_url=url,
        sha256=sha,
        size=int(size),
        bundle_signature=sig,
        allow_downgrade=downgrade,
        waves=tuple(waves),
        window=window,
        never_while_order_waits=waits,
        max_failure_rate=rate,
        halted=halted,
        unknown_keys=tuple(unknown[:20]),
    )


def read(payload: bytes, signers: str | Path = SIGNERS) -> tuple[Manifest, str, str]:
    """A retained message → ``(manifest, its text, principal)``: opened, verified, parsed."""
    text, signature = open_envelope(payload)
    principal = verify(text, signature, signers)
    return parse(text), text, principal


def bucket(box_id: str) -> float:
    """Where a box stands in every rollout, 0 (inclusive) to 100 (exclusive): from a hash of
    its id, so it never moves and the vendor computes the same."""
    digest = hashlib.sha256(f"edged-rollout:{box_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def wave_of(box_id: str, waves: tuple[Wave, ...] | list[Wave]) -> int:
    """The index of the box's wave (0: the canary)."""
    where = bucket(box_id)
    for n, wave in enumerate(waves):
        if where < wave.percent:
            return n
    return len(waves) - 1


def compare(running: str, offered: str) -> str:
    """``older``, ``same``, ``newer`` or ``invalid`` (PEP 440 order, by the packaging
    library, or pip's copy of it in a venv without it, as image/update-edged does)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - every venv has pip's copy
        from pip._vendor.packaging.version import (  # type: ignore[assignment]
            InvalidVersion,
            Version,
        )
    try:
        old, new = Version(running), Version(offered)
    except InvalidVersion:
        return "invalid"
    return "older" if new < old else "same" if new == old else "newer"
