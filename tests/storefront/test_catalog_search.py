"""Local catalog search: faceted counts against a brute-force count, ranking, text syntax, the index."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.adapters.commerce import FACET_GROUPS, SearchQuery
from app.adapters.commerce.local import LocalCatalog, fts5_match, parse_terms
from app.models import FacetValue, OfferingStatus
from app.services import catalog as catalog_service
from tests.factories import make_offering, make_org, make_user

VOCABULARY = {
    "category": ["agents", "apps", "assistants", "automations"],
    "outcome": ["save-time", "grow-pipeline", "improve-quality"],
    "role": ["support", "sales", "finance"],
    "capability": ["chat", "retrieval", "workflow"],
    "pricing": ["free-trial", "subscription", "usage-based"],
}
WORDS = ["alpha", "bravo", "delta", "kilo"]


@pytest.fixture(params=[True, False], ids=["index", "sql"])
def in_memory(request):
    """Each search test runs on both ways of counting: the in-process index and plain SQL."""
    return request.param


def _vocabulary(session, publishers):
    for group, values in VOCABULARY.items():
        for value in values:
            session.add(FacetValue(group=group, slug=value, label=value.replace("-", " ").title()))
    for org in publishers:
        session.add(FacetValue(group="publisher", slug=org.slug, label=org.name))


@pytest.fixture
def corpus(session):
    """40 offerings with seeded-random facets and words, a quarter of them not published."""
    owner = make_user(session, roles=("buyer", "seller"))
    publishers = [make_org(session, owner=owner, name=f"Publisher {n}") for n in range(3)]
    _vocabulary(session, publishers)
    rng = random.Random(20261125)
    offerings = []
    statuses = [OfferingStatus.PUBLISHED.value] * 3 + [OfferingStatus.DRAFT.value]
    for n in range(40):
        category = rng.choice(VOCABULARY["category"])
        publisher = rng.choice(publishers)
        facets = {g: sorted(rng.sample(VOCABULARY[g], rng.randint(0, 2)))
                  for g in ("outcome", "role", "capability", "pricing")}
        words = rng.sample(WORDS, rng.randint(0, 2))
        offering = make_offering(
            session, publisher=publisher, name=f"Tool {n} {' '.join(words[:1])}", category=category,
            summary="A tool " + " ".join(words[1:]), description="Plain text.",
            status=rng.choice(statuses), facets=facets,
        )
        offerings.append({
            "id": offering.id, "published": offering.status == OfferingStatus.PUBLISHED.value,
            "words": set(words),
            "facets": {**facets, "category": [category], "publisher": [publisher.slug]},
        })
    session.commit()
    return {"offerings": offerings, "publishers": [p.slug for p in publishers]}


def _brute_force(corpus, q: str, filters: dict[str, set[str]]):
    """Counts per (group, value) and the matching ids, by looking at every offering."""
    def matches(o, skip_group=None):
        if not o["published"] or (q and q not in o["words"]):
            return False
        return all(set(o["facets"].get(g, [])) & values for g, values in filters.items()
                   if values and g != skip_group)

    counts = {g: {} for g in FACET_GROUPS}
    for group in FACET_GROUPS:
        for o in corpus["offerings"]:
            if matches(o, skip_group=group):
                for value in o["facets"].get(group, []):
                    counts[group][value] = counts[group].get(value, 0) + 1
    ids = {o["id"] for o in corpus["offerings"] if matches(o)}
    return counts, ids


def _filters_strategy():
    groups = {g: st.sets(st.sampled_from(values), max_size=2) for g, values in VOCABULARY.items()}
    groups["publisher"] = st.sets(st.sampled_from(["publisher-0", "publisher-1", "publisher-2"]), max_size=2)
    return st.fixed_dictionaries(groups)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.sampled_from(["", *WORDS]), filters=_filters_strategy())
def test_facet_counts_equal_a_brute_force_count(session, in_memory, corpus, q, filters):
    # given: the corpus and a random combination of text and filters
    filters = {g: v & set(corpus["publishers"]) if g == "publisher" else v for g, v in filters.items()}
    query = SearchQuery(
        q=q, filters=tuple((g, tuple(sorted(filters[g]))) for g in FACET_GROUPS if filters.get(g)), per_page=100,
    )
    expected_counts, expected_ids = _brute_force(corpus, q, filters)

    # when
    result = LocalCatalog(session, in_memory_index=in_memory).search(query)

    # then: each group counts with every other group's filter, never its own
    for group in result.facets:
        shown = {o.value: o.count for o in group.options}
        selected_zero = {v: 0 for v in filters.get(group.name, set()) if v not in expected_counts[group.name]}
        assert shown == {**expected_counts[group.name], **selected_zero}, group.name
        assert {o.value for o in group.options if o.selected} == filters.get(group.name, set())
    assert result.total == len(expected_ids)
    assert {int(card.key) for card in result.items} == expected_ids


def test_name_match_ranks_above_description_match(session, in_memory):
    # given: three offerings with "reconcile" in the description, the summary and the name
    publisher = make_org(session, owner=make_user(session))
    in_description = make_offering(session, publisher=publisher, name="Ledger Helper",
                                   summary="Books tidy.", description="It can reconcile accounts.")
    in_summary = make_offering(session, publisher=publisher, name="Finance Desk",
                               summary="Reconcile accounts nightly.", description="Nothing more.")
    in_name = make_offering(session, publisher=publisher, name="Reconcile Pro",
                            summary="Books tidy.", description="Nothing more.")
    session.commit()

    # when
    result = LocalCatalog(session, in_memory_index=in_memory).search(SearchQuery(q="reconcile"))

    # then
    assert [card.slug for card in result.items] == [in_name.slug, in_summary.slug, in_description.slug]


def test_last_word_matches_as_a_prefix_and_earlier_words_do_not(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    invoice = make_offering(session, publisher=publisher, name="Invoice Extractor", summary="Reads invoices.")
    make_offering(session, publisher=publisher, name="Meeting Notes", summary="Summaries.")
    session.commit()
    catalog = LocalCatalog(session, in_memory_index=in_memory)

    assert [c.slug for c in catalog.search(SearchQuery(q="invo")).items] == [invoice.slug]
    assert [c.slug for c in catalog.search(SearchQuery(q="invoice extr")).items] == [invoice.slug]
    assert catalog.search(SearchQuery(q="invo extractor")).total == 0


def test_web_search_syntax_phrases_exclusions_and_or(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    support = make_offering(session, publisher=publisher, name="Support Agent", summary="Answers customer support tickets.")
    sales = make_offering(session, publisher=publisher, name="Sales Agent", summary="Writes sales emails.")
    make_offering(session, publisher=publisher, name="Data Cleaner", summary="Cleans CSV files.")
    session.commit()
    catalog = LocalCatalog(session, in_memory_index=in_memory)

    def slugs(q):
        return {c.slug for c in catalog.search(SearchQuery(q=q)).items}

    assert slugs('"customer support"') == {support.slug}
    assert slugs("agent -sales") == {support.slug}
    assert slugs("tickets or emails") == {support.slug, sales.slug}
    assert slugs("!!! ???") == set()


def test_only_published_offerings_are_found(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    make_offering(session, publisher=publisher, name="Hidden Draft", status=OfferingStatus.DRAFT.value)
    make_offering(session, publisher=publisher, name="Old Archived", status=OfferingStatus.ARCHIVED.value)
    shown = make_offering(session, publisher=publisher, name="Shown Live")
    session.commit()
    catalog = LocalCatalog(session, in_memory_index=in_memory)

    assert catalog.search(SearchQuery(q="hidden")).total == 0
    assert catalog.search(SearchQuery(q="archived")).total == 0
    assert [c.slug for c in catalog.search(SearchQuery()).items] == [shown.slug]
    assert catalog.product("hidden-draft-1") is None


def test_sorts_order_by_price_name_and_newest(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    cheap = make_offering(session, publisher=publisher, name="Zeta", price_minor=500)
    dear = make_offering(session, publisher=publisher, name="Alpha", price_minor=9000)
    middle = make_offering(session, publisher=publisher, name="Mu", price_minor=2000)
    from datetime import datetime, timedelta, timezone
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, o in enumerate((cheap, dear, middle)):
        o.published_at = base + timedelta(days=i)
    session.commit()
    catalog = LocalCatalog(session, in_memory_index=in_memory)

    def order(sort):
        return [c.name for c in catalog.search(SearchQuery(sort=sort)).items]

    assert order("price_asc") == ["Zeta", "Mu", "Alpha"]
    assert order("price_desc") == ["Alpha", "Mu", "Zeta"]
    assert order("name") == ["Alpha", "Mu", "Zeta"]
    assert order("newest") == ["Mu", "Alpha", "Zeta"]


def test_pagination_splits_results_without_overlap(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    made = {make_offering(session, publisher=publisher, name=f"Widget {n}").slug for n in range(5)}
    session.commit()
    catalog = LocalCatalog(session, in_memory_index=in_memory)

    pages = [catalog.search(SearchQuery(q="widget", page=p, per_page=2)) for p in (1, 2, 3, 4)]

    assert [len(p.items) for p in pages] == [2, 2, 1, 0]
    assert {c.slug for p in pages for c in p.items} == made
    assert [p.total for p in pages] == [5, 5, 5, 5]


def test_reindex_offering_makes_an_edited_name_searchable(session, in_memory):
    publisher = make_org(session, owner=make_user(session))
    offering = make_offering(session, publisher=publisher, name="Old Title")
    session.commit()

    offering.name = "Quasar Planner"
    catalog_service.reindex_offering(session, offering)
    session.commit()

    catalog = LocalCatalog(session, in_memory_index=in_memory)
    assert [c.slug for c in catalog.search(SearchQuery(q="quasar")).items] == [offering.slug]
    assert catalog.search(SearchQuery(q="old title")).total == 0


def test_migration_backfilled_the_search_index_for_existing_rows(db_url):
    """The migration indexes rows that existed before it ran (SQLite's FTS5 copy)."""
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            indexes = conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'offering'")).scalars()
            assert "ix_offering_search_vector" in set(indexes)
        engine.dispose()
        return
    from flask_migrate import downgrade, upgrade

    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x" * 20, "SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():  # given: the schema as it was before the index (every later migration undone)
        downgrade(revision="56d378a84b11")
        from app.extensions import db
        db.engine.dispose()
    with engine.begin() as conn:  # and an offering written while the index did not exist
        conn.execute(text("INSERT INTO organization (name, slug, is_personal, created_at) "
                          "VALUES ('Acme', 'acme', 0, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO offering (slug, name, summary, description_md, category, publisher_id, status, featured, "
            "trial_days, trial_credits, faq_json, created_at, updated_at) VALUES ('zephyr', 'Zephyr Relay', 's', "
            "'d', 'apps', 1, 'published', 0, 0, 0, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
    with app.app_context():  # when
        upgrade()
    with engine.connect() as conn:  # then
        found = conn.execute(text("SELECT rowid FROM offering_fts WHERE offering_fts MATCH 'zephyr'")).scalars().all()
    engine.dispose()
    assert len(found) == 1


def test_parse_terms_reads_web_search_syntax():
    groups = parse_terms('"Customer Support" -sales refunds or e-mail draf')

    assert [[(t.text, t.phrase, t.negated, t.prefix) for t in g] for g in groups] == [
        [("customer support", True, False, False), ("sales", False, True, False), ("refunds", False, False, False)],
        [("e mail", True, False, False), ("draf", False, False, True)],
    ]
    assert fts5_match(groups) == (
        '(("customer support" AND "refunds") NOT "sales") OR ("e mail" AND "draf"*)', None,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(max_size=80) | st.lists(st.sampled_from(
    ['"', "-", "or", "OR", "*", ":", "&", "|", "!", "(", ")", "'", "\\", "NEAR", "AND", "NOT", "the", "a", "x", "é"]
), max_size=8).map(" ".join))
def test_any_typed_text_searches_without_error(session, raw):
    # given: whatever a visitor types, cleaned as the search page cleans it
    q = catalog_service.clean_text_query(raw)

    # when / then: an answer, never a database error
    result = LocalCatalog(session).search(SearchQuery(q=q))
    assert result.total >= 0


def _revision(session):
    return session.scalar(text("SELECT token FROM catalog_revision WHERE id = 1"))


def test_catalog_changes_move_the_revision_and_other_writes_do_not(session):
    # given: a published offering
    owner = make_user(session)
    publisher = make_org(session, owner=owner)
    offering = make_offering(session, publisher=publisher, name="Comet Desk")
    session.commit()
    first = _revision(session)

    # when: something outside the catalog changes, then the offering's price
    owner.name = "Someone Else"
    session.commit()
    unrelated = _revision(session)
    offering.plans[0].price_minor = 1
    session.commit()

    # then
    assert first is not None and unrelated == first
    assert _revision(session) not in (None, first)


def test_the_index_follows_publishing_archiving_and_facet_edits(session):
    # given: an index built from one published offering, while a draft waits
    publisher = make_org(session, owner=make_user(session))
    live = make_offering(session, publisher=publisher, name="Live One", facets={"role": ["support"]})
    draft = make_offering(session, publisher=publisher, name="Draft One", status=OfferingStatus.DRAFT.value,
                          facets={"role": ["sales"]})
    session.add_all([FacetValue(group="role", slug="support", label="Support"),
                     FacetValue(group="role", slug="sales", label="Sales")])
    session.commit()
    catalog = LocalCatalog(session)
    assert [c.slug for c in catalog.search(SearchQuery()).items] == [live.slug]

    def role_counts():
        group = next(g for g in catalog.search(SearchQuery()).facets if g.name == "role")
        return {o.value: o.count for o in group.options}

    # when: the draft is published
    draft.status = OfferingStatus.PUBLISHED.value
    session.commit()
    # then: the next search sees it, in results and in counts
    assert {c.slug for c in catalog.search(SearchQuery()).items} == {live.slug, draft.slug}
    assert role_counts() == {"support": 1, "sales": 1}

    # when: a facet changes, then the first offering is archived
    live.facets[-1].value = "sales"
    session.commit()
    assert role_counts() == {"sales": 2}
    live.status = OfferingStatus.ARCHIVED.value
    session.commit()
    assert [c.slug for c in catalog.search(SearchQuery()).items] == [draft.slug]
    assert role_counts() == {"sales": 1}


def test_a_rolled_back_change_leaves_the_cached_index_valid(session):
    # given: a cached index
    publisher = make_org(session, owner=make_user(session))
    kept = make_offering(session, publisher=publisher, name="Kept")
    session.commit()
    catalog = LocalCatalog(session)
    assert catalog.search(SearchQuery()).total == 1

    # when: a second offering is searched for inside a transaction that is then rolled back
    make_offering(session, publisher=publisher, name="Gone")
    assert catalog.search(SearchQuery()).total == 2
    session.rollback()

    # then: the index of the committed catalog answers again
    assert [c.slug for c in catalog.search(SearchQuery()).items] == [kept.slug]
