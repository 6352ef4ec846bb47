"""Catalog rules: what a storefront request may ask for, what each catalog page shows, and the
SQLite full-text index that others keep current with `reindex_offering`.

The pages read through the commerce port (`app.adapters.commerce.get_catalog()`), so they work the
same over the local tables and over Saleor.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.adapters.commerce import (
    FACET_GROUPS, RATING_GROUP, RATING_THRESHOLDS, SORTS, supports_ratings, CatalogPort, Category, FacetChip, OfferingCard, OfferingDetail, SearchQuery, SearchResult,
)
from app.models import CatalogRevision, Offering
from app.services.errors import ServiceError

PER_PAGE = 24
MAX_PAGE = 1_000  # deeper pages are refused (shown as page 1): nobody pages that far, crawlers should not
MAX_QUERY_LENGTH = 200
MAX_VALUES_PER_GROUP = 20
BROWSE_GROUPS = ("outcome", "role", "capability")
SORT_LABELS = {
    "relevance": "Best match", "newest": "Newest", "price_asc": "Price: low to high",
    "price_desc": "Price: high to low", "name": "Name (A–Z)", "rating": "Highest rated",
}
GROUP_WORDS = {"category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
               "pricing": "Pricing", "publisher": "Publisher", "rating": "Rating"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# what a facet value or an offering slug can look like; anything else is unknown without asking
# the database (PostgreSQL refuses NUL characters in a query, for one)
_FACET_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,139}")
_SPACES = re.compile(r"\s+")


class CatalogError(ServiceError):
    """A catalog request that cannot be answered; the message is safe to show."""


# --- reading requests ---------------------------------------------------------------------------

def clean_text_query(raw: str | None) -> str:
    """The search box's text: control characters removed, whitespace collapsed, at most 200 characters."""
    q = _SPACES.sub(" ", _CONTROL.sub(" ", raw or "")).strip()
    return q[:MAX_QUERY_LENGTH].strip()


def parse_search_args(
    args: Mapping,
    catalog: CatalogPort,
    *,
    preset: Mapping[str, str] | None = None,
    per_page: int = PER_PAGE,
) -> SearchQuery:
    """A SearchQuery from request arguments (a MultiDict: facet groups repeat).

    Anything unusable is ignored rather than refused, so a shared or hand-edited link still shows
    results: unknown facet groups and values, a sort that does not exist, a page that is not a
    positive number (or beyond MAX_PAGE). `preset` adds the filter a browse URL stands for.
    """
    getlist = args.getlist if hasattr(args, "getlist") else (lambda key: [args[key]] if key in args else [])
    requested: dict[str, list[str]] = {}
    for group in FACET_GROUPS:
        values = [str(v) for v in getlist(group)][:MAX_VALUES_PER_GROUP]
        if preset and group in preset:
            values.append(preset[group])
        values = list(dict.fromkeys(v for v in values if _FACET_VALUE.fullmatch(v)))  # unique, in the order given
        if values:
            requested[group] = values
    known = catalog.facet_labels(requested) if requested else {}
    filters = tuple(
        (group, tuple(v for v in requested[group] if v in known.get(group, {})))
        for group in FACET_GROUPS if known.get(group)
    )
    ratings = supports_ratings(catalog)
    if ratings:  # "n stars and up": the lowest one asked for (values of a group OR)
        thresholds = [int(v) for v in getlist(RATING_GROUP) if str(v) in {str(t) for t in RATING_THRESHOLDS}]
        if thresholds:
            filters += ((RATING_GROUP, (str(min(thresholds)),)),)
    sort = args.get("sort", "relevance")
    if sort not in SORTS or (sort == "rating" and not ratings):
        sort = "relevance"
    return SearchQuery(
        q=clean_text_query(args.get("q")), filters=filters, sort=sort,
        page=_page_number(args.get("page")), per_page=per_page,
    )


def sort_labels(catalog: CatalogPort) -> dict[str, str]:
    """The sorts this catalog offers: by rating only where the backend knows the ratings."""
    if supports_ratings(catalog):
        return dict(SORT_LABELS)
    return {value: label for value, label in SORT_LABELS.items() if value != "rating"}


def _page_number(raw: object) -> int:
    try:
        page = int(str(raw).strip()) if raw is not None else 1
    except ValueError:
        return 1
    return page if 1 <= page <= MAX_PAGE else 1


def query_args(query: SearchQuery, **changes: object) -> dict[str, object]:
    """URL arguments for `query` with `changes` applied (page 1 unless given); for url_for."""
    args: dict[str, object] = {}
    q = changes.get("q", query.q)
    if q:
        args["q"] = q
    filters = changes.get("filters", query.filters)
    for group, values in filters:  # type: ignore[union-attr]
        if values:
            args[group] = list(values)
    sort = changes.get("sort", query.sort)
    if sort != "relevance":
        args["sort"] = sort
    page = changes.get("page", 1)
    if page != 1:
        args["page"] = page
    return args


