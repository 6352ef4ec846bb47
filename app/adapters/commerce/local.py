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
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    CompoundSelect, Float, Integer, Select, String, and_, case, false, func, literal, literal_column, not_, or_, select,
    text, true, tuple_, union_all,
)
from sqlalchemy.orm import Session, selectinload

from app.adapters.commerce import (
    FACET_GROUPS, Category, FacetChip, FacetGroup, FacetOption, OfferingCard, OfferingDetail, PlanOption,
    SearchQuery, SearchResult, VersionNote,
)
from app.models import FacetValue, Instance, Offering, OfferingFacet, OfferingStatus, Organization, Plan

PUBLISHED = OfferingStatus.PUBLISHED.value
GROUP_LABELS = {
    "category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
    "pricing": "Pricing", "publisher": "Publisher",
}

# The weighted tsvector (name A, summary B, description C) that the migration
# `offering_search_vector_column` stores as a generated column with a GIN index: matching uses the
# index and ranking reads the stored vector instead of rebuilding it for every match.
SEARCH_VECTOR_SQL = "offering.search_vector"
PUBLISHERS_SHOWN = 12  # the publisher group lists the biggest few (plus any selected)
# bm25 column weights for FTS5 (name, summary, description), the counterpart of A/B/C above
FTS_WEIGHTS = (10.0, 4.0, 1.0)


# --- the text query ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False
    negated: bool = False
    prefix: bool = False


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")


def parse_terms(q: str) -> list[list[Term]]:
    """Web-search syntax as OR-groups of AND-ed terms: `a "b c" -d or e` -> [[a, "b c", -d], [e]].

    Words keep only letters and digits (punctuation separates words, as both engines' tokenizers
    do). The last word of the query, when typed as a plain word, is a prefix.
    """
    groups: list[list[Term]] = [[]]
    for match in _TOKEN.finditer(q):
        negated = match.group(1) == "-" if match.group(2) is not None else False
        if match.group(2) is not None:
            words = _WORD.findall(match.group(2))
            if words:
                groups[-1].append(Term(" ".join(words).lower(), phrase=True, negated=negated))
            continue
        raw = match.group(3)
        if raw.lower() == "or":
            if groups[-1]:
                groups.append([])
            continue
        negated = raw.startswith("-") and len(raw) > 1
        words = _WORD.findall(raw)
        if not words:
            continue
        if len(words) > 1:  # e-mail, 3.5: a phrase of its parts, as the engines tokenize it
            groups[-1].append(Term(" ".join(words).lower(), phrase=True, negated=negated))
        else:
            groups[-1].append(Term(words[0].lower(), negated=negated))
    groups = [g for g in groups if g]
    if groups:
        last_token = q.rstrip()
        last = groups[-1][-1]
        typed_plain_word = bool(last_token) and not last_token.endswith('"') and not last.phrase
        if typed_plain_word and not last.negated:
            groups[-1][-1] = Term(last.text, prefix=True)
    return groups


def fts5_match(groups: list[list[Term]]) -> tuple[str | None, str | None]:
    """(positive match, negation-only match) for FTS5; None where there is nothing to match."""
    alternatives, negatives_only = [], []
    for group in groups:
        positive = [t for t in group if not t.negated]
        negative = [t for t in group if t.negated]
        if not positive:
            negatives_only.extend(negative)
            continue
        expr = " AND ".join(_fts5_term(t) for t in positive)
        for t in negative:
            expr = f"({expr}) NOT {_fts5_term(t)}"
        alternatives.append(f"({expr})")
    positive_match = " OR ".join(alternatives) or None
    negative_match = " OR ".join(_fts5_term(t) for t in negatives_only) or None
    return positive_match, negative_match


def _fts5_term(term: Term) -> str:
    quoted = '"' + term.text.replace('"', '""') + '"'
    return quoted + "*" if term.prefix else quoted


def pg_tsquery(groups: list[list[Term]]) -> Any:
    """A tsquery expression: websearch_to_tsquery for everything but a trailing prefix word,
    which is AND-ed as `word:*` (websearch syntax has no prefix operator)."""
    parts = []
    for i, group in enumerate(groups):
        prefix = group[-1] if group[-1].prefix else None
        plain = group[:-1] if prefix else group
        web = " ".join(
            ("-" if t.negated else "") + (f'"{t.text}"' if t.phrase else t.text) for t in plain
        )
        expr = None
        if web:
            expr = func.websearch_to_tsquery(literal_column("'english'::regconfig"), web)
        if prefix is not None:
            # the stemmed prefix ('running' -> 'run':*) or the word as typed, which also keeps a
            # half-typed word that happens to be a stop word ('a', 'the') from matching nothing
            prefix_query = func.to_tsquery(literal_column("'english'::regconfig"), prefix.text + ":*").op("||")(
                func.to_tsquery(literal_column("'simple'::regconfig"), prefix.text + ":*")
            )
            expr = prefix_query if expr is None else expr.op("&&")(prefix_query)
        if expr is not None:
            parts.append(expr)
    query = parts[0]
    for part in parts[1:]:
        query = query.op("||")(part)
    return query


