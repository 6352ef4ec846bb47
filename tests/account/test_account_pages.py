"""Account pages: profile and settings, organization switch, My Agents, instance management, Try Free."""
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.models import (
    ApiKey, ConnectorBinding, Instance, InstanceStatus, KnowledgeDocument, MemberRole, Membership,
    PersonalAccessToken, Run, StoredSecret, TrialClaim, utcnow,
)
from app.services import identity, instances
from tests.conftest import login
from tests.factories import make_org, make_user
from tests.runtime.test_gateway import make_instance, wallet_of
import pytest

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")


def count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


# --- profile, settings, organizations --------------------------------------------------------------


def test_profile_shows_name_email_organizations_and_roles(buyer_client, session, buyer):
    team = make_org(session, owner=buyer, name="Acme Support")
    session.commit()

    page = buyer_client.get("/account/").get_data(as_text=True)

    assert "Bea Buyer" in page and "buyer@example.com" in page
    assert "Acme Support" in page and "Bea Buyer&#39;s workspace" in page
    assert page.count("<td>Owner</td>") == 2
    assert team.slug  # created


def test_changing_the_password_needs_the_current_one(buyer_client, session, buyer):
    old_hash = buyer.password_hash

    wrong = buyer_client.post("/account/settings/password", data={
        "current_password": "not-it-at-all", "new_password": "a-new-password-1", "confirm_password": "a-new-password-1"})
    session.expire_all()
    assert wrong.status_code == 400
    assert "Your current password is not right." in wrong.get_data(as_text=True)
    assert session.get(type(buyer), buyer.id).password_hash == old_hash

    right = buyer_client.post("/account/settings/password", data={
        "current_password": "demo-password-2026", "new_password": "a-new-password-1",
        "confirm_password": "a-new-password-1"})
    assert right.status_code == 303
    assert buyer_client.get("/account/settings").status_code == 200  # this session was kept
    assert identity.authenticate(session, email="buyer@example.com", password="a-new-password-1",
                                 remote_addr="t").id == buyer.id


def test_a_personal_access_token_is_shown_once_and_stored_as_a_hash(buyer_client, session, buyer):
    created = buyer_client.post("/account/settings/tokens", data={"name": "CI script", "expires_in_days": "30"})

    assert created.status_code == 201
    secret = re.search(r'id="new-token" type="text" readonly value="([^"]+)"', created.get_data(as_text=True)).group(1)
    token = session.scalar(select(PersonalAccessToken))
    assert token.name == "CI script" and secret.startswith(token.prefix) and secret not in token.token_hash
    assert secret not in buyer_client.get("/account/settings").get_data(as_text=True)
    assert buyer_client.post(f"/account/settings/tokens/{token.id}/revoke").status_code == 303
    session.expire_all()
    assert session.get(PersonalAccessToken, token.id).revoked_at is not None


def test_settings_with_single_sign_on_links_to_the_keycloak_account_console(make_app, demo, session, buyer):
    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER="https://sso.example.test/realms/market")
    client = app.test_client()
    login(client, buyer)

    page = client.get("/account/settings").get_data(as_text=True)

    assert 'href="https://sso.example.test/realms/market/account"' in page
    assert "Current password" not in page
    assert client.post("/account/settings/password", data={}).status_code == 404


def test_switching_organization_changes_what_the_account_pages_show(buyer_client, session, buyer):
    team = make_org(session, owner=buyer, name="Acme Support")
    session.commit()
    make_instance(session, buyer)  # in the personal workspace

    switched = buyer_client.post("/account/organization", data={"organization_id": team.id, "next": "/account/agents"})

    assert switched.status_code == 303 and switched.headers["Location"].endswith("/account/agents")
    session.expire_all()
    assert session.get(type(buyer), buyer.id).current_organization_id == team.id
    assert "No agents yet" in buyer_client.get("/account/agents").get_data(as_text=True)


