"""What a box tells its vendor about itself: the ``<prefix>/<box_id>/info`` document.

Everything here is read, never written: the kernel's files (uptime, SoC temperature, the
Raspberry Pi firmware's throttling flags), the disk, the journal's counts, update-edged's
record (:mod:`edged.fleet.box_events`), the staged update's state
(:mod:`edged.fleet.updater`, through ``fleet.rollout``) and the live :class:`~edged.state.BoxState`.
:class:`Telemetry` builds one JSON-ready dict; :meth:`Telemetry.significant` is the part
whose change is worth a message of its own.
"""

from __future__ import annotations

import glob
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edged import __version__
from edged.fleet.box_events import BoxEvents
from edged.fleet.identity import BoxIdentity
from edged.i18n import box_zone

log = logging.getLogger(__name__)

VERSION = 1
EVENTS_FILE = "box-events.jsonl"
# Raspberry Pi firmware: vcgencmd get_throttled's bits, exposed by the kernel driver.
THROTTLE_BITS = {
    0: "under_voltage",
    1: "freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "under_voltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}


@dataclass(frozen=True)
class KernelFiles:
    """Where the kernel tells what we report (moved in tests)."""

    uptime: str = "/proc/uptime"
    thermal: str = "/sys/class/thermal/thermal_zone0/temp"
    throttled: tuple[str, ...] = (
        "/sys/devices/platform/soc/soc:firmware/get_throttled",
        "/sys/devices/platform/soc@*/soc@*:firmware/get_throttled",
        "/sys/devices/platform/axi/*.firmware/get_throttled",
    )
    # hwmon "rpi_volt": in0_lcrit_alarm = 1 while the supply is under-voltage.
    hwmon: str = "/sys/class/hwmon/hwmon*"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def system_uptime(files: KernelFiles) -> float | None:
    text = _read(files.uptime)
    try:
        return round(float(text.split()[0]), 1) if text else None
    except (ValueError, IndexError):
        return None


def soc_temperature(files: KernelFiles) -> float | None:
    """Degrees Celsius from the first thermal zone (the SoC on a Pi), or None."""
    text = _read(files.thermal)
    try:
        return round(int(text) / 1000, 1) if text else None
    except ValueError:
        return None


def throttling(files: KernelFiles) -> dict[str, bool] | None:
    """The firmware's throttling flags, when the kernel exposes them; None elsewhere."""
    for pattern in files.throttled:
        for path in sorted(glob.glob(pattern)):
            text = _read(path)
            if not text:
                continue
            try:
                bits = int(text, 16)
            except ValueError:
                continue
            return {name: bool(bits >> bit & 1) for bit, name in THROTTLE_BITS.items()}
    for hwmon in sorted(glob.glob(files.hwmon)):
        if _read(f"{hwmon}/name") == "rpi_volt":
            alarm = _read(f"{hwmon}/in0_lcrit_alarm")
            if alarm in ("0", "1"):
                return {"under_voltage": alarm == "1"}
    return None


def local_midnight(timezone: str, now: float) -> float:
    """Unix time of the last midnight in ``timezone`` (the selling point's; the box's own
    zone when it is empty or unknown)."""
    local = datetime.fromtimestamp(now, box_zone(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass
class Telemetry:
    """Builds the info document. Inputs are small callables so any part can feed it:

    * ``box_name``: the name people read (``box.name``, read at each report);
    * ``state``: a BoxState-like snapshot (``link``, ``printer.*``, ``queued_commands``...);
    * ``selling_point``: ``(id, name, timezone)`` of the pairing (0 when not paired);
    * ``orders_since``: how many orders the box first saw since a unix time;
    * ``incidents``: the keys of the open alert incidents.
    """

    identity: BoxIdentity
    box_name: Callable[[], str]
    state: Callable[[], Mapping[str, Any]]
    selling_point: Callable[[], tuple[int, str, str]]
    orders_since: Callable[[float], Awaitable[int]]
    incidents: Callable[[], list[str]]
    storage_path: Path
    files: KernelFiles = field(default_factory=KernelFiles)
    started: float = field(default_factory=time.monotonic)
    # image/update-edged's record of updates and rollbacks, beside the journal.
    events: BoxEvents = field(init=False)

    def __post_init__(self) -> None:
        self.events = BoxEvents(Path(self.storage_path) / EVENTS_FILE)

    async def info(self) -> dict[str, Any]:
        now = time.time()
        state = self.state()
        sp_id, sp_name, timezone = self.selling_point()
        try:
            orders_today: int | None = await self.orders_since(local_midnight(timezone, now))
        except Exception as exc:  # a journal hiccup must not stop the report
            log.warning("fleet info: cannot count today's orders: %s", exc)
            orders_today = None
        free: int | None = None
        total: int | None = None
        try:
            disk = shutil.disk_usage(self.storage_path)
            free, total = disk.free, disk.total
        except OSError:
            pass
        return {
            "v": VERSION,
            "box_id": self.identity.box_id,
            "name": self.box_name(),
            "version": __version__,
            "board": self.identity.board_model,
            "hostname": self.identity.hostname,
            "uptime": round(time.monotonic() - self.started, 1),
            "system_uptime": system_uptime(self.files),
            "selling_point": {"id": sp_id, "name": sp_name} if sp_id else None,
            "link": state.get("link", "unknown"),
            "printers": _printers(state),
            "orders_today": orders_today,
            "waiting_orders": state.get("waiting_orders", 0),
            "queued_commands": state.get("queued_commands", 0),
            "storage_free": free,
            "storage_total": total,
            "soc_temperature": soc_temperature(self.files),
            "throttling": throttling(self.files),
            "incidents": self.incidents(),
            "updates": self.events.updates(),
            "rollout": state.get("fleet.rollout"),
            "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        }

    def significant(self) -> dict[str, Any]:
        """The part of the info whose change is published at once; cheap (no journal; the
        update record is parsed only when its file changed): counters and gauges ride along
        with the periodic refresh."""
        state = self.state()
        flags = throttling(self.files) or {}
        sp_id, _, _ = self.selling_point()
        return {
            "selling_point": sp_id,
            "link": state.get("link", "unknown"),
            "printers": _printers(state),
            "incidents": self.incidents(),
            # Only what is true now; the "occurred" bits stay set until a reboot.
            "throttling": {k: v for k, v in flags.items() if not k.endswith("_occurred")},
            "updates": self.events.updates(),
            "rollout": state.get("fleet.rollout"),
        }


def _printers(state: Mapping[str, Any]) -> dict[str, str]:
    return {
        key[8:]: str(value.get("state", "unknown")) if isinstance(value, Mapping) else "unknown"
        for key, value in sorted(state.items())
        if key.startswith("printer.")
    }
