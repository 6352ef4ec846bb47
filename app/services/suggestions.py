"""Search-as-you-type suggestions for the header search box.

Read through the catalog port, so they are the same over the local tables and over Saleor. A
suggestion is one matching offering with its category; the caller adds the "Search for …" line.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.adapters.commerce import CatalogPort, SearchQuery
from app.services.catalog import clean_text_query

MIN_QUERY = 2  # one letter matches half the catalog: wait for a second one
DEFAULT_LIMIT = 6


@dataclass(frozen=True)
class Suggestion:
    slug: str
    name: str
    category_label: str


def suggest_offerings(catalog: CatalogPort, *, q: str, limit: int = DEFAULT_LIMIT) -> list[Suggestion]:
    """At most `limit` offerings matching `q`, best match first; none for a query shorter than MIN_QUERY."""
    q = clean_text_query(q)
    if len(q) < MIN_QUERY or limit < 1:
        return []
    result = catalog.search(SearchQuery(q=q, sort="relevance", page=1, per_page=limit))
    return [Suggestion(slug=card.slug, name=card.name, category_label=card.category_label)
            for card in result.items[:limit]]
