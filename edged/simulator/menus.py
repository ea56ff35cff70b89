"""The menu catalog a box pushes (``PATCH .../menus/collectionRaw``), checked as Sinqro
would: the basic shape of a MenuCollectionRawInputData (doc 003) and the documented
errors for what is missing; :func:`validate_menu_collection` counts what it holds.
"""

from __future__ import annotations

from typing import Any

from edged.simulator.errors import CloudError


def validate_menu_collection(body: Any) -> dict[str, Any]:
    """Basic shape of a MenuCollectionRawInputData (doc 003); counts what it holds."""
    if not isinstance(body, dict) or not isinstance(body.get("menus"), list):
        raise CloudError("UNDEFINED_SECTIONS_AND_PRODUCTS", "body needs a menus array")
    counts = {"menus": 0, "menuSections": 0, "products": 0, "productOptions": 0}
    for menu in body["menus"]:
        if not isinstance(menu, dict) or not isinstance(menu.get("name"), str):
            raise CloudError("BAD_REQUEST", "each menu needs a name")
        if not menu.get("type"):
            raise CloudError("MENU_TYPE_CODE_REQUIRED")
        if menu["type"] not in ("menu", "setmenu"):
            raise CloudError("MENU_TYPE_NOT_FOUND")
        sections = menu.get("menuSections")
        if not isinstance(sections, list) or not sections:
            raise CloudError("UNDEFINED_SECTIONS_AND_PRODUCTS")
        counts["menus"] += 1
        for section in sections:
            products = section.get("products") if isinstance(section, dict) else None
            if not isinstance(products, list):
                raise CloudError("UNDEFINED_SECTIONS_AND_PRODUCTS")
            counts["menuSections"] += 1
            for product in products:
                _check_product(product)
                counts["products"] += 1
                for category in product.get("productOptionsCategories") or []:
                    counts["productOptions"] += _check_category(category)
    return {"autoSelection": bool(body.get("autoSelection")), **counts}


def _check_product(product: Any) -> None:
    if not isinstance(product, dict) or not isinstance(product.get("name"), str):
        raise CloudError("UNDEFINED_SECTIONS_AND_PRODUCTS", "each product needs a name")
    price = product.get("price")
    amount = price.get("amount") if isinstance(price, dict) else None
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
        raise CloudError("BAD_REQUEST", f"product {product['name']!r} needs price.amount >= 0")


def _check_category(category: Any) -> int:
    if not isinstance(category, dict) or not isinstance(category.get("name"), str):
        raise CloudError("PRODUCT_OPTION_CATEGORY_NAME_REQUIRED")
    low, high = category.get("minSelection"), category.get("maxSelection")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        raise CloudError("CATEGORY_MIN_OPTIONS_CANNOT_BE_GREATER_THAN_MAX_OPTIONS")
    options = category.get("productOptions") or []
    if not isinstance(options, list):
        raise CloudError("BAD_REQUEST", "productOptions must be an array")
    for option in options:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            raise CloudError("PRODUCT_OPTION_NAME_REQUIRED")
    return len(options)
