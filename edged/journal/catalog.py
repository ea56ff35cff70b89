"""The journal's catalog tables: the last catalog read from Sinqro per selling point, and
the sold-out items the box puts back on at a time of its own.

:meth:`CatalogStore.store_catalog` compares the new copy's digest with the stored one on
the journal's thread and writes (row and ``catalog.changed`` event, one transaction) only
when they differ: a refresh that finds the same catalog writes nothing to the card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edged.decoding import digest
from edged.journal import events as ev
from edged.journal.engine import JournalEngine
from edged.journal.tx import Tx


@dataclass(frozen=True)
class Timer:
    """An item sold out until ``until`` (unix time)."""

    selling_point_id: int
    kind: str  # product | option
    item_id: int
    category_id: int | None
    until: float


class CatalogStore(JournalEngine):
    """Catalog and availability timers, over the journal's one connection."""

    async def load_catalog(self, selling_point_id: int) -> dict[str, Any] | None:
        """The stored catalog JSON of a selling point, or None."""
        rows = await self._query(
            "SELECT payload FROM catalog WHERE selling_point_id = ?", (selling_point_id,)
        )
        if not rows:
            return None
        try:
            data = json.loads(str(rows[0][0]))
        except ValueError:
            return None  # unreadable: the next refresh writes a good one
        return data if isinstance(data, dict) else None

    async def store_catalog(
        self, selling_point_id: int, payload: dict[str, Any], summary: dict[str, Any]
    ) -> bool:
        """Keep ``payload`` (canonical JSON) when it differs from the stored copy, with a
        ``catalog.changed`` event carrying ``summary``; True when it was written."""
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        new_digest = digest(text)

        def run(tx: Tx) -> bool:
            row = tx.execute(
                "SELECT digest FROM catalog WHERE selling_point_id = ?", (selling_point_id,)
            ).fetchone()
            if row is not None and row[0] == new_digest:
                return False
            tx.execute(
                "INSERT INTO catalog (selling_point_id, digest, payload, changed)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (selling_point_id) DO UPDATE SET"
                " digest = excluded.digest, payload = excluded.payload, changed = excluded.changed",
                (selling_point_id, new_digest, text, tx.now),
            )
            tx.append_event(
                ev.CATALOG_CHANGED, None, {"selling_point_id": selling_point_id, **summary}
            )
            return True

        return await self.transaction(run)

    async def set_timer(
        self,
        selling_point_id: int,
        kind: str,
        item_id: int,
        category_id: int | None,
        until: float | None,
    ) -> None:
        """Put the item back on at ``until``, or with None forget its timer (a row that is
        already so is not written again)."""

        def run(tx: Tx) -> None:
            if until is None:
                tx.execute(
                    "DELETE FROM availability_timers"
                    " WHERE selling_point_id = ? AND kind = ? AND item_id = ?",
                    (selling_point_id, kind, item_id),
                )
                return
            tx.execute(
                "INSERT INTO availability_timers"
                " (selling_point_id, kind, item_id, category_id, until) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (selling_point_id, kind, item_id) DO UPDATE SET"
                " category_id = excluded.category_id, until = excluded.until"
                " WHERE until IS NOT excluded.until OR category_id IS NOT excluded.category_id",
                (selling_point_id, kind, item_id, category_id, until),
            )

        await self.transaction(run)

    async def timers(self, selling_point_id: int | None = None) -> list[Timer]:
        """The pending timers (of one selling point), soonest first."""
        sql = "SELECT * FROM availability_timers"
        params: tuple[Any, ...] = ()
        if selling_point_id is not None:
            sql += " WHERE selling_point_id = ?"
            params = (selling_point_id,)
        rows = await self._query(sql + " ORDER BY until", params)
        return [
            Timer(
                int(r["selling_point_id"]),
                str(r["kind"]),
                int(r["item_id"]),
                None if r["category_id"] is None else int(r["category_id"]),
                float(r["until"]),
            )
            for r in rows
        ]
