"""Offerings over the API: the public listing with filters, publishing by sellers of the publisher,
review by operators only."""
from sqlalchemy import func, select

from app.models import AuditEvent, Offering, OfferingVersion, Plan
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user


def test_the_public_listing_shows_published_offerings_only_with_filters(client, session, demo):
    publisher = make_org(session, owner=make_user(session, roles=("buyer", "seller")))
    make_offering(session, publisher=publisher, name="Hidden Draft Helper", status="draft")
    session.commit()

    everything = client.get("/api/offerings/?per_page=100").get_json()
    agents = client.get("/api/offerings/?category=agents&per_page=100").get_json()
    support = client.get("/api/offerings/?role=support&per_page=100").get_json()
    searched = client.get("/api/offerings/?q=support").get_json()

    assert everything["total"] == 10 and len(everything["items"]) == 10
    assert all(o["status"] == "published" for o in everything["items"])
    assert "Hidden Draft Helper" not in [o["name"] for o in everything["items"]]
    assert {o["category"] for o in agents["items"]} == {"agents"} and agents["total"] == len(agents["items"]) > 0
    assert all("support" in o["facets"]["role"] for o in support["items"]) and support["total"] > 0
    assert searched["items"][0]["slug"] == "customer-support-agent"
    assert all(v["runtime_ref"] is None for o in everything["items"] for v in o["versions"])


def test_a_draft_is_not_found_by_strangers_but_seen_by_its_publisher(client, session, auth_for):
    seller = make_user(session, roles=("buyer", "seller"))
    publisher = make_org(session, owner=seller)
    draft = make_offering(session, publisher=publisher, status="draft")
    stranger = make_user(session)
    session.commit()

    anonymous = client.get(f"/api/offerings/{draft.id}")
    other = client.get(f"/api/offerings/{draft.id}", headers=auth_for(stranger))
    own = client.get(f"/api/offerings/{draft.id}", headers=auth_for(seller))

    assert (anonymous.status_code, other.status_code, own.status_code) == (404, 404, 200)
    assert own.get_json()["versions"][0]["runtime_ref"] == "support-faq"


def test_a_seller_publishes_through_review_and_only_an_operator_approves(client, session, demo, seller, operator,
                                                                        auth_for):
    publisher_id = session.scalar(select(Offering.publisher_id).where(Offering.slug == "customer-support-agent"))
    seller_headers = auth_for(seller)

    created = client.post("/api/offerings/", json={
        "publisher_id": publisher_id, "name": "Quillwort Reader", "summary": "Reads quillwort ledgers into rows.",
        "description_md": "## Reads invoices", "category": "automations",
        "facets": {"role": ["finance"], "capability": ["data-extraction"]}, "trial_days": 7, "trial_credits": 20,
    }, headers=seller_headers)
    offering_id = created.get_json()["id"]
    version = client.post(f"/api/offerings/{offering_id}/versions", json={
        "version": "1.0.0", "changelog": "First", "runtime_kind": "builtin", "runtime_ref": "invoice-extract"},
        headers=seller_headers)
    plan = client.put(f"/api/offerings/{offering_id}/plans/starter", json={
        "name": "Starter", "price_minor": 1900, "currency": "eur", "included_credits": 100, "credits_per_run": 2,
        "max_runs_per_period": 300, "features": "One\nTwo"}, headers=seller_headers)
    submitted = client.post(f"/api/offerings/{offering_id}/submit", headers=seller_headers)
    self_approved = client.post(f"/api/offerings/{offering_id}/approve", headers=seller_headers)
    approved = client.post(f"/api/offerings/{offering_id}/approve", headers=auth_for(operator))

    assert created.status_code == 201 and created.get_json()["status"] == "draft"
    assert created.get_json()["facets"]["pricing"] == ["free-trial"]
    assert version.status_code == 201 and version.get_json()["runtime_ref"] == "invoice-extract"
    assert plan.status_code == 200
    assert (plan.get_json()["currency"], plan.get_json()["features"]) == ("EUR", ["One", "Two"])
    assert submitted.get_json()["status"] == "in_review"
    assert self_approved.status_code == 403
    assert approved.status_code == 200 and approved.get_json()["status"] == "published"
    listed = client.get("/api/offerings/?q=quillwort").get_json()
    assert [o["id"] for o in listed["items"]] == [offering_id]
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "offering",
                                                                   AuditEvent.target_id == str(offering_id))
                                   .order_by(AuditEvent.id)))
    assert actions == ["offering.created", "offering.version_added", "offering.plan_created",
                       "offering.submitted", "offering.approved"]


