"""Idempotency keys over HTTP belong to their organization's wallet: one tenant can neither block
another's holds or runs with a key of the same name, nor learn which keys exist in another tenant."""
from sqlalchemy import func, select

from app.models import Hold, Run, Wallet
from app.services import billing
from tests.factories import make_offering, make_org, make_user
import pytest

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")

QUESTION = "How do I reset my password?"


def _tenant(session, instance_with_key, credits=100):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    offering = make_offering(session, publisher=org)
    instance, _, secret = instance_with_key(organization=org, owner=owner, offering=offering)
    wallet = billing.wallet_for_organization(session, org.id)
    billing.grant_credits(session, wallet=wallet, amount=credits, origin="purchase")
    session.commit()
    return instance, {"X-API-Key": secret}


def _balances(session, organization_id):
    session.expire_all()
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == organization_id))
    return wallet.balance, wallet.held


def test_a_tenant_cannot_block_another_tenants_next_run_with_the_gateways_key(client, session, instance_with_key):
    instance_a, as_a = _tenant(session, instance_with_key)
    instance_b, as_b = _tenant(session, instance_with_key)
    next_run = (session.scalar(select(func.max(Run.id))) or 0) + 1

    # the sequence from the review: A holds with the key the gateway will use for the next runs, and
    # releases; then B runs its own instance
    tried = []
    for run_id in range(next_run, next_run + 3):
        held = client.post("/api/billing/authorize", headers=as_a,
                           json={"instance_id": instance_a.id, "amount": 1, "idempotency_key": f"run:{run_id}"})
        if held.status_code == 201:
            client.post("/api/billing/release", headers=as_a, json={"hold_id": held.get_json()["id"]})
        tried.append(held)
    ran = client.post(f"/api/instances/{instance_b.id}/runs", headers={**as_b, "Prefer": "wait=30"}, json={"input": QUESTION})

    assert ran.status_code == 201, ran.get_json()
    assert ran.get_json()["status"] == "succeeded"
    assert _balances(session, instance_b.organization_id) == (100 - ran.get_json()["credits"], 0)
    assert [r.status_code for r in tried] == [422, 422, 422]
    assert tried[0].headers["Content-Type"] == "application/problem+json"
    assert tried[0].get_json()["errors"][0]["field"] == "idempotency_key"
    assert session.scalar(select(func.count()).select_from(Hold).where(Hold.instance_id == instance_a.id)) == 0
    assert _balances(session, instance_a.organization_id) == (100, 0)


def test_a_tenant_cannot_take_a_runs_settle_key(client, session, instance_with_key):
    instance, as_a = _tenant(session, instance_with_key)
    hold = client.post("/api/billing/authorize", headers=as_a,
                       json={"instance_id": instance.id, "amount": 10, "idempotency_key": "mine"}).get_json()

    settled = client.post("/api/billing/settle", headers=as_a,
                          json={"hold_id": hold["id"], "amount": 4, "idempotency_key": "run:1:settle"})

    assert settled.status_code == 422
    assert settled.get_json()["errors"][0]["field"] == "idempotency_key"
    assert _balances(session, instance.organization_id) == (100, 10)


def test_one_key_in_two_tenants_gives_two_independent_holds(client, session, instance_with_key, service_headers):
    instance_a, as_a = _tenant(session, instance_with_key)
    instance_b, as_b = _tenant(session, instance_with_key)

    held_a = client.post("/api/billing/authorize", headers=as_a,
                         json={"instance_id": instance_a.id, "amount": 30, "idempotency_key": "job-7"})
    held_b = client.post("/api/billing/authorize", headers=as_b,
                         json={"instance_id": instance_b.id, "amount": 40, "idempotency_key": "job-7"})
    held_by_gateway = client.post("/api/billing/authorize", headers=service_headers,
                                  json={"instance_id": instance_b.id, "amount": 40, "idempotency_key": "job-7"})

    assert (held_a.status_code, held_b.status_code, held_by_gateway.status_code) == (201, 201, 201)
    a, b = held_a.get_json(), held_b.get_json()
    assert a["id"] != b["id"] and held_by_gateway.get_json()["id"] == b["id"]  # B's replay, B's hold
    assert (a["amount"], b["amount"]) == (30, 40)

    # settle keys too: B settling with the key A already used is no conflict, and tells B nothing
    settled_a = client.post("/api/billing/settle", headers=as_a,
                            json={"hold_id": a["id"], "amount": 5, "idempotency_key": "done-7"})
    settled_b = client.post("/api/billing/settle", headers=as_b,
                            json={"hold_id": b["id"], "amount": 9, "idempotency_key": "done-7"})

    assert (settled_a.status_code, settled_b.status_code) == (200, 200)
    assert (settled_a.get_json()["captured"], settled_b.get_json()["captured"]) == (5, 9)
    assert _balances(session, instance_a.organization_id) == (95, 0)
    assert _balances(session, instance_b.organization_id) == (91, 0)
    assert billing.verify_ledger(session) == []


def test_a_reused_key_replays_the_stored_hold_of_the_same_wallet(client, session, instance_with_key):
    instance, as_a = _tenant(session, instance_with_key)
    body = {"instance_id": instance.id, "amount": 30, "idempotency_key": "job-1"}
    first = client.post("/api/billing/authorize", headers=as_a, json=body).get_json()
    client.post("/api/billing/settle", headers=as_a,
                json={"hold_id": first["id"], "amount": 12, "idempotency_key": "s"})

    again = client.post("/api/billing/authorize", headers=as_a, json=body)
    different = client.post("/api/billing/authorize", headers=as_a, json={**body, "amount": 31})

    assert again.status_code == 201
    assert (again.get_json()["id"], again.get_json()["status"], again.get_json()["captured"]) == (first["id"],
                                                                                                 "settled", 12)
    assert different.status_code == 409
    assert _balances(session, instance.organization_id) == (88, 0)
