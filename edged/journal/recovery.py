"""Telling the owner about the journal: rebuilt after damage, or failing to write.

The state keys (see :mod:`edged.state`) drive the LED (``journal_problem``), the banner on
the web page and ``/health``:

* ``journal``: ``ok`` | ``recovered`` (a damaged journal, or one that vanished, was moved
  aside and a fresh one started; until the owner dismisses it on the page) | ``failing``
  (storage fails: disk full, I/O error; the box keeps serving what it can and retries);
* ``journal.detail``: a sentence for people;
* ``journal.recovered``: ``{"at", "reason", "kept_as"}`` or ``None``.

Right after a rebuild a notice is also printed (a ``print.requested`` text ticket), in the
box's language and the selling point's time.
"""

from __future__ import annotations

import logging

from edged.i18n import N_, Locale
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.state import BoxState

log = logging.getLogger(__name__)

NOTICE = (
    N_("JOURNAL REBUILT"),
    "",
    N_("The order journal on this box was damaged and has been replaced."),
    N_("Open orders were fetched again from Sinqro; their tickets print again, marked REPRINT."),
    N_("Pairing and password were kept."),
    "",
)
KEPT_AS = N_("Damaged copy kept as:")
MISSING = N_("The journal file was missing: there was nothing to keep.")


def describe(journal: Journal) -> tuple[str, str]:
    """``(journal state, detail)`` for the box state."""
    if journal.problem is not None:
        return "failing", f"journal writes fail: {journal.problem}"
    recovered = journal.recovered
    if recovered is not None:
        kept_as = recovered.get("kept_as", "?")
        if not kept_as:
            return "recovered", "the journal file was missing and a fresh one was started"
        return "recovered", (
            f"the journal was damaged and rebuilt; the damaged copy is kept as {kept_as}"
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
    locale = Locale(language, timezone)
    when = locale.local(recovery.at)
    lines = [locale.gettext(line) if line else "" for line in NOTICE]
    if recovery.kept_as:
        lines += [locale.gettext(KEPT_AS), recovery.kept_as]
    else:
        lines.append(locale.gettext(MISSING))
    lines += ["", f"{when:%Y-%m-%d} {locale.time(when)}"]
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
