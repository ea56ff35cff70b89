"""Every Sinqro path the box uses, in one place.

Paths are relative to the REST base URL (``sinqro.base_url``, production
``https://api.sinqro.com/pos-app/v1``). The ones marked *assumed* are not given by the
integration documents; docs/sinqro-assumptions.md explains each choice. The simulator
serves exactly these, so a change here moves both sides.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Header names (doc 003, API Security).
SERVER_TOKEN_HEADER = "x-api-server-access-token"
USER_TOKEN_HEADER = "x-api-user-access-token"

# Assumed: the path prefix of the production base URL, which the simulator also serves.
API_PREFIX = "/pos-app/v1"

# Assumed: login takes {"username", "password"} (JSON or form) and answers {"token": ...}.
LOGIN = "/auth/login"
# Assumed: logout invalidates the user token sent in the headers.
LOGOUT = "/auth/logout"
# Assumed: the user's selling points, as an array of SellingPoint.
SELLING_POINTS = "/sellingPoints"
# Assumed: websocket path under the same prefix (see edged.sinqro.settings.PRODUCTION_WEBSOCKET).
WEBSOCKET_PATH = "/notifications"
# Assumed: the selling point travels as a query parameter of the websocket URL.
WEBSOCKET_SELLING_POINT_PARAM = "sellingPointId"


def order(order_id: int) -> str:
    """``GET /orders/{orderId}`` (doc 003)."""
    return f"/orders/{int(order_id)}"


def order_actions(order_id: int) -> str:
    """``GET`` and ``POST /orders/{orderId}/actions`` (doc 003)."""
    return f"/orders/{int(order_id)}/actions"


def order_status(selling_point_id: int, order_id: int) -> str:
    """``POST /sellingPoints/{sellingPointId}/orders/{orderId}/status`` (doc 003)."""
    return f"/sellingPoints/{int(selling_point_id)}/orders/{int(order_id)}/status"


def orders(selling_point_id: int) -> str:
    """``GET /sellingPoints/{sellingPointId}/orders`` with filters (doc 003)."""
    return f"/sellingPoints/{int(selling_point_id)}/orders"


def active_orders(selling_point_id: int) -> str:
    """``GET /sellingPoints/{sellingPointId}/orders/active`` (doc 003)."""
    return f"/sellingPoints/{int(selling_point_id)}/orders/active"


def menu_collection_raw(selling_point_id: int) -> str:
    """``PATCH /sellingPoints/{sellingPointId}/menus/collectionRaw`` (doc 003, bulk)."""
    return f"/sellingPoints/{int(selling_point_id)}/menus/collectionRaw"


def websocket_url(base: str, selling_point_id: int) -> str:
    """The notification websocket URL for one selling point (assumed shape:
    ``<websocket_url>?sellingPointId=N``; other query parameters are kept)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != WEBSOCKET_SELLING_POINT_PARAM]
    query.append((WEBSOCKET_SELLING_POINT_PARAM, str(int(selling_point_id))))
    return urlunsplit(parts._replace(query=urlencode(query)))


def products(selling_point_id: int) -> str:
    """``GET /sellingPoints/{sellingPointId}/products`` (doc 003, partial products)."""
    return f"/sellingPoints/{int(selling_point_id)}/products"


def product(selling_point_id: int, product_id: int) -> str:
    """``GET`` and ``PATCH /sellingPoints/{sellingPointId}/products/{productId}`` (doc 003)."""
    return f"/sellingPoints/{int(selling_point_id)}/products/{int(product_id)}"


def option_categories(selling_point_id: int) -> str:
    """``GET /sellingPoints/{sellingPointId}/productOptionsCategories`` (doc 003)."""
    return f"/sellingPoints/{int(selling_point_id)}/productOptionsCategories"


def option_category(selling_point_id: int, category_id: int) -> str:
    """``GET`` and ``PATCH .../productOptionsCategories/{productOptionCategoryId}``."""
    return f"/sellingPoints/{int(selling_point_id)}/productOptionsCategories/{int(category_id)}"


def menus(selling_point_id: int) -> str:
    """``GET /sellingPoints/{sellingPointId}/menus`` (doc 003, partial menus)."""
    return f"/sellingPoints/{int(selling_point_id)}/menus"
