"""Typed errors of the Sinqro API (doc 000, error codes table; doc 003, ErrorResponse)."""

from __future__ import annotations

from typing import Any

# Codes the box reacts to; any other documented code still arrives as SinqroError.code.
UNAUTHORIZED = "UNAUTHORIZED"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
ORDER_CANCELLATION_COMMENT_IS_REQUIRED = "ORDER_CANCELLATION_COMMENT_IS_REQUIRED"
LOGIN_ERROR = "LOGIN_ERROR"
SELLING_POINT_NOT_FOUND = "SELLING_POINT_NOT_FOUND"
# Codes of our own, for conditions the API has no code for.
UNAVAILABLE = "UNAVAILABLE"  # network error, timeout, 5xx: try again later
BAD_RESPONSE = "BAD_RESPONSE"  # a 2xx whose body is not what the docs describe
NO_MATCHING_ACTION = "NO_MATCHING_ACTION"  # Sinqro offers no action of the wanted kind


class SinqroError(Exception):
    """Sinqro said no, or could not be asked.

    ``code`` is the documented error code (``ORDER_NOT_FOUND``, ``UNAUTHORIZED``, ...) or one
    of ours above; ``http_status`` is the HTTP status when there was a response.
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        http_status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code
        self.http_status = http_status
        self.errors = errors or []
        super().__init__(f"{code}: {self.message}" if message else code)

    @property
    def transient(self) -> bool:
        """True when the same request may succeed later without any change."""
        return False


class SinqroUnavailable(SinqroError):
    """Network failure, timeout or 5xx: the request may or may not have been applied."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(UNAVAILABLE, message, http_status=http_status)

    @property
    def transient(self) -> bool:
        return True


class SinqroUnauthorized(SinqroError):
    """401: a token was refused. The box must be paired again; do not retry hot."""

    def __init__(self, message: str = "Unauthorized request") -> None:
        super().__init__(UNAUTHORIZED, message, http_status=401)
