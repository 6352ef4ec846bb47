"""Wallets and holds over HTTP: people read their current organization's wallet; runtimes hold, settle
and release credits (the gateway for any instance, an instance key for its own)."""
from sqlalchemy import func, select

from app.models import AuditEvent, Hold, LedgerEntry, Wallet
from app.services import billing
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user


def _funded(session, instance_with_key, credits=100):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    offering = make_offering(session, publisher=org)
    instance, key, secret = instance_with_key(organization=org, owner=owner, offering=offering)
    billing.grant_credits(session, wallet=billing.wallet_for_organization(session, org.id), amount=credits,
                          origin="purchase")
    session.commit()
    return owner, org, instance, secret


def _wallet(session, org_id):
    session.expire_all()
    return session.scalar(select(Wallet).where(Wallet.organization_id == org_id))


def test_wallet_me_is_the_current_organizations(client, session, auth_for, instance_with_key):
    owner, org, instance, secret = _funded(session, instance_with_key, credits=100)
    client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 30, "idempotency_key": "k1"},
                headers={"X-API-Key": secret})
    headers = auth_for(owner)

    personal = client.get("/api/wallets/me", headers=headers)
    team = client.get("/api/wallets/me", headers={**headers, "X-Organization-Id": str(org.id)})

    assert personal.get_json() == {"organization_id": owner.current_organization_id, "balance": 0, "held": 0,
                                   "available": 0, "low_balance_threshold": None}
    assert team.get_json() == {"organization_id": org.id, "balance": 100, "held": 30, "available": 70,
                               "low_balance_threshold": None}


def test_the_ledger_pages_with_a_cursor(client, session, auth_for):
    user = make_user(session)
    wallet = billing.wallet_for_organization(session, user.current_organization_id)
    for amount in (1, 2, 3, 4, 5):
        billing.grant_credits(session, wallet=wallet, amount=amount, origin="purchase")
    session.commit()
    headers = auth_for(user)

    first = client.get("/api/wallets/me/ledger?limit=2", headers=headers).get_json()
    second = client.get(f"/api/wallets/me/ledger?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()
    third = client.get(f"/api/wallets/me/ledger?limit=2&cursor={second['next_cursor']}", headers=headers).get_json()

    assert [e["amount"] for e in first["items"]] == [5, 4]
    assert [e["amount"] for e in second["items"]] == [3, 2]
    assert [e["amount"] for e in third["items"]] == [1] and third["next_cursor"] is None
    assert [e["balance_after"] for e in first["items"]] == [15, 10]


def test_authorize_settle_and_release_over_http(client, session, instance_with_key, service_headers):
    owner, org, instance, secret = _funded(session, instance_with_key, credits=100)
    key_headers = {"X-API-Key": secret}

    held = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 40,
                                                        "idempotency_key": "run-1", "ttl_seconds": 60},
                       headers=key_headers)
    retried = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 40,
                                                           "idempotency_key": "run-1", "ttl_seconds": 60},
                          headers=key_headers)
    hold_id = held.get_json()["id"]
    settled = client.post("/api/billing/settle", json={"hold_id": hold_id, "amount": 25, "idempotency_key": "s-1"},
                          headers=service_headers)
    settled_again = client.post("/api/billing/settle", json={"hold_id": hold_id, "amount": 25,
                                                              "idempotency_key": "s-1"}, headers=key_headers)

    assert held.status_code == 201 and retried.get_json()["id"] == hold_id
    assert (held.get_json()["status"], held.get_json()["amount"]) == ("active", 40)
    assert settled.status_code == 200
    assert (settled.get_json()["status"], settled.get_json()["captured"]) == ("settled", 25)
    assert settled_again.status_code == 200 and settled_again.get_json()["captured"] == 25
    wallet = _wallet(session, org.id)
    assert (wallet.balance, wallet.held) == (75, 0)
    assert session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.wallet_id == wallet.id)) == 75
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "hold")
                                   .order_by(AuditEvent.id)))
    assert actions == ["billing.hold_authorized", "billing.hold_settled"]
    labels = list(session.scalars(select(AuditEvent.actor_label).where(AuditEvent.target_type == "hold")
                                  .order_by(AuditEvent.id)))
    assert labels == [f"api-key:{secret[:14]}", "gateway"]

    second = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 10,
                                                          "idempotency_key": "run-2"}, headers=service_headers)
    released = client.post("/api/billing/release", json={"hold_id": second.get_json()["id"]}, headers=key_headers)
    assert released.status_code == 200 and released.get_json()["status"] == "released"
    assert (_wallet(session, org.id).balance, _wallet(session, org.id).held) == (75, 0)


