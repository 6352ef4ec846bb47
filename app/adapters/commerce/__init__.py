"""The commerce port, read side: the catalog.

Views and services ask `get_catalog()` for the adapter chosen by COMMERCE_BACKEND (`local`: the
app's own tables, the default; `saleor`: Saleor's GraphQL API) and never import an adapter.
Everything an adapter returns is a small frozen dataclass below, so templates and services see
the same shapes whichever backend answers. Only published offerings are ever returned.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

FACET_GROUPS = ("category", "outcome", "role", "capability", "pricing", "publisher")
SORTS = ("relevance", "newest", "price_asc", "price_desc", "name", "rating")
# The rating facet: "n stars and up" (the average of an offering's visible reviews, compared exactly
# as stars >= n * reviews). Only adapters with `supports_ratings` filter, count and sort by rating.
RATING_GROUP = "rating"
RATING_THRESHOLDS = (4, 3, 2, 1)


def rating_label(threshold: int) -> str:
    return f"{threshold} star{'' if threshold == 1 else 's'} and up"
BACKENDS = ("local", "saleor")


class CommerceUnavailable(Exception):
    """The commerce backend could not answer (down, slow, or broken); show the fallback page."""


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    count: int | None = None  # None: the backend cannot count (Saleor)


@dataclass(frozen=True)
class FacetOption:
    value: str  # slug, as it appears in URLs
    label: str
    count: int | None  # offerings matching every other active filter plus this value; None: not counted
    selected: bool = False


@dataclass(frozen=True)
class FacetGroup:
    name: str  # one of FACET_GROUPS
    label: str
    options: tuple[FacetOption, ...]


@dataclass(frozen=True)
class FacetChip:
    """A facet value of one offering, shown as a link to the search for it."""

    group: str
    value: str
    label: str


@dataclass(frozen=True)
class OfferingCard:
    """What a result card needs."""

    key: str  # backend id: the offering id (local) or the product's global id (Saleor)
    slug: str
    name: str
    summary: str
    category: str
    category_label: str
    publisher: str
    price_from_minor: int | None
    currency: str
    has_trial: bool
    featured: bool = False
    published_at: datetime | None = None
    rating_average: float | None = None  # of the visible reviews, to one decimal; None: no reviews (or not known)
    rating_count: int = 0
    publisher_slug: str = ""  # links the publisher's name to its vendor page
    logo_key: str | None = None  # a stored image (the storage port), shown instead of the letter avatar


@dataclass(frozen=True)
class PlanOption:
    sku: str
    tier: str
    name: str
    price_minor: int
    currency: str
    interval: str
    included_credits: int | None
    credits_per_run: int | None
    max_runs_per_period: int | None  # None: unlimited (or not stated)
    features: tuple[str, ...] = ()
    credits_per_1k_units: int = 0  # extra credits per 1,000 units of text a run reads and writes; 0: flat per run


@dataclass(frozen=True)
class VersionNote:
    version: str
    changelog: str
    released_at: datetime | None = None


@dataclass(frozen=True)
class ScreenshotImage:
    key: str  # a stored image (the storage port)
    alt: str
    width: int
    height: int


@dataclass(frozen=True)
class ListingExtras:
    """What this marketplace keeps about a listing whatever the store: its rating from our reviews and
    the images its seller uploaded. A store adapter that has no such data (Saleor) is given these."""

    rating_average: float | None = None
    rating_count: int = 0
    logo_key: str | None = None
    screenshots: tuple[ScreenshotImage, ...] = ()


@dataclass(frozen=True)
class OfferingDetail:
    card: OfferingCard
    description_md: str
    facets: tuple[FacetChip, ...]
    plans: tuple[PlanOption, ...]
    versions: tuple[VersionNote, ...]  # newest first
    trial_days: int = 0
    trial_credits: int = 0
    screenshots: tuple[ScreenshotImage, ...] = ()  # in the seller's order

    @property
    def current_version(self) -> VersionNote | None:
        return self.versions[0] if self.versions else None


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: unknown groups, values and sorts have already been dropped."""

    q: str = ""
    # (group, values), groups in FACET_GROUPS order, then ("rating", (threshold,)) where the adapter supports it
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sort: str = "relevance"
    page: int = 1
    per_page: int = 24

    def values(self, group: str) -> tuple[str, ...]:
        return dict(self.filters).get(group, ())

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def min_rating(self) -> int | None:
        """The lowest "n stars and up" asked for (values of one group OR), or None."""
        thresholds = [int(v) for v in self.values(RATING_GROUP) if v.isdigit() and int(v) in RATING_THRESHOLDS]
        return min(thresholds) if thresholds else None


