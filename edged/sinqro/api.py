"""The Sinqro REST client (doc 003, API services reference).

One :class:`SinqroApi` per box, on one ``httpx.AsyncClient``. Every call carries both auth
headers and a hard timeout. Failures come out typed:

* an ``ErrorResponse`` body becomes :class:`SinqroError` with the documented code;
* 401 becomes :class:`SinqroUnauthorized`;
* network errors, timeouts and 5xx become :class:`SinqroUnavailable`;
* a 2xx whose body is not what the docs describe becomes ``SinqroError(BAD_RESPONSE)``.

Only safe calls (GETs) are retried here, with exponential backoff and jitter. POST and
PATCH are never repeated automatically: a repeated action could accept or cancel twice, so
the outbox decides, after reading the order back (see :mod:`edged.flow.outbox`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar

import httpx

from edged.decoding import PayloadError, decode_json, digest
from edged.sinqro import endpoints, errors
from edged.sinqro.catalog import (
    Catalog,
    CatalogProduct,
    OptionCategory,
    parse_categories,
    parse_category,
    parse_partial_ids,
    parse_product,
)
from edged.sinqro.errors import SinqroError, SinqroUnauthorized, SinqroUnavailable
from edged.sinqro.models import (
    Order,
    OrderAction,
    SellingPoint,
    parse_actions,
    parse_order,
    parse_orders,
    parse_selling_points,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# A response bigger than this is not a Sinqro answer we can use; bounds memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
RETRY_BASE = 0.25  # seconds, first retry delay before jitter
RETRY_CAP = 5.0
# What of an ErrorResponse is kept: it reaches logs, the outbox and the page.
MAX_ERROR_MESSAGE = 500
MAX_ERROR_ITEMS = 20
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)


class SinqroApi:
    """Typed async client for the Sinqro POS API.

    ``user_token`` may be replaced at any time (pairing, logout); the next call uses it.
    ``retries`` is the number of extra attempts for safe (GET) calls only.
    """

    def __init__(
        self,
        base_url: str,
        server_token: str,
        user_token: str = "",
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._server_token = server_token
        self.user_token = user_token
        self.timeout = timeout
        self.retries = max(0, retries)
        # Order entries of a list response that did not parse (logged and skipped).
        self.bad_entries = 0
        self.calls = 0
        self.failures = 0
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"accept": "application/json", "user-agent": "edged"},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> SinqroApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            endpoints.SERVER_TOKEN_HEADER: self._server_token,
            endpoints.USER_TOKEN_HEADER: self.user_token,
        }

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        json_body: Any = None,
        retry: bool = False,
    ) -> Any:
        """Send one request; returns the decoded JSON body (None when empty)."""
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return await self._once(method, path, params, data, json_body)
            except SinqroUnavailable as exc:
                if attempt + 1 >= attempts:
                    raise
                # edged.backoff's rule (equal jitter), written out: the wire client imports
                # nothing of the box but decoding and config tools.
                base = min(RETRY_CAP, RETRY_BASE * 2**attempt)
                delay = base * random.uniform(0.5, 1.0)
                log.debug("%s %s failed (%s); retry in %.2fs", method, path, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        data: dict[str, str] | None,
        json_body: Any,
    ) -> Any:
        self.calls += 1
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            # httpx's timeout is per phase; this bounds the whole exchange too.
            async with asyncio.timeout(self.timeout):
                response = await self._client.request(
                    method,
                    path.lstrip("/"),
                    params=query or None,
                    data=data,
                    json=json_body,
                    headers=self._headers(),
                )
        except (TimeoutError, httpx.TimeoutException):
            self.failures += 1
            raise SinqroUnavailable(f"{method} {path}: timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            self.failures += 1
            raise SinqroUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        log.debug("%s %s -> %d", method, path, status)
        if status >= 500:
            self.failures += 1
            raise SinqroUnavailable(f"{method} {path}: HTTP {status}", http_status=status)
        body = self._decode(response, method, path)
        if status == 401:
            message = body.get("message") if isinstance(body, dict) else None
            if isinstance(message, str) and message:
                raise SinqroUnauthorized(message)
            raise SinqroUnauthorized()
        if not 200 <= status < 300:
            # Redirects are not followed: a Sinqro answer is never one.
            raise _error_from(body, status, method, path)
        return body

    @staticmethod
    def _decode(response: httpx.Response, method: str, path: str) -> Any:
        content = response.content
        if not content.strip():
            return None
        try:
            return decode_json(content, max_bytes=MAX_RESPONSE_BYTES, what="response")
        except PayloadError as exc:
            if response.status_code >= 400:
                return None  # a plain-text error page; the status still says enough
            raise SinqroError(
                errors.BAD_RESPONSE,
                f"{method} {path}: {exc}",
                http_status=response.status_code,
            ) from None

    # -- orders ----------------------------------------------------------------------------

    def _orders(self, body: Any, what: str) -> list[Order]:
        good, bad = _parse_or_bad(lambda b: parse_orders(b, what), body)
        for problem in bad:
            self.bad_entries += 1
            log.warning("skipped an unusable order in %s: %s", what, problem)
        return good

    async def active_orders(self, selling_point_id: int) -> list[Order]:
        """Non-finished, non-cancelled orders of a selling point; bad entries are skipped
        (logged, counted in :attr:`bad_entries`)."""
        body = await self._request("GET", endpoints.active_orders(selling_point_id), retry=True)
        return self._orders(body, "active orders")

    async def orders(
        self,
        selling_point_id: int,
        *,
        start_date: str | None = None,
        end_date: str | None = None,
        order_type: str | None = None,
        global_status: str | None = None,
    ) -> list[Order]:
        """Orders of a selling point filtered by dates (``YYYY-MM-DD``), type, global status."""
        params = {
            "startDate": start_date,
            "endDate": end_date,
            "orderType": order_type,
            "globalStatusCode": global_status,
        }
        body = await self._request(
            "GET", endpoints.orders(selling_point_id), params=params, retry=True
        )
        return self._orders(body, "orders")

    async def get_order(self, order_id: int) -> Order:
        """One order by id (``ORDER_NOT_FOUND`` when unknown)."""
        body = await self._request("GET", endpoints.order(order_id), retry=True)
        return _parse_or_bad(parse_order, body)

    async def order_actions(
        self, order_id: int, *, delay_minutes: int | None = None
    ) -> list[OrderAction]:
        """The actions (buttons) Sinqro offers now; ``delay_minutes`` asks for delayed ones."""
        body = await self._request(
            "GET",
            endpoints.order_actions(order_id),
            params={"delayMinutes": delay_minutes},
            retry=True,
        )
        return _parse_or_bad(parse_actions, body)

    async def post_action(
        self, order_id: int, token: str, *, cancellation_comment: str | None = None
    ) -> Order:
        """Apply an action token. Never retried here: the outbox owns that decision."""
        form = {"token": token}
        if cancellation_comment is not None:
            form["cancellationComment"] = cancellation_comment
        body = await self._request("POST", endpoints.order_actions(order_id), data=form)
        return _parse_or_bad(parse_order, body)

    async def set_status(
        self,
        selling_point_id: int,
        order_id: int,
        status: str,
        *,
        cancellation_reason: str | None = None,
        delay_minutes: int | None = None,
    ) -> Order:
        """Change status by ``orderStatusTypeCode`` (body NewOrderStatus). Never retried."""
        body: dict[str, Any] = {"orderStatusTypeCode": status}
        if cancellation_reason is not None:
            body["cancellationReason"] = cancellation_reason
        if delay_minutes is not None:
            body["delayMinutes"] = delay_minutes
        answer = await self._request(
            "POST", endpoints.order_status(selling_point_id, order_id), json_body=body
        )
        return _parse_or_bad(parse_order, answer)

    # -- catalog ---------------------------------------------------------------------------

    async def patch_menu_collection_raw(
        self, selling_point_id: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the selling point's whole menu collection (MenuCollectionRawInputData)."""
        answer = await self._request(
            "PATCH", endpoints.menu_collection_raw(selling_point_id), json_body=body
        )
        if answer is None:
            return {}
        if not isinstance(answer, dict):
            raise SinqroError(errors.BAD_RESPONSE, "collectionRaw: expected an object")
        return answer

    async def product_ids(self, selling_point_id: int) -> list[int]:
        """The ids of the selling point's first-level products (partial products)."""
        body = await self._request("GET", endpoints.products(selling_point_id), retry=True)
        return _parse_or_bad(parse_partial_ids, body)

    async def product(
        self, selling_point_id: int, product_id: int
    ) -> tuple[list[CatalogProduct], list[OptionCategory]]:
        """One whole product: it and its variants, and the option categories it carries."""
        body = await self._request(
            "GET", endpoints.product(selling_point_id, product_id), retry=True
        )
        return _parse_or_bad(parse_product, body)

    async def option_categories(self, selling_point_id: int) -> list[OptionCategory]:
        """Every product option category of the selling point, with its options."""
        body = await self._request("GET", endpoints.option_categories(selling_point_id), retry=True)
        return _parse_or_bad(parse_categories, body)

    async def catalog(self, selling_point_id: int) -> Catalog:
        """The whole catalog: the partial list, each product read whole (the partial one
        does not say ``isAvailable``), and the option categories. A product that vanished
        between the list and its read is left out; any other failure is raised."""
        products: dict[int, CatalogProduct] = {}
        categories: dict[int, OptionCategory] = {}
        for product_id in await self.product_ids(selling_point_id):
            try:
                found, carried = await self.product(selling_point_id, product_id)
            except SinqroError as exc:
                if exc.code != "PRODUCT_NOT_FOUND":
                    raise
                continue
            products.update((p.id, p) for p in found)
            categories.update((c.id, c) for c in carried)
        # The category list is the fuller word on options (a product may name them by id).
        categories.update((c.id, c) for c in await self.option_categories(selling_point_id))
        return Catalog(tuple(products.values()), tuple(categories.values()))

    async def set_product_available(
        self, selling_point_id: int, product_id: int, available: bool
    ) -> list[CatalogProduct]:
        """``PATCH`` only ``isAvailable`` of a product or variant. Never retried."""
        body = await self._request(
            "PATCH",
            endpoints.product(selling_point_id, product_id),
            json_body={"isAvailable": available},
        )
        return _parse_or_bad(parse_product, body)[0]

    async def set_option_available(
        self, selling_point_id: int, category_id: int, option_id: int, available: bool
    ) -> OptionCategory:
        """``PATCH`` one option's ``isAvailable`` through its category (the only documented
        route that changes an option). Never retried."""
        body = await self._request(
            "PATCH",
            endpoints.option_category(selling_point_id, category_id),
            json_body={"productOptions": [{"id": option_id, "isAvailable": available}]},
        )
        return _parse_or_bad(parse_category, body)

    # -- account ---------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> str:
        """Exchange username and password for a user token (``LOGIN_ERROR`` when wrong).

        Not retried (a password guess is not a safe call), and the token is only returned:
        the caller decides when it replaces :attr:`user_token`.
        """
        body = await self._request(
            "POST", endpoints.LOGIN, json_body={"username": username, "password": password}
        )
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SinqroError(errors.BAD_RESPONSE, "login: no token in the answer")
        log.info("logged in to Sinqro as %s", username)
        return token

    async def logout(self) -> None:
        """Invalidate the current user token at Sinqro and forget it here."""
        await self._request("POST", endpoints.LOGOUT)
        self.user_token = ""
        log.info("logged out of Sinqro")

    async def selling_points(self) -> list[SellingPoint]:
        """The selling points the logged-in user may link the box to."""
        body = await self._request("GET", endpoints.SELLING_POINTS, retry=True)
        return _parse_or_bad(parse_selling_points, body)


