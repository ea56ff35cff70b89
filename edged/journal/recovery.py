"""Telling the owner about the journal: rebuilt after damage, or failing to write.

The state keys (see :mod:`edged.state`) drive the LED (``journal_problem``), the banner on
the web page and ``/health``:

* ``journal``: ``ok`` | ``recovered`` (a damaged journal was moved aside and a fresh one
  started; until the owner dismisses it on the page) | ``failing`` (writes fail: disk full,
  I/O error; the box keeps serving what it can and retries);
* ``journal.detail``: a sentence for people;
* ``journal.recovered``: ``{"at", "reason", "kept_as"}`` or ``None``.

Right after a rebuild a notice is also printed (a ``print.requested`` text ticket), in the
box's language.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edged.journal import events as ev
from edged.journal.store import Journal
from edged.state import BoxState

log = logging.getLogger(__name__)

NOTICE = {
    "en": [
        "JOURNAL REBUILT",
        "",
        "The order journal on this box was",
        "damaged and has been replaced.",
        "Open orders were fetched again from",
        "Sinqro; their tickets print again.",
        "Pairing and password were kept.",
        "",
        "Damaged copy kept as:",
    ],
    "es": [
        "DIARIO RECONSTRUIDO",
        "",
        "El diario de pedidos de esta caja",
        "estaba dañado y se ha sustituido.",
        "Los pedidos abiertos se han vuelto a",
        "pedir a Sinqro; sus tickets se",
        "imprimen de nuevo.",
        "Se conservan el emparejamiento y la",
        "contraseña.",
        "",
        "Copia dañada guardada como:",
    ],
}


def local_time(at: float, timezone: str) -> str:
    """``at`` in the selling point's time zone (UTC when it is unknown)."""
    try:
        zone = ZoneInfo(timezone) if timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M %Z")


def describe(journal: Journal) -> tuple[str, str]:
    """``(journal state, detail)`` for the box state."""
    if journal.problem is not None:
        return "failing", f"journal writes fail: {journal.problem}"
    recovered = journal.recovered
    if recovered is not None:
        return "recovered", (
            "the journal was damaged and rebuilt; the damaged copy is kept as "
            f"{recovered.get('kept_as', '?')}"
        )
    return "ok", ""


def publish(journal: Journal, state: BoxState) -> None:
    status, detail = describe(journal)
    state.set("journal", status)
    state.set("journal.detail", detail)
    state.set("journal.recovered", journal.recovered)


async def report(journal: Journal, state: BoxState, language: str, timezone: str = "") -> None:
    """Keep the journal's state keys true from now on; after a rebuild at this start,
    print the notice once."""
    publish(journal, state)
    journal.add_fault_listener(lambda _problem: publish(journal, state))
    recovery = journal.recovery
    if recovery is None:
        return
    lines = [*NOTICE.get(language, NOTICE["en"]), recovery.kept_as]
    lines += ["", local_time(recovery.at, timezone)]
    try:
        await journal.append_event(
            ev.PRINT_REQUESTED, None, {"kind": "text", "source": "journal", "lines": lines}
        )
    except Exception as exc:  # the notice must not keep the box from starting
        log.error("journal: cannot queue the rebuild notice: %s", exc)


async def dismiss(journal: Journal, state: BoxState) -> None:
    """The owner has seen the rebuild notice."""
    await journal.dismiss_recovery()
    log.info("journal: rebuild notice dismissed")
    publish(journal, state)
