"""The simulated Sinqro cloud's state, without any networking.

Users, tokens, selling points, orders, per-order action tokens, and a record of every
action or status POST received (what exactly-once tests count). Which status an order may
move to is :mod:`edged.simulator.statuses`; the errors it answers are
:mod:`edged.simulator.errors`; a pushed menu is checked by :mod:`edged.simulator.menus`.
:mod:`edged.simulator.server` puts HTTP and websockets in front of it. The client, driver
or team side (``cancelled_by_client``...) is driven through :meth:`Cloud.force_status`.
"""

from __future__ import annotations

import copy
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edged.simulator.catalog import Catalog
from edged.simulator.errors import CloudError
from edged.simulator.generate import build_order, example, fmt_time, notification_example
from edged.simulator.menus import validate_menu_collection
from edged.simulator.statuses import STATUSES, allowed, next_step, set_status
from edged.sinqro.models import FINAL_STATUSES, ORDER_TYPES, SETTABLE_STATUSES

log = logging.getLogger(__name__)

DEFAULT_DELAYS = (10, 20, 30)


@dataclass
class User:
    username: str
    password: str
    selling_points: list[int]


@dataclass
class Grant:
    """An action token handed out by ``GET /orders/{id}/actions``."""

    token: str
    order_id: int
    action_type: str  # ACCEPT | CANCEL
    target: str  # the status the action leads to
    delay: int | None
    issued_for: str  # the order status the token is valid in


def _selling_point(sp_id: int, name: str, city: str, street: str) -> dict[str, Any]:
    sp: dict[str, Any] = copy.deepcopy(example("delivery")["sellingPoint"])
    sp["id"] = sp_id
    sp["name"] = name
    sp["urlKey"] = name.lower().replace(" ", "-")
    sp["address"]["id"] = sp_id * 10
    sp["address"]["city"] = city
    sp["address"]["street"] = street
    sp["address"]["placeName"] = f"{street}, {city}, España"
    return sp


def default_selling_points() -> dict[int, dict[str, Any]]:
    return {
        3961: _selling_point(3961, "SuperPizza", "Viladecans", "Carrer de la Tecnologia, 17"),
        3962: _selling_point(3962, "SuperPizza Castelldefels", "Castelldefels", "Av. Diagonal, 5"),
        3963: _selling_point(3963, "Taquería Ñandú", "Sevilla", "Calle Peñuelas, 9"),
    }


def default_users() -> dict[str, User]:
    return {
        "demo": User("demo", "demo", [3961, 3962]),
        "solo": User("solo", "solo", [3963]),
    }


Listener = Callable[[int, dict[str, Any]], None]