def test_switching_to_an_organization_you_are_not_in_is_refused(buyer_client, session, buyer):
    stranger = make_user(session)
    other = make_org(session, owner=stranger, name="Not Yours")
    session.commit()
    before = buyer.current_organization_id

    response = buyer_client.post("/account/organization", data={"organization_id": other.id}, follow_redirects=True)

    assert "You are not a member of that organization." in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(type(buyer), buyer.id).current_organization_id == before


# --- My Agents and instances -----------------------------------------------------------------------


def test_my_agents_lists_plan_status_trial_days_and_credits_used(buyer_client, session, buyer):
    trial = make_instance(session, buyer, is_trial=True, trial_ends_at=utcnow() + timedelta(days=3, hours=2))
    buyer_client.post(f"/api/instances/{trial.id}/runs", json={"input": "How do I reset my password?"}, headers={"Prefer": "wait=30"})

    page = buyer_client.get("/account/agents").get_data(as_text=True)

    assert "Customer Support Agent" in page and "Starter plan" in page
    assert "4 days left" in page
    assert re.search(r"Credits used this period</dt><dd>3</dd>", page)
    assert f'/account/instances/{trial.id}#console' in page and f'/account/instances/{trial.id}/cancel' in page


def test_my_agents_does_not_show_another_organizations_instances(client, session, buyer):
    make_instance(session, buyer)
    outsider = make_user(session)
    session.commit()
    login(client, outsider)

    page = client.get("/account/agents").get_data(as_text=True)

    assert "Customer Support Agent" not in page and "No agents yet" in page


def test_cancel_asks_for_confirmation_then_cancels(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    confirm = buyer_client.get(f"/account/instances/{instance.id}/cancel")
    session.expire_all()
    assert "Yes, cancel this instance" in confirm.get_data(as_text=True)
    assert session.get(Instance, instance.id).status == InstanceStatus.ACTIVE.value

    done = buyer_client.post(f"/account/instances/{instance.id}/cancel")

    assert done.status_code == 303
    session.expire_all()
    assert session.get(Instance, instance.id).status == InstanceStatus.CANCELLED.value


def test_an_owner_suspends_and_resumes_from_the_instance_page(buyer_client, session, buyer):
    # given: an active instance of the buyer's organization
    instance = make_instance(session, buyer)

    # when: suspended from its page
    suspended = buyer_client.post(f"/account/instances/{instance.id}/suspend", follow_redirects=True)

    # then: it says so, offers to resume, and the run console refuses
    page = suspended.get_data(as_text=True)
    assert "is suspended: it cannot run until it is resumed" in page
    assert f'action="/account/instances/{instance.id}/resume"' in page and ">Resume</button>" in page
    session.expire_all()
    assert session.get(Instance, instance.id).status == InstanceStatus.SUSPENDED.value

    # when: resumed
    resumed = buyer_client.post(f"/account/instances/{instance.id}/resume", follow_redirects=True)

    # then
    assert "is active again." in resumed.get_data(as_text=True)
    session.expire_all()
    assert session.get(Instance, instance.id).status == InstanceStatus.ACTIVE.value


def test_a_plain_member_cannot_suspend_and_is_told_why(client, session, buyer):
    # given: a member (not owner or admin) of a team where the buyer runs an agent
    from app.services import organizations

    team = make_org(session, owner=buyer)
    member = make_user(session)
    organizations.add_member(session, organization_id=team.id, actor=buyer, email=member.email)
    buyer.current_organization_id = member.current_organization_id = team.id
    session.commit()
    instance = make_instance(session, buyer)
    login(client, member)

    # when
    page = client.post(f"/account/instances/{instance.id}/suspend", follow_redirects=True).get_data(as_text=True)

    # then: refused, nothing changed, and no suspend button is offered
    assert "Only an owner or admin of the organization can do that." in page
    assert f'/account/instances/{instance.id}/suspend"' not in page
    session.expire_all()
    assert session.get(Instance, instance.id).status == InstanceStatus.ACTIVE.value

    # when: an owner suspends it, the member is told whom to ask rather than offered a button
    instances.suspend_instance(session, instance=session.get(Instance, instance.id), actor=buyer)
    session.commit()
    page = client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert "Ask an owner or admin of your organization to resume it." in page
    assert f'/account/instances/{instance.id}/resume"' not in page


def test_an_api_key_is_shown_once_and_can_be_revoked(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    created = buyer_client.post(f"/account/instances/{instance.id}/keys", data={"name": "Help desk"})

    assert created.status_code == 201
    secret = re.search(r'id="new-key" type="text" readonly value="([^"]+)"', created.get_data(as_text=True)).group(1)
    key = session.scalar(select(ApiKey))
    assert secret.startswith(key.prefix) and secret not in key.key_hash
    assert secret not in buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    api = buyer_client.application.test_client()
    assert api.post(f"/api/instances/{instance.id}/runs", json={"input": "password reset?"},
                    headers={"Prefer": "wait=30", "X-API-Key": secret}).status_code == 201

    assert buyer_client.post(f"/account/instances/{instance.id}/keys/{key.id}/revoke").status_code == 303
    assert api.post(f"/api/instances/{instance.id}/runs", json={"input": "password reset?"},
                    headers={"Prefer": "wait=30", "X-API-Key": secret}).status_code == 401


def test_a_plain_member_cannot_create_keys(client, session, buyer):
    instance = make_instance(session, buyer)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=instance.organization_id, role=MemberRole.MEMBER.value))
    session.commit()
    login(client, member)

    page = client.get(f"/account/instances/{instance.id}")
    refused = client.post(f"/account/instances/{instance.id}/keys", data={"name": "Mine"})

    assert page.status_code == 200 and "Only owners and admins of the organization can create" in page.get_data(as_text=True)
    assert refused.status_code == 403
    assert "Only an owner or admin of the organization can create API keys." in refused.get_data(as_text=True)
    assert count(session, ApiKey) == 0