def _parse_or_bad(parse: Callable[[Any], T], body: Any) -> T:
    try:
        return parse(body)
    except PayloadError as exc:
        raise SinqroError(errors.BAD_RESPONSE, str(exc)) from None
    except Exception:
        # The last line of defence: a parser bug must not end the box. The answer is
        # named by its digest (it may hold personal data) and treated as unusable.
        shape = digest(json.dumps(body, default=repr, sort_keys=True))
        log.exception("unusable Sinqro answer %s: unexpected error while parsing", shape)
        raise SinqroError(errors.BAD_RESPONSE, f"unusable answer {shape}") from None


def _error_from(body: Any, status: int, method: str, path: str) -> SinqroError:
    """An ErrorResponse (doc 003) as a typed error; anything else keeps the HTTP status."""
    if isinstance(body, dict):
        code = body.get("code")
        items = body.get("errors")
        item_list = [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []
        if not _is_error_code(code):
            first = item_list[0] if item_list else {}
            code = first.get("code")
        message = body.get("message")
        if _is_error_code(code):
            return SinqroError(
                code,
                message[:MAX_ERROR_MESSAGE] if isinstance(message, str) else "",
                http_status=status,
                errors=item_list[:MAX_ERROR_ITEMS],
            )
    return SinqroError(f"HTTP_{status}", f"{method} {path}: HTTP {status}", http_status=status)


def _is_error_code(code: Any) -> TypeGuard[str]:
    """Documented codes are short upper-case words (``ORDER_NOT_FOUND``)."""
    return isinstance(code, str) and bool(_ERROR_CODE.fullmatch(code))
