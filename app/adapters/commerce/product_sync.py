"""The product-sync port: push a published offering (product, variants per plan, prices) to the
commerce backend's own catalog. Only Saleor keeps a catalog of its own; on the local backend the
app's tables are the catalog, so there is nothing to push and `get_product_sync()` returns None.

The port takes plain data (`ProductData`), built by the offerings service: the adapter needs no
session, no model and no publishing rule (the rendered description and the latest version arrive
ready)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class ProductSyncError(Exception):
    """The push failed; the message is safe for operators (no tokens) and is stored on the offering."""


@dataclass(frozen=True)
class FacetData:
    """One facet value of the offering; `label` is None when the vocabulary has no label for it."""

    group: str
    value: str
    label: str | None


@dataclass(frozen=True)
class PlanData:
    """One plan: a variant of the product, found by its SKU."""

    sku: str
    name: str
    tier: str
    price_minor: int
    currency: str
    included_credits: int
    credits_per_run: int
    max_runs_per_period: int | None
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionData:
    """One published version's note, as the product page lists it."""

    version: str
    changelog: str
    released_at: str | None  # ISO 8601


@dataclass(frozen=True)
class CreditPackData:
    """A credit pack for sale: a variant of the store's credit-pack product, found by its SKU."""

    sku: str
    name: str
    credits: int
    price_minor: int
    currency: str


@dataclass(frozen=True)
class ProductData:
    """Everything the backend's product is made of, as the offerings service sees it."""

    offering_id: int
    slug: str
    name: str
    summary: str
    category: str
    description_html: str  # the seller's Markdown, rendered and sanitized like the product page
    live: bool  # published: listed and purchasable; otherwise (archived) neither
    trial_days: int
    trial_credits: int
    version: str  # the latest version by semantic order, "" when there is none
    changelog: str
    product_id: str | None  # the backend's id from an earlier sync, if any
    facets: tuple[FacetData, ...]  # ordered by group, then value
    plans: tuple[PlanData, ...]
    featured: bool = False  # shown under "Featured": the sync keeps the store's featured collection in step
    versions: tuple[VersionData, ...] = ()  # newest first


class ProductSync(Protocol):
    backend: str

    def sync_product(self, product: ProductData, *, on_product_id: Callable[[str], None]) -> str:
        """Create or update the offering's product; return its id in the backend.

        Idempotent: a second call updates what the first created. `on_product_id` is called as
        soon as the product's id is known, so a later failure still leaves it recorded.
        Raises ProductSyncError.
        """
        ...

    def sync_credit_packs(self, packs: tuple[CreditPackData, ...]) -> None:
        """Offer these credit packs in the store (one product, a variant per pack); idempotent.
        Raises ProductSyncError."""
        ...

    def catalog_scope(self) -> dict[str, Any]:
        """The store ids the catalog reads filter on, as far as the syncs so far have learnt them."""
        ...


def get_product_sync(config: dict[str, Any] | None = None) -> ProductSync | None:
    """The adapter for COMMERCE_BACKEND, or None when the backend has no catalog to sync."""
    if config is None:
        from flask import current_app

        config = current_app.config
    if config.get("COMMERCE_BACKEND") != "saleor":
        return None
    from app.adapters.commerce.saleor.sync import SaleorProductSync

    return SaleorProductSync.from_config(config)