def test_a_connector_is_added_with_an_encrypted_secret_and_revoked(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    added = buyer_client.post(f"/account/instances/{instance.id}/connectors", data={
        "kind": "zendesk", "settings": "subdomain = acme\nregion = eu", "secret": "zd-token-123"})

    assert added.status_code == 303
    binding = session.scalar(select(ConnectorBinding))
    assert (binding.kind, binding.status) == ("zendesk", "active")
    assert binding.secret_ref and b"zd-token-123" not in session.scalar(select(StoredSecret.ciphertext))
    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert "region = eu, subdomain = acme" in page and "zd-token-123" not in page

    assert buyer_client.post(f"/account/instances/{instance.id}/connectors/{binding.id}/revoke").status_code == 303
    session.expire_all()
    assert session.get(ConnectorBinding, binding.id).status == "revoked"


def test_a_connector_setting_that_looks_like_a_password_is_refused(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = buyer_client.post(f"/account/instances/{instance.id}/connectors", data={
        "kind": "hubspot", "settings": "api_key = hs-123"})

    assert response.status_code == 400
    assert "Put credentials in the secret field, not in the settings." in response.get_data(as_text=True)
    assert count(session, ConnectorBinding) == 0


def test_knowledge_documents_feed_the_knowledge_base_assistant(buyer_client, session, buyer):
    instance = make_instance(session, buyer, slug="knowledge-base-assistant")
    buyer_client.post(f"/account/instances/{instance.id}/documents", data={
        "title": "Travel policy", "body": "Book travel in the portal.\n\nHotels up to 150 EUR per night are fine."})
    buyer_client.post(f"/account/instances/{instance.id}/documents", data={
        "title": "Security", "body": "Rotate API keys every 90 days."})

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": "hotel price per night"}, headers={"Prefer": "wait=30"})

    assert response.status_code == 201
    assert response.get_json()["output"].startswith("Best match \u2014 \u201cTravel policy\u201d")
    document = session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.title == "Security"))
    assert buyer_client.post(f"/account/instances/{instance.id}/documents/{document.id}/delete").status_code == 303
    assert count(session, KnowledgeDocument) == 1


