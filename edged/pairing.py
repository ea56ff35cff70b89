"""Which Sinqro account and selling point the box works for.

Two ways in: the config file (``sinqro.user_token`` and ``sinqro.selling_point_id``, e.g.
from first-boot provisioning), or the web page's pairing (login, selling point picker),
stored in the journal's ``kv`` table so it survives restarts and never sits in a file the
owner might share. A web pairing wins over the file; logging out clears it and also stops
the box from falling back to the file's token until it is paired again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edged.config import SinqroConfig
from edged.journal.store import Journal

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
    raw = await journal.kv_get(KV_KEY)
    if raw is not None:
        data = json.loads(raw)
        return Pairing(
            user_token=str(data.get("user_token", "")),
            selling_point_id=int(data.get("selling_point_id", 0)),
            selling_point_name=str(data.get("selling_point_name", "")),
            username=str(data.get("username", "")),
            timezone=str(data.get("timezone", "")),
        )
    return Pairing(user_token=config.user_token, selling_point_id=config.selling_point_id)


async def save_pairing(journal: Journal, pairing: Pairing) -> None:
    """Store a pairing (a logout stores an empty one, which masks the config's token)."""
    await journal.kv_set(
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
