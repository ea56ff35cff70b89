"""Names in the MQTT bridge's topic tree: topic levels made from names, state topics, and
request ids taken from MQTT 5 correlation data (the tree itself: :mod:`edged.bridges.mqtt`).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["STATE_KEYS", "correlation_id", "topic_id"]

_PLAIN_ID = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)
_UNSAFE = re.compile(r"[^a-z0-9]+", re.ASCII)
# BoxState keys mirrored under <base>/state/, and their topic names.
STATE_KEYS: dict[str, str] = {
    "waiting_orders": "waiting_orders",
    "queued_commands": "queued_commands",
    "link": "link",
    "panel.led": "led",
    "panel.buzzer": "buzzer",
}


def topic_id(name: str) -> str:
    """A box or printer name as one topic level, client id part and Home Assistant id,
    never the same level for two different names.

    A name of ASCII letters, digits and ``-`` (at most 64) is kept as it is (``shop-1``, and
    every box id of :mod:`edged.fleet.identity`). Any other becomes a readable slug, ``_``
    and 16 hex digits of the name's SHA-256: ``Pizza Roma`` -> ``pizza-roma_<hash>``,
    ``寿司屋`` -> ``box_<hash>``. A kept name has no ``_``, so it never equals a slugged one;
    two slugged names meet only if 64 bits of their hashes agree.
    """
    if _PLAIN_ID.fullmatch(name):
        return name
    slug = _UNSAFE.sub("-", name.lower()).strip("-")[:40].rstrip("-") or "box"
    tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}_{tag}"


def correlation_id(data: bytes | None) -> str | None:
    """A request id from MQTT 5 CorrelationData, when the JSON carries none."""
    if not data:
        return None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data.hex()[:64]
    return text if re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", text) else data.hex()[:64]
