"""Saleor adapter of the catalog port: the same pages from Saleor's GraphQL API.

Mapping (see shared/integrations/SALEOR.md):
- an offering is a Saleor product in channel SALEOR_CHANNEL; its summary is `seoDescription`;
- the six facet groups are the product attributes with slugs category, outcome, role,
  capability, pricing and publisher (choice attributes; the value slug is the facet value);
- the plans are the product's variants (variant SKU = plan SKU; tier, included credits, credits per
  run and run limit from the variant attributes `tier`, `included-credits`, `credits-per-run` and
  `max-runs-per-period` when present);
- version, changelog and trial terms come from product metadata (`version`, `changelog`,
  `trial_days`, `trial_credits`); an offering has a trial when its pricing includes `free-trial`.

Catalog reads are sent without the app token, so Saleor itself hides unpublished products and
products not visible in listings. Saleor returns no facet counts: facets carry values only.
Every call is one operation with the shared client's timeout; a failure raises SaleorUnavailable
or SaleorError (both CommerceUnavailable), which the storefront shows as its 503 page.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.adapters.commerce import (
    FACET_GROUPS, Category, FacetChip, FacetGroup, FacetOption, OfferingCard, OfferingDetail, PlanOption,
    SearchQuery, SearchResult, VersionNote,
)
from app.adapters.commerce.saleor import client

FEATURED_COLLECTION = "featured-products"
PAGE_SIZE_MAX = 100  # Saleor's largest page
SKIP_REQUESTS_MAX = 10  # reaching page N costs ceil(offset / 100) cursor requests; beyond this, no results
REACHABLE = SKIP_REQUESTS_MAX * PAGE_SIZE_MAX
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


class SaleorCatalog:
    """The catalog read from Saleor; one instance per request (it caches the facet vocabulary)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._attributes: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SaleorCatalog":
        return cls(channel=config.get("SALEOR_CHANNEL") or "default-channel")

    def _execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        return client.execute(operation, {"channel": self.channel, **variables}, anonymous=True)

    # vocabulary
    def _facet_attributes(self) -> dict[str, dict[str, Any]]:
        if self._attributes is None:
            data = self._execute("FacetAttributes", {"slugs": list(FACET_GROUPS)})
            attributes = {}
            for edge in (data.get("attributes") or {}).get("edges") or []:
                node = edge["node"]
                choices = [(c["node"]["slug"], c["node"]["name"]) for c in (node.get("choices") or {}).get("edges") or []]
                attributes[node["slug"]] = {"name": node["name"], "choices": choices}
            self._attributes = attributes
        return self._attributes

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
        data = self._execute("FeaturedProducts", {"collection": FEATURED_COLLECTION, "first": limit})
        collection = data.get("collection") or {}
        return [_card(edge["node"]) for edge in ((collection.get("products") or {}).get("edges") or [])]

    def newest(self, limit: int) -> list[OfferingCard]:
        return self._list(where=_published(), sort=("CREATED_AT", "DESC"), first=limit)[0]

    def popular(self, limit: int) -> list[OfferingCard]:
        # Saleor's public API has no sales ranking; the hand-picked collection stands in for it.
        return self.featured(limit)

    def related(self, detail: OfferingDetail, limit: int) -> list[OfferingCard]:
        where = _published([{"slug": "category", "value": {"slug": {"oneOf": [detail.card.category]}}}])
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
        cards = [_card(edge["node"]) for edge in products.get("edges") or []]
        return cards, int(products.get("totalCount") or 0)

    # search
    def search(self, query: SearchQuery) -> SearchResult:
        attributes = [
            {"slug": group, "value": {"slug": {"oneOf": list(values)}}} for group, values in query.filters if values
        ]
        where = _published(attributes)
        if query.sort == "relevance":
            sort = ("RANK", "DESC") if query.q else ("CREATED_AT", "DESC")  # RANK needs a search term
        else:
            sort = SORT_FIELDS[query.sort]
        search = query.q or None
        facets = self._facet_groups(query)
        after = self._cursor_at(query.offset, where=where, sort=sort, search=search) if query.offset else None
        if query.offset and after is None:
            # past the last result (or deeper than we page): report the total without items
            _, total = self._list(where=where, sort=sort, first=1, search=search)
            return SearchResult(items=(), total=total, facets=facets, counts_available=False, query=query,
                                reachable=REACHABLE)
        cards, total = self._list(where=where, sort=sort, first=min(query.per_page, PAGE_SIZE_MAX),
                                  search=search, after=after)
        return SearchResult(items=tuple(cards), total=total, facets=facets, counts_available=False, query=query,
                            reachable=REACHABLE)

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
        if product is None:
            return None
        card = _card(product)
        facets = tuple(
            FacetChip(group, value, label)
            for group in FACET_GROUPS
            for value, label in _choices(product.get("assignedAttributes") or []).get(group, [])
        )
        plans = tuple(sorted(
            (_plan(edge["node"]) for edge in (product.get("productVariants") or {}).get("edges") or []
             if edge["node"].get("sku")),
            key=lambda p: (TIERS.index(p.tier) if p.tier in TIERS else len(TIERS), p.price_minor),
        ))
        versions = ()
        if product.get("version"):
            versions = (VersionNote(product["version"], product.get("changelog") or "", None),)
        return OfferingDetail(
            card=card, description_md=editorjs_to_markdown(product.get("description")), facets=facets,
            plans=plans, versions=versions, trial_days=_int(product.get("trialDays")),
            trial_credits=_int(product.get("trialCredits")),
        )


