"""Seller pages: access, the publishing forms (errors beside the fields, nothing changed), preview."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Offering, OfferingStatus, OfferingVersion, Plan
from app.services import offerings as svc
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user
from tests.runtime.fake_langflow import FLOW_ID


def _northwind(session, seller):
    return next(o for o in svc.publisher_organizations(session, user=seller) if o.slug == "northwind-ai")


def _draft(session, seller, name="Memo Writer"):
    offering = svc.create_offering(
        session, publisher=_northwind(session, seller), actor=seller, name=name, summary="Writes memos.",
        description_md="Memos.", category="agents", facets={},
    )
    svc.add_version(session, offering=offering, actor=seller, version="1.0.0", changelog="",
                    runtime_kind="builtin", runtime_ref="support-faq")
    session.commit()
    return offering


def _counts(session):
    return (
        session.scalar(select(func.count()).select_from(Offering)),
        session.scalar(select(func.count()).select_from(OfferingVersion)),
        session.scalar(select(func.count()).select_from(Plan)),
        session.scalar(select(func.count()).select_from(AuditEvent)),
    )


def _field_error(html: str, field_id: str) -> str:
    """The error text shown right after the field (the macro renders `<ul id="<field>-error">`)."""
    match = re.search(rf'<ul class="field-error" id="{re.escape(field_id)}-error">(.*?)</ul>', html, re.S)
    assert match, f"no error shown beside {field_id}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


CREATE_FORM = {
    "publisher_id": None, "name": "Deal Desk Bot", "slug": "", "summary": "Drafts deal memos.",
    "description_md": "## Hello\n\nIt writes memos.", "category": "agents", "outcome": ["save-time"],
    "role": ["sales"], "trial_days": "7", "trial_credits": "20", "version": "1.0.0", "runtime": "builtin:support-faq",
    "action": "save",
}


# --- access ------------------------------------------------------------------------------------

def test_a_buyer_cannot_open_seller_or_operator_pages(buyer_client):
    urls = ["/seller/", "/seller/sales", "/seller/analytics", "/seller/offerings/create", "/seller/sales.csv",
            "/operator/", "/operator/offerings", "/operator/audit", "/operator/organizations"]

    statuses = {url: buyer_client.get(url).status_code for url in urls}

    assert statuses == {url: 403 for url in urls}


def test_a_buyer_cannot_post_to_seller_or_operator_forms(buyer_client, session, seller):
    offering = _draft(session, seller)
    before = _counts(session)

    responses = [
        buyer_client.post("/seller/offerings/create", data={**CREATE_FORM, "name": "Sneaky"}),
        buyer_client.post(f"/seller/offerings/{offering.id}/submit"),
        buyer_client.post(f"/operator/offerings/{offering.id}/approve"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert _counts(session) == before


def test_signed_out_visitors_are_sent_to_sign_in(client, demo):
    response = client.get("/seller/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=/seller/")


def test_a_seller_cannot_see_or_edit_another_publishers_offering(client, session, seller, operator):
    theirs = make_offering(session, publisher=make_org(session, owner=operator, name="Rival Labs"),
                           status=OfferingStatus.DRAFT.value, name="Rival Bot")
    session.commit()
    login(client, seller)
    before = _counts(session)

    gets = [client.get(f"/seller/offerings/{theirs.id}{suffix}") for suffix in ("", "/update", "/versions", "/plans")]
    posts = [
        client.post(f"/seller/offerings/{theirs.id}/update", data={**CREATE_FORM, "name": "Stolen"}),
        client.post(f"/seller/offerings/{theirs.id}/versions",
                    data={"version": "9.0.0", "runtime": "builtin:x"}),
        client.post(f"/seller/offerings/{theirs.id}/plans", data={"starter-name": "Free", "starter-price": "0",
                                                                  "starter-currency": "USD"}),
        client.post(f"/seller/offerings/{theirs.id}/submit"),
        client.post(f"/seller/offerings/{theirs.id}/archive"),
    ]

    assert [r.status_code for r in gets] == [404, 404, 404, 404]
    assert [r.status_code for r in posts] == [404, 404, 404, 404, 404]
    session.expire_all()
    assert (theirs.name, theirs.status) == ("Rival Bot", "draft")
    assert _counts(session) == before


def test_a_seller_cannot_pick_a_publisher_they_do_not_belong_to(client, session, seller, operator):
    rival = make_org(session, owner=operator, name="Rival Labs")
    session.commit()
    login(client, seller)

    assert client.get(f"/seller/?publisher={rival.id}").status_code == 404
    response = client.post("/seller/offerings/create", data={**CREATE_FORM, "publisher_id": rival.id})

    assert response.status_code == 400
    assert session.scalar(select(func.count()).select_from(Offering).where(Offering.publisher_id == rival.id)) == 0


# --- dashboard ---------------------------------------------------------------------------------

def test_dashboard_lists_the_chosen_publishers_offerings_with_status(client, session, seller):
    second = make_org(session, owner=seller, name="Side Project")
    make_offering(session, publisher=second, name="Side Bot", status=OfferingStatus.IN_REVIEW.value)
    session.commit()
    login(client, seller)

    northwind = client.get("/seller/").get_data(as_text=True)
    side = client.get(f"/seller/?publisher={second.id}").get_data(as_text=True)
    remembered = client.get("/seller/").get_data(as_text=True)

    assert "Customer Support Agent" in northwind and "Side Bot" not in northwind
    assert "Side Bot" in side and "Customer Support Agent" not in side
    assert '<span class="badge badge-in_review">In review</span>' in side
    assert "Side Bot" in remembered  # the choice sticks for the next visit


# --- create and edit ---------------------------------------------------------------------------

def test_create_offering_form_saves_a_draft_with_its_first_version(client, session, seller):
    login(client, seller)
    form = {**CREATE_FORM, "publisher_id": _northwind(session, seller).id}

    response = client.post("/seller/offerings/create", data=form)

    assert response.status_code == 302
    offering = session.scalar(select(Offering).where(Offering.name == "Deal Desk Bot"))
    assert response.headers["Location"] == f"/seller/offerings/{offering.id}/plans"
    assert (offering.slug, offering.status, offering.trial_days, offering.trial_credits) == (
        "deal-desk-bot", "draft", 7, 20)
    assert [(v.version, v.runtime_kind, v.runtime_ref) for v in offering.versions] == [
        ("1.0.0", "builtin", "support-faq")]
    assert offering.facet_values("role") == ["sales"]


def test_an_invalid_create_form_shows_the_error_beside_the_field_and_saves_nothing(client, session, seller):
    login(client, seller)
    before = _counts(session)
    cases = [
        ({"name": "<b>Deal</b> bot"}, "name", "Use plain text: no HTML or special characters like &lt; and &gt;."),
        ({"slug": "customer-support-agent"}, "slug", "Another offering already uses this address."),
        ({"version": "1.0"}, "version", "Use a semantic version: MAJOR.MINOR.PATCH, for example 1.2.0."),
        ({"trial_days": "-3"}, "trial_days", "Give between 0 and 90 days."),
        ({"role": ["astronaut"]}, "role", "Choose role values from the list."),
        ({"summary": ""}, "summary", "This field is required."),
    ]

    for changes, field_id, message in cases:
        response = client.post("/seller/offerings/create",
                               data={**CREATE_FORM, "publisher_id": _northwind(session, seller).id, **changes})

        assert (field_id, response.status_code) == (field_id, 400)
        assert _field_error(response.get_data(as_text=True), field_id) == message
    assert _counts(session) == before


def test_edit_form_with_a_duplicate_slug_shows_the_error_and_changes_nothing(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)
    before = _counts(session)

    response = client.post(f"/seller/offerings/{offering.id}/update", data={
        **CREATE_FORM, "name": "Renamed", "slug": "customer-support-agent",
    })

    assert response.status_code == 400
    assert _field_error(response.get_data(as_text=True), "slug") == "Another offering already uses this address."
    session.expire_all()
    assert (offering.name, offering.slug) == ("Memo Writer", "memo-writer")
    assert _counts(session) == before


def test_edit_form_saves_the_listing(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/update", data={
        **CREATE_FORM, "name": "Memo Writer Pro", "slug": "memo-pro", "capability": ["summarization"],
        "outcome": [], "role": [], "trial_days": "0", "trial_credits": "0",
    })

    assert response.status_code == 302
    session.expire_all()
    assert (offering.name, offering.slug) == ("Memo Writer Pro", "memo-pro")
    assert sorted((f.group, f.value) for f in offering.facets) == [
        ("capability", "summarization"), ("category", "agents"), ("publisher", "northwind-ai")]


def test_the_preview_button_renders_markdown_without_saving(client, session, seller):
    login(client, seller)
    before = _counts(session)

    response = client.post("/seller/offerings/create", data={
        **CREATE_FORM, "publisher_id": _northwind(session, seller).id, "action": "preview",
        "description_md": "## Plans\n\n- **fast**",
    })

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<div id="description-preview" class="prose preview-box" aria-live="polite"><h2>Plans</h2>' in html
    assert "<li><strong>fast</strong></li>" in html
    assert _counts(session) == before


def test_the_htmx_preview_returns_only_the_fragment(client, seller):
    login(client, seller)

    response = client.post("/seller/preview", data={"description_md": "# Hi <script>x()</script>"},
                           headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == "<h2>Hi </h2>"
    assert "HX-Request" in response.headers["Vary"]


# --- versions and plans ------------------------------------------------------------------------

def test_a_version_that_does_not_increase_shows_an_error_and_adds_nothing(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)
    before = _counts(session)

    response = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.0.0", "changelog": "Again", "runtime": "builtin:support-faq",
    })

    assert response.status_code == 400
    assert _field_error(response.get_data(as_text=True), "version") == "The new version must be greater than 1.0.0."
    assert _counts(session) == before


def test_a_greater_version_is_added(client, session, seller, configured_langflow):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "1.1.0", "changelog": "Faster.", "runtime": f"langflow:{FLOW_ID}",
    })

    assert response.status_code == 302
    session.expire_all()
    assert [(v.version, v.runtime_kind, v.runtime_ref, v.changelog) for v in offering.versions] == [
        ("1.0.0", "builtin", "support-faq", ""), ("1.1.0", "langflow", FLOW_ID, "Faster.")]


PLANS_FORM = {
    "starter-offered": "y", "starter-name": "Starter", "starter-price": "29.00", "starter-currency": "USD",
    "starter-included_credits": "200", "starter-credits_per_run": "2", "starter-max_runs_per_period": "300",
    "starter-features": "Email support\nOne workspace",
    "pro-offered": "y", "pro-name": "Pro", "pro-price": "79.5", "pro-currency": "usd",
    "pro-included_credits": "1200", "pro-credits_per_run": "2", "pro-max_runs_per_period": "",
    "pro-features": "",
    "enterprise-name": "Enterprise", "enterprise-price": "", "enterprise-currency": "USD",
}


def test_plans_form_creates_the_offered_tiers_with_generated_skus(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/plans", data=PLANS_FORM)

    assert response.status_code == 302
    plans = session.scalars(select(Plan).where(Plan.offering_id == offering.id).order_by(Plan.price_minor)).all()
    assert [(p.tier, p.sku, p.price_minor, p.currency, p.included_credits, p.max_runs_per_period) for p in plans] == [
        ("starter", "MEMO-WRITER-STARTER", 2900, "USD", 200, 300),
        ("pro", "MEMO-WRITER-PRO", 7950, "USD", 1200, None),
    ]


def test_plans_form_sells_a_plan_yearly_with_roll_over_and_refuses_an_unknown_interval(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    refused = client.post(f"/seller/offerings/{offering.id}/plans", data={**PLANS_FORM, "pro-interval": "week"})
    saved = client.post(f"/seller/offerings/{offering.id}/plans",
                        data={**PLANS_FORM, "pro-interval": "year", "pro-rollover_credits": "y"})

    assert refused.status_code == 400 and saved.status_code == 302
    plans = session.scalars(select(Plan).where(Plan.offering_id == offering.id).order_by(Plan.price_minor)).all()
    assert [(p.tier, p.interval, p.rollover_credits) for p in plans] == [
        ("starter", "month", False), ("pro", "year", True)]


def test_a_negative_price_shows_the_error_beside_the_price_and_saves_no_tier(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)
    before = _counts(session)

    response = client.post(f"/seller/offerings/{offering.id}/plans", data={**PLANS_FORM, "pro-price": "-5.00"})

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert _field_error(html, "pro-price") == "The price cannot be negative."
    assert "Nothing was saved: fix the fields marked below." in html
    assert _counts(session) == before


def test_submit_for_review_from_the_offering_page(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)
    client.post(f"/seller/offerings/{offering.id}/plans", data=PLANS_FORM)

    response = client.post(f"/seller/offerings/{offering.id}/submit", follow_redirects=True)

    assert response.status_code == 200
    assert "Submitted for review." in response.get_data(as_text=True)
    session.expire_all()
    assert offering.status == "in_review"


def test_an_incomplete_offering_cannot_be_submitted(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)

    response = client.post(f"/seller/offerings/{offering.id}/submit", follow_redirects=True)

    assert "Before submitting: add at least one plan." in response.get_data(as_text=True)
    session.expire_all()
    assert offering.status == "draft"


# --- drafts stay out of the catalog ------------------------------------------------------------

def test_drafts_and_offerings_in_review_never_appear_in_the_catalog(client, session, seller):
    draft = _draft(session, seller, name="Zebra Draft Bot")
    review = _draft(session, seller, name="Zebra Review Bot")
    svc.set_plan(session, offering=review, actor=seller, tier="starter", name="Starter", price_minor=100,
                 currency="USD", included_credits=1, credits_per_run=1, max_runs_per_period=None)
    svc.submit_for_review(session, offering=review, actor=seller)
    session.commit()

    pages = [client.get(url).get_data(as_text=True) for url in ("/", "/search?q=zebra", "/browse/agents")]

    for html in pages:
        assert "Zebra Draft Bot" not in html and "Zebra Review Bot" not in html
    assert client.get(f"/p/{draft.slug}").status_code == 404
    assert client.get(f"/p/{review.slug}").status_code == 404


def test_a_new_seller_can_create_a_publisher_organization(client, session):
    newcomer = make_user(session, roles=["buyer", "seller"], name="Nia New")
    session.commit()
    login(client, newcomer)

    response = client.post("/seller/publishers/create", data={"name": "Nia Labs"}, follow_redirects=True)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Publisher organization “Nia Labs” created." in html
    assert "Seller · Nia Labs" in html


def test_control_characters_are_refused_with_field_errors_not_server_errors(client, session, seller, operator):
    offering = _draft(session, seller)
    login(client, seller)
    before = _counts(session)

    create = client.post("/seller/offerings/create", data={
        **CREATE_FORM, "publisher_id": _northwind(session, seller).id, "name": "Nul\x00bot", "role": ["sa\x00les"]})
    version = client.post(f"/seller/offerings/{offering.id}/versions", data={
        "version": "2.0.0", "changelog": "bad\x00byte", "runtime": "builtin:support-faq"})
    facets = client.post(f"/seller/offerings/{offering.id}/update", data={**CREATE_FORM, "role": ["sa\x00les"]})
    sales = client.get("/seller/sales?offering=%00&start=%00")
    login(client, operator)
    audit = client.get("/operator/audit?actor=%00&target_type=off%00ering&target_id=%00")
    listing = client.get("/operator/offerings?q=%00&status=%00")

    assert [r.status_code for r in (create, version, facets)] == [400, 400, 400]
    assert _field_error(create.get_data(as_text=True), "name").startswith("Use plain text")
    assert _field_error(version.get_data(as_text=True), "changelog") == "Remove the control characters."
    assert _field_error(facets.get_data(as_text=True), "role") == "Choose role values from the list."
    assert sales.status_code == 200
    assert (audit.status_code, listing.status_code) == (200, 400)
    assert _counts(session) == before