@dataclass
class Cloud:
    """All state of the fake cloud. Methods raise :class:`CloudError` like the API would."""

    server_token: str
    demo_token: str
    selling_points: dict[int, dict[str, Any]] = field(default_factory=default_selling_points)
    users: dict[str, User] = field(default_factory=default_users)
    tokens: dict[str, str] = field(default_factory=dict)  # user token -> username
    revoked: set[str] = field(default_factory=set)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    catalogs: dict[int, Catalog] = field(default_factory=dict)
    catalog_patches: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 600001
    rng: random.Random = field(default_factory=random.Random, repr=False)
    listeners: list[Listener] = field(default_factory=list, repr=False)
    on_change: Callable[[], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.demo_token, "demo")

    # -- notifications ---------------------------------------------------------------------

    def _notify(self, event: str, order: dict[str, Any]) -> None:
        sp_id = int(order["sellingPoint"]["id"])
        envelope = notification_example()
        envelope["event"] = event
        envelope["data"] = copy.deepcopy(order)
        envelope["sellingPointId"] = sp_id
        for listener in list(self.listeners):
            listener(sp_id, envelope)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- auth ------------------------------------------------------------------------------

    def check_server(self, server_token: str | None) -> None:
        if not server_token or not secrets.compare_digest(server_token, self.server_token):
            raise CloudError("UNAUTHORIZED")

    def authenticate(self, server_token: str | None, user_token: str | None) -> str:
        """Both headers valid: the username; else 401 UNAUTHORIZED."""
        self.check_server(server_token)
        if not user_token or user_token in self.revoked or user_token not in self.tokens:
            raise CloudError("UNAUTHORIZED")
        return self.tokens[user_token]

    def login(self, username: str, password: str) -> str:
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            raise CloudError("LOGIN_ERROR")
        token = "usr-" + secrets.token_urlsafe(24)
        self.tokens[token] = username
        self._changed()
        return token

    def logout(self, user_token: str) -> None:
        self.tokens.pop(user_token, None)
        self._changed()

    def revoke(self, user_token: str) -> None:
        """Make a token answer 401 from now on (an admin revoked the module setup)."""
        self.revoked.add(user_token)
        self._changed()

    def restore(self, user_token: str) -> None:
        self.revoked.discard(user_token)
        self._changed()

    def user_selling_points(self, username: str) -> list[dict[str, Any]]:
        user = self.users[username]
        return [copy.deepcopy(self.selling_points[i]) for i in user.selling_points]

    def check_selling_point(self, username: str, sp_id: int) -> None:
        if sp_id not in self.users[username].selling_points:
            raise CloudError("SELLING_POINT_NOT_FOUND")

    # -- orders ----------------------------------------------------------------------------

    def _order(self, username: str | None, order_id: int) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise CloudError("ORDER_NOT_FOUND")
        if username is not None:
            sp_id = int(order["sellingPoint"]["id"])
            if sp_id not in self.users[username].selling_points:
                raise CloudError("ORDER_NOT_FOUND")
        return order

    def get_order(self, username: str, order_id: int) -> dict[str, Any]:
        return copy.deepcopy(self._order(username, order_id))

    def active_orders(self, username: str, sp_id: int) -> list[dict[str, Any]]:
        self.check_selling_point(username, sp_id)
        return [
            copy.deepcopy(o)
            for o in self.orders.values()
            if int(o["sellingPoint"]["id"]) == sp_id and not o["status"]["isFinalStatus"]
        ]

    def filter_orders(
        self,
        username: str,
        sp_id: int,
        *,
        start_date: str | None = None,
        end_date: str | None = None,
        order_type: str | None = None,
        global_status: str | None = None,
    ) -> list[dict[str, Any]]:
        self.check_selling_point(username, sp_id)
        for value in (start_date, end_date):
            if value is not None:
                try:
                    datetime.strptime(value, "%Y-%m-%d")
                except ValueError:
                    raise CloudError("BAD_REQUEST", f"bad date {value!r}, use YYYY-MM-DD") from None
        if order_type is not None and order_type not in ORDER_TYPES:
            raise CloudError("ORDER_TYPE_NOT_FOUND")
        out = []
        for order in self.orders.values():
            if int(order["sellingPoint"]["id"]) != sp_id:
                continue
            day = str(order.get("createdAt", ""))[:10]
            if start_date and day < start_date:
                continue
            if end_date and day > end_date:
                continue
            if order_type and order["type"] != order_type:
                continue
            if global_status and order["status"]["globalStatusCode"] != global_status:
                continue
            out.append(copy.deepcopy(order))
        return out

    def create_order(
        self, order_type: str | None = None, selling_point_id: int | None = None
    ) -> dict[str, Any]:
        """A new waiting order (random type when None); notifies ``new_order``."""
        order_type = order_type or self.rng.choice(ORDER_TYPES)
        if order_type not in ORDER_TYPES:
            raise CloudError("ORDER_TYPE_NOT_FOUND")
        sp_id = selling_point_id or self.users["demo"].selling_points[0]
        if sp_id not in self.selling_points:
            raise CloudError("SELLING_POINT_NOT_FOUND")
        order_id = self.next_id
        self.next_id += 1
        offer = self.catalog(sp_id).offer()
        if not offer and order_type != "reservation":
            raise CloudError("BAD_REQUEST", "nothing on this selling point's menu is available")
        order = build_order(
            order_type, order_id, self.selling_points[sp_id], rng=self.rng, offer=offer
        )
        set_status(order, "waiting_sp_validation")
        self.orders[order_id] = order
        log.info("sim: new %s order %d for selling point %d", order_type, order_id, sp_id)
        self._notify("new_order", order)
        return copy.deepcopy(order)

    def _change(self, order: dict[str, Any], code: str, comment: str | None = None) -> None:
        old = order["status"]["code"]
        set_status(order, code)
        if comment is not None:
            order["cancellationComment"] = comment
        # Tokens are only good for the status they were issued in.
        for token in [t for t, g in self.grants.items() if g.order_id == order["id"]]:
            del self.grants[token]
        log.info("sim: order %d %s -> %s", order["id"], old, code)
        self._notify("order_status_changed", order)

    def force_status(self, order_id: int, code: str, comment: str | None = None) -> dict[str, Any]:
        """Change status as the client, driver or Sinqro team would: any known code."""
        if code not in STATUSES:
            raise CloudError("ORDER_STATUS_NOT_ALLOWED", f"unknown status {code!r}")
        order = self._order(None, order_id)
        if comment is None and code.startswith("cancelled"):
            comment = "Cancelado desde el simulador"
        self._change(order, code, comment)
        return copy.deepcopy(order)

    def _apply(
        self, order: dict[str, Any], target: str, delay: int | None, comment: str | None
    ) -> None:
        if delay:
            for key in ("executionTime", "preparationTime"):
                try:
                    moment = datetime.strptime(str(order.get(key)), "%Y-%m-%dT%H:%M:%S%z")
                except ValueError:
                    moment = datetime.now(UTC)
                order[key] = fmt_time(moment + timedelta(minutes=delay))
            order["delayMinutes"] = delay
        self._change(order, target, comment if target.startswith("cancelled") else None)

    def _record(self, kind: str, order_id: int, **data: Any) -> dict[str, Any]:
        entry = {"kind": kind, "orderId": order_id, "ts": time.time(), **data}
        self.posted.append(entry)
        self._changed()
        return entry

    # -- actions ---------------------------------------------------------------------------

    def _grant(
        self, order: dict[str, Any], action_type: str, target: str, delay: int | None
    ) -> Grant:
        status = order["status"]["code"]
        for grant in self.grants.values():
            if (grant.order_id, grant.action_type, grant.target, grant.delay, grant.issued_for) == (
                order["id"],
                action_type,
                target,
                delay,
                status,
            ):
                return grant
        grant = Grant(secrets.token_urlsafe(24), order["id"], action_type, target, delay, status)
        self.grants[grant.token] = grant
        return grant

    def actions(
        self, username: str, order_id: int, delay: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET /orders/{id}/actions``: the buttons for the order's current status."""
        order = self._order(username, order_id)
        status = order["status"]["code"]
        if status in FINAL_STATUSES:
            return []
        out = []
        if status == "waiting_sp_validation":
            target = "reservation_accepted" if order["type"] == "reservation" else "accepted"
            delays: list[int | None] = [delay] if delay else [None, *DEFAULT_DELAYS]
            for d in delays:
                label = "Aceptar" if not d else f"Aceptar (+{d} min)"
                out.append(self._action_json(order, self._grant(order, "ACCEPT", target, d), label))
        else:
            step = next_step(order)
            if step is not None:
                grant = self._grant(order, "ACCEPT", step, None)
                out.append(self._action_json(order, grant, STATUSES[step][0]))
        if order.get("isCancellable"):
            grant = self._grant(order, "CANCEL", "cancelled_by_sp", None)
            out.append(self._action_json(order, grant, "Cancelar"))
        self._changed()
        return out

    def _action_json(self, order: dict[str, Any], grant: Grant, label: str) -> dict[str, Any]:
        execution = str(order.get("executionTime") or "")
        if grant.delay:
            try:
                moment = datetime.strptime(execution, "%Y-%m-%dT%H:%M:%S%z")
                execution = fmt_time(moment + timedelta(minutes=grant.delay))
            except ValueError:
                pass
        delivery = order["type"] == "delivery"
        return {
            "token": grant.token,
            "callToAction": label,
            "color": "#eb5a46" if grant.action_type == "CANCEL" else "#5aac44",
            "actionType": grant.action_type,
            "orderType": order["type"],
            "executionTime": execution,
            "businessCost": 0.0 if delivery else None,
            "delayMinutes": grant.delay,
            "pickupTime": order.get("preparationTime") if delivery else None,
            "transportType": "Motocicleta" if delivery else None,
        }

    def post_action(
        self, username: str, order_id: int, token: str | None, comment: str | None
    ) -> dict[str, Any]:
        """``POST /orders/{id}/actions``: apply a current action token."""
        entry = self._record("action", order_id, token=token, comment=comment, result="pending")
        try:
            order = self._order(username, order_id)
            grant = self.grants.get(token or "")
            if (
                grant is None
                or grant.order_id != order_id
                or grant.issued_for != order["status"]["code"]
            ):
                raise CloudError("ORDER_ACTION_TOKEN_INVALID")
            entry["actionType"] = grant.action_type
            entry["delayMinutes"] = grant.delay
            if grant.action_type == "CANCEL" and not (comment or "").strip():
                raise CloudError("ORDER_CANCELLATION_COMMENT_IS_REQUIRED")
            self._apply(order, grant.target, grant.delay, comment)
        except CloudError as exc:
            entry["result"] = exc.code
            self._changed()
            raise
        entry["result"] = "ok"
        entry["status"] = order["status"]["code"]
        return copy.deepcopy(order)

    def post_status(self, username: str, sp_id: int, order_id: int, body: Any) -> dict[str, Any]:
        """``POST /sellingPoints/{sp}/orders/{id}/status`` with a NewOrderStatus body."""
        code = body.get("orderStatusTypeCode") if isinstance(body, dict) else None
        reason = body.get("cancellationReason") if isinstance(body, dict) else None
        delay = body.get("delayMinutes") if isinstance(body, dict) else None
        entry = self._record(
            "status", order_id, requested=code, reason=reason, delayMinutes=delay, result="pending"
        )
        try:
            self.check_selling_point(username, sp_id)
            order = self._order(username, order_id)
            if int(order["sellingPoint"]["id"]) != sp_id:
                raise CloudError("ORDER_NOT_FOUND")
            if not isinstance(code, str) or code not in SETTABLE_STATUSES:
                raise CloudError(
                    "ORDER_STATUS_NOT_ALLOWED",
                    f"orderStatusTypeCode must be one of {', '.join(SETTABLE_STATUSES)}",
                )
            if delay is not None and (
                isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 1440
            ):
                raise CloudError("BAD_REQUEST", "delayMinutes must be an integer of minutes")
            if code == "cancelled_by_sp" and not (isinstance(reason, str) and reason.strip()):
                raise CloudError(
                    "ORDER_CANCELLATION_COMMENT_IS_REQUIRED",
                    "cancellationReason is required for cancelled_by_sp",
                )
            target = allowed(order, code)
            self._apply(order, target, delay if target.endswith("accepted") else None, reason)
        except CloudError as exc:
            entry["result"] = exc.code
            self._changed()
            raise
        entry["result"] = "ok"
        entry["status"] = order["status"]["code"]
        return copy.deepcopy(order)

    # -- catalog ---------------------------------------------------------------------------

    def catalog(self, sp_id: int, username: str | None = None) -> Catalog:
        """The products, options and menus of a selling point (the user's, when named)."""
        if username is not None:
            self.check_selling_point(username, sp_id)
        if sp_id not in self.selling_points:
            raise CloudError("SELLING_POINT_NOT_FOUND")
        if sp_id not in self.catalogs:
            self.catalogs[sp_id] = Catalog()
        return self.catalogs[sp_id]

    def catalog_changed(self, sp_id: int, path: str, body: Any) -> None:
        """A PATCH changed a catalog: recorded (what reached the cloud, once per PATCH
        applied) and saved with the rest of the state."""
        self.catalog_patches.append(
            {"sellingPointId": sp_id, "path": path, "body": body, "ts": time.time()}
        )
        self._changed()

    def patch_menus(self, username: str, sp_id: int, body: Any) -> dict[str, Any]:
        """``PATCH .../menus/collectionRaw``: check the basic shape, record, summarise."""
        self.check_selling_point(username, sp_id)
        summary = validate_menu_collection(body)
        summary["sellingPointId"] = sp_id
        self.menus.append({"sellingPointId": sp_id, "ts": time.time(), "body": body})
        self._changed()
        return summary

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "next_id": self.next_id,
            "orders": list(self.orders.values()),
            "tokens": self.tokens,
            "revoked": sorted(self.revoked),
            "grants": [asdict(g) for g in self.grants.values()],
            "posted": self.posted,
            "menus": self.menus,
            "catalogPatches": self.catalog_patches,
            "catalogs": {str(sp): c.to_json() for sp, c in self.catalogs.items()},
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.next_id = int(data.get("next_id", self.next_id))
        self.orders = {int(o["id"]): o for o in data.get("orders", [])}
        self.tokens.update({str(k): str(v) for k, v in data.get("tokens", {}).items()})
        self.revoked = set(data.get("revoked", []))
        self.grants = {g["token"]: Grant(**g) for g in data.get("grants", [])}
        self.posted = list(data.get("posted", []))
        self.menus = list(data.get("menus", []))
        self.catalog_patches = list(data.get("catalogPatches", []))
        for sp, catalog in (data.get("catalogs") or {}).items():
            self.catalogs[int(sp)] = Catalog()
            self.catalogs[int(sp)].load_json(catalog)