# --- the adapter -------------------------------------------------------------------------------

class LocalCatalog:
    """The catalog from the app's own tables (only published offerings)."""

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
        by_id = {row.id: row for row in rows}
        return [self._card(by_id[i], *cheapest.get(i, (None, None))) for i in ids if i in by_id]

    def _card(self, row: Any, price: int | None, currency: str | None) -> OfferingCard:
        return OfferingCard(
            key=str(row.id), slug=row.slug, name=row.name, summary=row.summary, category=row.category,
            category_label=self._label("category", row.category), publisher=row.publisher,
            price_from_minor=price, currency=currency or "USD", has_trial=row.trial_days > 0,
            featured=bool(row.featured), published_at=row.published_at,
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
        return tuple(groups)

    # detail
    def product(self, slug: str) -> OfferingDetail | None:
        offering = self.session.scalar(
            select(Offering).where(Offering.slug == slug, Offering.status == PUBLISHED)
            .options(selectinload(Offering.plans), selectinload(Offering.versions),
                     selectinload(Offering.facets), selectinload(Offering.publisher))
        )
        if offering is None:
            return None
        cheapest = min(offering.plans, key=lambda p: (p.price_minor, p.id), default=None)
        card = OfferingCard(
            key=str(offering.id), slug=offering.slug, name=offering.name, summary=offering.summary,
            category=offering.category, category_label=self._label("category", offering.category),
            publisher=offering.publisher.name, price_from_minor=cheapest.price_minor if cheapest else None,
            currency=cheapest.currency if cheapest else "USD", has_trial=offering.has_trial,
            featured=offering.featured, published_at=offering.published_at,
        )
        facets = tuple(
            FacetChip(f.group, f.value, self._label(f.group, f.value))
            for f in sorted(offering.facets, key=lambda f: (FACET_GROUPS.index(f.group)
                                                            if f.group in FACET_GROUPS else 99, f.value))
        )
        tier_order = {"starter": 0, "pro": 1, "enterprise": 2}
        plans = tuple(
            PlanOption(
                sku=p.sku, tier=p.tier, name=p.name, price_minor=p.price_minor, currency=p.currency,
                interval=p.interval, included_credits=p.included_credits, credits_per_run=p.credits_per_run,
                max_runs_per_period=p.max_runs_per_period, features=tuple(p.feature_list),
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


def _semver_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


class SearchStatements:
    """The SQL of one search: the facet counts (with the total) and the page of ids.

    Kept apart from the adapter so the benchmark can time exactly these statements (the floor).
    The text match is a set of ids computed once per statement: on PostgreSQL a MATERIALIZED CTE
    (so the GIN index is always used and no row's tsvector is rebuilt to test it), on SQLite the
    FTS5 match. Facet filters test the covering index `ix_offering_search_facet`."""

    def __init__(self, dialect: str, query: SearchQuery) -> None:
        self.dialect = dialect
        self.query = query
        self.groups = parse_terms(query.q) if query.q else []
        self._filtered = [(group, values) for group, values in query.filters if values]

    # --- the text match -------------------------------------------------------------------------
    def _text_source(self, *, with_score: bool) -> Any:
        """(id, score) of published offerings matching the text, or None when there is no text.

        The score orders by relevance: ts_rank on name and summary (higher is better) on
        PostgreSQL, bm25 over the three columns (lower is better) on SQLite."""
        if not self.query.q or not self.groups:
            return None
        if self.dialect == "postgresql":
            tsquery = pg_tsquery(self.groups)
            # the heap rows are read anyway: keep what ordering needs, so no second pass over offering
            columns = [Offering.id.label("id"), Offering.featured.label("featured"),
                       Offering.published_at.label("published_at"), Offering.name.label("name")]
            if with_score:
                columns.append(func.ts_rank(literal_column(SEARCH_VECTOR_SQL), tsquery).label("score"))
            return (
                select(*columns)
                .where(Offering.status == PUBLISHED, literal_column(SEARCH_VECTOR_SQL).op("@@")(tsquery))
                .cte("text_match").prefix_with("MATERIALIZED")
            )
        positive, negative = fts5_match(self.groups)
        if positive is None:  # only exclusions: everything published except what they match
            excluded = text("SELECT rowid AS id FROM offering_fts WHERE offering_fts MATCH :excluded").bindparams(
                excluded=negative).columns(id=Integer).subquery("fts_excluded")
            return (
                select(Offering.id.label("id"), literal(0.0, type_=Float).label("score"))
                .where(Offering.status == PUBLISHED, not_(Offering.id.in_(select(excluded.c.id))))
                .subquery("text_match")
            )
        if with_score:  # bm25 reads each match's column sizes: only when ordering needs it
            sql = "SELECT rowid AS id, bm25(offering_fts, :w_name, :w_summary, :w_description) AS score " \
                  "FROM offering_fts WHERE offering_fts MATCH :match"
            params = {"match": positive, "w_name": FTS_WEIGHTS[0], "w_summary": FTS_WEIGHTS[1],
                      "w_description": FTS_WEIGHTS[2]}
        else:
            sql = "SELECT rowid AS id, 0.0 AS score FROM offering_fts WHERE offering_fts MATCH :match"
            params = {"match": positive}
        if negative is not None:
            sql += " AND rowid NOT IN (SELECT rowid FROM offering_fts WHERE offering_fts MATCH :excluded)"
            params["excluded"] = negative
        return text(sql).bindparams(**params).columns(id=Integer, score=Float).subquery("text_match")

    def text_scores(self, *, with_score: bool) -> tuple[Select | None, bool]:
        """(id, score) of every published offering the text matches, and whether a higher score is
        better (PostgreSQL's ts_rank) or a lower one (SQLite's bm25); without `with_score` the
        score is 0 and costs nothing. (None, _) when there is no text; a text of punctuation alone
        matches nothing and gives a statement with no rows."""
        if not self.query.q:
            return None, True
        source = self._text_source(with_score=with_score)
        if source is None:
            return select(Offering.id.label("id"), literal(0.0, type_=Float).label("score")).where(false()), True
        score = source.c.score if "score" in source.c else literal(0.0, type_=Float).label("score")
        return select(source.c.id, score), self.dialect == "postgresql"

    def _universe(self, source: Any) -> tuple[Any, list[Any]]:
        """The rows to search (something with id, featured, published_at and name columns) and the
        conditions that make them "published and matching the text"."""
        if source is not None and self.dialect == "postgresql":
            return source.c, []  # the CTE already holds exactly the published matches
        return Offering, self._base_conditions(source)

    def _base_conditions(self, source: Any) -> list[Any]:
        conditions: list[Any] = [Offering.status == PUBLISHED]
        if self.query.q and not self.groups:  # only punctuation was typed: nothing can match
            conditions.append(literal(False))
        elif source is not None:
            conditions.append(Offering.id.in_(select(source.c.id)))
        return conditions

    @staticmethod
    def _facet_condition(group: str, values: tuple[str, ...], id_column: Any = Offering.id) -> Any:
        return id_column.in_(
            select(OfferingFacet.offering_id).where(OfferingFacet.group == group, OfferingFacet.value.in_(values))
        )

    # --- the two statements ---------------------------------------------------------------------
    def matching(self) -> Select:
        """Ids of published offerings matching the text and every filter."""
        rows, conditions = self._universe(self._text_source(with_score=False))
        conditions += [self._facet_condition(group, values, rows.id) for group, values in self._filtered]
        return select(rows.id.label("id")).where(*conditions)

    def facet_counts(self) -> CompoundSelect:
        """Rows (group, value, count, label, position) for all six groups, plus ("", "", total, ...).

        A facet row of group g counts when its offering matches the text and every active filter
        except g's own; the total counts offerings that match all of them. One scan of the
        filters' facet rows marks, per offering, which filters it satisfies (ok_0, ok_1, ...); the
        facet rows of offerings that fail at most one filter are then counted once each."""
        source = self._text_source(with_score=False)
        rows, base = self._universe(source)
        filtered = self._filtered
        if not filtered:
            # nothing to mark: count straight from the tables, which the planner knows best
            matched = select(rows.id.label("id")).where(*base).subquery("matched")
            counted = self._count_rows(matched, true())
            total = select(func.count()).select_from(select(rows.id).where(*base).subquery("everything"))
            return self._with_labels(counted, total)

        def satisfies(i: int) -> Any:
            group, values = filtered[i]
            return and_(OfferingFacet.group == group, OfferingFacet.value.in_(values))

        marks = (
            select(OfferingFacet.offering_id.label("id"), *(
                func.max(case((satisfies(i), 1), else_=0)).label(f"ok_{i}") for i in range(len(filtered))
            ))
            .where(or_(*(satisfies(i) for i in range(len(filtered)))))
            .group_by(OfferingFacet.offering_id)
        )
        if source is not None:  # only the text's matches need marks
            marks = marks.where(OfferingFacet.offering_id.in_(select(source.c.id)))
        marks = marks.subquery("marks")
        flags = [func.coalesce(marks.c[f"ok_{i}"], 0) for i in range(len(filtered))]
        candidates = select(rows.id.label("id"), *(flag.label(f"ok_{i}") for i, flag in enumerate(flags)))
        if rows is not Offering:
            candidates = candidates.select_from(source)
        if len(filtered) == 1:  # failing the one filter still counts for that filter's own group
            candidates = candidates.outerjoin(marks, marks.c.id == rows.id)
        else:  # failing two filters counts nowhere, so an offering must satisfy at least one
            candidates = candidates.join(marks, marks.c.id == rows.id).where(
                sum(flags[1:], flags[0]) >= len(filtered) - 1)
        candidates = candidates.where(*base)
        # subqueries rather than one CTE: the planner then estimates their size and picks
        # per-offering index lookups for the counting join
        matched = candidates.subquery("matched")
        counted = self._count_rows(matched, and_(true(), *(
            or_(matched.c[f"ok_{i}"] == 1, OfferingFacet.group == group) for i, (group, _) in enumerate(filtered)
        )))
        everything = candidates.subquery("everything")
        total = select(func.count()).select_from(everything).where(
            *(everything.c[f"ok_{i}"] == 1 for i in range(len(filtered))))
        return self._with_labels(counted, total)

    @staticmethod
    def _count_rows(matched: Any, row_condition: Any) -> Any:
        return (
            select(OfferingFacet.group.label("group"), OfferingFacet.value.label("value"), func.count().label("n"))
            .join(matched, matched.c.id == OfferingFacet.offering_id)
            .where(row_condition)
            .group_by(OfferingFacet.group, OfferingFacet.value)
            .subquery("counted")
        )

    @staticmethod
    def _with_labels(counted: Any, total: Select) -> CompoundSelect:
        with_labels = (
            select(counted.c.group, counted.c.value, counted.c.n, FacetValue.label, FacetValue.id)
            .outerjoin(FacetValue, and_(FacetValue.group == counted.c.group, FacetValue.slug == counted.c.value))
        )
        total_row = select(
            literal("").label("group"), literal("").label("value"), total.scalar_subquery().label("n"),
            literal(None, type_=String).label("label"), literal(None, type_=Integer).label("id"),
        )
        return union_all(with_labels, total_row)

    def page_ids(self) -> Select:
        """One page of matching ids in the requested order."""
        query = self.query
        relevance = query.sort == "relevance"
        source = self._text_source(with_score=relevance)
        order: list[Any] = []
        if source is not None and self.dialect == "postgresql":
            rows, conditions = source.c, []
            statement = select(rows.id.label("id"))
            if relevance:
                order.append(rows.score.desc())
        elif source is not None and relevance:  # SQLite: join the match for its bm25 score
            rows, conditions = Offering, self._base_conditions(None)
            statement = select(Offering.id).join(source, source.c.id == Offering.id)
            order.append(source.c.score.asc())
        else:
            rows, conditions = Offering, self._base_conditions(source)
            statement = select(Offering.id)
        conditions += [self._facet_condition(group, values, rows.id) for group, values in self._filtered]
        statement = statement.where(*conditions)
        if query.sort in ("price_asc", "price_desc"):
            # the cheapest plan of each matching offering, looked up by index per row
            price = select(func.min(Plan.price_minor)).where(Plan.offering_id == rows.id).scalar_subquery()
            no_price_last = case((price.is_(None), 1), else_=0)
            order += [no_price_last, price.asc() if query.sort == "price_asc" else price.desc(), func.lower(rows.name)]
        elif query.sort == "name":
            order.append(func.lower(rows.name))
        elif query.sort == "newest":
            order.append(rows.published_at.desc())
        else:  # relevance: ties (and the no-text case) by featured, then newest
            order += [rows.featured.desc(), rows.published_at.desc()]
        order.append(rows.id.desc())
        return statement.order_by(*order).limit(query.per_page).offset(query.offset)
