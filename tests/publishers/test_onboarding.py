"""Becoming a seller: the publisher's details, the seller terms, drafts while waiting, the operator's decision."""
import io
import re

import pytest
from sqlalchemy import func, select

from app.models import (
    AuditEvent, MailMessage, Offering, Organization, PublisherProfile, PublisherStatus, SellerTerms,
    SellerTermsAcceptance, User,
)
from app.services import publishers
from tests.conftest import login
from tests.factories import make_user
from tests.publishers.images import SVG, png

DETAILS = {"name": "Brightline Tools", "slug": "brightline", "website": "https://brightline.example.com",
           "support_email": "help@brightline.example.com", "description": "Agents for field teams."}


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _apply(client, **overrides):
    data = {**DETAILS, **overrides}
    step_one = client.post("/sell", data=data, content_type="multipart/form-data")
    assert step_one.status_code == 302 and step_one.headers["Location"].endswith("/sell/terms")
    return client.post("/sell/terms", data={"terms_version": publishers.SELLER_TERMS_VERSION, "accept": "y"})


@pytest.fixture
def applicant(session, client, tmp_path, app):
    app.config["MEDIA_DIR"] = str(tmp_path / "media")
    user = make_user(session, name="Dana Field", email="dana@example.com")
    session.commit()
    login(client, user)
    return user


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(client):
    response = client.get("/sell")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/sell"


def test_the_footer_link_leads_a_buyer_to_the_form(client, applicant):
    home = client.get("/").get_data(as_text=True)
    assert '<a href="/sell">Sell on Digitlify</a>' in home
    page = client.get("/sell")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'name="slug"' in body and 'type="file"' in body and 'value="dana@example.com"' in body


@pytest.mark.parametrize("field, value, error", [
    ("name", "", "Give your publisher organization a name."),
    ("slug", "Not A Slug!", "Use 1 to 60 lowercase letters"),
    ("slug", "admin", "That address is reserved."),
    ("slug", "northwind-ai", "That address is taken."),
    ("website", "ftp://files.example.com", "Enter a web address starting with https://"),
    ("website", "javascript:alert(1)", "Enter a web address starting with https://"),
    ("support_email", "not-an-address", "Enter an email address like support@example.com."),
])
def test_step_one_shows_each_error_beside_its_field_and_stores_nothing(client, session, applicant, demo,
                                                                       field, value, error):
    organizations, profiles = _count(session, Organization), _count(session, PublisherProfile)
    response = client.post("/sell", data={**DETAILS, field: value}, content_type="multipart/form-data")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert f'id="{field}-error"' in body and error in body.replace("&#39;", "'")
    assert _count(session, Organization) == organizations
    assert _count(session, PublisherProfile) == profiles
    with client.session_transaction() as s:
        assert "publisher_application" not in s


def test_a_logo_that_is_not_an_image_is_refused_in_step_one(client, session, applicant):
    response = client.post("/sell", data={**DETAILS, "logo": (io.BytesIO(SVG), "logo.svg")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert 'id="logo-error"' in response.get_data(as_text=True)


def test_the_terms_must_be_accepted_and_the_accepted_version_is_stored(client, session, applicant):
    client.post("/sell", data={**DETAILS, "logo": (io.BytesIO(png()), "logo.png")},
                content_type="multipart/form-data")
    terms_page = client.get("/sell/terms").get_data(as_text=True)
    assert f"Version {publishers.SELLER_TERMS_VERSION}" in terms_page and "<h2>Seller terms</h2>" in terms_page

    refused = client.post("/sell/terms", data={"terms_version": publishers.SELLER_TERMS_VERSION})
    assert refused.status_code == 400
    assert "Accept the seller terms to continue." in refused.get_data(as_text=True)
    stale = client.post("/sell/terms", data={"terms_version": "2001-01", "accept": "y"})
    assert stale.status_code == 400
    assert "The seller terms changed" in stale.get_data(as_text=True)
    assert _count(session, PublisherProfile) == 0 and _count(session, SellerTermsAcceptance) == 0

    accepted = client.post("/sell/terms", data={"terms_version": publishers.SELLER_TERMS_VERSION, "accept": "y"})
    assert accepted.status_code == 302
    org = session.scalar(select(Organization).where(Organization.slug == "brightline"))
    assert accepted.headers["Location"] == f"/seller/offerings/create?publisher={org.id}"
    profile = session.scalar(select(PublisherProfile).where(PublisherProfile.organization_id == org.id))
    assert (profile.status, profile.website, profile.support_email) == (
        "pending", "https://brightline.example.com", "help@brightline.example.com")
    assert profile.logo_key and profile.logo_key.endswith(".png")
    acceptance = session.scalars(select(SellerTermsAcceptance)).one()
    assert (acceptance.user_id, acceptance.organization_id, acceptance.terms.version) == (
        applicant.id, org.id, publishers.SELLER_TERMS_VERSION)
    assert acceptance.terms.body_md == publishers.SELLER_TERMS_MD
    assert acceptance.accepted_at is not None
    assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "publisher.applied")) is not None
    session.refresh(applicant)
    assert not applicant.has_role("seller")  # not before an operator approves


