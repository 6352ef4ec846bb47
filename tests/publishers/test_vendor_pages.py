"""Vendor pages: a publisher's public page, linked from every card and product page."""
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user

from app.models import OfferingStatus, PublisherProfile, PublisherStatus, utcnow


def test_vendor_page_shows_profile_badge_links_and_published_offerings(client, session, demo):
    page = client.get("/vendors/northwind-ai")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Verified publisher" in body
    assert 'href="https://northwind-ai.example.com"' in body
    assert 'href="mailto:support@northwind-ai.example.com"' in body
    assert "Offerings by Northwind AI" in body or "Offerings by" in body
    assert body.count('class="offering-card"') >= 1
    assert 'href="/vendors/northwind-ai"' in body  # each card links its publisher


def test_cards_and_product_page_link_the_publisher(client, session, demo):
    home = client.get("/search").get_data(as_text=True)
    assert 'href="/vendors/northwind-ai"' in home
    from app.models import Offering
    from sqlalchemy import select
    slug = session.scalar(select(Offering.slug).join(Offering.publisher).where(
        Offering.status == "published").limit(1))
    product = client.get(f"/p/{slug}").get_data(as_text=True)
    assert 'href="/vendors/' in product


def test_a_publisher_from_before_onboarding_has_a_page_without_the_badge(client, session):
    owner = make_user(session, roles=("buyer", "seller"))
    org = make_org(session, owner=owner, name="Old Hands")
    make_offering(session, publisher=org, name="Legacy Agent")
    session.commit()
    body = client.get(f"/vendors/{org.slug}").get_data(as_text=True)
    assert "Legacy Agent" in body
    assert "Verified publisher" not in body


def test_pending_declined_and_unknown_publishers_have_no_page(client, session):
    owner = make_user(session)
    pending = make_org(session, owner=owner, name="Waiting Co")
    declined = make_org(session, owner=owner, name="Refused Co")
    for org, status in ((pending, PublisherStatus.PENDING), (declined, PublisherStatus.DECLINED)):
        session.add(PublisherProfile(organization_id=org.id, status=status.value, applied_at=utcnow(),
                                     description="", website="", support_email=""))
    make_offering(session, publisher=pending, name="Draft Thing", status=OfferingStatus.DRAFT.value)
    session.commit()
    for slug in (pending.slug, declined.slug, "no-such-vendor"):
        response = client.get(f"/vendors/{slug}")
        assert response.status_code == 404
        assert "We couldn't find that page" in response.get_data(as_text=True)


def test_owner_edits_the_vendor_page_and_a_member_cannot(client, session, demo, seller):
    login(client, seller)
    from app.models import Organization
    from sqlalchemy import select
    org = session.scalar(select(Organization).where(Organization.slug == "northwind-ai"))
    bad = client.post(f"/seller/publishers/{org.id}/profile", data={
        "name": "Northwind AI", "description": "x", "website": "javascript:alert(1)", "support_email": "help@northwind.example.com"})
    assert bad.status_code == 400
    assert 'id="website-error"' in bad.get_data(as_text=True)
    ok = client.post(f"/seller/publishers/{org.id}/profile", data={
        "name": "Northwind AI Labs", "description": "We build **support** agents.",
        "website": "https://northwind.test", "support_email": "help@northwind.example.com"})
    assert ok.status_code == 302
    body = client.get("/vendors/northwind-ai").get_data(as_text=True)
    assert "Northwind AI Labs" in body and "<strong>support</strong>" in body
    assert 'href="https://northwind.test"' in body

    member = make_user(session, roles=("buyer", "seller"))
    from app.models import Membership
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    session.commit()
    login(client, member)
    refused = client.post(f"/seller/publishers/{org.id}/profile", data={
        "name": "Hijacked", "description": "", "website": "", "support_email": ""})
    assert refused.status_code == 400
    session.expire_all()
    assert session.get(Organization, org.id).name == "Northwind AI Labs"
