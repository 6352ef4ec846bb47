"""Publishing rules in app.services.offerings: validation, the review workflow, tenant checks, audit."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, FacetValue, Offering, OfferingStatus, OfferingVersion, Plan
from app.services import offerings as svc
from app.services.offerings import OfferingError, OfferingNotFound
from tests.factories import make_offering, make_org, make_user
from tests.runtime.fake_langflow import FLOW_ID


def _publisher(session, seller):
    return next(o for o in svc.publisher_organizations(session, user=seller) if o.slug == "northwind-ai")


def _create(session, seller, **overrides):
    values = dict(
        actor=seller, name="Deal Desk Bot", summary="Drafts deal memos.",
        description_md="## What it does\n\nWrites memos.", category="agents",
        facets={"outcome": ["save-time"], "role": ["sales"], "capability": ["summarization"]},
    )
    values.update(overrides)
    if "publisher" not in values:
        values["publisher"] = _publisher(session, seller)
    return svc.create_offering(session, **values)


def _audit_actions(session, offering_id):
    return list(session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "offering", AuditEvent.target_id == str(offering_id))
        .order_by(AuditEvent.id)
    ))


def test_create_offering_makes_an_audited_draft_with_derived_facets(session, seller):
    offering = _create(session, seller, trial_days=14, trial_credits=50)
    session.commit()

    assert offering.status == OfferingStatus.DRAFT.value
    assert offering.slug == "deal-desk-bot"
    assert sorted((f.group, f.value) for f in offering.facets) == [
        ("capability", "summarization"), ("category", "agents"), ("outcome", "save-time"),
        ("pricing", "free-trial"), ("publisher", "northwind-ai"), ("role", "sales"),
    ]
    assert _audit_actions(session, offering.id) == ["offering.created"]


def test_create_offering_generates_a_free_slug_when_the_name_is_taken(session, seller):
    first = _create(session, seller)
    second = _create(session, seller)

    assert (first.slug, second.slug) == ("deal-desk-bot", "deal-desk-bot-2")


def test_an_explicit_duplicate_slug_is_refused(session, seller):
    _create(session, seller, slug="memo-bot")
    session.commit()

    with pytest.raises(OfferingError) as error:
        _create(session, seller, name="Other", slug="memo-bot")

    assert error.value.field == "slug"


def test_a_malformed_slug_is_refused(session, seller):
    for slug in ["Has Space", "trailing-", "a--b", "ünï", "a_b", "x" * 141]:
        with pytest.raises(OfferingError) as error:
            _create(session, seller, slug=slug)

        assert (slug, error.value.field) == (slug, "slug")
    assert session.scalar(select(func.count()).select_from(Offering).where(Offering.name == "Deal Desk Bot")) == 0


def test_markup_in_the_name_is_refused(session, seller):
    for name in ["<b>Bold</b> bot", "Bot <script>", "Fish &amp; chips", "a > b"]:
        with pytest.raises(OfferingError) as error:
            _create(session, seller, name=name)

        assert (name, error.value.field) == (name, "name")
    assert session.scalar(select(func.count()).select_from(Offering).where(Offering.summary == "Drafts deal memos.")) == 0


def test_facet_values_outside_the_vocabulary_are_refused(session, seller):
    with pytest.raises(OfferingError) as error:
        _create(session, seller, facets={"role": ["sales", "astronaut"]})

    assert error.value.field == "role"


def test_unknown_category_is_refused(session, seller):
    with pytest.raises(OfferingError) as error:
        _create(session, seller, category="widgets")

    assert error.value.field == "category"


def test_trial_credits_without_trial_days_are_refused(session, seller):
    with pytest.raises(OfferingError) as error:
        _create(session, seller, trial_days=0, trial_credits=10)

    assert error.value.field == "trial_credits"


def test_a_new_publisher_gets_its_publisher_facet_value(session, seller):
    org = make_org(session, owner=seller, name="Acme Agents")
    session.commit()

    offering = _create(session, seller, publisher=org)

    assert ("publisher", "acme-agents") in {(f.group, f.value) for f in offering.facets}
    assert session.scalar(
        select(FacetValue.label).where(FacetValue.group == "publisher", FacetValue.slug == "acme-agents")
    ) == "Acme Agents"


def test_only_members_of_the_publisher_can_create_for_it(session, seller):
    outsider = make_user(session, roles=["buyer", "seller"])
    session.commit()

    with pytest.raises(OfferingNotFound):
        _create(session, seller, actor=outsider)


def test_users_without_the_seller_role_cannot_create(session, buyer):
    org = make_org(session, owner=buyer, name="Buyer Team")
    session.commit()

    with pytest.raises(OfferingError):
        _create(session, buyer, publisher=org, actor=buyer)


def test_update_offering_changes_fields_and_facets_and_is_audited(session, seller):
    offering = _create(session, seller)
    session.commit()

    svc.update_offering(
        session, offering=offering, actor=seller, name="Deal Desk Pro", trial_days=7,
        facets={"outcome": ["grow-pipeline"], "role": [], "capability": [], "pricing": ["subscription"]},
    )
    session.commit()

    assert offering.name == "Deal Desk Pro"
    assert sorted((f.group, f.value) for f in offering.facets) == [
        ("category", "agents"), ("outcome", "grow-pipeline"), ("pricing", "free-trial"),
        ("pricing", "subscription"), ("publisher", "northwind-ai"),
    ]
    assert _audit_actions(session, offering.id) == ["offering.created", "offering.updated"]
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "offering.updated"))
    assert json.loads(event.data_json) == {"fields": ["facets", "name", "trial_days"]}


def test_an_invalid_update_changes_nothing(session, seller):
    offering = _create(session, seller)
    session.commit()

    with pytest.raises(OfferingError):
        svc.update_offering(session, offering=offering, actor=seller, summary="Fine", name="<i>x</i>")
    session.rollback()

    assert (offering.name, offering.summary) == ("Deal Desk Bot", "Drafts deal memos.")


def test_the_slug_of_a_published_offering_cannot_change(session, seller, operator):
    offering = _ready(session, seller)
    svc.submit_for_review(session, offering=offering, actor=seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()

    with pytest.raises(OfferingError) as error:
        svc.update_offering(session, offering=offering, actor=seller, slug="new-address")

    assert error.value.field == "slug"


def test_versions_must_increase(session, seller, configured_langflow):
    offering = _create(session, seller)
    svc.add_version(session, offering=offering, actor=seller, version="1.2.0", changelog="",
                    runtime_kind="builtin", runtime_ref="support-faq")
    session.commit()

    for version in ["1.2.0", "1.1.9", "0.9.0"]:
        with pytest.raises(OfferingError) as error:
            svc.add_version(session, offering=offering, actor=seller, version=version, changelog="",
                            runtime_kind="builtin", runtime_ref="support-faq")
        assert error.value.field == "version"
    added = svc.add_version(session, offering=offering, actor=seller, version="1.10.0", changelog="Tens.",
                            runtime_kind="langflow", runtime_ref=FLOW_ID)

    assert added.version == "1.10.0"
    assert svc.latest_version(offering).version == "1.10.0"
    assert svc.next_version(offering) == "1.11.0"


def test_a_version_that_is_not_semver_is_refused(session, seller):
    offering = _create(session, seller)

    for version in ["1.0", "v1.0.0", "1.0.0-beta", "01.0.0", ""]:
        with pytest.raises(OfferingError) as error:
            svc.add_version(session, offering=offering, actor=seller, version=version, changelog="",
                            runtime_kind="builtin", runtime_ref="support-faq")

        assert (version, error.value.field) == (version, "version")
    assert offering.versions == []


def _plan(session, offering, seller, **overrides):
    values = dict(offering=offering, actor=seller, tier="starter", name="Starter", price_minor=2900, currency="usd",
                  included_credits=200, credits_per_run=2, max_runs_per_period=300, features="Email support\n\n  API  ")
    values.update(overrides)
    return svc.set_plan(session, **values)


def test_set_plan_creates_then_updates_the_tier_with_a_stable_sku(session, seller):
    offering = _create(session, seller)

    plan = _plan(session, offering, seller)
    sku = plan.sku
    again = _plan(session, offering, seller, price_minor=3900, name="Starter+")
    session.commit()

    assert again.id == plan.id
    assert (sku, again.sku) == ("DEAL-DESK-BOT-STARTER", "DEAL-DESK-BOT-STARTER")
    assert (again.price_minor, again.currency, again.name, again.features) == (3900, "USD", "Starter+",
                                                                               "Email support\nAPI")
    assert _audit_actions(session, offering.id) == ["offering.created", "offering.plan_created",
                                                    "offering.plan_updated"]


def test_invalid_plans_are_refused_and_create_nothing(session, seller):
    offering = _create(session, seller)
    session.commit()
    cases = [
        ({"price_minor": -1}, "price_minor"), ({"currency": "XYZ"}, "currency"), ({"currency": "US"}, "currency"),
        ({"included_credits": -5}, "included_credits"), ({"credits_per_run": -1}, "credits_per_run"),
        ({"max_runs_per_period": 0}, "max_runs_per_period"), ({"tier": "gold"}, "tier"),
        ({"name": "<b>x</b>"}, "name"),
    ]

    for overrides, field in cases:
        with pytest.raises(OfferingError) as error:
            _plan(session, offering, seller, **overrides)
        session.rollback()

        assert (overrides, error.value.field) == (overrides, field)
    assert session.scalar(select(func.count()).select_from(Plan).where(Plan.offering_id == offering.id)) == 0


def _ready(session, seller):
    offering = _create(session, seller)
    svc.add_version(session, offering=offering, actor=seller, version="1.0.0", changelog="",
                    runtime_kind="builtin", runtime_ref="support-faq")
    _plan(session, offering, seller)
    session.commit()
    return offering


def test_submit_needs_a_description_a_version_and_a_plan(session, seller):
    offering = _create(session, seller, description_md="")
    session.commit()

    with pytest.raises(OfferingError) as error:
        svc.submit_for_review(session, offering=offering, actor=seller)

    assert str(error.value) == "Before submitting: write a description; add a version; add at least one plan."
    assert offering.status == OfferingStatus.DRAFT.value


def test_review_workflow_submit_reject_resubmit_approve_archive(session, seller, operator):
    offering = _ready(session, seller)

    svc.submit_for_review(session, offering=offering, actor=seller)
    assert offering.status == "in_review"
    svc.reject(session, offering=offering, actor=operator, reason="Say which CRMs it supports.")
    assert (offering.status, offering.review_note) == ("draft", "Say which CRMs it supports.")
    svc.submit_for_review(session, offering=offering, actor=seller)
    assert (offering.status, offering.review_note) == ("in_review", None)
    svc.approve(session, offering=offering, actor=operator)
    assert offering.status == "published" and offering.published_at is not None
    svc.archive(session, offering=offering, actor=seller)
    session.commit()

    assert offering.status == "archived"
    assert _audit_actions(session, offering.id)[-5:] == [
        "offering.submitted", "offering.rejected", "offering.submitted", "offering.approved", "offering.archived",
    ]


def test_only_operators_approve_or_reject(session, seller):
    offering = _ready(session, seller)
    svc.submit_for_review(session, offering=offering, actor=seller)
    session.commit()

    with pytest.raises(OfferingError):
        svc.approve(session, offering=offering, actor=seller)
    with pytest.raises(OfferingError):
        svc.reject(session, offering=offering, actor=seller, reason="no")

    assert offering.status == "in_review"


def test_reject_needs_a_reason(session, seller, operator):
    offering = _ready(session, seller)
    svc.submit_for_review(session, offering=offering, actor=seller)
    session.commit()

    with pytest.raises(OfferingError) as error:
        svc.reject(session, offering=offering, actor=operator, reason="   ")

    assert error.value.field == "reason"
    assert offering.status == "in_review"


def test_approve_refuses_an_offering_that_is_not_in_review(session, seller, operator):
    offering = _ready(session, seller)

    with pytest.raises(OfferingError):
        svc.approve(session, offering=offering, actor=operator)

    assert offering.status == "draft"


def test_get_offering_for_seller_hides_other_publishers(session, seller, operator):
    other = make_offering(session, publisher=make_org(session, owner=operator, name="Other Pub"))
    mine = _create(session, seller)
    session.commit()

    assert svc.get_offering_for_seller(session, user=seller, offering_id=mine.id) is mine
    with pytest.raises(OfferingNotFound):
        svc.get_offering_for_seller(session, user=seller, offering_id=other.id)
    with pytest.raises(OfferingNotFound):
        svc.get_offering_for_seller(session, user=seller, offering_id=10_000)


def test_another_publisher_cannot_change_an_offering(session, seller, operator):
    theirs = make_offering(session, publisher=make_org(session, owner=operator, name="Other Pub"),
                           status=OfferingStatus.DRAFT.value)
    session.commit()

    with pytest.raises(OfferingNotFound):
        svc.update_offering(session, offering=theirs, actor=seller, name="Mine now")
    with pytest.raises(OfferingNotFound):
        svc.add_version(session, offering=theirs, actor=seller, version="9.0.0", changelog="",
                        runtime_kind="builtin", runtime_ref="x")
    with pytest.raises(OfferingNotFound):
        svc.submit_for_review(session, offering=theirs, actor=seller)
    session.rollback()

    assert session.scalar(select(func.count()).select_from(OfferingVersion)
                          .where(OfferingVersion.offering_id == theirs.id)) == 1
    assert theirs.name != "Mine now" and theirs.status == "draft"


def test_render_description_keeps_markdown_and_drops_scripts():
    html = svc.render_description("# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))")

    assert html.startswith("<h2>Title</h2>")
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html
