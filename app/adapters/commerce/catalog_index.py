"""An in-process index of the published catalog for faceted search: counts and ordering in memory.

Counting facets in SQL reads every facet row of every matching offering, so a search over the whole
catalog costs time in proportion to the catalog (about a second at 100,000 offerings). This index
keeps, per process, what counting and ordering need as NumPy arrays:

- the published offerings' ids (sorted; an offering's position is its index here);
- their facet rows, sorted by facet value, as (position, value) pairs with each value's slice;
- the positions in each sort order, and each position's rank in the default order.

A search then costs the text match in SQL (the full-text index gives ids and scores; no text, no
SQL), one boolean mask per active filter, a `bincount` per mask for the facet counts, and a walk
down the precomputed order for the page: work in C over arrays of a few megabytes.

The index is valid for one revision token of the catalog (`catalog_revision`, which changes in
the same transaction as any change to the search data) and is rebuilt, once per process, on the
first search that sees a new token. Without a token row nothing is cached.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from app.adapters.commerce import FACET_GROUPS, RATING_GROUP, RATING_THRESHOLDS, SearchQuery
from app.adapters.commerce.local_search import SearchStatements
from app.models import CatalogRevision, FacetValue, Offering, OfferingFacet, OfferingStatus, Plan, Review

PUBLISHED = OfferingStatus.PUBLISHED.value


class CatalogChanged(Exception):
    """The catalog changed while the index was being read: read it again."""


@dataclass(frozen=True)
class IndexedSearch:
    """What the index answers: the total, the page of ids, and each group's (value, label, count,
    position) rows with a count above zero (values without a vocabulary label are left out); the
    rating group's rows are (threshold, "", count, position), labelled by the adapter."""

    total: int
    ids: list[int]
    counts: dict[str, list[tuple[str, str, int, int]]]


