"""Reviews over the API: the public list with its summary, writing as one's organization (verified
buyers and trial users only, once), editing one's own, the publisher's reply, helpful votes, and
hiding by operators; errors are problem+json naming the field."""
from sqlalchemy import func, select

from app.models import AuditEvent, MailMessage, Review
from app.services import instances
from tests.factories import make_offering, make_org, make_user

BODY = {"rating": 4, "title": "Good agent", "body": "It answers most questions."}


def _world(session):
    seller = make_user(session, roles=("buyer", "seller"))
    publisher = make_org(session, owner=seller, name="Publisher")
    offering = make_offering(session, publisher=publisher, name="Helpdesk Agent")
    buyer = make_user(session, name="Bea")
    org = make_org(session, owner=buyer, name="Acme")
    instances.create_instance(session, organization=org, plan=offering.plans[0])
    session.commit()
    return seller, offering, buyer, org


def _reviews(session) -> int:
    return session.scalar(select(func.count()).select_from(Review))


def test_a_verified_buyer_writes_lists_and_edits_a_review(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    headers = auth_for(buyer, **{"X-Organization-Id": str(org.id)})

    created = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY, headers=headers)
    listed = client.get(f"/api/offerings/{offering.id}/reviews").get_json()
    edited = client.patch(f"/api/reviews/{created.get_json()['id']}", json={"rating": 2}, headers=headers)

    assert created.status_code == 201
    review = created.get_json()
    assert (review["reviewer"], review["rating"], review["organization_id"], review["reply"]) == ("buyer", 4, org.id,
                                                                                                  None)
    assert listed["summary"] == {"average": 4.0, "count": 1, "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    assert [r["title"] for r in listed["items"]] == ["Good agent"] and listed["total"] == 1
    assert edited.status_code == 200 and edited.get_json()["rating"] == 2 and edited.get_json()["title"] == "Good agent"
    assert client.get(f"/api/offerings/{offering.id}/reviews").get_json()["summary"]["average"] == 2.0


def test_an_organization_without_an_instance_gets_403_and_a_second_review_409(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    outsider = make_user(session)
    session.commit()

    refused = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY, headers=auth_for(outsider))
    first = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY,
                        headers=auth_for(buyer, **{"X-Organization-Id": str(org.id)}))
    second = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY,
                         headers=auth_for(buyer, **{"X-Organization-Id": str(org.id)}))

    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["errors"][0]["field"] == "organization_id"
    assert first.status_code == 201
    assert second.status_code == 409 and second.get_json()["errors"][0]["field"] == "organization_id"
    assert _reviews(session) == 1


def test_bad_stars_and_empty_titles_are_422_naming_the_field(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    headers = auth_for(buyer, **{"X-Organization-Id": str(org.id)})

    stars = client.post(f"/api/offerings/{offering.id}/reviews", json={**BODY, "rating": 6}, headers=headers)
    title = client.post(f"/api/offerings/{offering.id}/reviews", json={**BODY, "title": "   "}, headers=headers)
    null = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY, headers=headers)
    nulled = client.patch(f"/api/reviews/{null.get_json()['id']}", json={"body": None}, headers=headers)

    assert stars.status_code == 422 and stars.get_json()["errors"][0]["field"] == "rating"
    assert title.status_code == 422 and title.get_json()["errors"] == [
        {"field": "title", "message": "Give your review a title."}]
    assert nulled.status_code == 422 and nulled.get_json()["errors"][0]["field"] == "body"
    assert _reviews(session) == 1


def test_only_the_author_edits_and_only_the_publisher_replies_once(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    review_id = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY,
                            headers=auth_for(buyer, **{"X-Organization-Id": str(org.id)})).get_json()["id"]
    stranger = make_user(session)
    session.commit()

    not_author = client.patch(f"/api/reviews/{review_id}", json={"rating": 1}, headers=auth_for(stranger))
    not_publisher = client.post(f"/api/reviews/{review_id}/reply", json={"body": "Hi"}, headers=auth_for(stranger))
    reply = client.post(f"/api/reviews/{review_id}/reply", json={"body": "Thanks!"}, headers=auth_for(seller))
    again = client.post(f"/api/reviews/{review_id}/reply", json={"body": "Again"}, headers=auth_for(seller))

    assert (not_author.status_code, not_publisher.status_code) == (403, 403)
    assert reply.status_code == 200 and reply.get_json()["reply"]["body"] == "Thanks!"
    assert again.status_code == 409 and again.get_json()["errors"][0]["field"] == "body"


