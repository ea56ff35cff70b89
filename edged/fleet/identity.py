"""The box's identity: one stable id per box, never shared by two boxes by default.

The id names the box wherever machines meet it: the MQTT client id and topic trees (the POS
bridge, Home Assistant, the fleet connection), the Home Assistant device and the image's
host name (``edged-<id>``). ``box.name`` stays the name people read.

Where it comes from, first match wins:

1. ``box.id`` in the config, when set (a vendor's own inventory numbers);
2. the board's serial number (``/sys/firmware/devicetree/base/serial-number`` on a
   Raspberry Pi and most device-tree boards), lower-cased, letters and digits only;
3. ``/etc/machine-id``, which the image regenerates on every box's first boot. Per
   machine-id(5) it must not be shown as it is, so the id is a keyed hash of it;
4. a random id made once and kept in the state directory (``box-id``).

Every form is lower-case letters, digits and ``-``, 1 to 63 characters: one MQTT topic
level, one Mosquitto ACL ``%c`` and one DNS label. ``edged box-id`` prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import platform
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SERIAL_FILE = "/sys/firmware/devicetree/base/serial-number"
MACHINE_ID_FILE = "/etc/machine-id"
MODEL_FILES = ("/sys/firmware/devicetree/base/model", "/sys/class/dmi/id/product_name")
STATE_FILE = "box-id"
# The key of the machine-id hash: an application-specific id, as machine-id(5) asks.
_APP_KEY = b"edged box id"
_VALID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_SERIAL = 32

Source = Literal["config", "serial", "machine-id", "state"]


@dataclass(frozen=True)
class BoxIdentity:
    """Who this box is. ``serial`` is the board serial when there is one, else the id."""

    box_id: str
    source: Source
    serial: str
    board_model: str

    @property
    def hostname(self) -> str:
        """The host name the image gives the box."""
        return f"edged-{self.box_id}"[:63].rstrip("-")


def valid_box_id(value: str) -> bool:
    """Whether ``value`` can serve as a box id (topic level, ACL ``%c``, DNS label)."""
    return bool(_VALID.match(value)) and not value.endswith("-")


def _read_text(path: str | Path) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\x00", b"").decode("utf-8", "replace").strip()


def serial_id(raw: str) -> str:
    """A box id from a board serial; ``""`` when the serial is missing or blank (zeros)."""
    cleaned = re.sub(r"[^a-z0-9]", "", raw.lower())
    if not cleaned.strip("0"):
        return ""
    if len(cleaned) > MAX_SERIAL:
        return hashlib.sha256(cleaned.encode()).hexdigest()[:16]
    return cleaned


def machine_id_box_id(raw: str) -> str:
    """A box id from ``/etc/machine-id``, keyed-hashed; ``""`` when it is not a machine id."""
    value = raw.strip().lower()
    if not _MACHINE_ID.match(value) or not value.strip("0"):
        return ""
    return hmac.new(bytes.fromhex(value), _APP_KEY, hashlib.sha256).hexdigest()[:16]


def board_model(files: tuple[str, ...] = MODEL_FILES) -> str:
    """The board's model (``Raspberry Pi 4 Model B Rev 1.5``), else the CPU architecture."""
    for path in files:
        model = _read_text(path)
        if model:
            return model[:120]
    return platform.machine() or "unknown"


def _state_id(state_dir: Path) -> str:
    path = state_dir / STATE_FILE
    existing = _read_text(path)
    if valid_box_id(existing):
        return existing
    made = secrets.token_hex(8)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="ascii") as fh:
            fh.write(made + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        # Still unique for this run; the next start may pick another id and says so.
        log.warning("cannot keep the box id in %s: %s", path, exc)
    return made


def resolve_identity(
    *,
    configured: str = "",
    serial_file: str = SERIAL_FILE,
    machine_id_file: str = MACHINE_ID_FILE,
    state_dir: Path | None = None,
    model_files: tuple[str, ...] = MODEL_FILES,
) -> BoxIdentity:
    """Work out the box id (see the module docstring for the order)."""
    model = board_model(model_files)
    serial = serial_id(_read_text(serial_file)) if serial_file else ""
    if configured:
        if not valid_box_id(configured):
            raise ValueError(f"box id {configured!r}: lower-case letters, digits and '-' only")
        return BoxIdentity(configured, "config", serial or configured, model)
    if serial:
        return BoxIdentity(serial, "serial", serial, model)
    from_machine = machine_id_box_id(_read_text(machine_id_file)) if machine_id_file else ""
    if from_machine:
        return BoxIdentity(from_machine, "machine-id", from_machine, model)
    if state_dir is None:
        raise ValueError("no serial number, no machine id and no state directory for a box id")
    made = _state_id(state_dir)
    return BoxIdentity(made, "state", made, model)
