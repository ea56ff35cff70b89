"""The simulator's error answers: the documented ErrorResponse and its codes (doc 000).

:class:`CloudError` is raised by the cloud's rules and turned into the HTTP answer by the
routes (:mod:`edged.simulator.routes`), in the shape :func:`error_body` builds.
"""

from __future__ import annotations

from typing import Any

# Documented error codes (doc 000) with their HTTP status and message.
ERRORS: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, "Unauthorized request"),
    "LOGIN_ERROR": (400, "Incorrect user or password"),
    "ORDER_NOT_FOUND": (404, "Order not found"),
    "ORDER_CANCELLATION_COMMENT_IS_REQUIRED": (400, "Order cancellation comment is required"),
    "SELLING_POINT_ID_REQUIRED": (400, "SellingPoint ID is required"),
    "SELLING_POINT_NOT_FOUND": (404, "SellingPoint not found"),
    "ORDER_TYPE_NOT_FOUND": (404, "Order type not found"),
    "MENU_TYPE_CODE_REQUIRED": (400, "Menu type code is required"),
    "MENU_TYPE_NOT_FOUND": (404, "Menu type not found"),
    "MENU_NOT_FOUND": (404, "Menu not found"),
    "PRODUCT_NOT_FOUND": (404, "Product not found"),
    "PRODUCT_OPTION_CATEGORY_NOT_FOUND": (404, "Product option category not found"),
    "UNDEFINED_SECTIONS_AND_PRODUCTS": (400, "Undefined sections and products"),
    "PRODUCT_OPTION_CATEGORY_NAME_REQUIRED": (400, "Product option category name is required"),
    "PRODUCT_OPTION_NAME_REQUIRED": (400, "Product option name is required"),
    "CATEGORY_MIN_OPTIONS_CANNOT_BE_GREATER_THAN_MAX_OPTIONS": (
        400,
        "Category min options cannot be greater than max options",
    ),
    # Not in the documented table; the simulator's own (docs/sinqro-assumptions.md).
    "ORDER_ACTION_TOKEN_INVALID": (400, "Order action token is not valid"),
    "ORDER_STATUS_NOT_ALLOWED": (400, "Order status change is not allowed"),
    "BAD_REQUEST": (400, "Bad request"),
}


class CloudError(Exception):
    """An answer in the documented ErrorResponse shape."""

    def __init__(self, code: str, message: str = "", http: int | None = None) -> None:
        default_http, default_message = ERRORS.get(code, (400, code))
        self.code = code
        self.message = message or default_message
        self.http = http or default_http
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.http)


def error_body(code: str, message: str, http: int) -> dict[str, Any]:
    """The documented ErrorResponse (doc 003)."""
    return {
        "errors": [{"code": code, "message": message}],
        "code": code,
        "message": message,
        "httpResponseCode": str(http),
    }
