"""Names cannot spoof: text-direction controls and invisible characters are refused in offering names
and summaries, plan names and organization names, with the field named, and nothing is saved."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.models import Offering, Organization, Plan
from app.services import offerings as svc
from app.services import organizations, tokens
from app.services.text_rules import SPOOFING_CHARACTERS, TextRuleError, refuse_spoofing_characters
from tests.conftest import login
from tests.seller.test_seller_pages import CREATE_FORM, PLANS_FORM, _draft, _field_error, _northwind

SPOOFERS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
            "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.fixture
def auth_for(session):
    def make(user):
        _, secret = tokens.create_token(session, user=user, name="tests")
        session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return make


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_the_rule_refuses_exactly_the_listed_characters():
    assert sorted(SPOOFING_CHARACTERS) == sorted(SPOOFERS)
    for char in SPOOFERS:
        with pytest.raises(TextRuleError) as caught:
            refuse_spoofing_characters(f"Acme{char}Bot", field="name")
        assert (caught.value.field, caught.value.status) == ("name", 422)
        assert f"U+{ord(char):04X}" in caught.value.message
    for fine in ["Acme Bot", "Café · Ünïcödé", "ひらがな", "عربي", "Emoji 🤖", "", None]:
        assert refuse_spoofing_characters(fine, field="name") == fine


def test_the_organization_service_refuses_a_spoofed_name(session, seller):
    before = _count(session, Organization)

    with pytest.raises(organizations.OrganizationError) as caught:
        organizations.create_organization(session, user=seller, name="Northwind\u202eIA")

    assert (caught.value.field, caught.value.status) == ("name", 422)
    assert "U+202E" in caught.value.message
    session.rollback()
    assert _count(session, Organization) == before


@pytest.mark.parametrize("char", ["\u202e", "\u2067", "\u200b", "\ufeff"])
def test_the_api_refuses_a_spoofed_organization_name_naming_the_field(client, session, seller, auth_for, char):
    before = _count(session, Organization)

    response = client.post("/api/organizations/", json={"name": f"Team{char}A"}, headers=auth_for(seller))

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    [error] = response.get_json()["errors"]
    assert error["field"] == "name" and f"U+{ord(char):04X}" in error["message"]
    assert _count(session, Organization) == before


def test_the_api_refuses_spoofed_offering_names_summaries_and_plan_names(client, session, seller, auth_for):
    headers = auth_for(seller)
    offering = _draft(session, seller)
    publisher_id = offering.publisher_id
    before = (_count(session, Offering), _count(session, Plan))

    created = client.post("/api/offerings/", json={
        "publisher_id": publisher_id, "name": "Quill\u202ewort", "summary": "Reads\u200b ledgers.",
        "category": "agents"}, headers=headers)
    renamed = client.patch(f"/api/offerings/{offering.id}", json={"summary": "Writes\u2066 memos."}, headers=headers)
    plan = client.put(f"/api/offerings/{offering.id}/plans/starter", json={
        "name": "Star\u200dter", "price_minor": 1900, "currency": "USD"}, headers=headers)

    assert created.status_code == 422
    assert sorted(e["field"] for e in created.get_json()["errors"]) == ["name", "summary"]
    assert renamed.status_code == 422 and renamed.get_json()["errors"][0]["field"] == "summary"
    assert plan.status_code == 422 and plan.get_json()["errors"][0]["field"] == "name"
    assert (_count(session, Offering), _count(session, Plan)) == before
    session.expire_all()
    assert session.get(Offering, offering.id).summary == "Writes memos."


@pytest.mark.parametrize("field_id, value", [("name", "Deal\u202eDesk"), ("summary", "Drafts\u2060 memos.")])
def test_the_seller_form_shows_the_error_beside_the_field_and_saves_nothing(client, session, seller, field_id, value):
    login(client, seller)
    before = _count(session, Offering)

    response = client.post("/seller/offerings/create",
                           data={**CREATE_FORM, "publisher_id": _northwind(session, seller).id, field_id: value})

    assert response.status_code == 400
    assert "it can make this text look like something else" in _field_error(response.get_data(as_text=True), field_id)
    assert _count(session, Offering) == before


def test_the_plans_form_refuses_a_spoofed_plan_name(client, session, seller):
    offering = _draft(session, seller)
    login(client, seller)
    before = _count(session, Plan)

    response = client.post(f"/seller/offerings/{offering.id}/plans", data={**PLANS_FORM, "pro-name": "Pro\u202e"})

    assert response.status_code == 400
    assert "U+202E" in _field_error(response.get_data(as_text=True), "pro-name")
    assert _count(session, Plan) == before


def test_the_publisher_form_refuses_a_spoofed_organization_name(client, session, seller):
    login(client, seller)
    before = _count(session, Organization)

    client.post("/seller/publishers/create", data={"name": "Acme\u2068 Labs"})

    assert _count(session, Organization) == before


@pytest.mark.parametrize("field,value", [("name", "Memo\u202eWriter"), ("summary", "Writes\u200bmemos.")])
def test_the_offerings_service_refuses_spoofed_names_and_summaries(session, seller, field, value):
    before = _count(session, Offering)
    fields = {"name": "Memo Writer", "summary": "Writes memos.", field: value}

    with pytest.raises(svc.OfferingError) as caught:
        svc.create_offering(session, publisher=_northwind(session, seller), actor=seller, description_md="Memos.",
                            category="agents", facets={}, **fields)

    assert (caught.value.field, caught.value.status) == (field, 422)
    session.rollback()
    assert _count(session, Offering) == before


def test_the_offerings_service_refuses_a_spoofed_plan_name_and_an_update(session, seller):
    offering = _draft(session, seller)
    plans_before = _count(session, Plan)

    with pytest.raises(svc.OfferingError) as plan_error:
        svc.set_plan(session, offering=offering, actor=seller, tier="pro", name="Pro\u2066", price_minor=900,
                     currency="USD", included_credits=0, credits_per_run=1, max_runs_per_period=None)
    session.rollback()
    with pytest.raises(svc.OfferingError) as update_error:
        svc.update_offering(session, offering=session.get(Offering, offering.id), actor=seller,
                            name="Memo\u200dWriter")
    session.rollback()

    assert (plan_error.value.field, plan_error.value.status) == ("name", 422)
    assert (update_error.value.field, update_error.value.status) == ("name", 422)
    assert _count(session, Plan) == plans_before
    assert session.get(Offering, offering.id).name == "Memo Writer"


def test_an_organization_made_through_identity_refuses_a_spoofed_name(session, seller):
    from app.services import identity

    with pytest.raises(identity.IdentityError) as caught:
        identity.create_organization(session, name="Acme\ufeffCorp", owner=seller)
    assert (caught.value.field, caught.value.status) == ("name", 422)
