"""A selling point's catalog as Sinqro describes it (doc 003): products with their
variants, product option categories with their options, and what the box keeps of them.

The parsers are tolerant of the shapes the reference leaves open (docs/sinqro-assumptions.md,
"Catalog"): ids as numbers or digit strings, ``isAvailable`` absent (purchasable), a
product's option categories given whole (``productOptionsCategories``) or by id
(``productOptionsIds``), unknown keys ignored. An entry without a usable id is skipped,
counted, never guessed. :class:`Catalog` is what the journal stores: :meth:`Catalog.to_json`
is canonical (sorted), so an unchanged catalog gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edged.decoding import MAX_ID, PayloadError, decimal, whole_number
from edged.sinqro.models import MAX_ENTRIES

MAX_NAME = 200


def _id(value: Any) -> int | None:
    return whole_number(value, minimum=1, maximum=MAX_ID)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # an external id may come as a number
    return value[:MAX_NAME] if isinstance(value, str) else ""


def _available(obj: dict[str, Any]) -> bool:
    # Absent (as in the partial products) or null: nothing says it cannot be bought.
    return obj.get("isAvailable") is not False


def _price(obj: dict[str, Any]) -> float | None:
    price = obj.get("price")
    return decimal(price.get("amount")) if isinstance(price, dict) else None


@dataclass(frozen=True)
class CatalogOption:
    """A product option (an extra) of one option category."""

    id: int
    category_id: int
    name: str
    external_id: str = ""
    available: bool = True
    price: float | None = None


@dataclass(frozen=True)
class OptionCategory:
    """A product option category and its options."""

    id: int
    name: str
    external_id: str = ""
    options: tuple[CatalogOption, ...] = ()


@dataclass(frozen=True)
class CatalogProduct:
    """A product, or a variant of one (``parent_id`` set)."""

    id: int
    name: str
    external_id: str = ""
    available: bool = True
    price: float | None = None
    parent_id: int | None = None
    public: bool = True
    category_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """What a selling point sells: products and variants, option categories."""

    products: tuple[CatalogProduct, ...] = ()
    categories: tuple[OptionCategory, ...] = ()
    skipped: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON (sorted by id), the journal's copy."""
        return {
            "products": [
                {
                    "id": p.id,
                    "name": p.name,
                    "externalId": p.external_id,
                    "isAvailable": p.available,
                    "price": p.price,
                    "parentId": p.parent_id,
                    "public": p.public,
                    "categoryIds": list(p.category_ids),
                }
                for p in sorted(self.products, key=lambda p: p.id)
            ],
            "categories": [
                {
                    "id": c.id,
                    "name": c.name,
                    "externalId": c.external_id,
                    "options": [
                        {
                            "id": o.id,
                            "name": o.name,
                            "externalId": o.external_id,
                            "isAvailable": o.available,
                            "price": o.price,
                        }
                        for o in sorted(c.options, key=lambda o: o.id)
                    ],
                }
                for c in sorted(self.categories, key=lambda c: c.id)
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Catalog:
        """Read back :meth:`to_json` (the journal's copy); bad entries are skipped."""
        if not isinstance(data, dict):
            return cls()
        products = [
            p for p in (_stored_product(e) for e in _list(data.get("products"))) if p is not None
        ]
        categories = [
            c for c in (_stored_category(e) for e in _list(data.get("categories"))) if c is not None
        ]
        return cls(tuple(products), tuple(categories))

    def product(self, product_id: int) -> CatalogProduct | None:
        return next((p for p in self.products if p.id == product_id), None)

    def option(self, option_id: int) -> CatalogOption | None:
        return next((o for c in self.categories for o in c.options if o.id == option_id), None)

    def find(self, key: str) -> list[CatalogProduct | CatalogOption]:
        """Products and options a person or a POS means by ``key``: an id, an external
        id (exact), or else a name (exact, then containing it; case-insensitive)."""
        items: list[CatalogProduct | CatalogOption] = [
            *self.products,
            *(o for c in self.categories for o in c.options),
        ]
        number = _id(key)
        if number is not None:
            by_id = [i for i in items if i.id == number]
            if by_id:
                return by_id
        by_external = [i for i in items if i.external_id and i.external_id == key]
        if by_external:
            return by_external
        folded = key.casefold().strip()
        exact = [i for i in items if i.name.casefold() == folded]
        return exact or [i for i in items if folded and folded in i.name.casefold()]


def _list(value: Any) -> list[Any]:
    return value[:MAX_ENTRIES] if isinstance(value, list) else []


def _stored_product(entry: Any) -> CatalogProduct | None:
    if not isinstance(entry, dict) or _id(entry.get("id")) is None:
        return None
    return CatalogProduct(
        id=int(entry["id"]),
        name=_text(entry, "name"),
        external_id=_text(entry, "externalId"),
        available=_available(entry),
        price=decimal(entry.get("price")),
        parent_id=_id(entry.get("parentId")),
        public=entry.get("public") is not False,
        category_ids=tuple(i for i in (_id(v) for v in _list(entry.get("categoryIds"))) if i),
    )


def _stored_category(entry: Any) -> OptionCategory | None:
    category_id = _id(entry.get("id")) if isinstance(entry, dict) else None
    if category_id is None:
        return None
    options = []
    for option in _list(entry.get("options")):
        option_id = _id(option.get("id")) if isinstance(option, dict) else None
        if option_id is not None:
            options.append(
                CatalogOption(
                    id=option_id,
                    category_id=category_id,
                    name=_text(option, "name"),
                    external_id=_text(option, "externalId"),
                    available=_available(option),
                    price=decimal(option.get("price")),
                )
            )
    return OptionCategory(
        category_id, _text(entry, "name"), _text(entry, "externalId"), tuple(options)
    )


def parse_category(obj: Any, path: str = "productOptionsCategory") -> OptionCategory:
    """A ProductOptionsCategory (doc 003); options without a usable id are left out."""
    if not isinstance(obj, dict):
        raise PayloadError(path, "expected an object")
    category_id = _id(obj.get("id"))
    if category_id is None:
        raise PayloadError(path + ".id", "expected a positive id")
    options = []
    for option in _list(obj.get("productOptions")):
        option_id = _id(option.get("id")) if isinstance(option, dict) else None
        if option_id is None:
            continue
        options.append(
            CatalogOption(
                id=option_id,
                category_id=category_id,
                name=_text(option, "name") or f"#{option_id}",
                external_id=_text(option, "externalId"),
                available=_available(option),
                price=_price(option),
            )
        )
    return OptionCategory(
        category_id,
        _text(obj, "name") or f"#{category_id}",
        _text(obj, "externalId"),
        tuple(options),
    )


def parse_categories(obj: Any, path: str = "productOptionsCategories") -> list[OptionCategory]:
    """A list of ProductOptionsCategory; an unusable entry is skipped."""
    if not isinstance(obj, list):
        raise PayloadError(path, f"expected a list, got {type(obj).__name__}")
    out = []
    for i, item in enumerate(_list(obj)):
        try:
            out.append(parse_category(item, f"{path}[{i}]"))
        except PayloadError:
            continue
    return out


def parse_partial_ids(obj: Any, path: str = "products") -> list[int]:
    """The ids of a PosPartialProduct list (the whole product is read one by one)."""
    if not isinstance(obj, list):
        raise PayloadError(path, f"expected a list, got {type(obj).__name__}")
    ids = [_id(item.get("id")) if isinstance(item, dict) else None for item in _list(obj)]
    return [i for i in ids if i is not None]


def parse_product(
    obj: Any, path: str = "product"
) -> tuple[list[CatalogProduct], list[OptionCategory]]:
    """A PosProduct: the product and its variants (flat, variants with ``parent_id``),
    and the option categories it carries whole."""
    if not isinstance(obj, dict):
        raise PayloadError(path, "expected an object")
    product_id = _id(obj.get("id"))
    if product_id is None:
        raise PayloadError(path + ".id", "expected a positive id")
    products: list[CatalogProduct] = []
    categories: list[OptionCategory] = []

    def one(item: dict[str, Any], item_id: int, parent: int | None) -> None:
        own: list[int] = []
        for category in _list(item.get("productOptionsCategories")):
            try:
                parsed = parse_category(category)
            except PayloadError:
                continue
            categories.append(parsed)
            own.append(parsed.id)
        own.extend(i for i in (_id(v) for v in _list(item.get("productOptionsIds"))) if i)
        products.append(
            CatalogProduct(
                id=item_id,
                name=_text(item, "name") or f"#{item_id}",
                external_id=_text(item, "externalId"),
                available=_available(item),
                price=_price(item),
                parent_id=parent,
                public=item.get("public") is not False,
                category_ids=tuple(dict.fromkeys(own)),
            )
        )

    one(obj, product_id, None)
    for variant in _list(obj.get("productVariants")):
        variant_id = _id(variant.get("id")) if isinstance(variant, dict) else None
        if variant_id is not None and variant_id != product_id:
            one(variant, variant_id, product_id)
    return products, categories