def test_helpful_counts_once(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    review_id = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY,
                            headers=auth_for(buyer, **{"X-Organization-Id": str(org.id)})).get_json()["id"]
    reader = make_user(session)
    session.commit()
    headers = auth_for(reader)

    first = client.post(f"/api/reviews/{review_id}/helpful", headers=headers).get_json()
    second = client.post(f"/api/reviews/{review_id}/helpful", headers=headers).get_json()
    own = client.post(f"/api/reviews/{review_id}/helpful", headers=auth_for(buyer))

    assert first == {"counted": True, "helpful_count": 1}
    assert second == {"counted": False, "helpful_count": 1}
    assert own.status_code == 403


def test_operators_hide_reviews_audited_and_mailed_and_others_cannot(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    review_id = client.post(f"/api/offerings/{offering.id}/reviews", json=BODY,
                            headers=auth_for(buyer, **{"X-Organization-Id": str(org.id)})).get_json()["id"]
    operator = make_user(session, roles=("buyer", "operator"))
    session.commit()

    by_seller = client.post(f"/api/reviews/{review_id}/hide", json={"reason": "Mine"}, headers=auth_for(seller))
    no_reason = client.post(f"/api/reviews/{review_id}/hide", json={"reason": ""}, headers=auth_for(operator))
    hidden = client.post(f"/api/reviews/{review_id}/hide", json={"reason": "Off topic."}, headers=auth_for(operator))
    listed = client.get(f"/api/offerings/{offering.id}/reviews").get_json()

    assert by_seller.status_code == 403
    assert no_reason.status_code == 422 and no_reason.get_json()["errors"][0]["field"].endswith("reason")
    assert hidden.status_code == 200 and hidden.get_json()["hidden_reason"] == "Off topic."
    assert listed["summary"]["count"] == 0 and listed["items"] == []
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review.hidden")) == 1
    assert session.scalar(select(func.count()).select_from(MailMessage).where(MailMessage.template == "review_hidden")) == 1


def test_reviews_of_an_unpublished_offering_are_not_found(client, session, auth_for):
    seller = make_user(session, roles=("buyer", "seller"))
    draft = make_offering(session, publisher=make_org(session, owner=seller), status="draft")
    session.commit()

    response = client.get(f"/api/offerings/{draft.id}/reviews")

    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_the_catalog_listing_sorts_and_filters_by_rating(client, session, auth_for):
    seller, offering, buyer, org = _world(session)
    other = make_offering(session, publisher=offering.publisher, name="Other Agent")
    instances.create_instance(session, organization=org, plan=other.plans[0])
    session.commit()
    headers = auth_for(buyer, **{"X-Organization-Id": str(org.id)})
    client.post(f"/api/offerings/{offering.id}/reviews", json={**BODY, "rating": 2}, headers=headers)
    client.post(f"/api/offerings/{other.id}/reviews", json={**BODY, "rating": 5}, headers=headers)

    by_rating = client.get("/api/offerings/?sort=rating").get_json()
    four_up = client.get("/api/offerings/?min_rating=4").get_json()

    assert [o["slug"] for o in by_rating["items"]][:2] == [other.slug, offering.slug]
    assert [o["slug"] for o in four_up["items"]] == [other.slug]


def test_saleor_mode_refuses_the_rating_sort_naming_the_field(saleor_app):
    client = saleor_app.test_client()

    response = client.get("/api/offerings/?sort=rating")

    assert response.status_code == 400
    assert response.get_json()["errors"] == [
        {"field": "sort", "message": "Ratings are not available from the commerce backend."}]