# --- mapping helpers ---------------------------------------------------------------------------

def _published(attributes: list[dict] | None = None) -> dict[str, Any]:
    where: dict[str, Any] = {"isPublished": True, "isVisibleInListing": True}
    if attributes:
        where["attributes"] = attributes
    return where


def _choices(assigned: list[dict]) -> dict[str, list[tuple[str, str]]]:
    """Choice attribute values by attribute slug: {"outcome": [(slug, name), ...]}."""
    values: dict[str, list[tuple[str, str]]] = {}
    for item in assigned:
        slug = (item.get("attribute") or {}).get("slug")
        chosen = []
        if item.get("choice"):
            chosen = [item["choice"]]
        elif item.get("choices"):
            chosen = item["choices"]
        pairs = [(c["slug"], c.get("name") or c["slug"]) for c in chosen if c and c.get("slug")]
        if slug and pairs:
            values.setdefault(slug, []).extend(pairs)
    return values


def _numbers(assigned: list[dict]) -> dict[str, float]:
    return {
        item["attribute"]["slug"]: item["numeric"]
        for item in assigned if item.get("attribute") and isinstance(item.get("numeric"), (int, float))
    }


def _minor(money: dict | None) -> tuple[int | None, str]:
    """Saleor Money as integer minor units: `fractionalAmount` already is (no floats)."""
    if not money:
        return None, "USD"
    return int(money["fractionalAmount"]), money["currency"]


def _card(node: dict) -> OfferingCard:
    choices = _choices(node.get("assignedAttributes") or [])
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


def _plan(variant: dict) -> PlanOption:
    assigned = variant.get("assignedAttributes") or []
    numbers = _numbers(assigned)
    tier_choice = (_choices(assigned).get("tier") or [None])[0]
    tier = tier_choice[0] if tier_choice else variant["name"].strip().lower()
    price = (((variant.get("pricing") or {}).get("price") or {}).get("gross"))
    price_minor, currency = _minor(price)
    runs = numbers.get("max-runs-per-period")
    return PlanOption(
        sku=variant["sku"], tier=tier, name=variant["name"], price_minor=price_minor or 0, currency=currency,
        interval="month", included_credits=_opt_int(numbers.get("included-credits")),
        credits_per_run=_opt_int(numbers.get("credits-per-run")), max_runs_per_period=_opt_int(runs),
    )


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
