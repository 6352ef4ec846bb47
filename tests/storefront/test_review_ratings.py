"""Ratings agree with the reviews after any sequence of writes, edits and hides: the averages and
counts on cards and product pages, the rating facet's counts and the rating filter, in the in-process
index and in SQL, against a brute-force count."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from app.adapters.commerce import RATING_THRESHOLDS, SearchQuery
from app.adapters.commerce.local import LocalCatalog
from app.models import FacetValue, OfferingStatus, Review, ReviewVote
from app.models.catalog import bump_catalog_revision
from app.services import instances, reviews
from tests.factories import make_offering, make_org, make_user

OFFERINGS = 6
ORGS = 4


@pytest.fixture
def market(session):
    """Six published offerings in two categories (and a draft), four organizations subscribed to all."""
    seller = make_user(session, roles=("buyer", "seller"))
    publisher = make_org(session, owner=seller, name="Publisher")
    for slug in ("agents", "apps"):
        session.add(FacetValue(group="category", slug=slug, label=slug.title()))
    session.add(FacetValue(group="publisher", slug=publisher.slug, label=publisher.name))
    offerings = [make_offering(session, publisher=publisher, name=f"Tool {n}", category=("agents", "apps")[n % 2])
                 for n in range(OFFERINGS)]
    draft = make_offering(session, publisher=publisher, name="Draft", status=OfferingStatus.DRAFT.value)
    buyers = []
    for n in range(ORGS):
        user = make_user(session, name=f"Buyer {n}")
        org = make_org(session, owner=user)
        for offering in offerings:
            instances.create_instance(session, organization=org, plan=offering.plans[0], is_trial=n == 3)
        buyers.append((user, org))
    operator = make_user(session, roles=("buyer", "operator"))
    session.commit()
    return {"offerings": offerings, "draft": draft, "buyers": buyers, "operator": operator}


def _apply(session, market, steps) -> dict[tuple[int, int], tuple[int, bool]]:
    """Run the steps through the service; returns what a brute force expects: (org, offering) -> (stars, hidden)."""
    model: dict[tuple[int, int], tuple[int, bool]] = {}
    for action, o, f, stars in steps:
        user, org = market["buyers"][o]
        offering = market["offerings"][f]
        key = (o, f)
        existing = session.query(Review).filter_by(organization_id=org.id, offering_id=offering.id).one_or_none()
        try:
            if action == "write":
                reviews.write_review(session, user=user, organization_id=org.id, offering=offering, rating=stars,
                                     title="Title", body="Body")
            elif action == "edit" and existing is not None:
                reviews.edit_review(session, user=user, review=existing, rating=stars, title="Edited", body="Again")
            elif action == "hide" and existing is not None:
                reviews.hide_review(session, operator=market["operator"], review=existing, reason="Off topic")
            else:
                continue
        except reviews.ReviewError as exc:
            session.rollback()
            # refused exactly when the brute force says so: a second review, or a change to a hidden one
            assert exc.status == 409, exc.message
            assert key in model and (action == "write" or model[key][1]), (action, key)
            continue
        session.commit()
        if action == "write":
            assert key not in model
            model[key] = (stars, False)
        elif action == "edit":
            assert not model[key][1]
            model[key] = (stars, False)
        else:
            assert not model[key][1]
            model[key] = (model[key][0], True)
    return model


def _expected(market, model):
    """Per offering id: (count, sum of stars) of the visible reviews."""
    totals = {}
    for (o, f), (stars, hidden) in model.items():
        if not hidden:
            offering_id = market["offerings"][f].id
            count, total = totals.get(offering_id, (0, 0))
            totals[offering_id] = (count + 1, total + stars)
    return totals


steps_strategy = st.lists(
    st.tuples(st.sampled_from(["write", "write", "edit", "hide"]), st.integers(0, ORGS - 1),
              st.integers(0, OFFERINGS - 1), st.integers(1, 5)),
    max_size=30,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps_strategy, category=st.sampled_from([None, "agents", "apps"]),
       threshold=st.sampled_from([None, *RATING_THRESHOLDS]))
def test_averages_and_rating_counts_agree_with_a_brute_force_count(session, market, steps, category, threshold):
    # given: no reviews, then a random sequence of writes, edits and hides
    session.execute(delete(ReviewVote))
    session.execute(delete(Review))
    bump_catalog_revision(session.connection())
    session.commit()
    model = _apply(session, market, steps)
    expected = _expected(market, model)
    categories = {o.id: o.category for o in market["offerings"]}

    def reaches(offering_id: int, t: int) -> bool:
        count, total = expected.get(offering_id, (0, 0))
        return count > 0 and total >= t * count

    def in_category(offering_id: int) -> bool:
        return category is None or categories[offering_id] == category

    filters = (("category", (category,)),) if category else ()
    if threshold:
        filters += (("rating", (str(threshold),)),)
    for in_memory in (True, False):
        catalog = LocalCatalog(session, in_memory_index=in_memory)

        # when
        result = catalog.search(SearchQuery(filters=filters, per_page=50))
        by_rating = catalog.search(SearchQuery(filters=filters, sort="rating", per_page=50))

        # then: the rating group counts every other filter, not its own
        rating_counts = {int(o.value): o.count for g in result.facets if g.name == "rating" for o in g.options}
        brute = {t: sum(1 for i in categories if in_category(i) and reaches(i, t)) for t in RATING_THRESHOLDS}
        assert rating_counts == {t: n for t, n in brute.items() if n or t == threshold}
        matching = {i for i in categories if in_category(i) and (threshold is None or reaches(i, threshold))}
        assert result.total == len(matching)
        assert {int(c.key) for c in result.items} == matching
        # and the other groups count under the rating filter
        category_counts = {o.value: o.count for g in result.facets if g.name == "category" for o in g.options}
        assert category_counts == {
            c: n for c in ("agents", "apps")
            if (n := sum(1 for i in categories if categories[i] == c and (threshold is None or reaches(i, threshold))))
            or c == category}
        # cards: average and count of the visible reviews
        for card in result.items:
            count, total = expected.get(int(card.key), (0, 0))
            assert card.rating_count == count
            assert card.rating_average == (round(total / count + 1e-9, 1) if count else None)
        # sorted by rating: averages never rise, unrated last
        averages = [(total / count if count else -1.0) for count, total in
                    (expected.get(int(c.key), (0, 0)) for c in by_rating.items)]
        assert averages == sorted(averages, reverse=True)
    for offering in market["offerings"]:
        summary = reviews.rating_summary(session, offering.id)
        assert (summary.count, summary.stars) == expected.get(offering.id, (0, 0))
        assert sum(summary.distribution) == summary.count
