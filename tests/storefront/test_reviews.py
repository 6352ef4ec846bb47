"""Reviews: who may write them, one per organization, helpful votes, the publisher's reply, hiding,
and how they show on the product page, the review page, the cards and the search."""
from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.local import LocalCatalog
from app.adapters.commerce import SearchQuery
from app.models import AuditEvent, CatalogRevision, MailMessage, Membership, Offering, Review, ReviewVote
from app.services import identity, instances, reviews
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user

SLUG = "customer-support-agent"


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _revision(session) -> str | None:
    return session.scalar(select(CatalogRevision.token).where(CatalogRevision.id == 1))


def give_instance(session, org, offering, *, trial: bool = False):
    plan = offering.plans[0]
    return instances.create_instance(session, organization=org, plan=plan, is_trial=trial)


@pytest.fixture
def world(session):
    """A published offering, its publisher (with a seller), and a buyer's organization that subscribed."""
    seller = make_user(session, name="Sam Seller", roles=("buyer", "seller"))
    publisher = make_org(session, owner=seller, name="Northwind AI")
    offering = make_offering(session, publisher=publisher, name="Ticket Triage")
    buyer = make_user(session, name="Bea Buyer")
    org = make_org(session, owner=buyer, name="Acme Support")
    give_instance(session, org, offering)
    session.commit()
    return {"seller": seller, "publisher": publisher, "offering": offering, "buyer": buyer, "org": org}


def _write(session, world, **fields):
    values = {"rating": 4, "title": "Saves us hours", "body": "Tickets are sorted before we open them."}
    values.update(fields)
    review = reviews.write_review(session, user=world["buyer"], organization_id=world["org"].id,
                                  offering=world["offering"], **values)
    session.commit()
    return review


# --- who may write ----------------------------------------------------------------------------

def test_a_member_of_an_organization_without_an_instance_cannot_review(session, world):
    outsider = make_user(session)
    org = make_org(session, owner=outsider)
    session.commit()

    with pytest.raises(reviews.ReviewError) as refused:
        reviews.write_review(session, user=outsider, organization_id=org.id, offering=world["offering"], rating=5,
                             title="Great", body="Never used it.")

    assert (refused.value.status, refused.value.field) == (403, "organization_id")
    session.rollback()
    assert _count(session, Review) == 0


def test_a_person_cannot_review_for_an_organization_they_are_not_in(session, world):
    stranger = make_user(session)
    session.commit()

    with pytest.raises(reviews.ReviewError) as refused:
        reviews.write_review(session, user=stranger, organization_id=world["org"].id, offering=world["offering"],
                             rating=5, title="Great", body="Not mine to say.")

    assert (refused.value.status, refused.value.field) == (403, "organization_id")
    session.rollback()
    assert _count(session, Review) == 0


def test_a_subscriber_is_a_verified_buyer_and_a_trial_user_is_labelled_so(session, world):
    tryer = make_user(session, name="Tia Trial")
    trial_org = make_org(session, owner=tryer)
    give_instance(session, trial_org, world["offering"], trial=True)
    session.commit()

    bought = _write(session, world)
    tried = reviews.write_review(session, user=tryer, organization_id=trial_org.id, offering=world["offering"],
                                 rating=2, title="Not for us", body="Too few integrations.")
    session.commit()

    assert (bought.reviewer_kind, tried.reviewer_kind) == ("buyer", "trial")
    assert reviews.KIND_LABELS[bought.reviewer_kind] == "Verified buyer"
    assert reviews.KIND_LABELS[tried.reviewer_kind] == "Trial user"


@pytest.mark.parametrize("field,value,message", [
    ("rating", 0, "Choose from 1 to 5 stars."),
    ("rating", 6, "Choose from 1 to 5 stars."),
    ("title", "   ", "Give your review a title."),
    ("title", "x" * 121, "Use at most 120 characters."),
    ("body", "", "Write what you found."),
    ("body", "ok\x00", "Remove the control characters."),
])
def test_bad_input_is_refused_naming_the_field(session, world, field, value, message):
    with pytest.raises(reviews.ReviewError) as refused:
        _write(session, world, **{field: value})

    assert (refused.value.field, refused.value.message, refused.value.status) == (field, message, 422)
    session.rollback()
    assert _count(session, Review) == 0


# --- one per organization ----------------------------------------------------------------------