# --- Try Free -------------------------------------------------------------------------------------


def test_try_free_creates_a_trial_and_lands_on_its_console(buyer_client, session, buyer):
    response = buyer_client.post("/account/trials/customer-support-agent")

    instance = session.scalar(select(Instance))
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/account/instances/{instance.id}#console")
    assert instance.is_trial and instance.organization_id == buyer.current_organization_id
    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert "Your 14-day free trial of Customer Support Agent has started with 50 credits." in page
    assert "Run console" in page


def test_try_free_twice_gives_a_clear_message_and_no_second_trial(buyer_client, session, buyer):
    buyer_client.post("/account/trials/customer-support-agent")
    balance = wallet_of(session, session.scalar(select(Instance))).balance

    again = buyer_client.post("/account/trials/customer-support-agent")

    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "You have already used the free trial of this offering." in page
    assert "Open your trial instance" in page
    assert count(session, Instance) == 1 and count(session, TrialClaim) == 1
    assert wallet_of(session, session.scalar(select(Instance))).balance == balance


def test_try_free_signed_out_signs_in_then_offers_the_trial_again(client, session, demo):
    response = client.post("/account/trials/customer-support-agent")

    assert response.status_code == 302
    assert "/auth/login?next=/account/trials/customer-support-agent" in response.headers["Location"]
    signed_in = client.post("/auth/login", data={"email": "buyer@example.com", "password": "demo-password-2026",
                                                 "next": "/account/trials/customer-support-agent"})
    assert signed_in.headers["Location"].endswith("/account/trials/customer-support-agent")
    offer = client.get("/account/trials/customer-support-agent").get_data(as_text=True)
    assert "Start my free trial" in offer
    assert count(session, Instance) == 0
    assert client.post("/account/trials/customer-support-agent").status_code == 303
    assert count(session, Instance) == 1


def test_try_free_of_an_offering_without_a_trial_says_so(buyer_client, session, buyer):
    response = buyer_client.post("/account/trials/sales-outreach-agent")

    assert response.status_code == 409
    assert "This offering has no free trial." in response.get_data(as_text=True)
    assert count(session, Instance) == 0


def test_instance_pages_of_another_organization_are_404(client, session, buyer):
    instance = make_instance(session, buyer)
    outsider = make_user(session)
    session.commit()
    login(client, outsider)

    for url in (f"/account/instances/{instance.id}", f"/account/instances/{instance.id}/cancel"):
        assert client.get(url).status_code == 404
    for url in (f"/account/instances/{instance.id}/keys", f"/account/instances/{instance.id}/connectors",
                f"/account/instances/{instance.id}/documents", f"/account/instances/{instance.id}/cancel"):
        assert client.post(url, data={"name": "x", "kind": "zendesk", "title": "t", "body": "b"}).status_code == 404
    session.expire_all()
    assert session.get(Instance, instance.id).status == "active"
    assert count(session, ApiKey) == count(session, ConnectorBinding) == count(session, KnowledgeDocument) == 0
    assert count(session, Run) == 0


def test_documents_are_capped_in_total_size_so_a_run_stays_fast(buyer_client, session, buyer, monkeypatch):
    from app.services import knowledge

    monkeypatch.setattr(knowledge, "MAX_TOTAL_CHARS", 60)
    instance = make_instance(session, buyer, slug="knowledge-base-assistant")
    first = buyer_client.post(f"/account/instances/{instance.id}/documents", data={"title": "A", "body": "x" * 50})

    refused = buyer_client.post(f"/account/instances/{instance.id}/documents", data={"title": "B", "body": "y" * 11})

    assert first.status_code == 303
    assert refused.status_code == 409
    assert "An instance holds at most 60 characters of documents; 10 are left." in refused.get_data(as_text=True)
    assert count(session, KnowledgeDocument) == 1
