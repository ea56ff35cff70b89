"""Config schema of the ``[orders]`` table: how the order flow takes decisions (owned by
this package)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edged.configtools import opt
from edged.i18n import N_

DEFAULT_CANCEL_COMMENT = N_("Cancelled by the restaurant")


@dataclass(frozen=True)
class OrdersConfig:
    """How decisions are taken."""

    auto_accept: bool = False
    auto_accept_delay: int = field(default=0, metadata=opt(minimum=0, maximum=240))
    default_delay: int = field(
        default=0, metadata=opt(minimum=0, maximum=240, doc="ACCEPT short press, minutes")
    )
    long_press_delay: int = field(
        default=15, metadata=opt(minimum=0, maximum=240, doc="ACCEPT long press, minutes")
    )
    cancel_comment: str = field(
        default=DEFAULT_CANCEL_COMMENT,
        metadata=opt(doc="Sent with a CANCEL button press (the default: in the box's language)"),
    )
    retry_max: float = field(default=30.0, metadata=opt(minimum=0.1, maximum=600))

    def check(self) -> None:
        if not self.cancel_comment.strip():
            raise ValueError("cancel_comment: Sinqro requires a cancellation comment")