def test_an_organization_reviews_an_offering_once_and_its_author_edits_it(session, world):
    colleague = make_user(session, name="Cole League")
    session.add(Membership(user_id=colleague.id, organization_id=world["org"].id, role="member"))
    review = _write(session, world)

    with pytest.raises(reviews.ReviewError) as again:
        reviews.write_review(session, user=colleague, organization_id=world["org"].id, offering=world["offering"],
                             rating=1, title="Second opinion", body="Another view.")
    assert (again.value.status, again.value.field) == (409, "organization_id")
    session.rollback()

    with pytest.raises(reviews.ReviewError) as not_author:
        reviews.edit_review(session, user=colleague, review=review, rating=1, title="Changed", body="By someone else.")
    assert not_author.value.status == 403
    session.rollback()

    reviews.edit_review(session, user=world["buyer"], review=review, rating=5, title="Even better",
                        body="After a month: five stars.")
    session.commit()
    assert _count(session, Review) == 1
    assert (review.rating, review.title, review.updated_at is not None) == (5, "Even better", True)


@pytest.mark.postgres_only
def test_two_colleagues_writing_at_once_make_one_review(app, session, world):
    colleagues = [world["buyer"]]
    for n in range(5):
        user = make_user(session, name=f"Colleague {n}")
        session.add(Membership(user_id=user.id, organization_id=world["org"].id, role="member"))
        colleagues.append(user)
    session.commit()
    ids = [u.id for u in colleagues]
    offering_id, org_id = world["offering"].id, world["org"].id
    barrier = threading.Barrier(len(ids))
    outcomes = [None] * len(ids)

    def worker(i: int) -> None:
        from app.extensions import db

        with app.app_context():
            user = db.session.get(type(world["buyer"]), ids[i])
            offering = db.session.get(Offering, offering_id)
            barrier.wait()
            try:
                reviews.write_review(db.session, user=user, organization_id=org_id, offering=offering, rating=3,
                                     title=f"Take {i}", body="Same moment.")
                db.session.commit()
                outcomes[i] = 201
            except reviews.ReviewError as exc:
                db.session.rollback()
                outcomes[i] = exc.status
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == [201] + [409] * (len(ids) - 1)
    session.expire_all()
    assert _count(session, Review) == 1
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review.created")) == 1


# --- helpful, reply, hide ----------------------------------------------------------------------

def test_helpful_counts_once_per_person_and_never_from_the_reviewing_organization(session, world):
    review = _write(session, world)
    reader = make_user(session)
    session.commit()

    assert reviews.mark_helpful(session, user=reader, review=review) is True
    assert reviews.mark_helpful(session, user=reader, review=review) is False
    with pytest.raises(reviews.ReviewError) as own:
        reviews.mark_helpful(session, user=world["buyer"], review=review)
    session.commit()

    assert own.value.status == 403
    assert reviews.helpful_counts(session, [review.id]) == {review.id: 1}


def test_most_helpful_sorts_by_votes_then_newest(session, world):
    first = _write(session, world)
    other = make_user(session)
    other_org = make_org(session, owner=other)
    give_instance(session, other_org, world["offering"])
    second = reviews.write_review(session, user=other, organization_id=other_org.id, offering=world["offering"],
                                  rating=3, title="Fine", body="Does the job.")
    reviews.mark_helpful(session, user=make_user(session), review=first)
    session.commit()

    newest = reviews.offering_reviews(session, offering_id=world["offering"].id, sort="newest")
    helpful = reviews.offering_reviews(session, offering_id=world["offering"].id, sort="helpful")

    assert newest.ids == [second.id, first.id]
    assert helpful.ids == [first.id, second.id]


def test_the_publisher_replies_once_and_nobody_else_can(session, world):
    review = _write(session, world)

    with pytest.raises(reviews.ReviewError) as stranger:
        reviews.reply_to_review(session, user=world["buyer"], review=review, body="I am not the publisher.")
    session.rollback()
    reviews.reply_to_review(session, user=world["seller"], review=review, body="Thank you, Acme!")
    session.commit()
    with pytest.raises(reviews.ReviewError) as twice:
        reviews.reply_to_review(session, user=world["seller"], review=review, body="And again.")
    session.rollback()

    assert stranger.value.status == 403
    assert (twice.value.status, twice.value.field) == (409, "body")
    session.refresh(review)
    assert review.reply_body == "Thank you, Acme!"