class CatalogIndex:
    def __init__(self, token: str | None, session: Session) -> None:
        self.token = token
        dialect = session.get_bind().dialect.name
        conn = session.connection()  # Core rows: the ORM's per-row work is not needed for plain ids
        self.ids = np.array(conn.execute(
            select(Offering.id).where(Offering.status == PUBLISHED).order_by(Offering.id)).scalars().all(),
            dtype=np.int64)
        n = len(self.ids)
        # these orders exactly as the SQL search sorts (collation, ties): the whole catalog as one
        # page of the statement that pages it
        self.orders = {}
        for sort in ("relevance", "newest", "name"):
            in_order = np.array(conn.execute(SearchStatements(
                dialect, SearchQuery(sort=sort, per_page=max(n, 1))).page_ids()).scalars().all(), dtype=np.int64)
            self.orders[sort] = np.searchsorted(self.ids, in_order)
            if len(in_order) != n or not np.array_equal(self.ids[self.orders[sort]], in_order):
                raise CatalogChanged()
        # by price: offerings without plans last, then the cheapest plan, ties as sorted by name
        # (lower(name), then newer id first: exactly the rank in the name order)
        name_rank = np.empty(n, dtype=np.int64)
        name_rank[self.orders["name"]] = np.arange(n)
        cheapest = np.array([tuple(row) for row in conn.execute(
            select(Plan.offering_id, func.min(Plan.price_minor)).group_by(Plan.offering_id))],
            dtype=np.int64).reshape(-1, 2)
        price = np.zeros(n, dtype=np.int64)
        no_price = np.ones(n, dtype=np.int8)
        at = np.searchsorted(self.ids, cheapest[:, 0])
        found = at < n
        found[found] = self.ids[at[found]] == cheapest[found, 0]  # plans of unpublished offerings: not here
        price[at[found]] = cheapest[found, 1]
        no_price[at[found]] = 0
        self.orders["price_asc"] = np.lexsort((name_rank, price, no_price))  # the last key sorts first
        self.orders["price_desc"] = np.lexsort((name_rank, -price, no_price))
        self.default_rank = np.empty(n, dtype=np.int64)
        self.default_rank[self.orders["relevance"]] = np.arange(n)

        # ratings: each offering's count and sum of stars of its visible reviews
        rated = np.array([tuple(row) for row in conn.execute(
            select(Review.offering_id, func.count(), func.sum(Review.rating))
            .where(Review.hidden_at.is_(None)).group_by(Review.offering_id))], dtype=np.int64).reshape(-1, 3)
        self.review_count = np.zeros(n, dtype=np.int64)
        self.review_stars = np.zeros(n, dtype=np.int64)
        at = np.searchsorted(self.ids, rated[:, 0])
        found = at < n
        found[found] = self.ids[at[found]] == rated[found, 0]
        self.review_count[at[found]] = rated[found, 1]
        self.review_stars[at[found]] = rated[found, 2]
        # by rating: the best average first, then the most reviews, unrated last; ties in the default order
        with np.errstate(divide="ignore", invalid="ignore"):
            average = np.where(self.review_count > 0, self.review_stars / np.maximum(self.review_count, 1), 0.0)
        self.orders["rating"] = np.lexsort(
            (self.default_rank, -self.review_count, -average, (self.review_count == 0).astype(np.int8)))

        # each (group, value) with its offerings' ids (published or not: the others are dropped
        # below), aggregated in the database: a thousand rows rather than one per facet row
        if dialect == "postgresql":
            id_list = func.string_agg(cast(OfferingFacet.offering_id, Text), ",")
        else:
            id_list = func.group_concat(OfferingFacet.offering_id, ",")
        used = {(g, v): ids for g, v, ids in conn.execute(
            select(OfferingFacet.group, OfferingFacet.value, id_list).group_by(OfferingFacet.group, OfferingFacet.value)
        )}
        # the vocabulary: every (group, value) known or used, grouped in FACET_GROUPS order
        vocabulary = {(g, s): (label, position) for g, s, label, position in conn.execute(
            select(FacetValue.group, FacetValue.slug, FacetValue.label, FacetValue.id))}
        group_order = {g: i for i, g in enumerate(FACET_GROUPS)}
        keys = sorted(set(used) | set(vocabulary), key=lambda k: (group_order.get(k[0], len(FACET_GROUPS)), k))
        self.values = keys
        self.value_index = {key: i for i, key in enumerate(keys)}
        self.labels = [vocabulary.get(k, (None, None)) for k in keys]
        self.group_span: dict[str, tuple[int, int]] = {}
        for i, (group, _) in enumerate(keys):
            self.group_span[group] = (self.group_span.get(group, (i, i))[0], i + 1)

        # facet rows sorted by value: value v's offerings are row_pos[value_start[v]:value_start[v + 1]]
        pieces = [np.fromstring(used[key], dtype=np.int64, sep=",") if key in used else np.zeros(0, dtype=np.int64)
                  for key in keys]
        sizes = np.array([len(p) for p in pieces], dtype=np.int64)
        row_ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        row_val = np.repeat(np.arange(len(keys), dtype=np.int32), sizes)
        row_pos = np.searchsorted(self.ids, row_ids)
        # facet rows of offerings that are not published have no position: left out
        known = row_pos < n
        known[known] = self.ids[row_pos[known]] == row_ids[known]
        self.row_pos = row_pos[known].astype(np.int32)
        self.row_val = row_val[known]
        self.value_start = np.concatenate(([0], np.cumsum(np.bincount(self.row_val, minlength=len(keys)))))
        # the same rows by offering, for counting over a few matches without reading every row
        by_offering = np.argsort(self.row_pos, kind="stable")
        self.offering_values = self.row_val[by_offering]
        self.offering_start = np.concatenate(([0], np.cumsum(np.bincount(self.row_pos, minlength=n))))

    def vocabulary(self, group: str) -> list[tuple[str, str]]:
        """A group's known values as (slug, label), in the vocabulary's order."""
        first, last = self.group_span.get(group, (0, 0))
        known = [(self.labels[v][1], self.values[v][1], self.labels[v][0]) for v in range(first, last)
                 if self.labels[v][0] is not None]
        return [(slug, label) for _, slug, label in sorted(known)]

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        arrays = [self.ids, self.default_rank, self.row_pos, self.row_val, self.value_start, self.offering_values,
                  self.offering_start, self.review_count, self.review_stars, *self.orders.values()]
        return sum(a.nbytes for a in arrays)

    def _count_values(self, mask: np.ndarray, first: int = 0, last: int | None = None) -> np.ndarray:
        """How many offerings in `mask` have each value in [first, last) (default: all values).

        Few offerings: their own rows, found by offering; many: one pass over every row."""
        last = len(self.values) if last is None else last
        positions = np.flatnonzero(mask)
        if len(positions) * 8 < len(self.row_pos):
            starts, ends = self.offering_start[positions], self.offering_start[positions + 1]
            lengths = ends - starts
            rows = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            values = self.offering_values[rows]
            values = values[(values >= first) & (values < last)]
        else:
            row_first, row_last = self.value_start[first], self.value_start[last]
            values = self.row_val[row_first:row_last][mask[self.row_pos[row_first:row_last]]]
        return np.bincount(values - first, minlength=last - first)

    def rating_mask(self, threshold: int) -> np.ndarray:
        """Offerings whose average of visible reviews is at least `threshold` (exactly: stars >= t * n)."""
        return (self.review_count > 0) & (self.review_stars >= threshold * self.review_count)

    def _value_mask(self, group: str, values: tuple[str, ...]) -> np.ndarray:
        if group == RATING_GROUP:
            threshold = SearchQuery(filters=((group, values),)).min_rating
            return self.rating_mask(threshold) if threshold is not None else np.ones(self.size, dtype=bool)
        mask = np.zeros(self.size, dtype=bool)
        for value in values:
            v = self.value_index.get((group, value))
            if v is not None:
                mask[self.row_pos[self.value_start[v]:self.value_start[v + 1]]] = True
        return mask

    def search(self, query: SearchQuery, text: tuple[np.ndarray, np.ndarray, bool] | None) -> IndexedSearch:
        """`text`: (ids, scores, higher_is_better) of the text's matches, or None without text."""
        n = self.size
        score_key = None
        if text is None:
            base = np.ones(n, dtype=bool)
        else:
            match_ids, scores, higher_is_better = text
            base = np.zeros(n, dtype=bool)
            positions = np.searchsorted(self.ids, match_ids)
            known = positions < n
            known[known] = self.ids[positions[known]] == match_ids[known]
            base[positions[known]] = True
            score_key = np.zeros(n, dtype=np.float64)
            score_key[positions[known]] = -scores[known] if higher_is_better else scores[known]

        filters = [(group, self._value_mask(group, values)) for group, values in query.filters if values]
        everything = base.copy()
        for _, mask in filters:
            everything &= mask
        total = int(np.count_nonzero(everything))

        counts_array = np.zeros(len(self.values), dtype=np.int64)
        filtered_groups = {group for group, _ in filters if group != RATING_GROUP}
        if len(filtered_groups) < len(FACET_GROUPS):  # the unfiltered groups all count under `everything`
            counts_array += self._count_values(everything)
            for group in filtered_groups:  # these were counted under the wrong mask: recount below
                first, last = self.group_span.get(group, (0, 0))
                counts_array[first:last] = 0
        for group, _ in filters:  # a group's own filter is left out of its counts
            first, last = self.group_span.get(group, (0, 0))
            if first == last:
                continue
            mask = base.copy()
            for other, other_mask in filters:
                if other != group:
                    mask &= other_mask
            counts_array[first:last] = self._count_values(mask, first, last)

        counts: dict[str, list[tuple[str, str, int, int]]] = {g: [] for g in (*FACET_GROUPS, RATING_GROUP)}
        rated = base.copy()  # the rating group: every filter but its own
        for group, mask in filters:
            if group != RATING_GROUP:
                rated &= mask
        for position, threshold in enumerate(RATING_THRESHOLDS):
            n_rated = int(np.count_nonzero(rated & self.rating_mask(threshold)))
            if n_rated:
                counts[RATING_GROUP].append((str(threshold), "", n_rated, position))
        for v in np.flatnonzero(counts_array):
            group, value = self.values[v]
            label, position = self.labels[v]
            if label is not None and group in counts:
                counts[group].append((value, label, int(counts_array[v]), position))

        ids: list[int] = []
        if total > query.offset:
            if score_key is not None and query.sort == "relevance":
                candidates = np.flatnonzero(everything)
                ordered = candidates[np.lexsort((self.default_rank[candidates], score_key[candidates]))]
            else:
                order = self.orders[query.sort if query.sort in self.orders else "relevance"]
                ordered = order[everything[order]]
            ids = self.ids[ordered[query.offset:query.offset + query.per_page]].tolist()
        return IndexedSearch(total=total, ids=ids, counts=counts)


MAX_DATABASES = 4
_indexes: dict[str, CatalogIndex] = {}
_lock = threading.Lock()


def index_for(session: Session) -> CatalogIndex:
    """This process's index of the catalog the session sees, rebuilt when the revision moved."""
    token = session.scalar(select(CatalogRevision.token).where(CatalogRevision.id == 1))
    key = session.get_bind().url.render_as_string(hide_password=True)
    current = _indexes.get(key)
    if token is not None and current is not None and current.token == token:
        return current
    with _lock:
        current = _indexes.get(key)
        if token is not None and current is not None and current.token == token:
            return current
        for attempt in range(3):
            try:
                index = CatalogIndex(token, session)
                break
            except CatalogChanged:
                if attempt == 2:
                    raise
                token = session.scalar(select(CatalogRevision.token).where(CatalogRevision.id == 1))
        if token is not None:
            _indexes.pop(key, None)
            _indexes[key] = index
            while len(_indexes) > MAX_DATABASES:  # one per database this process has searched, newest kept
                del _indexes[next(iter(_indexes))]
        return index
