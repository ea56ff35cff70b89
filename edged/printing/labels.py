"""The words printed on tickets and slips, in the box's language.

Each label is an English message id in context "ticket" (the paper's capitals and wording
stay apart from the page's); the translation comes from the gettext catalogs
(``edged/i18n/locale/<lang>/LC_MESSAGES/edged.po``, see :mod:`edged.i18n`).
"""

from __future__ import annotations

from functools import cache

from edged.i18n import NP_, Locale

LABELS: dict[str, str] = {
    "delivery": NP_("ticket", "DELIVERY"),
    "collection": NP_("ticket", "TAKEAWAY"),
    "reservation": NP_("ticket", "RESERVATION"),
    "insitu": NP_("ticket", "PRE-ORDER"),
    "inside": NP_("ticket", "TABLE ORDER"),
    "order": NP_("ticket", "Order"),
    "for": NP_("ticket", "For"),
    "asap": NP_("ticket", "ASAP"),
    "placed": NP_("ticket", "Placed"),
    "pickup": NP_("ticket", "PICKUP"),
    "ready_by": NP_("ticket", "READY BY"),
    "customer": NP_("ticket", "Customer"),
    "phone": NP_("ticket", "Phone"),
    "address": NP_("ticket", "Address"),
    "instructions": NP_("ticket", "For the driver"),
    "courier": NP_("ticket", "Courier"),
    "driver": NP_("ticket", "Driver"),
    "diners": NP_("ticket", "Diners"),
    "table": NP_("ticket", "Table"),
    "delivery_cost": NP_("ticket", "Delivery"),
    "total": NP_("ticket", "TOTAL"),
    "prepaid": NP_("ticket", "PAID"),
    "to_collect": NP_("ticket", "TO COLLECT"),
    "comment": NP_("ticket", "Comment"),
    "allergy": NP_("ticket", "ALLERGY"),
    "tracking": NP_("ticket", "Tracking"),
    "reprint": NP_("ticket", "REPRINT"),
    "late": NP_("ticket", "LATE"),
    "backup_for": NP_("ticket", "Instead of printer"),
    "cancelled": NP_("ticket", "CANCELLED"),
    "updated": NP_("ticket", "UPDATED"),
    "new_time": NP_("ticket", "New time"),
    "was": NP_("ticket", "Was"),
    "reason": NP_("ticket", "Reason"),
    "at": NP_("ticket", "At"),
    "test": NP_("ticket", "TEST PRINT"),
    "printer": NP_("ticket", "Printer"),
    "code_page": NP_("ticket", "Code page"),
    "columns": NP_("ticket", "Columns"),
    "big": NP_("ticket", "Big type"),
    "no_items": NP_("ticket", "(no items)"),
    "more_lines": NP_("ticket", "{n} more lines, see the page"),
}

STATUS_LABELS: dict[str, str] = {
    "accepted": NP_("ticket", "ACCEPTED"),
    "preparation": NP_("ticket", "IN PREPARATION"),
    "ready": NP_("ticket", "READY"),
    "delivering": NP_("ticket", "OUT FOR DELIVERY"),
    "delivered": NP_("ticket", "DELIVERED"),
    "incident": NP_("ticket", "INCIDENT"),
    "finished": NP_("ticket", "FINISHED"),
    "reservation_accepted": NP_("ticket", "RESERVATION ACCEPTED"),
    "payment_authorisation_failed": NP_("ticket", "PAYMENT FAILED"),
    "cancelled": NP_("ticket", "Cancelled"),
    "cancelled_by_sp": NP_("ticket", "Cancelled by the restaurant"),
    "cancelled_by_client": NP_("ticket", "Cancelled by the customer"),
    "cancelled_by_driver": NP_("ticket", "Cancelled by the driver"),
    "cancelled_by_team": NP_("ticket", "Cancelled by the Sinqro team"),
    "gone": NP_("ticket", "Closed: unknown to Sinqro"),
}


class Labels:
    """The ticket's labels in one language: ``L["total"]``, ``L.get(order.type, ...)``."""

    def __init__(self, language: str) -> None:
        self.locale = Locale(language)

    def __getitem__(self, key: str) -> str:
        return self.locale.pgettext("ticket", LABELS[key])

    def get(self, key: str, default: str) -> str:
        return self[key] if key in LABELS else default

    def status(self, status: str) -> str | None:
        """A status change in words, or None for a status the box has no words for."""
        known = STATUS_LABELS.get(status)
        return self.locale.pgettext("ticket", known) if known else None


@cache
def labels(language: str) -> Labels:
    """The labels of ``language`` (one instance per language: tickets are rendered often)."""
    return Labels(language)


__all__ = ["LABELS", "STATUS_LABELS", "Labels", "labels"]