def test_an_operator_hides_a_review_with_a_reason_audited_and_mailed(session, world):
    review = _write(session, world, rating=1)
    operator = make_user(session, roles=("buyer", "operator"))
    session.commit()
    assert reviews.rating_summary(session, world["offering"].id).count == 1
    before = _revision(session)

    with pytest.raises(reviews.ReviewError) as not_operator:
        reviews.hide_review(session, operator=world["seller"], review=review, reason="I dislike it.")
    session.rollback()
    reviews.hide_review(session, operator=operator, review=review, reason="It names a private person.")
    session.commit()

    assert not_operator.value.status == 403
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.hidden"))
    assert (event.actor_user_id, event.target_id, event.organization_id) == (operator.id, str(review.id),
                                                                              world["org"].id)
    assert "It names a private person." in event.data_json
    mail = session.scalar(select(MailMessage).where(MailMessage.template == "review_hidden"))
    assert mail.to_address == world["buyer"].email
    assert "It names a private person." in mail.text_body and "Ticket Triage" in mail.subject
    assert reviews.rating_summary(session, world["offering"].id) == reviews.RatingSummary()
    assert reviews.offering_reviews(session, offering_id=world["offering"].id).ids == []
    assert _revision(session) != before
    card = LocalCatalog(session).cards([world["offering"].id])[0]
    assert (card.rating_average, card.rating_count) == (None, 0)


def test_every_review_change_moves_the_catalog_revision(session, world):
    seen = [_revision(session)]
    review = _write(session, world)
    seen.append(_revision(session))
    reviews.edit_review(session, user=world["buyer"], review=review, rating=2, title="Hm", body="Less good now.")
    session.commit()
    seen.append(_revision(session))
    reviews.mark_helpful(session, user=make_user(session), review=review)
    session.commit()
    seen.append(_revision(session))
    reviews.reply_to_review(session, user=world["seller"], review=review, body="Sorry to hear it.")
    session.commit()
    seen.append(_revision(session))

    assert len(set(seen)) == len(seen)


# --- pages ---------------------------------------------------------------------------------------

@pytest.fixture
def demo_world(session, demo, buyer, seller):
    offering = session.scalar(select(Offering).where(Offering.slug == SLUG))
    org = identity.current_organization(session, buyer)
    give_instance(session, org, offering)
    session.commit()
    return offering


def _reviews_section(html: str) -> str:
    return re.search(r'<section class="section" id="reviews".*?</section>', html, re.S).group(0)


def test_a_buyer_writes_a_review_that_shows_on_the_product_page_and_cards(client, session, buyer, demo_world):
    login(client, buyer)
    controls = client.get(f"/p/{SLUG}/reviews/controls")
    assert controls.status_code == 200 and 'action="/p/customer-support-agent/review"' in controls.text
    assert controls.headers["Cache-Control"] == "private, no-store"

    saved = client.post(f"/p/{SLUG}/review", data={
        "organization": identity.current_organization(session, buyer).id, "rating": "5",
        "title": "Answers before we wake up", "body": "Half our tickets are closed by morning."})

    assert saved.status_code == 302 and saved.headers["Location"] == f"/p/{SLUG}#reviews"
    page = client.get(f"/p/{SLUG}").text
    section = _reviews_section(page)
    assert "Answers before we wake up" in section and "Verified buyer" in section
    assert "5.0 out of 5 stars" in section and "1 review" in section
    results = client.get("/search?q=support").text
    assert re.search(r'customer-support-agent-name.*?5\.0</span> <span class="muted small">\(1 review\)', results, re.S)
    # the second post edits the same review
    client.post(f"/p/{SLUG}/review", data={
        "organization": identity.current_organization(session, buyer).id, "rating": "3",
        "title": "Good, with gaps", "body": "Misses some questions."})
    assert _count(session, Review) == 1
    assert "Good, with gaps" in _reviews_section(client.get(f"/p/{SLUG}").text)


def test_the_product_page_is_the_same_for_everyone_and_loads_the_controls(app, client, session, buyer, demo_world):
    reviews.write_review(session, user=buyer, organization_id=identity.current_organization(session, buyer).id,
                         offering=demo_world, rating=4, title="Solid", body="Works well.")
    session.commit()
    anonymous = _reviews_section(app.test_client().get(f"/p/{SLUG}").text)
    login(client, buyer)
    signed_in = _reviews_section(client.get(f"/p/{SLUG}").text)

    assert anonymous == signed_in
    assert 'hx-trigger="load"' in anonymous and f'hx-get="/p/{SLUG}/reviews/controls?ids=' in anonymous
    assert f'href="/p/{SLUG}/reviews"' in anonymous  # the page without JavaScript
    assert "csrf_token" not in anonymous


def test_a_buyer_without_an_instance_gets_no_form_and_a_403(client, session, demo):
    stranger = make_user(session)
    session.commit()
    login(client, stranger)

    controls = client.get(f"/p/{SLUG}/reviews/controls").text
    posted = client.post(f"/p/{SLUG}/review", data={"rating": "5", "title": "Hi", "body": "There"})

    assert "Reviews come from organizations that subscribed to or tried" in controls
    assert 'action="/p/customer-support-agent/review"' not in controls
    assert posted.status_code == 403
    assert _count(session, Review) == 0


