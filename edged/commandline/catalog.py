"""``edged products | sold-out | available``: the selling point's catalog from the journal.

``products`` lists the catalog as the box last read it from Sinqro (``--refresh``: read it
now). ``sold-out``
and ``available`` queue the change in the outbox, like the page and the POS do: a running
daemon sends it within a second, a stopped one when it starts, and ``--wait`` tells what
Sinqro answered. ``--until`` (``closing``, ``1h``, ``2h``, ``HH:MM``) leaves a timer: the
daemon puts the item back on at that time in the selling point's time zone.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Any

from edged.commandline.base import (
    EX_OK,
    EX_REFUSED,
    EX_UNAVAILABLE,
    complain,
    dump_json,
    say,
)
from edged.commandline.orders import refusal, table, with_journal
from edged.config import Config
from edged.i18n import N_, Locale
from edged.journal.store import Journal

if TYPE_CHECKING:
    from edged.flow.pairing import Pairing

REFUSALS = {
    "UNKNOWN_PRODUCT": N_("Refused: no product or option by that name, id or external id."),
    "AMBIGUOUS_PRODUCT": N_("Refused: several products match; give the id. {why}"),
    "NOT_PAIRED": N_("Refused: the box is not paired to a selling point."),
    "BAD_UNTIL": N_("Refused: {why}"),
}


def _refusal(code: str, message: str, locale: Locale) -> str:
    known = REFUSALS.get(code)
    if known is None:
        return refusal(code, message, locale)
    return f"{locale.gettext(known).format(why=message)} ({code})"


def cmd_products(args: argparse.Namespace) -> int:
    from edged.flow.pairing import load_pairing
    from edged.sinqro.catalog import Catalog

    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        _ = locale.gettext
        pairing = await load_pairing(journal, config.sinqro)
        if args.refresh and not await _refresh(config, journal, pairing, locale):
            return EX_UNAVAILABLE
        catalog = Catalog.from_json(await journal.load_catalog(pairing.selling_point_id))
        timers = {(t.kind, t.item_id): t.until for t in await journal.timers()}
        rows: list[dict[str, Any]] = []
        for p in sorted(catalog.products, key=lambda p: (p.parent_id or p.id, p.id)):
            rows.append(_row("product", p.id, p.name, p.external_id, p.available, timers))
        for c in sorted(catalog.categories, key=lambda c: c.id):
            for o in c.options:
                row = _row("option", o.id, o.name, o.external_id, o.available, timers)
                rows.append({**row, "category": c.name})
        if args.unavailable:
            rows = [r for r in rows if not r["available"]]
        if args.json:
            for row in rows:
                if row["back_at"] is not None:
                    row["back_at_text"] = locale.datetime(row["back_at"])
            dump_json(rows)
            return EX_OK
        if not rows:
            say(_("nothing sold out") if args.unavailable else _("no catalog read yet"))
            return EX_OK
        lines = [(_("ID"), _("KIND"), _("NAME"), _("EXTERNAL ID"), _("STATE"))]
        for row in rows:
            state = _("on sale") if row["available"] else _("sold out")
            if row["back_at"] is not None:
                state = _("sold out until {time}").format(time=locale.datetime(row["back_at"]))
            kind = _("product") if row["kind"] == "product" else _("option")
            lines.append((str(row["id"]), kind, row["name"], row["external_id"], state))
        for line in table(lines):
            say(line)
        return EX_OK

    return asyncio.run(with_journal(args, work))


async def _refresh(config: Config, journal: Journal, pairing: Pairing, locale: Locale) -> bool:
    """Read the catalog from Sinqro now, from this process (stored only if it changed)."""
    from edged.flow.catalog import CatalogKeeper
    from edged.flow.refusals import CommandRefused
    from edged.sinqro.api import SinqroApi
    from edged.sinqro.errors import SinqroError
    from edged.state import BoxState

    _ = locale.gettext
    async with SinqroApi(
        config.sinqro.base_url,
        config.sinqro.server_token,
        pairing.user_token,
        timeout=config.sinqro.request_timeout,
    ) as api:
        keeper = CatalogKeeper(journal, api, BoxState(), lambda: pairing)
        try:
            await keeper.refresh()
        except (SinqroError, CommandRefused) as exc:
            complain(_("cannot read the catalog from Sinqro: {reason}").format(reason=exc))
            return False
    return True


def _row(
    kind: str,
    item_id: int,
    name: str,
    external_id: str,
    available: bool,
    timers: dict[tuple[str, int], float],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": item_id,
        "name": name,
        "external_id": external_id,
        "available": available,
        "back_at": timers.get((kind, item_id)),
    }


def cmd_availability(args: argparse.Namespace, available: bool) -> int:
    from edged.flow.catalog import CatalogKeeper
    from edged.flow.pairing import load_pairing
    from edged.flow.refusals import CommandRefused
    from edged.state import BoxState

    async def work(config: Config, journal: Journal, locale: Locale) -> int:
        _ = locale.gettext
        pairing = await load_pairing(journal, config.sinqro)
        keeper = CatalogKeeper(
            journal, None, BoxState(), lambda: pairing, default_timezone=config.box.timezone
        )
        until = getattr(args, "until", None)
        try:
            command, back_at = await keeper.set_available(
                args.product, available, until=until, source="cli"
            )
        except CommandRefused as exc:
            complain(_refusal(exc.code, exc.message, locale))
            return EX_REFUSED
        name = str(command.params.get("name") or command.params["id"])
        if available:
            doing = _("Putting {name} back on sale").format(name=name)
        elif back_at is not None:
            doing = _("Selling out {name} until {time}").format(
                name=name, time=locale.datetime(back_at)
            )
        else:
            doing = _("Selling out {name}").format(name=name)
        say(_("{doing}: queued (command {id})").format(doing=doing, id=command.id))
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            current = await journal.get_command(command.id)
            if current is not None and current.state == "done":
                say(_("{doing}: done, Sinqro has it").format(doing=doing))
                return EX_OK
            if current is not None and current.state == "failed":
                complain(
                    _("{doing}: refused by Sinqro: {reason}").format(
                        doing=doing, reason=f"{current.error} ({current.error_code})"
                    )
                )
                return EX_REFUSED
            await asyncio.sleep(0.2)  # the daemon is another process: poll its journal
        if args.wait:
            say(
                _("{doing}: still queued; the daemon sends it when Sinqro answers").format(
                    doing=doing
                )
            )
        return EX_OK

    return asyncio.run(with_journal(args, work))
