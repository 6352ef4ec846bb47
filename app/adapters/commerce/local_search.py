"""The SQL of one catalog search (local adapter): the facet counts with the total, and the page of ids.

Full-text search is PostgreSQL's weighted tsvector (a stored column with the GIN index
`ix_offering_search_vector`) or SQLite's FTS5 table `offering_fts`; both rank name matches above
summary matches above description matches.

Faceted counts follow the usual rule: a group's counts apply every other active filter but not
its own (values in one group OR, groups AND).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CompoundSelect, Float, Integer, Select, String, and_, case, cast, false, func, literal, literal_column, not_, or_, select,
    text, true, union_all,
)

from app.adapters.commerce import RATING_GROUP, RATING_THRESHOLDS, SearchQuery
from app.adapters.commerce.local_text import fts5_match, parse_terms, pg_tsquery
from app.models import FacetValue, Offering, OfferingFacet, OfferingStatus, Plan, Review

PUBLISHED = OfferingStatus.PUBLISHED.value

# The weighted tsvector (name A, summary B, description C) that the migration
# `offering_search_vector_column` stores as a generated column with a GIN index: matching uses the
# index and ranking reads the stored vector instead of rebuilding it for every match.
SEARCH_VECTOR_SQL = "offering.search_vector"
# bm25 column weights for FTS5 (name, summary, description), the counterpart of A/B/C above
FTS_WEIGHTS = (10.0, 4.0, 1.0)


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
        self._filtered = [(group, values) for group, values in query.filters if values and group != RATING_GROUP]
        self.min_rating = query.min_rating

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
    def ratings() -> Any:
        """Per offering with visible reviews: (offering_id, n, stars)."""
        return (
            select(Review.offering_id.label("offering_id"), func.count().label("n"),
                   func.sum(Review.rating).label("stars"))
            .where(Review.hidden_at.is_(None)).group_by(Review.offering_id).subquery("ratings")
        )

    @staticmethod
    def _rating_condition(threshold: int, id_column: Any = Offering.id) -> Any:
        """The offering's average of visible reviews is at least `threshold`, compared exactly."""
        return id_column.in_(
            select(Review.offering_id).where(Review.hidden_at.is_(None)).group_by(Review.offering_id)
            .having(func.sum(Review.rating) >= threshold * func.count())
        )

    def _rating_conditions(self, id_column: Any) -> list[Any]:
        return [] if self.min_rating is None else [self._rating_condition(self.min_rating, id_column)]

    def rating_counts(self) -> Select:
        """One row: for each threshold (4, 3, 2, 1), how many offerings match the text and every
        facet filter (not the rating's own) with an average of at least that."""
        rows, conditions = self._universe(self._text_source(with_score=False))
        conditions += [self._facet_condition(group, values, rows.id) for group, values in self._filtered]
        matched = select(rows.id.label("id")).where(*conditions).subquery("matched")
        ratings = self.ratings()
        return select(*(
            func.coalesce(func.sum(case((ratings.c.stars >= t * ratings.c.n, 1), else_=0)), 0).label(f"t{t}")
            for t in RATING_THRESHOLDS
        )).select_from(matched).join(ratings, ratings.c.offering_id == matched.c.id)

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
        conditions += self._rating_conditions(rows.id)
        return select(rows.id.label("id")).where(*conditions)

    def facet_counts(self) -> CompoundSelect:
        """Rows (group, value, count, label, position) for all six groups, plus ("", "", total, ...).

        A facet row of group g counts when its offering matches the text and every active filter
        except g's own; the total counts offerings that match all of them. One scan of the
        filters' facet rows marks, per offering, which filters it satisfies (ok_0, ok_1, ...); the
        facet rows of offerings that fail at most one filter are then counted once each."""
        source = self._text_source(with_score=False)
        rows, base = self._universe(source)
        base = [*base, *self._rating_conditions(rows.id)]  # the rating filter applies to every facet group
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
        conditions += self._rating_conditions(rows.id)
        statement = statement.where(*conditions)
        if query.sort == "rating":
            # the best average first, then the most reviews, then offerings without reviews; ties as
            # the default order (featured, newest)
            ratings = self.ratings()
            statement = statement.outerjoin(ratings, ratings.c.offering_id == rows.id)
            average = cast(ratings.c.stars, Float) / ratings.c.n
            order += [case((ratings.c.n.is_(None), 1), else_=0), average.desc(), ratings.c.n.desc(),
                      rows.featured.desc(), rows.published_at.desc()]
        elif query.sort in ("price_asc", "price_desc"):
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
