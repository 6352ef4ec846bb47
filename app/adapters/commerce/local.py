"""Local adapter of the catalog port: the app's own tables, searched in SQL.

Full-text search is PostgreSQL's weighted tsvector (a stored column with the GIN index
`ix_offering_search_vector`)
or SQLite's FTS5 table `offering_fts`; both rank name matches above summary matches above
description matches, treat the last word typed as a prefix, and accept web-search syntax
("quoted phrases", -excluded, or).

Faceted counts follow the usual rule: a group's counts apply every other active filter but not
its own (values in one group OR, groups AND). A search page costs four small statements: the
labels of the requested filter values, one statement for all six groups' counts and the total,
the page of ids, and the cards of that page.

The text query lives in `local_text.py` and the search statements in `local_search.py`; their
public names are importable from here too.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.orm import Session, joinedload, selectinload

from app.adapters.commerce import (
    FACET_GROUPS, RATING_GROUP, RATING_THRESHOLDS, Category, FacetChip, FacetGroup, FacetOption, ListingExtras,
    OfferingCard, OfferingDetail, PlanOption, ScreenshotImage, SearchQuery, SearchResult, VersionNote, rating_label,
)
from app.adapters.commerce.local_search import FTS_WEIGHTS, PUBLISHED, SEARCH_VECTOR_SQL, SearchStatements
from app.adapters.commerce.local_text import Term, fts5_match, parse_terms, pg_tsquery
from app.models import (
    FacetValue, Instance, MediaKind, Offering, OfferingFacet, OfferingMedia, Organization, Plan, Review,
)

__all__ = [
    "FTS_WEIGHTS", "GROUP_LABELS", "PUBLISHED", "PUBLISHERS_SHOWN", "SEARCH_VECTOR_SQL", "LocalCatalog",
    "SearchStatements", "Term", "fts5_match", "parse_terms", "pg_tsquery",
]

GROUP_LABELS = {
    "category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
    "pricing": "Pricing", "publisher": "Publisher", "rating": "Rating",
}
PUBLISHERS_SHOWN = 12  # the publisher group lists the biggest few (plus any selected)


class LocalCatalog:
    """The catalog from the app's own tables (only published offerings)."""

    supports_ratings = True  # reviews live in the same database: sort, facet and card ratings

    def __init__(self, session: Session, *, in_memory_index: bool = True) -> None:
        self.session = session
        self.in_memory_index = in_memory_index
        self._groups: dict[str, list[tuple[str, str]]] = {}

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # vocabulary and categories
    def facet_values(self, group: str) -> list[tuple[str, str]]:
        if group not in self._groups:
            self._groups[group] = [
                (slug, label) for slug, label in self.session.execute(
                    select(FacetValue.slug, FacetValue.label).where(FacetValue.group == group).order_by(FacetValue.id)
                )
            ]
        return self._groups[group]

    def facet_labels(self, requested: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
        pairs = [(group, value) for group, values in requested.items() if group in FACET_GROUPS
                 for value in set(values) if value and len(value) <= 64]
        labels: dict[str, dict[str, str]] = {}
        thresholds = {v for v in requested.get(RATING_GROUP, ()) if v in {str(t) for t in RATING_THRESHOLDS}}
        if thresholds:
            labels[RATING_GROUP] = {v: rating_label(int(v)) for v in thresholds}
        if not pairs:
            return labels
        rows = self.session.execute(
            select(FacetValue.group, FacetValue.slug, FacetValue.label)
            .where(tuple_(FacetValue.group, FacetValue.slug).in_(pairs))
        )
        for group, slug, label in rows:
            labels.setdefault(group, {})[slug] = label
        return labels

    def _label(self, group: str, value: str) -> str:
        return dict(self.facet_values(group)).get(value, value.replace("-", " ").capitalize())

    def categories(self) -> list[Category]:
        counts = dict(self.session.execute(
            select(Offering.category, func.count()).where(Offering.status == PUBLISHED).group_by(Offering.category)
        ).all())
        return [Category(slug, label, counts.get(slug, 0)) for slug, label in self.facet_values("category")]

    # listing
    def featured(self, limit: int) -> list[OfferingCard]:
        ids = self.session.scalars(
            select(Offering.id).where(Offering.status == PUBLISHED, Offering.featured.is_(True))
            .order_by(Offering.published_at.desc(), Offering.id.desc()).limit(limit)
        ).all()
        return self.cards(ids)

    def newest(self, limit: int) -> list[OfferingCard]:
        ids = self.session.scalars(
            select(Offering.id).where(Offering.status == PUBLISHED)
            .order_by(Offering.published_at.desc(), Offering.id.desc()).limit(limit)
        ).all()
        return self.cards(ids)

    def popular(self, limit: int) -> list[OfferingCard]:
        """Most subscribed (instances of any status), then featured, then newest."""
        instances = (
            select(Instance.offering_id, func.count().label("n")).group_by(Instance.offering_id).subquery()
        )
        ids = self.session.scalars(
            select(Offering.id).outerjoin(instances, instances.c.offering_id == Offering.id)
            .where(Offering.status == PUBLISHED)
            .order_by(func.coalesce(instances.c.n, 0).desc(), Offering.featured.desc(),
                      Offering.published_at.desc(), Offering.id.desc())
            .limit(limit)
        ).all()
        return self.cards(ids)

    def cards(self, ids: list[int] | tuple[int, ...]) -> list[OfferingCard]:
        """Result cards for these offering ids, in the given order (unpublished ones left out)."""
        if not ids:
            return []
        wanted = list(ids)
        rows = self.session.connection().execute(  # Core: plain rows, no ORM bookkeeping
            select(
                Offering.id, Offering.slug, Offering.name, Offering.summary, Offering.category,
                Offering.trial_days, Offering.featured, Offering.published_at, Organization.name.label("publisher"),
                Organization.slug.label("publisher_slug"),
            )
            .join(Organization, Organization.id == Offering.publisher_id)
            .where(Offering.id.in_(wanted), Offering.status == PUBLISHED)
        ).all()
        cheapest: dict[int, tuple[int, str]] = {}  # the cheapest plan of each: price, then plan id
        for offering_id, price, currency in self.session.connection().execute(
            select(Plan.offering_id, Plan.price_minor, Plan.currency)
            .where(Plan.offering_id.in_(wanted)).order_by(Plan.offering_id, Plan.price_minor.desc(), Plan.id.desc())
        ):
            cheapest[offering_id] = (price, currency)
        logos = dict(self.session.connection().execute(
            select(OfferingMedia.offering_id, OfferingMedia.storage_key)
            .where(OfferingMedia.offering_id.in_(wanted), OfferingMedia.kind == MediaKind.LOGO.value)
        ).tuples().all())
        by_id = {row.id: row for row in rows}
        ratings = self._ratings(wanted)
        return [self._card(by_id[i], *cheapest.get(i, (None, None)), *ratings.get(i, (None, 0)), logo_key=logos.get(i))
                for i in ids if i in by_id]

    def _ratings(self, ids: list[int]) -> dict[int, tuple[float, int]]:
        return _ratings(self.session.connection(), ids)

    def _card(self, row: Any, price: int | None, currency: str | None, rating_average: float | None = None,
              rating_count: int = 0, logo_key: str | None = None) -> OfferingCard:
        return OfferingCard(
            key=str(row.id), slug=row.slug, name=row.name, summary=row.summary, category=row.category,
            category_label=self._label("category", row.category), publisher=row.publisher,
            price_from_minor=price, currency=currency or "USD", has_trial=row.trial_days > 0,
            featured=bool(row.featured), published_at=row.published_at, rating_average=rating_average,
            rating_count=rating_count, publisher_slug=row.publisher_slug, logo_key=logo_key,
        )

    # search
    def search(self, query: SearchQuery) -> SearchResult:
        if self.in_memory_index:
            return self._search_indexed(query)
        statements = SearchStatements(self.dialect, query)
        total = 0
        counts: dict[str, list[tuple[str, str, int, int]]] = {g: [] for g in FACET_GROUPS}
        for group, value, count, label, position in self.session.execute(statements.facet_counts()):
            if group == "":
                total = count
            elif group in counts and label is not None:  # values outside the vocabulary are not shown
                counts[group].append((value, label, count, position))
        counts[RATING_GROUP] = [
            (str(t), "", int(n), position)
            for position, (t, n) in enumerate(zip(RATING_THRESHOLDS, self.session.execute(statements.rating_counts()).one()))
            if n
        ]
        ids: list[int] = []
        if total > query.offset:
            ids = list(self.session.scalars(statements.page_ids()).all())
        return SearchResult(
            items=tuple(self.cards(ids)), total=total, facets=self._facet_groups(query, counts), query=query,
        )

    def _search_indexed(self, query: SearchQuery) -> SearchResult:
        """The same search with counts and order from this process's catalog index; only the
        text match (ids and scores from the full-text index) and the page's cards are SQL."""
        from app.adapters.commerce.catalog_index import index_for

        index = index_for(self.session)
        self._groups.setdefault("category", index.vocabulary("category"))  # the cards' category labels
        text_scores, higher_is_better = SearchStatements(self.dialect, query).text_scores(
            with_score=query.sort == "relevance")
        matches = None
        if text_scores is not None:
            # a broad word matches thousands: fetched as two arrays (PostgreSQL) or plain driver rows,
            # since building a result row per match would cost more than the match itself
            connection = self.session.connection()
            if self.dialect == "postgresql":
                matched = text_scores.subquery("matched")
                ids, scores = connection.execute(
                    select(func.array_agg(matched.c.id), func.array_agg(matched.c.score))).one()
                ids, scores = np.array(ids or [], dtype=np.int64), np.array(scores or [], dtype=np.float64)
            else:
                found = np.array(connection.execute(text_scores).cursor.fetchall(), dtype=np.float64).reshape(-1, 2)
                ids, scores = found[:, 0].astype(np.int64), found[:, 1]
            matches = (ids, np.nan_to_num(scores), higher_is_better)
        found = index.search(query, matches)
        return SearchResult(
            items=tuple(self.cards(found.ids)), total=found.total, facets=self._facet_groups(query, found.counts),
            query=query,
        )

    def _facet_groups(self, query: SearchQuery, counts: dict[str, list[tuple[str, str, int, int]]]
                      ) -> tuple[FacetGroup, ...]:
        groups = []
        for group in FACET_GROUPS:
            selected = set(query.values(group))
            rows = counts[group]
            if group == "publisher":  # open-ended: the biggest first, and only the first few
                rows = sorted(rows, key=lambda r: (-r[2], r[1].lower()))
                rows = rows[:PUBLISHERS_SHOWN] + [r for r in rows[PUBLISHERS_SHOWN:] if r[0] in selected]
            else:
                rows = sorted(rows, key=lambda r: r[3])
            missing = selected - {r[0] for r in rows}  # selected but nothing left with the other filters
            labels = self.facet_labels({group: missing}).get(group, {}) if missing else {}
            options = [FacetOption(value=v, label=label, count=n, selected=v in selected) for v, label, n, _ in rows]
            options += [FacetOption(value=v, label=labels.get(v, v), count=0, selected=True) for v in sorted(missing)]
            groups.append(FacetGroup(group, GROUP_LABELS[group], tuple(options)))
        # the rating: "n stars and up" for each threshold that anything reaches, and the one chosen
        chosen = query.min_rating
        rows = {int(t): n for t, _, n, _ in counts.get(RATING_GROUP, [])}
        options = [
            FacetOption(value=str(t), label=rating_label(t), count=rows.get(t, 0), selected=t == chosen)
            for t in RATING_THRESHOLDS if rows.get(t) or t == chosen
        ]
        if options:  # no reviews among the results: no rating group
            groups.append(FacetGroup(RATING_GROUP, GROUP_LABELS[RATING_GROUP], tuple(options)))
        return tuple(groups)

    # detail
    def product(self, slug: str) -> OfferingDetail | None:
        offering = self.session.scalar(
            select(Offering).where(Offering.slug == slug, Offering.status == PUBLISHED)
            .options(selectinload(Offering.plans), selectinload(Offering.versions),
                     selectinload(Offering.facets), joinedload(Offering.publisher))
        )
        if offering is None:
            return None
        wanted: dict[str, set[str]] = {"category": {offering.category}}
        for f in offering.facets:
            wanted.setdefault(f.group, set()).add(f.value)
        labels = self.facet_labels(wanted)  # the page's labels in one query, not one per facet group

        def label(group: str, value: str) -> str:
            return labels.get(group, {}).get(value, value.replace("-", " ").capitalize())
        cheapest = min(offering.plans, key=lambda p: (p.price_minor, p.id), default=None)
        images = self.session.scalars(
            select(OfferingMedia).where(OfferingMedia.offering_id == offering.id)
            .order_by(OfferingMedia.position, OfferingMedia.id)
        ).all()
        card = OfferingCard(
            key=str(offering.id), slug=offering.slug, name=offering.name, summary=offering.summary,
            category=offering.category, category_label=label("category", offering.category),
            publisher=offering.publisher.name, price_from_minor=cheapest.price_minor if cheapest else None,
            currency=cheapest.currency if cheapest else "USD", has_trial=offering.has_trial,
            featured=offering.featured, published_at=offering.published_at, publisher_slug=offering.publisher.slug,
            logo_key=next((m.storage_key for m in images if m.kind == MediaKind.LOGO.value), None),
            **dict(zip(("rating_average", "rating_count"), self._ratings([offering.id]).get(offering.id, (None, 0)))),
        )
        facets = tuple(
            FacetChip(f.group, f.value, label(f.group, f.value))
            for f in sorted(offering.facets, key=lambda f: (FACET_GROUPS.index(f.group)
                                                            if f.group in FACET_GROUPS else 99, f.value))
        )
        tier_order = {"starter": 0, "pro": 1, "enterprise": 2}
        plans = tuple(
            PlanOption(
                sku=p.sku, tier=p.tier, name=p.name, price_minor=p.price_minor, currency=p.currency,
                interval=p.interval, included_credits=p.included_credits, credits_per_run=p.credits_per_run,
                max_runs_per_period=p.max_runs_per_period, features=tuple(p.feature_list),
                credits_per_1k_units=p.credits_per_1k_units or 0,
            )
            for p in sorted(offering.plans, key=lambda p: (tier_order.get(p.tier, 9), p.price_minor))
        )
        versions = tuple(
            VersionNote(v.version, v.changelog, v.created_at)
            for v in sorted(offering.versions, key=lambda v: (_semver_key(v.version), v.id), reverse=True)
        )
        return OfferingDetail(
            card=card, description_md=offering.description_md, facets=facets, plans=plans, versions=versions,
            trial_days=offering.trial_days, trial_credits=offering.trial_credits,
            screenshots=tuple(ScreenshotImage(m.storage_key, m.alt_text, m.width, m.height)
                              for m in images if m.kind == MediaKind.SCREENSHOT.value),
        )

    def related(self, detail: OfferingDetail, limit: int) -> list[OfferingCard]:
        """Published offerings sharing the most category/outcome/role/capability values."""
        offering_id = int(detail.card.key)
        mine = select(OfferingFacet.group, OfferingFacet.value).where(
            OfferingFacet.offering_id == offering_id,
            OfferingFacet.group.in_(("category", "outcome", "role", "capability")),
        ).subquery()
        shared = func.count().label("shared")
        ids = self.session.scalars(
            select(Offering.id)
            .join(OfferingFacet, OfferingFacet.offering_id == Offering.id)
            .join(mine, and_(mine.c.group == OfferingFacet.group, mine.c.value == OfferingFacet.value))
            .where(Offering.status == PUBLISHED, Offering.id != offering_id)
            .group_by(Offering.id, Offering.featured, Offering.published_at)
            .order_by(shared.desc(), Offering.featured.desc(), Offering.published_at.desc(), Offering.id.desc())
            .limit(limit)
        ).all()
        return self.cards(ids)


def _ratings(connection: Any, ids: list[int]) -> dict[int, tuple[float, int]]:
    """(average to one decimal, count) of the visible reviews of each offering that has any."""
    rows = connection.execute(
        select(Review.offering_id, func.count(), func.sum(Review.rating))
        .where(Review.offering_id.in_(ids), Review.hidden_at.is_(None)).group_by(Review.offering_id)
    )
    return {offering_id: (round(stars / n + 1e-9, 1), n) for offering_id, n, stars in rows}


def listing_extras(session: Session, slugs: Iterable[str], *, screenshots: bool = False) -> dict[str, ListingExtras]:
    """Our rating and images of the published offerings with these slugs (those with any), for a store
    that lists them without: three queries whatever the number of slugs."""
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    connection = session.connection()
    ids = dict(connection.execute(
        select(Offering.id, Offering.slug).where(Offering.slug.in_(wanted), Offering.status == PUBLISHED)
    ).tuples().all())
    if not ids:
        return {}
    ratings = _ratings(connection, list(ids))
    kinds = [MediaKind.LOGO.value, *([MediaKind.SCREENSHOT.value] if screenshots else [])]
    logos: dict[int, str] = {}
    shots: dict[int, list[ScreenshotImage]] = {}
    for m in connection.execute(
        select(OfferingMedia.offering_id, OfferingMedia.kind, OfferingMedia.storage_key, OfferingMedia.alt_text,
               OfferingMedia.width, OfferingMedia.height)
        .where(OfferingMedia.offering_id.in_(ids), OfferingMedia.kind.in_(kinds))
        .order_by(OfferingMedia.offering_id, OfferingMedia.position, OfferingMedia.id)
    ):
        if m.kind == MediaKind.LOGO.value:
            logos.setdefault(m.offering_id, m.storage_key)
        else:
            shots.setdefault(m.offering_id, []).append(ScreenshotImage(m.storage_key, m.alt_text, m.width, m.height))
    return {
        slug: ListingExtras(*ratings.get(offering_id, (None, 0)), logo_key=logos.get(offering_id),
                            screenshots=tuple(shots.get(offering_id, ())))
        for offering_id, slug in ids.items()
        if offering_id in ratings or offering_id in logos or offering_id in shots
    }


def _semver_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)