def test_authorize_beyond_the_available_credits_is_402_and_leaves_nothing(client, session, instance_with_key):
    owner, org, instance, secret = _funded(session, instance_with_key, credits=10)
    entries_before = session.scalar(select(func.count()).select_from(LedgerEntry))

    response = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 11,
                                                            "idempotency_key": "too-much"},
                           headers={"X-API-Key": secret})

    assert response.status_code == 402
    body = response.get_json()
    assert (body["available"], body["requested"], body["errors"][0]["field"]) == (10, 11, "amount")
    assert session.scalar(select(func.count()).select_from(Hold)) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert (_wallet(session, org.id).balance, _wallet(session, org.id).held) == (10, 0)


def test_a_key_cannot_hold_for_another_instance_nor_settle_another_organizations_hold(
        client, session, instance_with_key, service_headers):
    _, org_a, instance_a, secret_a = _funded(session, instance_with_key)
    _, org_b, instance_b, secret_b = _funded(session, instance_with_key)
    hold_b = client.post("/api/billing/authorize", json={"instance_id": instance_b.id, "amount": 5,
                                                          "idempotency_key": "b-1"}, headers=service_headers)

    other_instance = client.post("/api/billing/authorize", json={"instance_id": instance_b.id, "amount": 5,
                                                                  "idempotency_key": "a-1"},
                                 headers={"X-API-Key": secret_a})
    other_hold = client.post("/api/billing/settle", json={"hold_id": hold_b.get_json()["id"], "amount": 5,
                                                           "idempotency_key": "a-s"}, headers={"X-API-Key": secret_a})
    other_release = client.post("/api/billing/release", json={"hold_id": hold_b.get_json()["id"]},
                                headers={"X-API-Key": secret_a})

    assert (other_instance.status_code, other_hold.status_code, other_release.status_code) == (404, 404, 404)
    assert session.scalar(select(Hold.status).where(Hold.id == hold_b.get_json()["id"])) == "active"
    assert (_wallet(session, org_b.id).balance, _wallet(session, org_b.id).held) == (100, 5)
    assert session.scalar(select(func.count()).select_from(Hold)) == 1


def test_people_cannot_move_credits_with_holds(client, session, auth_for, instance_with_key):
    owner, org, instance, _ = _funded(session, instance_with_key)
    login(client, owner)

    response = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 5,
                                                            "idempotency_key": "mine"})

    assert response.status_code == 403
    assert session.scalar(select(func.count()).select_from(Hold)) == 0


def test_a_malformed_amount_is_422_naming_the_field(client, session, instance_with_key, service_headers):
    _, _, instance, _ = _funded(session, instance_with_key)

    response = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 2.5,
                                                            "idempotency_key": "x"}, headers=service_headers)

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["amount"]
    assert session.scalar(select(func.count()).select_from(Hold)) == 0


def _counts(session) -> tuple[int, int, int]:
    return tuple(session.scalar(select(func.count()).select_from(model)) for model in (Hold, LedgerEntry, AuditEvent))


