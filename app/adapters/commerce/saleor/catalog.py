"""Saleor adapter of the catalog port: the same pages from Saleor's GraphQL API.

Mapping (see shared/integrations/SALEOR.md and `names.py`):
- an offering is a Saleor product of our product type `<prefix>offering` (or, with
  SALEOR_CATALOG_COLLECTION, of that collection) in channel SALEOR_CHANNEL; every read is scoped
  so, because a shared store lists its own products in the same channel; its summary is
  `seoDescription`;
- the six facet groups are our product attributes `<prefix>category` ... `<prefix>publisher`
  (choice attributes; the value slug is the facet value); a store's own attributes are never read;
- the plans are the product's variants (variant SKU = plan SKU; tier, included credits, credits per
  run and run limit from the variant attributes `<prefix>tier`, `<prefix>included-credits`,
  `<prefix>credits-per-run` and `<prefix>max-runs-per-period`; features from variant metadata);
- version notes, changelog and trial terms come from product metadata (`versions`, `version`,
  `changelog`, `trial_days`, `trial_credits`); an offering has a trial when its pricing includes
  `free-trial`; "Featured" is the collection SALEOR_FEATURED_COLLECTION, which the sync keeps;
- ratings, logos and screenshots are ours, not Saleor's: `extras` (given by `get_catalog`) supplies
  them by product slug, which is the offering's slug.

Speed: the vocabulary (facet values and the scope's store ids) is cached per process and kept while
the sync generation (read from the database with each page) is unchanged, at most
SALEOR_VOCABULARY_TTL seconds. When it must be fetched, it is fetched alongside the page's own call
in a small thread pool; the scope ids the sync recorded in the database let the product list start
without waiting for it. Connections are kept alive by the client.

Catalog reads are sent without the app token, so Saleor itself hides unpublished products and
products not visible in listings. Saleor returns no facet counts: facets carry values only.
Every call is one operation with the shared client's timeout; a failure raises SaleorUnavailable
or SaleorError (both CommerceUnavailable), which the storefront shows as its 503 page.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context

from app.adapters.commerce import (
    FACET_GROUPS, Category, FacetChip, FacetGroup, FacetOption, ListingExtras, OfferingCard, OfferingDetail,
    PlanOption, SearchQuery, SearchResult, VersionNote,
)
from app.adapters.commerce.saleor import client
from app.adapters.commerce.saleor.names import StoreNames

PAGE_SIZE_MAX = 100  # Saleor's largest page
SKIP_REQUESTS_MAX = 10  # reaching page N costs ceil(offset / 100) cursor requests; beyond this, no results
REACHABLE = SKIP_REQUESTS_MAX * PAGE_SIZE_MAX
DEFAULT_VOCABULARY_TTL = 300.0
GROUP_LABELS = {
    "category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
    "pricing": "Pricing", "publisher": "Publisher",
}
SORT_FIELDS = {
    "newest": ("CREATED_AT", "DESC"),
    "price_asc": ("MINIMAL_PRICE", "ASC"),
    "price_desc": ("MINIMAL_PRICE", "DESC"),
    "name": ("NAME", "ASC"),
}
TIERS = ("starter", "pro", "enterprise")


# --- the per-process vocabulary cache and thread pool ------------------------------------------

@dataclass(frozen=True)
class Vocabulary:
    generation: int
    fetched_at: float
    attributes: dict[str, dict[str, Any]]  # facet group -> {"name": ..., "choices": [(slug, name)]}
    scope: dict[str, Any] | None  # the `where` that selects our products; None: none in the store yet


_vocabularies: dict[tuple, Vocabulary] = {}
_vocabularies_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()
POOL_WORKERS = 8


def _executor() -> ThreadPoolExecutor:
    """This process's pool for concurrent Saleor calls (a forked worker makes its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="saleor"))
        return _pool[1]


def forget_vocabularies() -> None:
    """Drop every cached vocabulary of this process (tests; a sync bumps the generation instead)."""
    with _vocabularies_lock:
        _vocabularies.clear()


# (slugs, with screenshots) -> our extras of the listings that have any, by slug
Extras = Callable[[tuple[str, ...], bool], Mapping[str, ListingExtras]]


def _with_extras(card: OfferingCard, extras: ListingExtras) -> OfferingCard:
    return replace(card, rating_average=extras.rating_average, rating_count=extras.rating_count,
                   logo_key=extras.logo_key)


