"""Which Sinqro account and selling point the box works for.

Two ways in: the config file (``sinqro.user_token`` and ``sinqro.selling_point_id``, e.g.
from first-boot provisioning), or the web page's pairing (login, selling point picker),
kept beside the journal (:meth:`Journal.kept_get`: the state directory's
``credentials.json``, mode 0600) so it survives restarts and a rebuilt journal, and never
sits in the config file the owner might share. A web pairing wins over the file; logging
out clears it and also stops the box from falling back to the file's token until it is
paired again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from edged.journal.store import Journal
from edged.sinqro.settings import SinqroConfig

log = logging.getLogger(__name__)

KV_KEY = "pairing"


@dataclass(frozen=True)
class Pairing:
    """The user token and selling point the box uses; empty token means not paired."""

    user_token: str = ""
    selling_point_id: int = 0
    selling_point_name: str = ""
    username: str = ""
    timezone: str = ""

    @property
    def paired(self) -> bool:
        return bool(self.user_token) and self.selling_point_id > 0

    def public(self) -> dict[str, object]:
        """What may be shown on a page: never the token."""
        return {
            "paired": self.paired,
            "selling_point_id": self.selling_point_id,
            "selling_point_name": self.selling_point_name,
            "username": self.username,
        }


async def load_pairing(journal: Journal, config: SinqroConfig) -> Pairing:
    """The pairing in force: the web's if any, else the config file's."""
    raw = await journal.kept_get(KV_KEY)
    data = _decode(raw) if raw is not None else None
    if data is not None:
        return Pairing(
            user_token=str(data.get("user_token", "")),
            selling_point_id=_int(data.get("selling_point_id")),
            selling_point_name=str(data.get("selling_point_name", "")),
            username=str(data.get("username", "")),
            timezone=str(data.get("timezone", "")),
        )
    return Pairing(user_token=config.user_token, selling_point_id=config.selling_point_id)


async def save_pairing(journal: Journal, pairing: Pairing) -> None:
    """Store a pairing (a logout stores an empty one, which masks the config's token).
    Nothing is written when it did not change."""
    await journal.kept_set(
        KV_KEY,
        json.dumps(
            {
                "user_token": pairing.user_token,
                "selling_point_id": pairing.selling_point_id,
                "selling_point_name": pairing.selling_point_name,
                "username": pairing.username,
                "timezone": pairing.timezone,
            }
        ),
    )


def _decode(raw: str) -> dict[str, object] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        log.error("pairing: the stored pairing cannot be read; using the config file's")
        return None
    return data


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