def without_value(query: SearchQuery, group: str, value: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The query's filters with one value removed."""
    return tuple(
        (g, tuple(v for v in values if not (g == group and v == value)))
        for g, values in query.filters
    )


# --- pages --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HomePage:
    featured: list[OfferingCard]
    categories: list[Category]
    newest: list[OfferingCard]
    outcomes: list[tuple[str, str]]


@dataclass(frozen=True)
class ActiveFilter:
    group: str
    group_label: str
    value: str
    label: str


@dataclass(frozen=True)
class SearchPage:
    result: SearchResult
    active: list[ActiveFilter]
    categories: list[Category]  # suggestions when nothing matched
    popular: list[OfferingCard]


@dataclass(frozen=True)
class ProductPage:
    detail: OfferingDetail
    description_html: str
    related: list[OfferingCard]


def home_page(catalog: CatalogPort, *, featured: int = 6, newest: int = 8) -> HomePage:
    """Featured offerings, the four categories, the newest offerings and the outcomes to browse by."""
    return HomePage(
        featured=catalog.featured(featured), categories=catalog.categories(), newest=catalog.newest(newest),
        outcomes=catalog.facet_values("outcome"),
    )


def search_page(catalog: CatalogPort, query: SearchQuery) -> SearchPage:
    """One page of results with facets; when nothing matches, categories and popular offerings to try."""
    result = catalog.search(query)
    labels = {g.name: (g.label, {o.value: o.label for o in g.options}) for g in result.facets}
    # a chip names its value by label, never by slug: values the result's facets do not list (a
    # backend that lists only some) are looked up, and anything still unknown is spelled out
    missing: dict[str, list[str]] = {}
    for group, values in query.filters:
        for value in values:
            if value not in labels.get(group, ("", {}))[1]:
                missing.setdefault(group, []).append(value)
    looked_up = catalog.facet_labels(missing) if missing else {}
    active = [
        ActiveFilter(group, labels.get(group, (GROUP_WORDS.get(group, group.title()), {}))[0], value,
                     labels.get(group, ("", {}))[1].get(value) or looked_up.get(group, {}).get(value)
                     or humanize_slug(value))
        for group, values in query.filters for value in values
    ]
    categories, popular = [], []
    if result.total == 0:
        categories, popular = catalog.categories(), catalog.popular(4)
    return SearchPage(result=result, active=active, categories=categories, popular=popular)


def product_page(catalog: CatalogPort, slug: str, *, related: int = 4) -> ProductPage | None:
    """A published offering's page, or None when there is no such published offering."""
    from app.services.offerings import render_description

    if not _SLUG.fullmatch(slug):
        return None
    detail = catalog.product(slug)
    if detail is None:
        return None
    return ProductPage(
        detail=detail, description_html=render_description(detail.description_md),
        related=catalog.related(detail, related),
    )


def catalog_revision(session: Session) -> tuple[str, datetime] | None:
    """The local catalog's revision token and when it last changed (None before the first change): what
    every catalog page depends on. One prepared statement, as it is read on every catalog page."""
    row = session.connection().execute(_REVISION).first()
    return (row.token, row.changed_at) if row is not None else None


_REVISION = select(CatalogRevision.token, CatalogRevision.changed_at).where(CatalogRevision.id == 1)


def facet_label(catalog: CatalogPort, group: str, value: str) -> str | None:
    """The label of a known facet value, or None if the group has no such value."""
    if not _FACET_VALUE.fullmatch(value):
        return None
    return catalog.facet_labels({group: [value]}).get(group, {}).get(value)


def humanize_slug(value: str) -> str:
    """A slug as words, for a value no vocabulary names: "usage-based" -> "Usage based"."""
    return value.replace("-", " ").replace("_", " ").strip().capitalize()


def facet_search_args(chip: FacetChip) -> dict[str, str]:
    return {chip.group: chip.value}


# --- the SQLite full-text index -----------------------------------------------------------------

def reindex_offering(session: Session, offering: Offering) -> None:
    """Bring the offering's full-text entry up to date; call it after creating or editing an offering.

    On SQLite the FTS5 table `offering_fts` holds a copy of name, summary and description (the
    search filters by status itself, so drafts may be indexed). PostgreSQL indexes the columns
    through an expression index and needs nothing. Flushes the offering first; never commits.
    """
    session.flush()
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(text("DELETE FROM offering_fts WHERE rowid = :id"), {"id": offering.id})
    session.execute(
        text("INSERT INTO offering_fts (rowid, name, summary, description) VALUES (:id, :name, :summary, :description)"),
        {"id": offering.id, "name": offering.name or "", "summary": offering.summary or "",
         "description": offering.description_md or ""},
    )


def unindex_offering(session: Session, offering_id: int) -> None:
    """Drop a deleted offering's full-text entry (SQLite; PostgreSQL needs nothing)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM offering_fts WHERE rowid = :id"), {"id": offering_id})


def reindex_all(session: Session) -> int:
    """Rebuild the whole SQLite full-text index from the offering table; returns the rows indexed."""
    session.flush()
    if session.get_bind().dialect.name != "sqlite":
        return 0
    session.execute(text("DELETE FROM offering_fts"))
    session.execute(text(
        "INSERT INTO offering_fts (rowid, name, summary, description) "
        "SELECT id, name, summary, description_md FROM offering"
    ))
    return int(session.scalar(select(text("count(*)")).select_from(text("offering_fts"))) or 0)
