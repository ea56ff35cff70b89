"""The simulator's products, product option categories and menus routes (doc 003).

Served under the same prefix, auth and fault switches as the order routes (the middleware
of :mod:`edged.simulator.routes` covers every API path); what each call does is
:class:`~edged.simulator.catalog.Catalog`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from edged.simulator.catalog import Catalog
from edged.simulator.errors import CloudError
from edged.simulator.wire import CloudState, json_response, path_int
from edged.sinqro import endpoints


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise CloudError("BAD_REQUEST", "body must be JSON") from None


class CatalogRoutes:
    """The catalog routes over ``state``; ``auth`` checks a request's headers and names
    its user."""

    def __init__(self, state: CloudState, auth: Callable[[web.Request], str]) -> None:
        self.state = state
        self._auth = auth

    def _catalog(self, request: web.Request) -> Catalog:
        return self.state.cloud.catalog(path_int(request, "sp"), self._auth(request))

    def install(self, app: web.Application) -> None:
        """Add the products, option categories and menus routes to ``app``."""
        sp = endpoints.API_PREFIX + "/sellingPoints/{sp}"
        r = app.router
        r.add_get(sp + "/products", self._products)
        r.add_get(sp + "/products/{id}", self._product)
        r.add_patch(sp + "/products/{id}", self._patch_product)
        r.add_get(sp + "/productOptionsCategories", self._categories)
        r.add_get(sp + "/productOptionsCategories/{id}", self._category)
        r.add_patch(sp + "/productOptionsCategories/{id}", self._patch_category)
        r.add_get(sp + "/menus", self._menus)
        r.add_get(sp + "/menus/{id}", self._menu)
        r.add_patch(sp + "/menus/{id}", self._patch_menu)

    async def _products(self, request: web.Request) -> web.Response:
        only_public = request.query.get("onlyPublicProducts", "").lower() in ("true", "1")
        return json_response(self._catalog(request).partial_products(only_public))

    async def _product(self, request: web.Request) -> web.Response:
        return json_response(self._catalog(request).product(path_int(request, "id")))

    async def _patch_product(self, request: web.Request) -> web.Response:
        catalog = self._catalog(request)
        body = await _json(request)
        answer = catalog.patch_product(path_int(request, "id"), body)
        self.state.cloud.catalog_changed(path_int(request, "sp"), request.path, body)
        return json_response(answer)

    async def _categories(self, request: web.Request) -> web.Response:
        return json_response(self._catalog(request).categories_list())

    async def _category(self, request: web.Request) -> web.Response:
        return json_response(self._catalog(request).category(path_int(request, "id")))

    async def _patch_category(self, request: web.Request) -> web.Response:
        catalog = self._catalog(request)
        body = await _json(request)
        answer = catalog.patch_category(path_int(request, "id"), body)
        self.state.cloud.catalog_changed(path_int(request, "sp"), request.path, body)
        return json_response(answer)

    async def _menus(self, request: web.Request) -> web.Response:
        return json_response(self._catalog(request).partial_menus())

    async def _menu(self, request: web.Request) -> web.Response:
        return json_response(self._catalog(request).menu(path_int(request, "id")))

    async def _patch_menu(self, request: web.Request) -> web.Response:
        catalog = self._catalog(request)
        body = await _json(request)
        answer = catalog.patch_menu(path_int(request, "id"), body)
        self.state.cloud.catalog_changed(path_int(request, "sp"), request.path, body)
        return json_response(answer)