def test_a_missing_rating_is_shown_beside_the_field(client, session, buyer, demo_world):
    login(client, buyer)

    response = client.post(f"/p/{SLUG}/review", data={
        "organization": identity.current_organization(session, buyer).id, "title": "No stars", "body": "Forgot."})

    assert response.status_code == 400
    assert re.search(r'<legend>Your rating</legend>.*?Choose from 1 to 5 stars\.', response.text, re.S)
    assert _count(session, Review) == 0


def test_helpful_and_reply_from_the_pages(client, app, session, buyer, seller, demo_world):
    review = reviews.write_review(session, user=buyer, organization_id=identity.current_organization(session, buyer).id,
                                  offering=demo_world, rating=4, title="Solid", body="Works well.")
    session.commit()
    reader = make_user(session)
    session.commit()
    login(client, reader)
    voted = client.post(f"/reviews/{review.id}/helpful", data={"next": f"/p/{SLUG}"}, headers={"HX-Request": "true"})
    assert voted.status_code == 200 and "You found this helpful." in voted.text and "<html" not in voted.text
    assert _count(session, ReviewVote) == 1

    seller_client = app.test_client()
    login(seller_client, seller)
    controls = seller_client.get(f"/p/{SLUG}/reviews/controls?ids={review.id}").text
    assert f'id="review-actions-{review.id}" hx-swap-oob="true"' in controls and "Reply as the publisher" in controls
    replied = seller_client.post(f"/reviews/{review.id}/reply", data={"body": "Thanks!", "next": f"/p/{SLUG}"})
    assert replied.status_code == 302 and replied.headers["Location"] == f"/p/{SLUG}"
    assert "Reply from" in _reviews_section(client.get(f"/p/{SLUG}").text)
    again = seller_client.post(f"/reviews/{review.id}/reply", data={"body": "Twice?", "next": f"/p/{SLUG}"})
    assert again.status_code == 302
    session.refresh(review)
    assert review.reply_body == "Thanks!"


def test_the_review_page_works_without_javascript(client, session, buyer, demo_world):
    login(client, buyer)

    page = client.get(f"/p/{SLUG}/reviews")

    assert page.status_code == 200
    assert "<h3>Write a review</h3>" in page.text
    assert 'action="/p/customer-support-agent/review"' in page.text
    assert page.headers["Cache-Control"] == "private, no-store"


# --- search: sort and facet ----------------------------------------------------------------------

def test_search_sorts_by_rating_and_filters_four_stars_and_up(session, world):
    publisher = world["publisher"]
    low = world["offering"]
    high = make_offering(session, publisher=publisher, name="Lead Scorer")
    unrated = make_offering(session, publisher=publisher, name="Quiet Tool")
    give_instance(session, world["org"], high)
    session.commit()
    _write(session, world, rating=3)
    reviews.write_review(session, user=world["buyer"], organization_id=world["org"].id, offering=high, rating=5,
                         title="Top", body="Best we tried.")
    session.commit()

    for in_memory in (True, False):
        catalog = LocalCatalog(session, in_memory_index=in_memory)
        by_rating = catalog.search(SearchQuery(sort="rating", per_page=50))
        four_up = catalog.search(SearchQuery(filters=(("rating", ("4",)),), per_page=50))

        order = [int(c.key) for c in by_rating.items]
        assert order.index(high.id) < order.index(low.id) < order.index(unrated.id)
        assert [int(c.key) for c in four_up.items] == [high.id]
        rating = next(g for g in four_up.facets if g.name == "rating")
        assert [(o.value, o.label, o.count, o.selected) for o in rating.options] == [
            ("4", "4 stars and up", 1, True), ("3", "3 stars and up", 2, False),
            ("2", "2 stars and up", 2, False), ("1", "1 star and up", 2, False)]


