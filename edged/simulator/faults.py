"""The simulator's fault switches: how its Sinqro answers badly, on purpose.

:class:`Faults` holds every switch (refused websockets, refused or failing requests, slow or
lost answers, garbled bodies, a half-open or mute websocket, per-order failures). The HTTP
middleware (:mod:`edged.simulator.routes`) and the websocket writer read them on every
request and frame; tests flip them through :class:`~edged.simulator.server.Simulator`'s
methods, and anyone through ``POST /_sim/faults`` (:meth:`Faults.update`; docs/simulator.md
lists the keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Which order an API path is about: /orders/{id}... or /sellingPoints/{sp}/orders/{id}/...
_ORDER_PATH = re.compile(r"/orders/(\d+)(?:/|$)")
# Which product or option category a catalog path is about.
_CATALOG_PATH = re.compile(r"/(?:products|productOptionsCategories)/(\d+)(?:/|$)")


@dataclass
class Faults:
    """Fault switches; all off by default."""

    refuse_websockets: bool = False
    refuse_all: str | None = None  # "503" | "close"
    delay: float = 0.0  # seconds added before every API answer
    late_answer: float = 0.0  # seconds added after the request was applied (answer lost)
    fail_count: int = 0  # answer the next N API requests with fail_status
    fail_always: bool = False
    fail_status: int = 500
    stall: bool = False  # half-open: no notifications, no pongs
    mute: bool = False  # no notifications, pongs still answered
    garble_count: int = 0  # answer the next N API requests with 200 and a non-JSON body
    garble_body: str = ""  # ... or with this body instead (JSON content type): hostile input
    # Per order: every call about these orders answers fail_status (GET, actions, status).
    fail_orders: set[int] = field(default_factory=set)
    # Per order: only GET /orders/{id} fails (the refresh of that one order).
    fail_order_gets: set[int] = field(default_factory=set)
    # Actions answer "delayMinutes": null, like the reference's only OrderAction example.
    null_action_delays: bool = False
    # Per product or option category id: every call about it answers fail_status.
    fail_products: set[int] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "refuseWebsockets": self.refuse_websockets,
            "refuseAll": self.refuse_all,
            "delay": self.delay,
            "lateAnswer": self.late_answer,
            "failCount": self.fail_count,
            "failAlways": self.fail_always,
            "failStatus": self.fail_status,
            "stall": self.stall,
            "mute": self.mute,
            "garbleCount": self.garble_count,
            "garbleBody": self.garble_body[:200],
            "failOrders": sorted(self.fail_orders),
            "failOrderGets": sorted(self.fail_order_gets),
            "nullActionDelays": self.null_action_delays,
            "failProducts": sorted(self.fail_products),
        }

    def fails_order_call(self, method: str, path: str) -> bool:
        """Is this API call about an order, a product or an option category that is set
        to fail?"""
        product = _CATALOG_PATH.search(path)
        if product is not None and int(product.group(1)) in self.fail_products:
            return True
        match = _ORDER_PATH.search(path)
        if match is None:
            return False
        order_id = int(match.group(1))
        if order_id in self.fail_orders:
            return True
        return (
            method == "GET" and order_id in self.fail_order_gets and path.endswith(f"/{order_id}")
        )

    def set_refuse_all(self, mode: str | None) -> None:
        """Refuse every API and websocket request: ``"503"``, ``"close"`` (drop the
        connection without an answer) or None to stop refusing."""
        if mode not in (None, "503", "close"):
            raise ValueError("mode must be '503', 'close' or None")
        self.refuse_all = mode

    def update(self, body: dict[str, Any]) -> None:
        """Set the switches named in ``body`` (the keys of :meth:`to_json`); a value of the
        wrong type raises TypeError or ValueError (the switches before it are set)."""
        if "refuseWebsockets" in body:
            self.refuse_websockets = bool(body["refuseWebsockets"])
        if "refuseAll" in body:
            self.set_refuse_all(body["refuseAll"])
        if "delay" in body:
            self.delay = max(0.0, float(body["delay"]))
        if "lateAnswer" in body:
            self.late_answer = max(0.0, float(body["lateAnswer"]))
        if "failCount" in body:
            self.fail_count = int(body["failCount"])
        if "failAlways" in body:
            self.fail_always = bool(body["failAlways"])
        if "failStatus" in body:
            self.fail_status = int(body["failStatus"])
        if "stall" in body:
            self.stall = bool(body["stall"])
        if "mute" in body:
            self.mute = bool(body["mute"])
        if "garbleCount" in body:
            self.garble_count = int(body["garbleCount"])
        if "garbleBody" in body:
            self.garble_body = str(body["garbleBody"] or "")
        if "failOrders" in body:
            self.fail_orders = {int(i) for i in body["failOrders"] or []}
        if "failOrderGets" in body:
            self.fail_order_gets = {int(i) for i in body["failOrderGets"] or []}
        if "nullActionDelays" in body:
            self.null_action_delays = bool(body["nullActionDelays"])
        if "failProducts" in body:
            self.fail_products = {int(i) for i in body["failProducts"] or []}
