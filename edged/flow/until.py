"""When a sold-out item comes back on: "until closing", "for 1 h / 2 h", or a time of day,
in the selling point's time zone.

"Closing" is the end of the selling point's business day: the next 04:00 local time, so a
dish sold out during a service that runs past midnight stays off until the service is
over, and is back for the next day's (Sinqro's reference gives no closing hour the box
could read; docs/sinqro-assumptions.md).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_END_HOUR = 4
MAX_HOURS = 48
_HOURS = re.compile(r"(\d{1,2})\s*h", re.ASCII)
_MINUTES = re.compile(r"(\d{1,4})\s*m(?:in)?", re.ASCII)
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.h]([0-5]\d)", re.ASCII)


class UntilError(ValueError):
    """A time that is not one of the accepted forms."""


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def until_time(spec: str, now: float, timezone: str) -> float:
    """The unix time ``spec`` means, seen at ``now`` in ``timezone`` (the system's when
    empty or unknown): ``closing``, ``1h``, ``90m``, or ``HH:MM`` (today, or tomorrow when
    that has passed)."""
    text = spec.strip().lower()
    local = datetime.fromtimestamp(now, _zone(timezone)).astimezone(_zone(timezone))
    if text in ("closing", "close", "today"):
        end = local.replace(hour=DAY_END_HOUR, minute=0, second=0, microsecond=0)
        if end <= local:
            end = end + timedelta(days=1)
        return end.timestamp()
    if match := _HOURS.fullmatch(text):
        hours = int(match.group(1))
        if not 0 < hours <= MAX_HOURS:
            raise UntilError(f"between 1 and {MAX_HOURS} hours, not {hours}")
        return now + hours * 3600
    if match := _MINUTES.fullmatch(text):
        minutes = int(match.group(1))
        if not 0 < minutes <= MAX_HOURS * 60:
            raise UntilError(f"between 1 and {MAX_HOURS * 60} minutes, not {minutes}")
        return now + minutes * 60
    if match := _CLOCK.fullmatch(text):
        at = local.replace(
            hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0
        )
        if at <= local:
            at = at + timedelta(days=1)
        return at.timestamp()
    raise UntilError(f"{spec!r}: use closing, 1h, 2h, 90m or HH:MM")
