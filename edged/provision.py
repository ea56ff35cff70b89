"""First-boot provisioning from a file on the SD card's FAT boot partition.

The vendor or the owner writes ``edged-provision.toml`` onto the boot partition (any computer
can write FAT) and boots the box. ``edged-provision.service`` then runs::

    python -m edged.provision --boot /boot/firmware --etc /etc/edged

The file is an edged config fragment plus an optional ``[wifi]`` table::

    [sinqro]
    server_token = "..."          # secrets: moved to /etc/edged/edged.env
    user_token = "..."
    selling_point_id = 1234

    [[printers]]
    name = "kitchen"
    uri = "tcp://192.168.1.50:9100"

    [wifi]                        # optional: a NetworkManager connection
    ssid = "Shop"
    psk = "at least 8 characters" # leave out for an open network
    hidden = false

It is validated with the daemon's own config loader, on top of the box's current config, so
what is accepted here is what ``edged run`` will accept. Then:

* the Sinqro tokens go to ``/etc/edged/edged.env`` (``EDGED_SERVER_TOKEN=``,
  ``EDGED_USER_TOKEN=``), mode 0600, root:edged, other lines of that file kept;
* the rest goes to ``/etc/edged/edged.toml.d/50-provision.toml``, mode 0640, root:edged (the
  daemon runs as edged and must read it), replacing the previous one; a file with only
  tokens and/or ``[wifi]`` leaves the previous settings as they were;
* Wi-Fi goes to ``/etc/NetworkManager/system-connections/edged-wifi.nmconnection``, mode 0600;
* the file is deleted from the boot partition.

A file that does not validate is renamed ``edged-provision.toml.invalid``, the reason is
written beside it in ``edged-provision.toml.invalid.txt`` and logged, and nothing on the box
changes: it keeps its old config. Exit status: 0 applied or nothing to do, 1 invalid file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import grp
import logging
import os
import re
import sys
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from edged.config import Config, from_layers, read_toml
from edged.config import layers as config_layers
from edged.configtools import ConfigError, dump_toml

log = logging.getLogger(__name__)

PROVISION_FILE = "edged-provision.toml"
DROPIN_NAME = "50-provision.toml"
ENV_NAME = "edged.env"
MAIN_CONFIG = "edged.toml"
NM_CONNECTION = "edged-wifi.nmconnection"
SECRETS = {"server_token": "EDGED_SERVER_TOKEN", "user_token": "EDGED_USER_TOKEN"}
# Characters a token may hold: safe unquoted in a systemd EnvironmentFile and in sh.
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=:-]+")
_ENV_LINE_RE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


@dataclasses.dataclass(frozen=True)
class Wifi:
    """One Wi-Fi network for NetworkManager."""

    ssid: str
    psk: str = ""
    hidden: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a valid provisioning file changes on the box."""

    dropin: dict[str, Any]
    secrets: dict[str, str]
    wifi: Wifi | None


# -- parsing and validation ----------------------------------------------------------------


