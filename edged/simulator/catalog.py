"""A selling point's products, product option categories and menus, as doc 003 serves them.

:class:`Catalog` holds one selling point's catalog, seeded from the generator's dishes
(:data:`edged.simulator.generate.PRODUCTS`): each dish is a product (some with a variant),
its extras a product option category of its own, all dishes in one menu. It answers the
routes of doc 003: partial products (``GET .../products``), a whole PosProduct with its
variants and option categories (``GET .../products/{id}``), ``PATCH`` that changes only
what was sent ("Patch only modify send information"), the option categories and the
menus. ``isAvailable`` is effective: :meth:`Catalog.offer` is what generated orders may
hold, so an unavailable product or option is never ordered.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from edged.simulator.errors import CloudError
from edged.simulator.generate import PRODUCTS, Offered, option_id

PRODUCT_BASE = 109800
VARIANT_BASE = 119800
CATEGORY_BASE = 102000
MENU_ID = 543
# Dishes that come in a bigger size too (a product variant, doc 003).
VARIANTS = {0: ("XXL", 4.0), 1: ("XXL", 4.0), 3: ("Ración doble", 6.0)}

_PRODUCT_TEXT = ("name", "externalId", "shortDescription", "description", "image", "urlKey")
_PRODUCT_FLAGS = ("public", "featured", "isAvailable")
_CATEGORY_INTS = ("position", "maxSameOptionSelection")


def _price(amount: float, vat: float) -> dict[str, Any]:
    return {"amount": amount, "vatValue": float(vat)}


def _seed_product(dish: int) -> dict[str, Any]:
    label, price, vat, options = PRODUCTS[dish]
    product: dict[str, Any] = {
        "id": PRODUCT_BASE + dish,
        "externalId": f"TPV-{dish + 1:03d}",
        "name": label,
        "image": None,
        "price": _price(price, vat),
        "inMenuPrice": None,
        "public": True,
        "featured": dish < 2,
        "shortDescription": "",
        "description": "",
        "parentName": None,
        "isAvailable": True,
        "tags": [],
        "productOptionsIds": [CATEGORY_BASE + dish] if options else [],
        "urlKey": label.lower().replace(" ", "-"),
        "productVariants": [],
        "menuSections": [{"id": MENU_ID * 10, "name": "Carta"}],
    }
    if dish in VARIANTS:
        name, extra = VARIANTS[dish]
        variant = {
            key: copy.deepcopy(value)
            for key, value in product.items()
            if key not in ("productVariants", "menuSections")
        }
        variant.update(
            id=VARIANT_BASE + dish,
            externalId=f"TPV-{dish + 1:03d}-{name[:3].upper()}",
            name=name,
            parentName=label,
            price=_price(round(price + extra, 2), vat),
            featured=False,
        )
        product["productVariants"] = [variant]
    return product


def _seed_category(dish: int) -> dict[str, Any] | None:
    label, _, vat, options = PRODUCTS[dish]
    if not options:
        return None
    return {
        "id": CATEGORY_BASE + dish,
        "externalId": f"TPV-{dish + 1:03d}-EXTRAS",
        "name": f"Extras: {label}",
        "shortDescription": "",
        "position": 1,
        "maxSelection": len(options),
        "minSelection": None,
        "maxSameOptionSelection": 1,
        "selectionLabel": f"Max. {len(options)}",
        "productOptions": [
            {
                "id": option_id(dish, i),
                "externalId": f"TPV-{dish + 1:03d}-{i + 1:02d}",
                "name": name,
                "shortDescription": "",
                "position": i + 1,
                "isAvailable": True,
                "price": _price(amount, vat),
            }
            for i, (name, amount) in enumerate(options)
        ],
    }


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise CloudError("BAD_REQUEST", f"{key} must be true or false")
    return value


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise CloudError("BAD_REQUEST", f"{key} must be an integer or null")
    return value


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body[key]
    if value is not None and not isinstance(value, str):
        raise CloudError("BAD_REQUEST", f"{key} must be a string")
    return value


def _check_price(value: Any, key: str) -> dict[str, Any] | None:
    if value is None:
        return None
    amount = value.get("amount") if isinstance(value, dict) else None
    try:
        number = float(str(amount))  # doc 003's input examples quote amounts ("11.75")
    except ValueError:
        raise CloudError("BAD_REQUEST", f"{key}.amount must be a number") from None
    if not (math.isfinite(number) and number >= 0):
        raise CloudError("BAD_REQUEST", f"{key}.amount must be >= 0")
    vat = value.get("vatValue", 10.0)
    try:
        return _price(number, float(vat))
    except (TypeError, ValueError):
        raise CloudError("BAD_REQUEST", f"{key}.vatValue must be a number") from None


class Catalog:
    """One selling point's products, option categories and menus (state of the fake cloud)."""

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.categories: dict[int, dict[str, Any]] = {}
        for dish in range(len(PRODUCTS)):
            self.products[PRODUCT_BASE + dish] = _seed_product(dish)
            category = _seed_category(dish)
            if category is not None:
                self.categories[category["id"]] = category
        self.menus: dict[int, dict[str, Any]] = {
            MENU_ID: {
                "id": MENU_ID,
                "name": "Carta",
                "type": "menu",
                "position": 1,
                "allowedOrderTypes": ["delivery", "collection", "inside", "insitu"],
                "price": None,
                "public": True,
                "externalId": "TPV-CARTA",
            }
        }
        self._next_option = option_id(0, 0) + 9000

    # -- lookups ---------------------------------------------------------------------------

    def _product(self, product_id: int) -> dict[str, Any]:
        """A product or a variant (doc 003 addresses variants by their own id too)."""
        product = self.products.get(product_id)
        if product is not None:
            return product
        for parent in self.products.values():
            for variant in parent["productVariants"]:
                if variant["id"] == product_id:
                    return variant  # type: ignore[no-any-return]
        raise CloudError("PRODUCT_NOT_FOUND")

    def _category(self, category_id: int) -> dict[str, Any]:
        category = self.categories.get(category_id)
        if category is None:
            raise CloudError("PRODUCT_OPTION_CATEGORY_NOT_FOUND")
        return category

    def _full(self, product: dict[str, Any]) -> dict[str, Any]:
        """A PosProduct: the stored product with its option categories filled in."""
        out = copy.deepcopy(product)
        ids = out.pop("productOptionsIds", [])
        out["productOptionsCategories"] = [
            copy.deepcopy(self.categories[i]) for i in ids if i in self.categories
        ]
        for variant in out.get("productVariants") or []:
            variant_ids = variant.pop("productOptionsIds", [])
            variant["productOptionsCategories"] = [
                copy.deepcopy(self.categories[i]) for i in variant_ids if i in self.categories
            ]
        return out

    # -- products --------------------------------------------------------------------------

    def partial_products(self, only_public: bool = False) -> list[dict[str, Any]]:
        """``GET .../products``: first-level products as PosPartialProduct (doc 003's
        example holds no ``isAvailable``: the whole product says it)."""
        keys = ("id", "externalId", "name", "image", "price", "inMenuPrice", "public", "featured")
        return [
            {key: copy.deepcopy(p.get(key)) for key in keys}
            for p in self.products.values()
            if p["public"] or not only_public
        ]

    def product(self, product_id: int) -> dict[str, Any]:
        """``GET .../products/{id}``: the whole PosProduct (variants, option categories)."""
        return self._full(self._product(product_id))

    def patch_product(self, product_id: int, body: Any) -> dict[str, Any]:
        """``PATCH .../products/{id}``: only the keys sent change; checked before any is
        applied, so a bad body changes nothing."""
        if not isinstance(body, dict):
            raise CloudError("BAD_REQUEST", "body must be a JSON object (ProductInputData)")
        product = self._product(product_id)
        changes = self._product_changes(body)
        variants = body.get("productVariants")
        variant_changes: list[tuple[dict[str, Any], dict[str, Any]]] = []
        if variants is not None:
            if not isinstance(variants, list) or "productVariants" not in product:
                raise CloudError("BAD_REQUEST", "productVariants must be an array of a product")
            for entry in variants:
                if not isinstance(entry, dict) or "id" not in entry:
                    raise CloudError("BAD_REQUEST", "only existing variants (with id) change here")
                target = next(
                    (v for v in product["productVariants"] if str(v["id"]) == str(entry["id"])),
                    None,
                )
                if target is None:
                    raise CloudError("PRODUCT_NOT_FOUND", f"variant {entry['id']} not found")
                variant_changes.append((target, self._product_changes(entry)))
        product.update(changes)
        for target, change in variant_changes:
            target.update(change)
        return self._full(product)

    def _product_changes(self, body: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for key in _PRODUCT_TEXT:
            if key in body:
                changes[key] = _text(body, key)
        if "name" in changes and not changes["name"]:
            raise CloudError("BAD_REQUEST", "name cannot be empty")
        for key in _PRODUCT_FLAGS:
            if key in body:
                changes[key] = _bool(body, key)
        for key in ("price", "inMenuPrice"):
            if key in body:
                changes[key] = _check_price(body[key], key)
        if "tags" in body:
            tags = body["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise CloudError("BAD_REQUEST", "tags must be an array of strings")
            changes["tags"] = list(tags)
        if "productOptionsIds" in body:
            ids = body["productOptionsIds"]
            if not isinstance(ids, list) or any(
                isinstance(i, bool) or not isinstance(i, int) for i in ids
            ):
                raise CloudError("BAD_REQUEST", "productOptionsIds must be an array of ids")
            for i in ids:
                self._category(i)
            changes["productOptionsIds"] = list(ids)
        return changes

    # -- option categories -----------------------------------------------------------------

    def categories_list(self) -> list[dict[str, Any]]:
        """``GET .../productOptionsCategories``."""
        return [copy.deepcopy(c) for c in self.categories.values()]

    def category(self, category_id: int) -> dict[str, Any]:
        """``GET .../productOptionsCategories/{id}``."""
        return copy.deepcopy(self._category(category_id))

    def patch_category(self, category_id: int, body: Any) -> dict[str, Any]:
        """``PATCH .../productOptionsCategories/{id}`` (ProductOptionsCategoryInputDataPatch):
        the keys sent change; options with an ``id`` change in place, options without one
        are added, options not sent stay (deleting one has its own route)."""
        if not isinstance(body, dict):
            raise CloudError("BAD_REQUEST", "body must be a JSON object")
        category = self._category(category_id)
        changes: dict[str, Any] = {}
        for key in ("name", "externalId", "shortDescription"):
            if key in body:
                changes[key] = _text(body, key)
        if "name" in changes and not changes["name"]:
            raise CloudError("PRODUCT_OPTION_CATEGORY_NAME_REQUIRED")
        for key in _CATEGORY_INTS:
            if key in body:
                changes[key] = _opt_int(body, key)
        # The input names them minOptions/maxOptions; the answer minSelection/maxSelection.
        for given, stored in (("minOptions", "minSelection"), ("maxOptions", "maxSelection")):
            if given in body:
                changes[stored] = _opt_int(body, given)
        low = changes.get("minSelection", category.get("minSelection"))
        high = changes.get("maxSelection", category.get("maxSelection"))
        if isinstance(low, int) and isinstance(high, int) and low > high:
            raise CloudError("CATEGORY_MIN_OPTIONS_CANNOT_BE_GREATER_THAN_MAX_OPTIONS")
        option_changes: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        options = body.get("productOptions")
        if options is not None:
            if not isinstance(options, list):
                raise CloudError("BAD_REQUEST", "productOptions must be an array")
            for entry in options:
                option_changes.append(self._option_change(category, entry))
        category.update(changes)
        for target, change in option_changes:
            if target is None:
                self._next_option += 1
                new = {"id": self._next_option, "isAvailable": True, "position": 1, **change}
                new.setdefault("price", _price(0.0, 10.0))
                category["productOptions"].append(new)
            else:
                target.update(change)
        return copy.deepcopy(category)

    def _option_change(
        self, category: dict[str, Any], entry: Any
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        if not isinstance(entry, dict):
            raise CloudError("BAD_REQUEST", "each product option must be an object")
        target = None
        if entry.get("id") is not None:
            target = next(
                (o for o in category["productOptions"] if str(o["id"]) == str(entry["id"])), None
            )
            if target is None:
                raise CloudError("BAD_REQUEST", f"product option {entry['id']} not in category")
        change: dict[str, Any] = {}
        for key in ("name", "externalId", "shortDescription"):
            if key in entry:
                change[key] = _text(entry, key)
        if (target is None or "name" in change) and not change.get("name"):
            raise CloudError("PRODUCT_OPTION_NAME_REQUIRED")
        if "isAvailable" in entry:
            change["isAvailable"] = _bool(entry, "isAvailable")
        if "position" in entry:
            change["position"] = _opt_int(entry, "position")
        if "price" in entry:
            change["price"] = _check_price(entry["price"], "price")
        return target, change

    # -- menus -----------------------------------------------------------------------------

    def partial_menus(self) -> list[dict[str, Any]]:
        """``GET .../menus``: Partial Menu entries."""
        return [copy.deepcopy(m) for m in self.menus.values()]

    def menu(self, menu_id: int) -> dict[str, Any]:
        """``GET .../menus/{id}``: the menu with its one section of products."""
        menu = self.menus.get(menu_id)
        if menu is None:
            raise CloudError("MENU_NOT_FOUND")
        out = copy.deepcopy(menu)
        out["menuSections"] = [
            {
                "id": menu_id * 10,
                "name": "Carta",
                "position": 1,
                "products": self.partial_products(),
            }
        ]
        return out

    def patch_menu(self, menu_id: int, body: Any) -> dict[str, Any]:
        """``PATCH .../menus/{id}``: name, position, public, externalId, allowedOrderTypes."""
        menu = self.menus.get(menu_id)
        if menu is None:
            raise CloudError("MENU_NOT_FOUND")
        if not isinstance(body, dict):
            raise CloudError("BAD_REQUEST", "body must be a JSON object")
        changes: dict[str, Any] = {}
        for key in ("name", "externalId"):
            if key in body:
                changes[key] = _text(body, key)
        if "public" in body:
            changes["public"] = _bool(body, "public")
        if "position" in body:
            changes["position"] = _opt_int(body, "position")
        if "allowedOrderTypes" in body:
            types = body["allowedOrderTypes"]
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise CloudError("BAD_REQUEST", "allowedOrderTypes must be an array of codes")
            changes["allowedOrderTypes"] = list(types)
        menu.update(changes)
        return self.menu(menu_id)

    # -- what can be ordered ---------------------------------------------------------------

    def offer(self) -> list[Offered]:
        """The dishes generated orders may hold now: available products (with their
        available extras) only; a product whose variant alone is available is offered as
        that variant."""
        out: list[Offered] = []
        for dish in range(len(PRODUCTS)):
            product = self.products.get(PRODUCT_BASE + dish)
            if product is None:
                continue
            choice = product if product["isAvailable"] else None
            if choice is None:
                choice = next((v for v in product["productVariants"] if v["isAvailable"]), None)
            if choice is None:
                continue
            extras = [
                (int(o["id"]), str(o["name"]), float(o["price"]["amount"]))
                for cid in choice.get("productOptionsIds") or []
                for o in self.categories.get(cid, {}).get("productOptions", [])
                if o["isAvailable"]
            ]
            price = choice["price"] or {"amount": 0.0, "vatValue": 10.0}
            label = choice["name"]
            if choice is not product:
                label = f"{product['name']} ({choice['name']})"
            out.append(
                Offered(
                    int(choice["id"]),
                    choice.get("externalId"),
                    label,
                    float(price["amount"]),
                    float(price["vatValue"]),
                    extras,
                )
            )
        return out

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "products": list(self.products.values()),
            "categories": list(self.categories.values()),
            "menus": list(self.menus.values()),
            "nextOption": self._next_option,
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.products = {int(p["id"]): p for p in data.get("products", [])}
        self.categories = {int(c["id"]): c for c in data.get("categories", [])}
        self.menus = {int(m["id"]): m for m in data.get("menus", [])} or self.menus
        self._next_option = int(data.get("nextOption", self._next_option))
