"""The box's status as the page shows it: the cloud link, the outbox, printers, POS links and
parts that failed, in the box's language (the status line, the board's pills, ``/api/status``
and the live stream's ``status`` messages all read it here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edged.i18n import Locale
from edged.web.services import PanelLike, WebServices

STATUS_KEYS = (
    "link",
    "link.detail",
    "link.since",
    "link.reconnects",
    "queued_commands",
    "waiting_orders",
)
STATUS_PREFIXES = ("printer.", "panel.", "bridge.", "part.")


def is_status_key(key: str) -> bool:
    """A :class:`~edged.state.BoxState` key the status shows."""
    return key in STATUS_KEYS or key.startswith(STATUS_PREFIXES)


class Status:
    """The status data and the words for states, for one server's services."""

    def __init__(self, services: WebServices, locale: Callable[[], Locale]) -> None:
        self.services = services
        self.locale = locale
        # When the cloud link last changed state (the offline banner says "since 14:02").
        self.link_since = time.time()
        self._link: Any = None

    # -- words for states ------------------------------------------------------------------

    def link_word(self, link: Any) -> str:
        """The cloud link's state in the box's language."""
        _ = self.locale().gettext
        words = {
            "online": _("online"),
            "polling": _("polling every minute"),
            "offline": _("offline"),
            "starting": _("starting"),
            "unauthorized": _("refused by Sinqro"),
            "not_paired": _("not connected"),
        }
        return words.get(str(link), _("unknown"))

    def printer_word(self, state: Any) -> str:
        """A printer's state in the box's language (its own word when unknown)."""
        _ = self.locale().gettext
        words = {
            "online": _("ready"),
            "offline": _("offline"),
            "not_ready": _("needs attention"),
            "paper_out": _("out of paper"),
            "cover_open": _("cover open"),
            "unknown": _("unknown"),
        }
        return words.get(str(state), str(state) if state else _("unknown"))

    def part_word(self, state: str) -> str:
        """A POS bridge's state in words (its own word when unknown)."""
        _ = self.locale().gettext
        words = {
            "online": _("online"),
            "offline": _("offline"),
            "connecting": _("connecting"),
        }
        return words.get(state, state)

    def virtual_panel(self) -> PanelLike | None:
        """The panel the page may press (only the demo's virtual panel offers presses)."""
        panel = self.services.panel
        return panel if panel is not None and hasattr(panel, "virtual_press") else None

    # -- the status ------------------------------------------------------------------------

    def changed(self, key: str, value: Any) -> bool:
        """Note a state change; ``True`` when the status shows ``key``."""
        if key == "link" and value != self._link:
            self._link = value
            self.link_since = time.time()
        return is_status_key(key)

    def status_json(self) -> dict[str, Any]:
        """The status line's data: link, queue, printers, panel, bridges (nothing secret)."""
        services = self.services
        snapshot = services.state.snapshot()
        values = {k: v for k, v in snapshot.items() if is_status_key(k)}
        locale = self.locale()
        printers = services.state.printers()
        link = values.get("link", "unknown")
        return {
            "state": values,
            "pairing": services.pairing().public(),
            "printers": printers,
            "virtual_panel": self.virtual_panel() is not None,
            # Decisions still reach Sinqro while polling or starting; not when offline.
            "online": link not in ("offline", "unauthorized", "not_paired"),
            "link_text": self.link_word(link),
            "link_since": self.link_since,
            "link_since_text": locale.time(self.link_since),
            "summary": self._summary(values, printers),
            "pills": self._pills(values, printers),
        }

    def status_line(self) -> dict[str, Any]:
        """The status as the page's first paint shows it (the board keeps it current)."""
        status = self.status_json()
        return {"online": status["online"], "summary": status["summary"], "pills": status["pills"]}

    def _pills(self, values: dict[str, Any], printers: dict[str, Any]) -> list[list[Any]]:
        """(id, label, value, tone) per part of the box, in words."""
        _ = self.locale().gettext
        link = values.get("link", "unknown")
        queued = int(values.get("queued_commands", 0) or 0)
        pills: list[list[Any]] = [
            ["st-link", _("Sinqro"), self.link_word(link), "ok" if link == "online" else "warn"],
            ["st-queued", _("Queued"), str(queued), "warn" if queued else "ok"],
        ]
        for name, health in sorted(printers.items()):
            raw = health.get("state") if isinstance(health, dict) else None
            label = _("Printer {name}").format(name=name)
            pills.append([None, label, self.printer_word(raw), "ok" if raw == "online" else "warn"])
        for key, label in (
            ("bridge.mqtt", _("POS link (MQTT)")),
            ("bridge.serial", _("POS link (serial)")),
        ):
            if key in values and values[key] != "disabled":
                raw = str(values[key])
                pills.append(
                    [None, label, self.part_word(raw), "warn" if raw == "offline" else "ok"]
                )
        for key, value in sorted(values.items()):
            # A part the supervisor restarts after a failure (edged.parts).
            if (
                key.startswith("part.")
                and isinstance(value, dict)
                and value.get("state") == "failed"
            ):
                label = _("{part} failed").format(part=key[5:])
                pills.append([None, label, str(value.get("error", "")), "warn"])
        return pills

    def _summary(self, values: dict[str, Any], printers: dict[str, Any]) -> str:
        _ = self.locale().gettext
        parts = [_("Sinqro {state}").format(state=self.link_word(values.get("link")))]
        queued = int(values.get("queued_commands", 0) or 0)
        if queued:
            parts.append(_("{n} queued").format(n=queued))
        bad = sorted(
            name
            for name, h in printers.items()
            if not isinstance(h, dict) or h.get("state") != "online"
        )
        failed = sorted(
            k[5:]
            for k, v in values.items()
            if k.startswith("part.") and isinstance(v, dict) and v.get("state") == "failed"
        )
        if failed:
            parts.append(_("not running: {parts}").format(parts=", ".join(failed)))
        if bad:
            parts.append(_("printer {names}: check it").format(names=", ".join(bad)))
        elif printers:
            parts.append(_("printers ready"))
        else:
            parts.append(_("no printer"))
        return " · ".join(parts)