class SaleorCatalog:
    """The catalog read from Saleor; one instance per request (the vocabulary is cached per process)."""

    def __init__(self, channel: str, *, names: StoreNames | None = None, generation: int = 0,
                 known_scope: Mapping[str, Any] | None = None, ttl: float = DEFAULT_VOCABULARY_TTL,
                 api_url: str | None = None, extras: Extras | None = None) -> None:
        self.channel = channel
        self.extras = extras
        self.names = names or StoreNames()
        self.generation = generation
        self.known_scope = dict(known_scope or {})
        self.ttl = ttl
        if api_url is None and has_app_context():
            api_url = current_app.config.get("SALEOR_API_URL")
        self._key = (api_url, channel, self.names.cache_key)
        self._pending: Future | None = None
        self._featured: dict[int, list[OfferingCard]] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, generation: int = 0,
                    known_scope: Mapping[str, Any] | None = None, extras: Extras | None = None) -> "SaleorCatalog":
        ttl = config.get("SALEOR_VOCABULARY_TTL")
        return cls(channel=config.get("SALEOR_CHANNEL") or "default-channel", names=StoreNames.from_config(config),
                   generation=generation, known_scope=known_scope,
                   ttl=DEFAULT_VOCABULARY_TTL if ttl is None else float(ttl), api_url=config.get("SALEOR_API_URL"),
                   extras=extras)

    def _with_extras(self, cards: list[OfferingCard]) -> list[OfferingCard]:
        """The cards with our rating and logo of each listing that has them."""
        found = self.extras(tuple(c.slug for c in cards), False) if self.extras is not None and cards else {}
        return [_with_extras(card, found[card.slug]) if card.slug in found else card for card in cards]

    def _execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        return client.execute(operation, {"channel": self.channel, **variables}, anonymous=True)

    def _in_pool(self, call: Callable[[], Any]) -> Future:
        app = current_app._get_current_object()

        def run() -> Any:
            with app.app_context():
                return call()

        return _executor().submit(run)

    # vocabulary
    def _cached(self) -> Vocabulary | None:
        with _vocabularies_lock:
            found = _vocabularies.get(self._key)
        if found is None or found.generation != self.generation or time.monotonic() - found.fetched_at > self.ttl:
            return None
        return found

    def _fetch_vocabulary(self) -> Vocabulary:
        names = self.names
        data = self._execute("FacetAttributes", {
            "slugs": [names.attribute(g) for g in FACET_GROUPS], "productTypes": [names.offering_type],
            "collection": names.catalog_collection, "byCollection": bool(names.catalog_collection),
        })
        attributes = {}
        for edge in (data.get("attributes") or {}).get("edges") or []:
            node = edge["node"]
            group = names.name_of(node.get("slug"))
            if group not in FACET_GROUPS:
                continue
            choices = [(c["node"]["slug"], c["node"]["name"]) for c in (node.get("choices") or {}).get("edges") or []]
            attributes[group] = {"name": node["name"], "choices": choices}
        if names.catalog_collection:
            collection = data.get("collection") or {}
            scope = {"collection": {"eq": collection["id"]}} if collection.get("id") else None
        else:
            types = [e["node"]["id"] for e in (data.get("productTypes") or {}).get("edges") or []
                     if e["node"].get("slug") == names.offering_type]
            scope = {"productType": {"eq": types[0]}} if types else None
        vocabulary = Vocabulary(self.generation, time.monotonic(), attributes, scope)
        with _vocabularies_lock:
            _vocabularies[self._key] = vocabulary
        return vocabulary

    def _prefetch(self) -> None:
        """Start fetching the vocabulary beside the caller's own call, when it is not cached."""
        if self._pending is None and self._cached() is None:
            self._pending = self._in_pool(self._fetch_vocabulary)

    def _vocabulary(self) -> Vocabulary:
        cached = self._cached()
        if cached is not None:
            return cached
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending.result()
        return self._fetch_vocabulary()

    def _scope(self) -> dict[str, Any] | None:
        """The `where` selecting our products: from the ids the sync recorded, else from the vocabulary."""
        if self.names.catalog_collection:
            known = (self.known_scope.get("collections") or {}).get(self.names.catalog_collection)
            if known:
                return {"collection": {"eq": known}}
        elif self.known_scope.get("offering_type"):
            return {"productType": {"eq": self.known_scope["offering_type"]}}
        return self._vocabulary().scope

    def _facet_attributes(self) -> dict[str, dict[str, Any]]:
        return self._vocabulary().attributes

    def facet_values(self, group: str) -> list[tuple[str, str]]:
        return list(self._facet_attributes().get(group, {}).get("choices", []))

    def facet_labels(self, requested: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
        labels: dict[str, dict[str, str]] = {}
        for group, values in requested.items():
            known = dict(self.facet_values(group)) if group in FACET_GROUPS else {}
            found = {value: known[value] for value in values if value in known}
            if found:
                labels[group] = found
        return labels

    def categories(self) -> list[Category]:
        return [Category(slug, name, None) for slug, name in self.facet_values("category")]

    # listings
    def featured(self, limit: int) -> list[OfferingCard]:
        if limit not in self._featured:
            self._prefetch()  # the home page's categories and outcomes come next
            scope = self._scope()
            if scope is None:
                return []
            data = self._execute("FeaturedProducts", {
                "collection": self.names.featured_collection, "where": _published(scope=scope), "first": limit})
            collection = data.get("collection") or {}
            self._featured[limit] = self._with_extras(
                [self._card(edge["node"]) for edge in ((collection.get("products") or {}).get("edges") or [])])
        return list(self._featured[limit])

    def newest(self, limit: int) -> list[OfferingCard]:
        scope = self._scope()
        if scope is None:
            return []
        return self._list(where=_published(scope=scope), sort=("CREATED_AT", "DESC"), first=limit)[0]

    def popular(self, limit: int) -> list[OfferingCard]:
        # Saleor's public API has no sales ranking; the hand-picked collection stands in for it.
        return self.featured(limit)

    def related(self, detail: OfferingDetail, limit: int) -> list[OfferingCard]:
        scope = self._scope()
        if scope is None:
            return []
        where = _published([{"slug": self.names.attribute("category"),
                             "value": {"slug": {"oneOf": [detail.card.category]}}}], scope=scope)
        cards, _ = self._list(where=where, sort=("CREATED_AT", "DESC"), first=min(limit + 1, PAGE_SIZE_MAX))
        return [c for c in cards if c.slug != detail.card.slug][:limit]

    def _list(self, *, where: dict, sort: tuple[str, str], first: int, search: str | None = None,
              after: str | None = None) -> tuple[list[OfferingCard], int]:
        variables: dict[str, Any] = {"where": where, "sortBy": {"field": sort[0], "direction": sort[1]},
                                     "first": first}
        if search:
            variables["search"] = search
        if after:
            variables["after"] = after
        products = self._execute("ProductList", variables).get("products") or {}
        cards = self._with_extras([self._card(edge["node"]) for edge in products.get("edges") or []])
        return cards, int(products.get("totalCount") or 0)

    # search
    def search(self, query: SearchQuery) -> SearchResult:
        self._prefetch()  # the facet values, fetched beside the product list when they are not cached
        scope = self._scope()
        if scope is None:  # nothing of ours in the store yet
            return SearchResult(items=(), total=0, facets=self._facet_groups(query), counts_available=False,
                                query=query, reachable=REACHABLE)
        attributes = [
            {"slug": self.names.attribute(group), "value": {"slug": {"oneOf": list(values)}}}
            for group, values in query.filters if values
        ]
        where = _published(attributes, scope=scope)
        if query.sort == "relevance":
            sort = ("RANK", "DESC") if query.q else ("CREATED_AT", "DESC")  # RANK needs a search term
        else:
            sort = SORT_FIELDS[query.sort]
        search = query.q or None
        after = self._cursor_at(query.offset, where=where, sort=sort, search=search) if query.offset else None
        if query.offset and after is None:
            # past the last result (or deeper than we page): report the total without items
            _, total = self._list(where=where, sort=sort, first=1, search=search)
            return SearchResult(items=(), total=total, facets=self._facet_groups(query), counts_available=False,
                                query=query, reachable=REACHABLE)
        cards, total = self._list(where=where, sort=sort, first=min(query.per_page, PAGE_SIZE_MAX),
                                  search=search, after=after)
        return SearchResult(items=tuple(cards), total=total, facets=self._facet_groups(query), counts_available=False,
                            query=query, reachable=REACHABLE)

    def _cursor_at(self, offset: int, *, where: dict, sort: tuple[str, str], search: str | None) -> str | None:
        """The cursor after the first `offset` results, walking at most SKIP_REQUESTS_MAX pages."""
        after: str | None = None
        remaining = offset
        for _ in range(SKIP_REQUESTS_MAX):
            step = min(remaining, PAGE_SIZE_MAX)
            variables: dict[str, Any] = {"where": where, "sortBy": {"field": sort[0], "direction": sort[1]},
                                         "first": step}
            if search:
                variables["search"] = search
            if after:
                variables["after"] = after
            page_info = (self._execute("ProductCursor", variables).get("products") or {}).get("pageInfo") or {}
            remaining -= step
            if remaining == 0:
                return page_info.get("endCursor") if page_info.get("hasNextPage") else None
            if not page_info.get("hasNextPage"):
                return None
            after = page_info.get("endCursor")
        return None

    def _facet_groups(self, query: SearchQuery) -> tuple[FacetGroup, ...]:
        attributes = self._facet_attributes()
        groups = []
        for group in FACET_GROUPS:
            selected = set(query.values(group))
            attribute = attributes.get(group, {"name": GROUP_LABELS[group], "choices": []})
            options = tuple(
                FacetOption(value=slug, label=name, count=None, selected=slug in selected)
                for slug, name in attribute["choices"]
            )
            groups.append(FacetGroup(group, GROUP_LABELS[group], options))
        return tuple(groups)

    # detail
    def product(self, slug: str) -> OfferingDetail | None:
        product = self._execute("ProductDetail", {"slug": slug}).get("product")
        if product is None or not self._ours(product):
            return None
        card = self._card(product)
        extras = (self.extras((card.slug,), True) if self.extras is not None else {}).get(card.slug)
        if extras is not None:
            card = _with_extras(card, extras)
        choices = self._choices(product.get("assignedAttributes") or [])
        facets = tuple(
            FacetChip(group, value, label)
            for group in FACET_GROUPS
            for value, label in choices.get(group, [])
        )
        plans = tuple(sorted(
            (self._plan(edge["node"]) for edge in (product.get("productVariants") or {}).get("edges") or []
             if edge["node"].get("sku")),
            key=lambda p: (TIERS.index(p.tier) if p.tier in TIERS else len(TIERS), p.price_minor),
        ))
        return OfferingDetail(
            card=card, description_md=editorjs_to_markdown(product.get("description")), facets=facets,
            plans=plans, versions=_versions(product), trial_days=_int(product.get("trialDays")),
            trial_credits=_int(product.get("trialCredits")),
            screenshots=extras.screenshots if extras is not None else (),
        )

    def _ours(self, product: dict) -> bool:
        """Whether a product of the channel is one of our offerings (a shared store has its own)."""
        if self.names.catalog_collection:
            return any(c.get("slug") == self.names.catalog_collection for c in product.get("collections") or [])
        return (product.get("productType") or {}).get("slug") == self.names.offering_type

    # mapping
    def _choices(self, assigned: list[dict]) -> dict[str, list[tuple[str, str]]]:
        """Our choice attributes' values by facet group or plan term: {"outcome": [(slug, name), ...]}."""
        values: dict[str, list[tuple[str, str]]] = {}
        for item in assigned:
            name = self.names.name_of((item.get("attribute") or {}).get("slug"))
            chosen = []
            if item.get("choice"):
                chosen = [item["choice"]]
            elif item.get("choices"):
                chosen = item["choices"]
            pairs = [(c["slug"], c.get("name") or c["slug"]) for c in chosen if c and c.get("slug")]
            if name and pairs:
                values.setdefault(name, []).extend(pairs)
        return values

    def _numbers(self, assigned: list[dict]) -> dict[str, float]:
        numbers = {}
        for item in assigned:
            name = self.names.name_of((item.get("attribute") or {}).get("slug"))
            if name and isinstance(item.get("numeric"), (int, float)):
                numbers[name] = item["numeric"]
        return numbers

    def _card(self, node: dict) -> OfferingCard:
        choices = self._choices(node.get("assignedAttributes") or [])
        category = (choices.get("category") or [None])[0]
        if category is None:
            saleor_category = node.get("category") or {}
            category = (saleor_category.get("slug") or "", saleor_category.get("name") or "")
        publisher_slug, publisher = (choices.get("publisher") or [("", "")])[0]
        start = ((((node.get("pricing") or {}).get("priceRange") or {}).get("start") or {}).get("gross"))
        price, currency = _minor(start)
        return OfferingCard(
            key=node["id"], slug=node["slug"], name=node["name"], summary=node.get("seoDescription") or "",
            category=category[0], category_label=category[1], publisher=publisher, price_from_minor=price,
            currency=currency, has_trial=any(slug == "free-trial" for slug, _ in choices.get("pricing", [])),
            published_at=_datetime(node.get("created")), publisher_slug=publisher_slug,
        )

    def _plan(self, variant: dict) -> PlanOption:
        assigned = variant.get("assignedAttributes") or []
        numbers = self._numbers(assigned)
        tier_choice = (self._choices(assigned).get("tier") or [None])[0]
        tier = tier_choice[0] if tier_choice else variant["name"].strip().lower()
        price = (((variant.get("pricing") or {}).get("price") or {}).get("gross"))
        price_minor, currency = _minor(price)
        runs = numbers.get("max-runs-per-period")
        return PlanOption(
            sku=variant["sku"], tier=tier, name=variant["name"], price_minor=price_minor or 0, currency=currency,
            interval="month", included_credits=_opt_int(numbers.get("included-credits")),
            credits_per_run=_opt_int(numbers.get("credits-per-run")), max_runs_per_period=_opt_int(runs),
            features=_string_list(variant.get("features")),
        )


# --- mapping helpers ---------------------------------------------------------------------------

def _published(attributes: list[dict] | None = None, *, scope: Mapping[str, Any] | None = None) -> dict[str, Any]:
    where: dict[str, Any] = {"isPublished": True, "isVisibleInListing": True}
    if scope:
        where.update(scope)
    if attributes:
        where["attributes"] = attributes
    return where


def _minor(money: dict | None) -> tuple[int | None, str]:
    """Saleor Money as integer minor units: `fractionalAmount` already is (no floats)."""
    if not money:
        return None, "USD"
    return int(money["fractionalAmount"]), money["currency"]


def _string_list(raw: Any) -> tuple[str, ...]:
    """A JSON list of strings kept in metadata; anything else is no list."""
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else []
    except ValueError:
        return ()
    return tuple(str(item) for item in value if isinstance(item, str) and item.strip()) if isinstance(value, list) else ()


def _versions(product: dict) -> tuple[VersionNote, ...]:
    """Every version's note (metadata `versions`, newest first), else the latest one alone."""
    try:
        listed = json.loads(product.get("versions") or "[]")
    except ValueError:
        listed = []
    notes = tuple(
        VersionNote(str(item["version"]), str(item.get("changelog") or ""), _datetime(item.get("released_at")))
        for item in listed if isinstance(item, dict) and item.get("version")
    ) if isinstance(listed, list) else ()
    if notes:
        return notes
    if product.get("version"):
        return (VersionNote(product["version"], product.get("changelog") or "", None),)
    return ()


def _int(raw: Any) -> int:
    try:
        return max(0, int(str(raw).strip()))
    except (TypeError, ValueError):
        return 0


def _opt_int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def _datetime(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


_INLINE_TAGS = ((re.compile(r"<(/?)b>"), r"<\1strong>"), (re.compile(r"<(/?)i>"), r"<\1em>"))


def editorjs_to_markdown(description: Any) -> str:
    """Saleor's rich text (Editor.js JSON) as Markdown for the one sanitizing renderer.

    Inline HTML that Editor.js keeps in block text (<b>, <i>, <a>) passes through; the renderer's
    sanitizer decides what survives. Unknown block types are skipped."""
    if not description:
        return ""
    try:
        data = json.loads(description) if isinstance(description, str) else description
    except ValueError:
        return str(description)
    lines: list[str] = []
    for block in (data or {}).get("blocks", []) if isinstance(data, dict) else []:
        kind, content = block.get("type"), block.get("data") or {}
        text = _inline(content.get("text", ""))
        if kind == "header":
            level = min(max(int(content.get("level") or 2), 2), 6)
            lines.append("#" * level + " " + text)
        elif kind == "paragraph":
            lines.append(text)
        elif kind == "list":
            marker = "1." if content.get("style") == "ordered" else "-"
            lines.append("\n".join(f"{marker} {_inline(_list_item(item))}" for item in content.get("items", [])))
        elif kind == "quote":
            lines.append("> " + text)
    return "\n\n".join(line for line in lines if line.strip())


def _inline(text: Any) -> str:
    value = str(text or "")
    for pattern, replacement in _INLINE_TAGS:
        value = pattern.sub(replacement, value)
    return value


def _list_item(item: Any) -> str:
    return item.get("content", "") if isinstance(item, dict) else str(item)