@dataclass(frozen=True)
class SearchResult:
    items: tuple[OfferingCard, ...]
    total: int
    facets: tuple[FacetGroup, ...]
    counts_available: bool = True
    query: SearchQuery = field(default_factory=SearchQuery)
    reachable: int | None = None  # results a backend can page to (Saleor pages by cursor); None: all

    @property
    def pages(self) -> int:
        reachable = self.total if self.reachable is None else min(self.total, self.reachable)
        return max(1, -(-reachable // self.query.per_page))


class CatalogPort(Protocol):
    """Read side of the commerce port.

    An adapter whose class sets `supports_ratings = True` fills the cards' ratings, sorts by
    "rating" and answers the rating facet; for any other (Saleor, whose catalog holds no reviews)
    the storefront offers neither the sort nor the facet (`supports_ratings(catalog)`)."""

    def categories(self) -> list[Category]:
        """The four categories, with offering counts where the backend can count."""
        ...

    def facet_values(self, group: str) -> list[tuple[str, str]]:
        """One facet group's known values as (slug, label), in display order."""
        ...

    def facet_labels(self, requested: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
        """Labels of the requested (group -> values) that exist: {group: {value: label}}; unknown ones left out."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        """One page of published offerings matching the query, the total, and the six facet groups."""
        ...

    def featured(self, limit: int) -> list[OfferingCard]:
        ...

    def newest(self, limit: int) -> list[OfferingCard]:
        ...

    def popular(self, limit: int) -> list[OfferingCard]:
        ...

    def product(self, slug: str) -> OfferingDetail | None:
        """A published offering by slug, or None."""
        ...

    def related(self, detail: OfferingDetail, limit: int) -> list[OfferingCard]:
        ...


def supports_ratings(catalog: object) -> bool:
    return bool(getattr(catalog, "supports_ratings", False))


def store_sync_generation() -> tuple[int, dict]:
    """The Saleor sync's generation and the store ids it recorded (one primary-key read): per-process
    caches of the store's catalog are fresh while the generation is unchanged."""
    import json

    from sqlalchemy import select

    from app.extensions import db
    from app.models import STORE_SYNC_KEY, StoreSyncState

    row = db.session.execute(select(StoreSyncState.generation, StoreSyncState.data)
                             .where(StoreSyncState.key == STORE_SYNC_KEY)).first()
    if row is None:
        return 0, {}
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        data = {}
    scope = data.get("scope") if isinstance(data, dict) else None
    return int(row.generation or 0), scope if isinstance(scope, dict) else {}


def get_catalog() -> CatalogPort:
    """The catalog adapter for this app's COMMERCE_BACKEND."""
    from flask import current_app

    from app.extensions import db

    backend = current_app.config.get("COMMERCE_BACKEND", "local")
    if backend == "saleor":
        from app.adapters.commerce.local import listing_extras
        from app.adapters.commerce.saleor.catalog import SaleorCatalog

        generation, scope = store_sync_generation()
        return SaleorCatalog.from_config(
            current_app.config, generation=generation, known_scope=scope,
            extras=lambda slugs, screenshots: listing_extras(db.session, slugs, screenshots=screenshots))
    if backend == "local":
        from app.adapters.commerce.local import LocalCatalog

        return LocalCatalog(db.session, in_memory_index=current_app.config.get("CATALOG_INDEX", "memory") == "memory")
    raise RuntimeError(f"COMMERCE_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")


from app.adapters.commerce.checkout import CheckoutPort, get_checkout  # noqa: E402,F401  (write side: checkout)
