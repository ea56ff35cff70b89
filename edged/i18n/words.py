"""Order types and statuses in words (doc 003 codes), shared by the page and the CLI."""

from __future__ import annotations

from edged.i18n import N_, Locale

# What an order's status is, in words (doc 003 status codes).
STATUS_WORDS = {
    "waiting_sp_validation": N_("Waiting for you"),
    "accepted": N_("Accepted"),
    "reservation_accepted": N_("Reservation accepted"),
    "preparation": N_("Preparing"),
    "ready": N_("Ready"),
    "delivering": N_("Out for delivery"),
    "delivered": N_("Delivered"),
    "incident": N_("Incident"),
    "finished": N_("Finished"),
    "payment_authorisation_failed": N_("Payment failed"),
    "cancelled": N_("Cancelled"),
    "cancelled_by_sp": N_("Cancelled by you"),
    "cancelled_by_client": N_("Cancelled by the customer"),
    "cancelled_by_driver": N_("Cancelled by the driver"),
    "cancelled_by_team": N_("Cancelled by Sinqro"),
    "gone": N_("Closed: unknown to Sinqro"),
}
TYPE_WORDS = {
    "delivery": N_("Delivery"),
    "collection": N_("Takeaway"),
    "reservation": N_("Reservation"),
    "insitu": N_("Pre-order"),
    "inside": N_("Table order"),
}


def type_word(order_type: str, locale: Locale) -> str:
    known = TYPE_WORDS.get(order_type)
    return locale.gettext(known) if known else order_type


def status_word(status: str, locale: Locale, fallback: str = "") -> str:
    known = STATUS_WORDS.get(status)
    return locale.gettext(known) if known else (fallback or status)