def test_a_pending_applicant_prepares_drafts_but_cannot_submit_them(client, session, applicant):
    _apply(client)
    org = session.scalar(select(Organization).where(Organization.slug == "brightline"))
    form = client.get(f"/seller/offerings/create?publisher={org.id}")
    assert form.status_code == 200
    created = client.post("/seller/offerings/create", data={
        "publisher_id": org.id, "name": "Field Notes", "summary": "Turns voice notes into reports.",
        "description_md": "## Field notes\n\nWrites reports.", "category": "agents", "trial_days": 0,
        "trial_credits": 0, "version": "1.0.0", "runtime": "builtin:support-faq",
    })
    assert created.status_code == 302, re.findall(r'<li>([^<]*)</li>', created.get_data(as_text=True))
    offering = session.scalar(select(Offering).where(Offering.publisher_id == org.id))
    detail = client.get(f"/seller/offerings/{offering.id}").get_data(as_text=True)
    assert "waiting for an operator&#39;s approval" in detail or "waiting for an operator's approval" in detail
    refused = client.post(f"/seller/offerings/{offering.id}/submit")
    assert refused.status_code == 302
    session.expire_all()
    assert session.get(Offering, offering.id).status == "draft"
    # the landing page now says where things stand instead of offering a second application
    status_page = client.get("/sell").get_data(as_text=True)
    assert "Your application is being reviewed" in status_page


def test_the_operator_declines_with_a_reason_and_the_applicant_is_mailed(client, session, applicant, operator):
    _apply(client)
    profile = session.scalars(select(PublisherProfile).where(PublisherProfile.status == "pending")).one()
    login(client, operator)
    listing = client.get("/operator/publishers").get_data(as_text=True)
    assert "Brightline Tools" in listing and f"Version {publishers.SELLER_TERMS_VERSION}, accepted" in listing

    no_reason = client.post(f"/operator/publishers/{profile.id}/decline", data={f"p{profile.id}-reason": " "})
    assert no_reason.status_code == 400
    assert "Tell the applicant why" in no_reason.get_data(as_text=True)
    session.expire_all()
    assert session.get(PublisherProfile, profile.id).status == "pending"

    declined = client.post(f"/operator/publishers/{profile.id}/decline",
                           data={f"p{profile.id}-reason": "Your website does not mention the agents you sell."})
    assert declined.status_code == 302
    session.expire_all()
    profile = session.get(PublisherProfile, profile.id)
    assert profile.status == "declined" and profile.decided_by_user_id == operator.id
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "publisher.declined")).one()
    assert "does not mention" in event.data_json
    message = session.scalars(select(MailMessage).where(MailMessage.to_address == "dana@example.com")).one()
    assert message.template == "publisher_declined" and "does not mention" in message.text_body
    again = client.post(f"/operator/publishers/{profile.id}/approve")
    assert again.status_code == 302
    session.expire_all()
    assert session.get(PublisherProfile, profile.id).status == "declined"  # decided once

    login(client, applicant)
    assert client.get("/seller/").status_code == 403
    retry = client.get("/sell").get_data(as_text=True)
    assert "Your last application was declined" in retry and "does not mention" in retry


def test_the_operator_approves_and_the_new_seller_submits(client, session, applicant, operator):
    _apply(client)
    org = session.scalar(select(Organization).where(Organization.slug == "brightline"))
    profile = session.scalars(select(PublisherProfile).where(PublisherProfile.status == "pending")).one()
    login(client, operator)
    assert client.post(f"/operator/publishers/{profile.id}/approve").status_code == 302
    session.expire_all()
    assert session.get(PublisherProfile, profile.id).status == PublisherStatus.APPROVED.value
    assert session.get(User, applicant.id).has_role("seller")
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "publisher.approved")) == 1
    message = session.scalars(select(MailMessage).where(MailMessage.to_address == "dana@example.com")).one()
    assert message.template == "publisher_approved"

    vendor = client.get("/vendors/brightline").get_data(as_text=True)
    assert "Verified publisher" in vendor and "Brightline Tools" in vendor
    assert publishers.submit_blocker(session, organization_id=org.id, actor=session.get(User, applicant.id)) is None


def test_a_buyer_cannot_decide_applications(client, session, applicant):
    _apply(client)
    profile = session.scalars(select(PublisherProfile).where(PublisherProfile.status == "pending")).one()
    response = client.post(f"/operator/publishers/{profile.id}/approve")
    assert response.status_code == 403
    session.expire_all()
    assert session.get(PublisherProfile, profile.id).status == "pending"


def test_with_single_sign_on_the_page_says_how_to_ask_for_the_sellers_group(make_app, session):
    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER="https://id.example.com/realms/digitlify",
                   SELLER_ACCESS_CONTACT="marketplace-admins@example.com")
    with app.app_context():
        from app.extensions import db
        user = make_user(db.session, name="Sso Person")
        db.session.commit()
        client = app.test_client()
        login(client, user)
    page = client.get("/sell")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<strong>sellers</strong> group" in body
    assert "mailto:marketplace-admins@example.com" in body
    assert 'name="slug"' not in body
    assert client.post("/sell", data=DETAILS).status_code == 200  # the same explanation, nothing created
    with app.app_context():
        from app.extensions import db
        assert db.session.scalar(select(func.count()).select_from(PublisherProfile)) == 0
