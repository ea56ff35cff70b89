"""Validation of a catalog pushed by a POS terminal, before it goes to Sinqro.

The shape is Sinqro's ``MenuCollectionRawInputData`` (doc 003, ``PATCH
/sellingPoints/{id}/menus/collectionRaw``): menus, their sections, the products of each
section with their variants, option categories and options. Doc 003 gives only an example
for this model, so the check is strict about what the example and the neighbouring models
define (names, types, prices, selections, schedules) and lets other keys through when they
hold plain values. Counts and string lengths are bounded so a runaway POS export cannot
become a runaway request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edged.decoding import decimal
from edged.sinqro.models import ORDER_TYPES

MENU_TYPES = ("menu", "setmenu")
MAX_TEXT = 2000
MAX_NAME = 255
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")


class CatalogError(ValueError):
    """The catalog is unusable; ``path`` names the offending field (``menus[0].name``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True)
class CatalogLimits:
    """Upper bounds on what one push may contain."""

    menus: int = 100
    sections: int = 1000
    products: int = 20_000
    options: int = 50_000


@dataclass(frozen=True)
class CatalogSummary:
    """What a validated catalog holds (for logs and the response)."""

    menus: int
    sections: int
    products: int
    options: int

    def to_dict(self) -> dict[str, int]:
        return {
            "menus": self.menus,
            "sections": self.sections,
            "products": self.products,
            "options": self.options,
        }