def parse_wifi(doc: Any, file: str) -> Wifi:
    """A ``[wifi]`` table (provisioning file, onboarding page) checked; :class:`ConfigError`
    names the key, never echoes the passphrase."""
    if not isinstance(doc, Mapping):
        raise ConfigError(file, "wifi", "expected a table")
    known = {"ssid", "psk", "hidden"}
    for key in doc:
        if key not in known:
            raise ConfigError(
                file, f"wifi.{key}", f"unknown key (known keys here: {', '.join(sorted(known))})"
            )
    ssid = doc.get("ssid")
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise ConfigError(file, "wifi.ssid", "expected a network name of 1 to 32 bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in ssid):
        raise ConfigError(file, "wifi.ssid", "control characters are not allowed")
    psk = doc.get("psk", "")
    # Never echo the passphrase back, not even in an error.
    if not isinstance(psk, str):
        raise ConfigError(file, "wifi.psk", "expected a string")
    if psk:
        hex64 = len(psk) == 64 and all(c in "0123456789abcdefABCDEF" for c in psk)
        printable = all(32 <= ord(c) < 127 for c in psk)
        if not hex64 and not (8 <= len(psk) <= 63 and printable):
            raise ConfigError(
                file,
                "wifi.psk",
                "a WPA passphrase is 8 to 63 printable ASCII characters (or 64 hex digits)",
            )
    hidden = doc.get("hidden", False)
    if not isinstance(hidden, bool):
        raise ConfigError(file, "wifi.hidden", "expected true or false")
    return Wifi(ssid=ssid, psk=psk, hidden=hidden)


# A provisioning file is a short config fragment; anything larger is refused unread.
PROVISION_MAX_BYTES = 64 * 1024
# Keys that name a file or folder, wherever they stand in the document.
_PATH_KEYS = frozenset(
    {"state_dir", "path", "logo", "ca_file", "cert_file", "key_file", "tls_cert", "tls_key"}
)
# Facts of the board the image sets; a file on the boot partition does not move them.
_IMAGE_KEYS = {"box": ("serial_file", "machine_id_file")}


def _climbs(path: str) -> bool:
    return ".." in PurePosixPath(path).parts


def check_boundaries(doc: Mapping[str, Any], file: str) -> None:
    """Refuse what a file anyone can write on a FAT partition must not decide for root: paths
    that climb (``..``), a relative state directory, a journal outside the state directory,
    printer devices outside ``/dev`` and virtual printers. Raises :class:`ConfigError`."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                here = f"{where}.{key}" if where else str(key)
                if key in _PATH_KEYS and isinstance(value, str) and _climbs(value):
                    raise ConfigError(file, here, "a path with '..' is not allowed here")
                walk(value, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")

    walk(doc, "")
    box = doc.get("box")
    if isinstance(box, Mapping):
        state_dir = box.get("state_dir")
        if isinstance(state_dir, str) and not PurePosixPath(state_dir).is_absolute():
            raise ConfigError(
                file, "box.state_dir", "expected an absolute path, e.g. /var/lib/edged"
            )
        for key in _IMAGE_KEYS["box"]:
            if key in box:
                raise ConfigError(file, f"box.{key}", "set by the image, not by provisioning")
    journal = doc.get("journal")
    if isinstance(journal, Mapping):
        path = journal.get("path")
        if isinstance(path, str) and PurePosixPath(path).is_absolute():
            raise ConfigError(
                file,
                "journal.path",
                "expected a file name inside box.state_dir, e.g. edged.sqlite3",
            )
    printers = doc.get("printers")
    if isinstance(printers, list):
        for i, printer in enumerate(printers):
            uri = printer.get("uri") if isinstance(printer, Mapping) else None
            if isinstance(uri, str):
                _check_printer_uri(uri, file, f"printers[{i}].uri")


def _check_printer_uri(uri: str, file: str, key: str) -> None:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return  # not a URI at all: the daemon's loader says what is wrong with it
    if scheme == "virtual":
        raise ConfigError(
            file, key, "virtual printers are for trying the box, not for provisioning"
        )
    if scheme in ("file", "serial"):
        device = PurePosixPath(rest.partition("?")[0])
        if _climbs(str(device)) or device.parts[:2] != ("/", "dev") or len(device.parts) < 3:
            raise ConfigError(file, key, f"a {scheme}:// printer must be a device under /dev")


def split(doc: Mapping[str, Any], file: str) -> Plan:
    """Separate a provisioning document into drop-in, secrets and Wi-Fi (no validation of
    the drop-in part beyond the secrets and :func:`check_boundaries`; see :func:`validate`)."""
    check_boundaries(doc, file)
    dropin = {k: v for k, v in doc.items() if k != "wifi"}
    wifi = parse_wifi(doc["wifi"], file) if "wifi" in doc else None
    secrets: dict[str, str] = {}
    sinqro = dropin.get("sinqro")
    if isinstance(sinqro, Mapping):
        sinqro = dict(sinqro)
        for key, env in SECRETS.items():
            if key not in sinqro:
                continue
            value = sinqro.pop(key)
            if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
                raise ConfigError(
                    file,
                    f"sinqro.{key}",
                    "expected a token of letters, digits and . _ ~ + / = : -",
                )
            secrets[env] = value
        if sinqro:
            dropin["sinqro"] = sinqro
        else:
            del dropin["sinqro"]
    return Plan(dropin=dropin, secrets=secrets, wifi=wifi)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` pairs of an env file (unquoted values, as this module writes)."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE_RE.match(line)
        if match and not line.lstrip().startswith("#"):
            value = line[match.end() :].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[match.group(1)] = value
    return out


def _env_names(cls: Any = None) -> set[str]:
    """Every environment variable a config key may come from."""
    if cls is None:
        cls = Config
    names: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("env"):
            names.add(f.metadata["env"])
        tp = hints.get(f.name)
        for candidate in (tp, *typing.get_args(tp)):
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
                names |= _env_names(candidate)
    return names


@contextlib.contextmanager
def _daemon_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Only ``values`` among the config's environment variables, for the duration."""
    names = _env_names() | set(values)
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    os.environ.update(values)
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(saved)


def validate(plan: Plan, source: Path, etc: Path) -> None:
    """Check the box's config as it will be once ``plan`` is applied, with the daemon's loader.

    The environment the daemon will see is the current ``edged.env`` plus the new secrets,
    and nothing from this process's own environment. Raises :class:`ConfigError`.
    """
    main = etc / MAIN_CONFIG
    if main.is_file():
        full = config_layers(main)
        base = config_layers(main, with_web_settings=False)
        web = full[len(base) :]
        dropins = base[1:]
        if plan.dropin:
            # The new part replaces the old 50-provision.toml; errors in it name the
            # provisioning file, not a file that does not exist yet.
            dropins = [(p, d) for p, d in dropins if p.name != DROPIN_NAME]
            dropins.append((source, plan.dropin))
        dropins.sort(key=lambda item: DROPIN_NAME if item[0] == source else item[0].name)
        stack = [base[0], *dropins, *web]
    else:
        stack = [(source, plan.dropin)]
    env = read_env_file(etc / ENV_NAME)
    env.update(plan.secrets)
    with _daemon_environment({k: v for k, v in env.items() if k in _env_names() and v}):
        from_layers(stack)


# -- writing -------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str, *, mode: int, gid: int = -1) -> None:
    """Write ``path`` via a temporary file in the same directory, with ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        if gid >= 0:
            os.fchown(fd, -1, gid)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def env_file_text(old: str, secrets: Mapping[str, str]) -> str:
    """``old`` env file text with ``secrets`` set; other lines are kept as they were."""
    lines: list[str] = []
    seen: set[str] = set()
    for line in old.splitlines():
        match = _ENV_LINE_RE.match(line)
        if match and match.group(1) in secrets and not line.lstrip().startswith("#"):
            if match.group(1) in seen:
                continue
            seen.add(match.group(1))
            lines.append(f"{match.group(1)}={secrets[match.group(1)]}")
        else:
            lines.append(line)
    if not old:
        lines.append("# Secrets for edged, read by systemd (EnvironmentFile=). Mode 0600.")
    lines += [f"{k}={v}" for k, v in secrets.items() if k not in seen]
    return "\n".join(lines) + "\n"


def _keyfile_escape(value: str) -> str:
    out = value.replace("\\", "\\\\")
    if out.startswith(" "):
        out = "\\s" + out[1:]
    return out


def nmconnection_text(wifi: Wifi) -> str:
    """A NetworkManager keyfile for ``wifi``."""
    raw = wifi.ssid.encode()
    if all(c.isalnum() or c in " -_.@+" for c in wifi.ssid) and not wifi.ssid.startswith(" "):
        ssid = wifi.ssid
    else:
        # Any other byte is unambiguous as NetworkManager's list-of-bytes form.
        ssid = "".join(f"{b};" for b in raw)
    lines = [
        "# Written by edged provisioning from edged-provision.toml.",
        "[connection]",
        "id=edged-wifi",
        f"uuid={uuid.uuid5(uuid.NAMESPACE_URL, 'edged-wifi:' + raw.hex())}",
        "type=wifi",
        "autoconnect=true",
        "",
        "[wifi]",
        "mode=infrastructure",
        f"ssid={ssid}",
        f"hidden={'true' if wifi.hidden else 'false'}",
        "",
    ]
    if wifi.psk:
        lines += ["[wifi-security]", "key-mgmt=wpa-psk", f"psk={_keyfile_escape(wifi.psk)}", ""]
    lines += ["[ipv4]", "method=auto", "", "[ipv6]", "method=auto", ""]
    return "\n".join(lines)


def _gid(group: str | int | None) -> int:
    if group is None:
        return -1
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("group %s does not exist; files keep the default group", group)
        return -1


def apply(plan: Plan, etc: Path, nm_dir: Path, *, group: str | int | None) -> list[Path]:
    """Write what ``plan`` says. Returns the files written."""
    gid = _gid(group)
    written: list[Path] = []
    if plan.secrets:
        env_path = etc / ENV_NAME
        old = env_path.read_text(encoding="utf-8") if env_path.is_file() else ""
        write_atomic(env_path, env_file_text(old, plan.secrets), mode=0o600, gid=gid)
        written.append(env_path)
    if plan.dropin:
        dropin = etc / (MAIN_CONFIG + ".d") / DROPIN_NAME
        header = (
            "# Written by edged provisioning from edged-provision.toml on the boot partition.\n"
            "# The next provisioning file with settings replaces it; put local changes in a\n"
            "# 90-*.toml drop-in instead.\n"
        )
        write_atomic(dropin, header + dump_toml(plan.dropin), mode=0o640, gid=gid)
        written.append(dropin)
    if plan.wifi is not None:
        # NetworkManager ignores a keyfile that is not root's own and private.
        path = nm_dir / NM_CONNECTION
        write_atomic(path, nmconnection_text(plan.wifi), mode=0o600)
        written.append(path)
    return written


# -- the whole step ------------------------------------------------------------------------


def provision(
    boot: Path,
    etc: Path,
    *,
    nm_dir: Path = Path("/etc/NetworkManager/system-connections"),
    group: str | int | None = "edged",
) -> bool | None:
    """Apply ``boot/edged-provision.toml`` if there is one.

    Returns None when there is no file, True when it was applied and removed, False when it
    was invalid (renamed ``.invalid``, reason beside it, nothing else changed).
    """
    source = boot / PROVISION_FILE
    if not source.is_file():
        log.info("no %s; nothing to provision", source)
        return None
    try:
        if source.stat().st_size > PROVISION_MAX_BYTES:
            raise ConfigError(
                str(source), "", f"larger than {PROVISION_MAX_BYTES // 1024} KiB; not read"
            )
        plan = split(read_toml(source), str(source))
        validate(plan, source, etc)
    except ConfigError as exc:
        reason = str(exc)
        log.error("%s rejected, box config unchanged: %s", source, reason)
        bad = source.with_name(PROVISION_FILE + ".invalid")
        os.replace(source, bad)
        note = bad.with_name(bad.name + ".txt")
        note.write_text(
            f"{source} was not applied; the box kept its old configuration.\n"
            f"Reason: {reason}\n"
            f"Fix the file, rename it back to {PROVISION_FILE} and boot the box again.\n",
            encoding="utf-8",
        )
        _fsync_dir(boot)
        return False
    written = apply(plan, etc, nm_dir, group=group)
    source.unlink()
    _fsync_dir(boot)
    log.info(
        "provisioned from %s: %s%s",
        source,
        ", ".join(str(p) for p in written),
        "" if plan.secrets else " (no tokens in the file; edged.env unchanged)",
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edged.provision",
        description=f"Apply {PROVISION_FILE} from the boot partition to /etc/edged.",
    )
    parser.add_argument("--boot", default="/boot/firmware", help="boot partition mount point")
    parser.add_argument("--etc", default="/etc/edged", help="edged's config directory")
    parser.add_argument(
        "--nm-dir",
        default="/etc/NetworkManager/system-connections",
        help="NetworkManager's connection directory",
    )
    parser.add_argument("--group", default="edged", help="group that may read the config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    result = provision(Path(args.boot), Path(args.etc), nm_dir=Path(args.nm_dir), group=args.group)
    return 1 if result is False else 0


if __name__ == "__main__":
    sys.exit(main())
