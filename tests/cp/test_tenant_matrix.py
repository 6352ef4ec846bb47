"""Tenant isolation: a member of another organization gets 404 on every organization-scoped endpoint,
exactly as for something that does not exist, and nothing changes."""
import pytest
from sqlalchemy import func, select

from app.models import ApiKey, AuditEvent, ConnectorBinding, Hold, Instance, Membership, Wallet
from app.services import billing, connectors
from tests.factories import make_offering, make_org, make_user


@pytest.fixture
def tenants(session, instance_with_key):
    """Organization A with an instance, key, binding and funded wallet; an outsider who owns organization B."""
    owner = make_user(session, roles=("buyer", "seller"))
    member = make_user(session)
    org = make_org(session, owner=owner)
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    offering = make_offering(session, publisher=org, status="draft")
    instance, key, _ = instance_with_key(organization=org, owner=owner, offering=offering)
    binding = connectors.create_binding(session, instance=instance, actor=owner, kind="slack", config={},
                                        secret="xoxb-secret")
    billing.grant_credits(session, wallet=billing.wallet_for_organization(session, org.id), amount=50,
                          origin="purchase")
    outsider = make_user(session, roles=("buyer", "seller"))
    make_org(session, owner=outsider)
    session.commit()
    return {"org": org.id, "owner": owner, "member": member.id, "offering": offering.id, "instance": instance.id,
            "key": key.id, "binding": binding.id, "outsider": outsider}


ORG_SCOPED = [
    ("get", "/api/organizations/{org}", None),
    ("get", "/api/organizations/{org}/members/", None),
    ("post", "/api/organizations/{org}/members/", {"email": "x@example.test"}),
    ("patch", "/api/organizations/{org}/members/{member}", {"role": "admin"}),
    ("delete", "/api/organizations/{org}/members/{member}", None),
    ("get", "/api/organizations/{org}/offerings", None),
    ("get", "/api/organizations/{org}/earnings", None),
    ("get", "/api/organizations/{org}/earnings/2026-12", None),
    ("get", "/api/organizations/{org}/payouts", None),
    ("get", "/api/offerings/{offering}", None),
    ("patch", "/api/offerings/{offering}", {"name": "Mine now"}),
    ("post", "/api/offerings/{offering}/versions", {"version": "2.0.0", "runtime_ref": "x"}),
    ("put", "/api/offerings/{offering}/plans/pro", {"name": "Pro", "price_minor": 1, "currency": "USD"}),
    ("post", "/api/offerings/{offering}/submit", None),
    ("post", "/api/offerings/{offering}/archive", None),
    ("get", "/api/instances/{instance}", None),
    ("post", "/api/instances/{instance}/suspend", None),
    ("post", "/api/instances/{instance}/resume", None),
    ("post", "/api/instances/{instance}/cancel", None),
    ("get", "/api/instances/{instance}/subscription", None),
    ("post", "/api/instances/{instance}/subscription/cancel-at-period-end", None),
    ("post", "/api/instances/{instance}/subscription/resume", None),
    ("get", "/api/instances/{instance}/subscription/plan-change?plan_id=1", None),
    ("post", "/api/instances/{instance}/subscription/plan", {"plan_id": 1}),
    ("get", "/api/instances/{instance}/entitlements", None),
    ("get", "/api/instances/{instance}/keys/", None),
    ("post", "/api/instances/{instance}/keys/", {"name": "stolen"}),
    ("post", "/api/instances/{instance}/keys/{key}/revoke", None),
    ("post", "/api/connectors/bindings/", {"instance_id": "{instance}", "kind": "slack", "secret": "s"}),
    ("post", "/api/connectors/bindings/{binding}/revoke/", None),
    ("get", "/api/audit/?organization_id={org}", None),
    ("get", "/api/wallets/me", "header"),
]


def _state(session):
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(AuditEvent)),
        tuple(session.scalars(select(Instance.status).order_by(Instance.id))),
        tuple(session.scalars(select(ApiKey.revoked_at).order_by(ApiKey.id))),
        tuple(session.scalars(select(ConnectorBinding.status).order_by(ConnectorBinding.id))),
        session.scalar(select(func.count()).select_from(Membership)),
        tuple(session.execute(select(Wallet.balance, Wallet.held).order_by(Wallet.id))),
    )


def test_a_member_of_another_organization_gets_404_everywhere_and_nothing_changes(client, session, auth_for,
                                                                                 tenants):
    ids = {k: v for k, v in tenants.items() if isinstance(v, int)}
    headers = auth_for(tenants["outsider"])
    before = _state(session)
    answers = {}

    for method, template, body in ORG_SCOPED:
        request_headers = dict(headers)
        if body == "header":
            request_headers["X-Organization-Id"] = str(tenants["org"])
            body = None
        if isinstance(body, dict):
            body = {k: (int(v.format(**ids)) if isinstance(v, str) and v.startswith("{") else v)
                    for k, v in body.items()}
        response = getattr(client, method)(template.format(**ids), json=body, headers=request_headers)
        answers[f"{method} {template}"] = (response.status_code, response.mimetype)

    assert answers == {f"{m} {t}": (404, "application/problem+json") for m, t, _ in ORG_SCOPED}
    assert _state(session) == before


def test_the_listings_of_an_outsider_do_not_show_the_other_organizations_things(client, session, auth_for,
                                                                                tenants):
    headers = auth_for(tenants["outsider"])

    instances = client.get(f"/api/instances/?organization_id={tenants['org']}", headers=headers).get_json()
    bindings = client.get(f"/api/connectors/bindings/?organization_id={tenants['org']}", headers=headers).get_json()
    all_instances = client.get("/api/instances/", headers=headers).get_json()

    assert instances["items"] == [] and bindings["items"] == [] and all_instances["items"] == []


def test_another_organizations_hold_is_not_found_for_its_key(client, session, tenants, instance_with_key,
                                                             service_headers):
    outsider = tenants["outsider"]
    other_org = make_org(session, owner=outsider)
    _, _, outsider_secret = instance_with_key(organization=other_org, owner=outsider,
                                              offering=make_offering(session, publisher=other_org))
    hold = client.post("/api/billing/authorize", json={"instance_id": tenants["instance"], "amount": 5,
                                                        "idempotency_key": "t-1"}, headers=service_headers).get_json()

    settle = client.post("/api/billing/settle", json={"hold_id": hold["id"], "amount": 5, "idempotency_key": "x"},
                         headers={"X-API-Key": outsider_secret})
    entitlements = client.get(f"/api/instances/{tenants['instance']}/entitlements",
                              headers={"X-API-Key": outsider_secret})

    assert (settle.status_code, entitlements.status_code) == (404, 404)
    assert session.scalar(select(Hold.status)) == "active"