class _Counter:
    def __init__(self, limits: CatalogLimits) -> None:
        self.limits = limits
        self.menus = self.sections = self.products = self.options = 0

    def bump(self, what: str, path: str) -> None:
        value = getattr(self, what) + 1
        if value > getattr(self.limits, what):
            raise CatalogError(path, f"too many {what} (limit {getattr(self.limits, what)})")
        setattr(self, what, value)


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(path, f"expected an object, got {_kind(value)}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogError(path, f"expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def _text(obj: dict[str, Any], key: str, path: str, *, required: bool, limit: int) -> None:
    if key not in obj or obj[key] is None:
        if required:
            raise CatalogError(f"{path}.{key}", "missing")
        return
    value = obj[key]
    if not isinstance(value, str):
        raise CatalogError(f"{path}.{key}", f"expected a string, got {_kind(value)}")
    if required and not value.strip():
        raise CatalogError(f"{path}.{key}", "must not be empty")
    if len(value) > limit:
        raise CatalogError(f"{path}.{key}", f"longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise CatalogError(f"{path}.{key}", "contains control characters")


def _bool(obj: dict[str, Any], key: str, path: str) -> None:
    if key in obj and obj[key] is not None and not isinstance(obj[key], bool):
        raise CatalogError(f"{path}.{key}", f"expected true or false, got {_kind(obj[key])}")


def _int(obj: dict[str, Any], key: str, path: str, lo: int, hi: int) -> None:
    if key not in obj or obj[key] is None:
        return
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{path}.{key}", f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise CatalogError(f"{path}.{key}", f"must be between {lo} and {hi}")


def _external_id(obj: dict[str, Any], path: str) -> None:
    value = obj.get("externalId")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CatalogError(f"{path}.externalId", f"expected a string, got {_kind(value)}")
    if isinstance(value, str) and len(value) > MAX_NAME:
        raise CatalogError(f"{path}.externalId", f"longer than {MAX_NAME} characters")


def _price(obj: dict[str, Any], key: str, path: str, *, required: bool) -> None:
    if key not in obj or obj[key] is None:
        if required:
            raise CatalogError(f"{path}.{key}", "missing")
        return
    price = _obj(obj[key], f"{path}.{key}")
    p = f"{path}.{key}"
    for field, hi in (("amount", 1_000_000.0), ("vatValue", 100.0)):
        if field not in price:
            if field == "amount":
                raise CatalogError(f"{p}.amount", "missing")
            continue
        value = price[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CatalogError(f"{p}.{field}", f"expected a number, got {_kind(value)}")
        number = decimal(value)  # None for an integer too long for a float
        if number is None or not 0 <= number <= hi:
            raise CatalogError(f"{p}.{field}", f"must be between 0 and {hi:g}")


def _selection(obj: dict[str, Any], path: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        _int(obj, key, path, 0, 10_000)
    lo, hi = obj.get("minSelection"), obj.get("maxSelection")
    if isinstance(lo, int) and isinstance(hi, int) and hi and lo > hi:
        raise CatalogError(f"{path}.minSelection", "greater than maxSelection")


def _option(obj: Any, path: str, count: _Counter) -> None:
    option = _obj(obj, path)
    count.bump("options", path)
    _text(option, "name", path, required=True, limit=MAX_NAME)
    _external_id(option, path)
    _price(option, "price", path, required=False)
    _bool(option, "isAvailable", path)


def _option_category(obj: Any, path: str, count: _Counter) -> None:
    category = _obj(obj, path)
    _text(category, "name", path, required=True, limit=MAX_NAME)
    _external_id(category, path)
    _selection(category, path, ("minSelection", "maxSelection", "maxSameOptionSelection"))
    options = _list(category.get("productOptions", []), f"{path}.productOptions")
    for i, option in enumerate(options):
        _option(option, f"{path}.productOptions[{i}]", count)


def _product(obj: Any, path: str, count: _Counter, *, variant: bool) -> None:
    product = _obj(obj, path)
    count.bump("products", path)
    _text(product, "name", path, required=True, limit=MAX_NAME)
    for key in ("shortDescription", "description", "image"):
        _text(product, key, path, required=False, limit=MAX_TEXT)
    _external_id(product, path)
    _price(product, "price", path, required=True)
    _price(product, "inMenuPrice", path, required=False)
    for key in ("public", "featured", "isAvailable", "addProductOptionsToVariants"):
        _bool(product, key, path)
    _int(product, "position", path, -1_000_000, 1_000_000)
    tags = _list(product.get("tags", []), f"{path}.tags")
    for i, tag in enumerate(tags):
        if not isinstance(tag, (str, int)) or isinstance(tag, bool):
            raise CatalogError(f"{path}.tags[{i}]", f"expected a string, got {_kind(tag)}")
    if "productVariants" in product:
        variants = _list(product["productVariants"], f"{path}.productVariants")
        if variant and variants:
            raise CatalogError(f"{path}.productVariants", "a variant cannot have variants")
        for i, item in enumerate(variants):
            _product(item, f"{path}.productVariants[{i}]", count, variant=True)
    categories = _list(
        product.get("productOptionsCategories", []), f"{path}.productOptionsCategories"
    )
    for i, category in enumerate(categories):
        _option_category(category, f"{path}.productOptionsCategories[{i}]", count)


def _schedule(obj: Any, path: str) -> None:
    schedule = _obj(obj, path)
    _text(schedule, "name", path, required=False, limit=MAX_NAME)
    ranges = _list(schedule.get("scheduleRanges", []), f"{path}.scheduleRanges")
    if len(ranges) > 500:
        raise CatalogError(f"{path}.scheduleRanges", "more than 500 ranges")
    for i, item in enumerate(ranges):
        p = f"{path}.scheduleRanges[{i}]"
        span = _obj(item, p)
        for key in ("startDay", "endDay"):
            if key not in span:
                raise CatalogError(f"{p}.{key}", "missing")
            _int(span, key, p, 1, 7)
        for key in ("startTime", "endTime"):
            value = span.get(key)
            if not isinstance(value, str) or not _TIME.fullmatch(value):
                raise CatalogError(f"{p}.{key}", f"expected HH:MM, got {value!r}"[:200])


def _section(obj: Any, path: str, count: _Counter) -> None:
    section = _obj(obj, path)
    count.bump("sections", path)
    _text(section, "name", path, required=True, limit=MAX_NAME)
    _text(section, "shortDescription", path, required=False, limit=MAX_TEXT)
    _external_id(section, path)
    _int(section, "position", path, -1_000_000, 1_000_000)
    _selection(section, path, ("minSelection", "maxSelection"))
    _bool(section, "showProductImages", path)
    products = _list(section.get("products", []), f"{path}.products")
    for i, product in enumerate(products):
        _product(product, f"{path}.products[{i}]", count, variant=False)


def _menu(obj: Any, path: str, count: _Counter) -> None:
    menu = _obj(obj, path)
    count.bump("menus", path)
    _text(menu, "name", path, required=True, limit=MAX_NAME)
    _text(menu, "shortDescription", path, required=False, limit=MAX_TEXT)
    _external_id(menu, path)
    menu_type = menu.get("type", "menu")
    if menu_type not in MENU_TYPES:
        raise CatalogError(f"{path}.type", f"expected one of {', '.join(MENU_TYPES)}")
    _bool(menu, "public", path)
    _int(menu, "position", path, -1_000_000, 1_000_000)
    _price(menu, "price", path, required=menu_type == "setmenu")
    types = _list(menu.get("allowedOrderTypes", []), f"{path}.allowedOrderTypes")
    for i, order_type in enumerate(types):
        if order_type not in ORDER_TYPES:
            raise CatalogError(
                f"{path}.allowedOrderTypes[{i}]", f"expected one of {', '.join(ORDER_TYPES)}"
            )
    if menu.get("schedule") is not None:
        _schedule(menu["schedule"], f"{path}.schedule")
    sections = _list(menu.get("menuSections", []), f"{path}.menuSections")
    for i, section in enumerate(sections):
        _section(section, f"{path}.menuSections[{i}]", count)


def validate_catalog(obj: Any, limits: CatalogLimits | None = None) -> CatalogSummary:
    """Check a ``MenuCollectionRawInputData`` document; raise :class:`CatalogError`.

    The document is sent to Sinqro as it is, so nothing is rewritten here.
    """
    count = _Counter(limits or CatalogLimits())
    catalog = _obj(obj, "catalog")
    _bool(catalog, "autoSelection", "catalog")
    if "menus" not in catalog:
        raise CatalogError("catalog.menus", "missing")
    menus = _list(catalog["menus"], "catalog.menus")
    if not menus:
        raise CatalogError("catalog.menus", "at least one menu is required")
    for i, menu in enumerate(menus):
        _menu(menu, f"catalog.menus[{i}]", count)
    return CatalogSummary(count.menus, count.sections, count.products, count.options)
