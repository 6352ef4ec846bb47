"""Our names in a Saleor that other sellers share: product types, attributes, collections, metadata.

A store's demo data (or its own catalog) lives in the same channel as our offerings and may already
have a `publisher` attribute or a `featured-products` collection. Everything the marketplace creates
carries SALEOR_ATTRIBUTE_PREFIX (default `digitlify-`), so the sync never adopts a store's attribute
and the catalog never reads one: attributes `<prefix>category`, `<prefix>outcome`, ..., `<prefix>tier`;
product types `<prefix>offering` and `<prefix>credit-pack`; the credit-pack product and its category
`<prefix>credits`. "Featured" is the collection SALEOR_FEATURED_COLLECTION, which the sync fills from
the offerings' featured flag; SALEOR_CATALOG_COLLECTION, when set, scopes the catalog to a collection
(also kept by the sync) instead of to our product type.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PREFIX = "digitlify-"
DEFAULT_FEATURED_COLLECTION = "digitlify-featured"
KIND_KEY = "digitlify_kind"  # product metadata: "offering" | "credit-pack"


@dataclass(frozen=True)
class StoreNames:
    prefix: str = DEFAULT_PREFIX
    catalog_collection: str = ""  # empty: the catalog is the products of our offering type
    featured_collection: str = DEFAULT_FEATURED_COLLECTION

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "StoreNames":
        prefix = config.get("SALEOR_ATTRIBUTE_PREFIX")
        return cls(
            prefix=DEFAULT_PREFIX if prefix is None else str(prefix).strip(),
            catalog_collection=str(config.get("SALEOR_CATALOG_COLLECTION") or "").strip(),
            featured_collection=str(config.get("SALEOR_FEATURED_COLLECTION") or DEFAULT_FEATURED_COLLECTION).strip(),
        )

    def attribute(self, name: str) -> str:
        """Our attribute's slug for a facet group or plan term (`category`, `tier`, `included-credits`)."""
        return f"{self.prefix}{name}"

    def name_of(self, slug: str | None) -> str | None:
        """The facet group or plan term an attribute slug stands for; None for an attribute not ours."""
        if not slug or not slug.startswith(self.prefix):
            return None
        return slug[len(self.prefix):] or None

    @property
    def offering_type(self) -> str:
        return f"{self.prefix}offering"

    @property
    def credit_pack_type(self) -> str:
        return f"{self.prefix}credit-pack"

    @property
    def credit_pack_product(self) -> str:
        return f"{self.prefix}credits"

    @property
    def credit_pack_category(self) -> str:
        return f"{self.prefix}credits"

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.prefix, self.catalog_collection, self.featured_collection)