def test_operators_list_the_review_queue_and_reject_with_a_reason(client, session, demo, operator, auth_for):
    publisher = make_org(session, owner=make_user(session, roles=("buyer", "seller")))
    waiting = make_offering(session, publisher=publisher, status="in_review")
    session.commit()
    headers = auth_for(operator)

    queue = client.get("/api/offerings/?status=in_review", headers=headers)
    rejected = client.post(f"/api/offerings/{waiting.id}/reject", json={"reason": "Add screenshots."},
                           headers=headers)

    assert [o["id"] for o in queue.get_json()["items"]] == [waiting.id]
    assert rejected.get_json()["status"] == "draft" and rejected.get_json()["review_note"] == "Add screenshots."
    assert client.get("/api/offerings/?status=in_review").status_code == 403


def test_a_buyer_cannot_do_seller_or_operator_actions(client, session, demo, buyer, auth_for):
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    headers = auth_for(buyer)
    counts_before = (session.scalar(select(func.count()).select_from(Offering)),
                     session.scalar(select(func.count()).select_from(OfferingVersion)),
                     session.scalar(select(func.count()).select_from(Plan)))

    responses = {
        "create": client.post("/api/offerings/", json={"name": "Mine", "summary": "s", "category": "agents"},
                              headers=headers).status_code,
        "edit": client.patch(f"/api/offerings/{offering.id}", json={"name": "Taken over"}, headers=headers).status_code,
        "version": client.post(f"/api/offerings/{offering.id}/versions", json={
            "version": "9.0.0", "runtime_ref": "x"}, headers=headers).status_code,
        "plan": client.put(f"/api/offerings/{offering.id}/plans/pro", json={
            "name": "Pro", "price_minor": 1, "currency": "USD"}, headers=headers).status_code,
        "archive": client.post(f"/api/offerings/{offering.id}/archive", headers=headers).status_code,
        "approve": client.post(f"/api/offerings/{offering.id}/approve", headers=headers).status_code,
        "reject": client.post(f"/api/offerings/{offering.id}/reject", json={"reason": "no"},
                              headers=headers).status_code,
        "queue": client.get("/api/offerings/?status=in_review", headers=headers).status_code,
    }

    assert responses == {"create": 403, "edit": 404, "version": 404, "plan": 404, "archive": 404,
                         "approve": 403, "reject": 403, "queue": 403}
    session.expire_all()
    assert (session.scalar(select(func.count()).select_from(Offering)),
            session.scalar(select(func.count()).select_from(OfferingVersion)),
            session.scalar(select(func.count()).select_from(Plan))) == counts_before
    assert session.get(Offering, offering.id).name == "Customer Support Agent"
    assert session.get(Offering, offering.id).status == "published"


def test_publishing_rule_errors_name_the_field(client, session, seller, auth_for):
    publisher_id = session.scalar(select(Offering.publisher_id).where(Offering.slug == "customer-support-agent"))

    response = client.post("/api/offerings/", json={"publisher_id": publisher_id, "name": "X", "summary": "s",
                                                     "category": "spaceships"}, headers=auth_for(seller))

    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "category",
                                              "message": "Choose one of: agents, apps, assistants, automations."}]


def test_a_seller_sees_all_offerings_of_their_publisher(client, session, seller):
    publisher_id = session.scalar(select(Offering.publisher_id).where(Offering.slug == "customer-support-agent"))
    login(client, seller)

    response = client.get(f"/api/organizations/{publisher_id}/offerings")

    assert response.status_code == 200
    assert response.get_json()["total"] == session.scalar(
        select(func.count()).select_from(Offering).where(Offering.publisher_id == publisher_id))


def test_an_operator_curates_any_publishers_listing(client, session, demo, operator, auth_for):
    # given: a published offering of a publisher the operator does not belong to
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    headers = auth_for(operator)

    # when: the operator fixes its summary, adds a version and reprices a plan
    edited = client.patch(f"/api/offerings/{offering.id}", json={"summary": "Answers support tickets, day and night."},
                          headers=headers)
    version = client.post(f"/api/offerings/{offering.id}/versions", json={
        "version": "9.1.0", "changelog": "Curated", "runtime_kind": "builtin", "runtime_ref": "support-faq"},
        headers=headers)
    plan = client.put(f"/api/offerings/{offering.id}/plans/pro", json={
        "name": "Pro", "price_minor": 4900, "currency": "USD", "included_credits": 500}, headers=headers)

    # then: all three are done and audited with the operator as the actor
    assert (edited.status_code, version.status_code, plan.status_code) == (200, 201, 200)
    session.expire_all()
    assert session.get(Offering, offering.id).summary == "Answers support tickets, day and night."
    assert session.scalar(select(Plan.price_minor).where(Plan.offering_id == offering.id, Plan.tier == "pro")) == 4900
    actors = set(session.scalars(select(AuditEvent.actor_user_id).where(
        AuditEvent.target_type == "offering", AuditEvent.target_id == str(offering.id),
        AuditEvent.action.in_(["offering.updated", "offering.version_added", "offering.plan_updated"]))))
    assert actors == {operator.id}