def test_every_hold_movement_is_audited_once_with_its_amounts(client, session, instance_with_key, service_headers):
    _, org, instance, secret = _funded(session, instance_with_key, credits=100)
    key_headers = {"X-API-Key": secret}

    first = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 40,
                                                         "idempotency_key": "run-1"}, headers=key_headers).get_json()
    client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 40, "idempotency_key": "run-1"},
                headers=key_headers)
    for _ in range(2):
        client.post("/api/billing/settle", json={"hold_id": first["id"], "amount": 55, "idempotency_key": "s-1"},
                    headers=service_headers)
    second = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 10,
                                                          "idempotency_key": "run-2"}, headers=service_headers)
    for _ in range(2):
        client.post("/api/billing/release", json={"hold_id": second.get_json()["id"]}, headers=key_headers)

    events = session.execute(select(AuditEvent.action, AuditEvent.actor_label, AuditEvent.target_id,
                                    AuditEvent.organization_id, AuditEvent.data_json)
                             .where(AuditEvent.target_type == "hold").order_by(AuditEvent.id)).all()
    hold_1, hold_2, label = str(first["id"]), str(second.get_json()["id"]), f"api-key:{secret[:14]}"
    assert [tuple(e) for e in events] == [
        ("billing.hold_authorized", label, hold_1, org.id,
         f'{{"amount": 40, "captured": 0, "instance_id": {instance.id}}}'),
        ("billing.hold_settled", "gateway", hold_1, org.id,
         f'{{"amount": 40, "captured": 40, "instance_id": {instance.id}}}'),
        ("billing.hold_authorized", "gateway", hold_2, org.id,
         f'{{"amount": 10, "captured": 0, "instance_id": {instance.id}}}'),
        ("billing.hold_released", label, hold_2, org.id,
         f'{{"amount": 10, "captured": 0, "instance_id": {instance.id}}}'),
    ]
    assert (_wallet(session, org.id).balance, _wallet(session, org.id).held) == (60, 0)


def test_the_gateway_holding_for_an_unknown_instance_is_404_and_writes_nothing(client, session, instance_with_key,
                                                                               service_headers):
    _, org, instance, _ = _funded(session, instance_with_key)
    before = _counts(session)

    response = client.post("/api/billing/authorize", json={"instance_id": instance.id + 1000, "amount": 5,
                                                            "idempotency_key": "nowhere"}, headers=service_headers)

    assert response.status_code == 404
    assert _counts(session) == before
    assert (_wallet(session, org.id).balance, _wallet(session, org.id).held) == (100, 0)


def test_holding_for_an_organization_without_a_wallet_yet_is_402_with_nothing_available(
        client, session, instance_with_key, service_headers):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    instance, _, _ = instance_with_key(organization=org, owner=owner, offering=make_offering(session, publisher=org))
    before = _counts(session)

    response = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 5,
                                                            "idempotency_key": "first"}, headers=service_headers)

    assert response.status_code == 402
    assert (response.get_json()["available"], response.get_json()["requested"]) == (0, 5)
    assert _counts(session) == before


def test_owners_set_the_low_balance_threshold_and_a_crossing_notifies(client, session, auth_for, instance_with_key,
                                                                       service_headers):
    # given: a funded organization with a member who is not an admin
    from app.models import Notification
    from app.services import organizations

    owner, org, instance, secret = _funded(session, instance_with_key, credits=100)
    member = make_user(session)
    organizations.add_member(session, organization_id=org.id, actor=owner, email=member.email)
    session.commit()
    as_owner = {**auth_for(owner), "X-Organization-Id": str(org.id)}
    as_member = {**auth_for(member), "X-Organization-Id": str(org.id)}

    # when: the member tries, a bad value is sent, then the owner sets 50
    refused = client.patch("/api/wallets/me", json={"low_balance_threshold": 50}, headers=as_member)
    invalid = client.patch("/api/wallets/me", json={"low_balance_threshold": -1}, headers=as_owner)
    set_ = client.patch("/api/wallets/me", json={"low_balance_threshold": 50}, headers=as_owner)

    # then
    assert refused.status_code == 403
    assert invalid.status_code == 422 and invalid.get_json()["errors"][0]["field"] == "low_balance_threshold"
    assert set_.status_code == 200
    assert set_.get_json() == {"organization_id": org.id, "balance": 100, "held": 0, "available": 100,
                               "low_balance_threshold": 50}
    assert _wallet(session, org.id).low_balance_threshold == 50

    # when: a run's settle takes the balance from 100 to 40
    hold = client.post("/api/billing/authorize", json={"instance_id": instance.id, "amount": 60,
                                                       "idempotency_key": "t1"}, headers={"X-API-Key": secret})
    client.post("/api/billing/settle", json={"hold_id": hold.get_json()["id"], "amount": 60, "idempotency_key": "s1"},
                headers={"X-API-Key": secret})

    # then: one notification; null switches it off
    messages = session.scalars(select(Notification.message).where(Notification.organization_id == org.id)).all()
    assert messages == ["Your credit balance fell below 50: 40 credits left."]
    off = client.patch("/api/wallets/me", json={"low_balance_threshold": None}, headers=as_owner)
    assert off.get_json()["low_balance_threshold"] is None and _wallet(session, org.id).low_balance_threshold is None