def test_hidden_reviews_drop_out_of_the_rating_filter(session, world):
    # given: one five-star and one two-star review: 3.5 on average
    high = _write(session, world, rating=5)
    other = make_user(session)
    other_org = make_org(session, owner=other)
    give_instance(session, other_org, world["offering"])
    low = reviews.write_review(session, user=other, organization_id=other_org.id, offering=world["offering"],
                               rating=2, title="Meh", body="Not great.")
    operator = make_user(session, roles=("buyer", "operator"))
    session.commit()
    three_up = SearchQuery(filters=(("rating", ("3",)),))
    assert [LocalCatalog(session, in_memory_index=m).search(three_up).total for m in (True, False)] == [1, 1]

    # when: the five-star review is hidden (2.0 left), then the two-star one (no rating left)
    reviews.hide_review(session, operator=operator, review=high, reason="Written by the publisher's staff.")
    session.commit()
    after_first = [LocalCatalog(session, in_memory_index=m).search(three_up).total for m in (True, False)]
    two_up = [LocalCatalog(session, in_memory_index=m).search(SearchQuery(filters=(("rating", ("2",)),))).total
              for m in (True, False)]
    reviews.hide_review(session, operator=operator, review=low, reason="Spam.")
    session.commit()
    one_up = [LocalCatalog(session, in_memory_index=m).search(SearchQuery(filters=(("rating", ("1",)),))).total
              for m in (True, False)]

    # then
    assert (after_first, two_up, one_up) == ([0, 0], [1, 1], [0, 0])


def test_the_search_page_offers_the_rating_sort_and_a_labelled_chip(client, session, world):
    _write(session, world, rating=5)

    page = client.get("/search?rating=4&sort=rating").text

    assert '<option value="rating" selected>Highest rated</option>' in page
    assert re.search(r'<span class="chip-group">Rating:</span> 4 stars and up', page)
    assert 'name="rating" value="4" checked' in page


def test_saleor_mode_offers_no_rating_sort_or_facet(saleor_app):
    client = saleor_app.test_client()

    page = client.get("/search?rating=4&sort=rating").text

    assert 'value="rating"' not in page
    assert "stars and up" not in page


# --- seller and operator consoles ----------------------------------------------------------------

def test_the_seller_sees_reviews_and_replies_from_the_console(client, session, buyer, seller, demo_world):
    review = reviews.write_review(session, user=buyer, organization_id=identity.current_organization(session, buyer).id,
                                  offering=demo_world, rating=2, title="Slow start", body="Took a week to set up.")
    session.commit()
    login(client, seller)
    publisher_id = demo_world.publisher_id

    listed = client.get(f"/seller/reviews?publisher={publisher_id}&show=unanswered")
    replied = client.post(f"/reviews/{review.id}/reply", data={
        "body": "We have a setup guide now.", "next": f"/seller/reviews?publisher={publisher_id}"})
    after = client.get(f"/seller/reviews?publisher={publisher_id}&show=unanswered")

    assert listed.status_code == 200 and "Slow start" in listed.text and "Publish reply" in listed.text
    assert replied.headers["Location"] == f"/seller/reviews?publisher={publisher_id}"
    assert "Slow start" not in after.text and "Every review has your reply." in after.text
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "review.replied"))
    assert (event.actor_user_id, event.organization_id) == (seller.id, publisher_id)


def test_an_operator_hides_a_review_from_the_console(client, session, buyer, operator, demo_world):
    review = reviews.write_review(session, user=buyer, organization_id=identity.current_organization(session, buyer).id,
                                  offering=demo_world, rating=1, title="Rude words", body="Something unkind.")
    session.commit()
    login(client, operator)

    empty_reason = client.post(f"/operator/reviews/{review.id}/hide", data={f"r{review.id}-reason": " "})
    session.refresh(review)
    assert empty_reason.status_code == 400 and "Say why the review is hidden." in empty_reason.text
    assert review.hidden_at is None

    hidden = client.post(f"/operator/reviews/{review.id}/hide", data={f"r{review.id}-reason": "Insults staff."})

    assert hidden.status_code == 302
    session.refresh(review)
    assert review.hidden_reason == "Insults staff."
    assert "Rude words" not in _reviews_section(client.get(f"/p/{SLUG}").text)
    assert "Insults staff." in client.get("/operator/reviews?show=hidden").text
    login(client, buyer)
    controls = client.get(f"/p/{SLUG}/reviews/controls").text
    assert "Our moderators hid your review for" in controls and "Insults staff." in controls
    assert client.post(f"/p/{SLUG}/review", data={"rating": "5", "title": "Again", "body": "Again"}).status_code == 403
    assert session.scalar(select(func.count()).select_from(MailMessage)
                          .where(MailMessage.template == "review_hidden", MailMessage.to_address == buyer.email)) == 1


def test_buyers_and_sellers_cannot_hide_reviews(client, session, buyer, seller, demo_world):
    review = reviews.write_review(session, user=buyer, organization_id=identity.current_organization(session, buyer).id,
                                  offering=demo_world, rating=1, title="Bad", body="Bad.")
    session.commit()
    login(client, seller)

    response = client.post(f"/operator/reviews/{review.id}/hide", data={f"r{review.id}-reason": "Mine to hide?"})

    assert response.status_code == 403
    session.refresh(review)
    assert review.hidden_at is None
