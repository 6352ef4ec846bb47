"""A subscription through the API: read it, end it at the period's end and resume it, change its plan,
and cancel now with the refund of the unused period, with the rules of the instance page."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Instance, Membership, Order, Plan, Refund
from tests.account.test_subscription_pages import PLAN, _checkout
from tests.factories import make_user


def _plan(session, sku: str) -> Plan:
    return session.scalar(select(Plan).where(Plan.sku == sku))


def _subscribed(buyer_client, session, buyer, auth_for):
    """The buyer's paid Pro subscription (card saved), their API headers, and its subscription URL."""
    instance = _checkout(buyer_client, session, buyer)
    return instance, auth_for(buyer), f"/api/instances/{instance.id}/subscription"


def test_the_subscription_reads_its_plan_period_next_charge_card_and_refund(buyer_client, session, buyer,
                                                                            auth_for):
    instance = _checkout(buyer_client, session, buyer)
    plan = _plan(session, PLAN)

    body = buyer_client.get(f"/api/instances/{instance.id}/subscription", headers=auth_for(buyer)).get_json()

    assert (body["instance_id"], body["status"], body["is_trial"], body["plan"]["sku"]) == (
        instance.id, "active", False, PLAN)
    assert (body["price_minor"], body["currency"], body["interval"]) == (plan.price_minor, "USD", "month")
    assert body["next_charge_minor"] == plan.price_minor and body["next_charge_at"] == body["period_end"]
    assert body["payment_method"] == {"brand": "Visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    assert body["pending_plan"] is None and body["cancel_at_period_end"] is False
    assert 0 < body["refund_if_cancelled_now_minor"] <= plan.price_minor
    outsider = make_user(session)
    session.commit()
    assert buyer_client.get(f"/api/instances/{instance.id}/subscription",
                            headers=auth_for(outsider)).status_code == 404


def test_ending_at_the_period_end_and_resuming(buyer_client, session, buyer, auth_for):
    instance, headers, base = _subscribed(buyer_client, session, buyer, auth_for)

    ended = buyer_client.post(f"{base}/cancel-at-period-end", headers=headers)
    assert ended.status_code == 200
    assert (ended.get_json()["cancel_at_period_end"], ended.get_json()["next_charge_at"]) == (True, None)
    again = buyer_client.post(f"{base}/cancel-at-period-end", headers=headers)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"

    resumed = buyer_client.post(f"{base}/resume", headers=headers)
    assert resumed.status_code == 200 and resumed.get_json()["cancel_at_period_end"] is False
    assert buyer_client.post(f"{base}/resume", headers=headers).status_code == 409
    session.expire_all()
    assert session.get(Instance, instance.id).cancel_at_period_end is False


def test_a_member_reads_but_only_owners_and_admins_change_it(buyer_client, session, buyer, auth_for):
    instance = _checkout(buyer_client, session, buyer)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=instance.organization_id, role="member"))
    session.commit()
    headers = auth_for(member)
    base = f"/api/instances/{instance.id}/subscription"

    assert buyer_client.get(base, headers=headers).status_code == 200
    for path, body in (("/cancel-at-period-end", None), ("/plan", {"plan_id": _plan(session, PLAN).id})):
        assert buyer_client.post(base + path, json=body, headers=headers).status_code == 403
    assert buyer_client.post(f"/api/instances/{instance.id}/cancel", headers=headers).status_code == 403
    session.expire_all()
    assert (session.get(Instance, instance.id).status, session.get(Instance, instance.id).cancel_at_period_end) == (
        "active", False)


def test_a_downgrade_is_scheduled_and_choosing_the_current_plan_drops_it(buyer_client, session, buyer, auth_for):
    instance, headers, base = _subscribed(buyer_client, session, buyer, auth_for)
    starter = _plan(session, "CUSTOMER-SUPPORT-AGENT-STARTER")

    quoted = buyer_client.get(f"{base}/plan-change?plan_id={starter.id}", headers=headers).get_json()
    assert (quoted["change"], quoted["charge_minor"], quoted["credits"]) == ("downgrade", 0, 0)
    down = buyer_client.post(f"{base}/plan", json={"plan_id": starter.id}, headers=headers).get_json()
    assert down["change"] == "downgrade" and down["order"] is None
    assert down["subscription"]["pending_plan"]["id"] == starter.id
    assert down["subscription"]["next_charge_minor"] == starter.price_minor  # it renews on the cheaper plan

    kept = buyer_client.post(f"{base}/plan", json={"plan_id": _plan(session, PLAN).id}, headers=headers).get_json()
    assert kept["change"] == "unchanged" and kept["subscription"]["pending_plan"] is None


def test_an_upgrade_charges_the_quoted_amount_to_the_saved_card_once(buyer_client, session, buyer, auth_for):
    instance, headers, base = _subscribed(buyer_client, session, buyer, auth_for)
    enterprise = _plan(session, "CUSTOMER-SUPPORT-AGENT-ENTERPRISE")

    quoted = buyer_client.get(f"{base}/plan-change?plan_id={enterprise.id}", headers=headers).get_json()
    up = buyer_client.post(f"{base}/plan", json={"plan_id": enterprise.id}, headers=headers)

    assert up.status_code == 200
    body = up.get_json()
    assert (body["change"], body["order"]["status"], body["order"]["pay_url"]) == ("upgrade", "paid", None)
    assert body["charge_minor"] == body["order"]["total_minor"] == quoted["charge_minor"] > 0
    assert body["subscription"]["plan"]["id"] == enterprise.id
    retry = buyer_client.post(f"{base}/plan", json={"plan_id": enterprise.id}, headers=headers).get_json()
    assert retry["change"] == "unchanged" and retry["order"] is None
    assert session.scalar(select(func.count()).select_from(Order).where(Order.purpose == "upgrade")) == 1


@pytest.mark.postgres_only
def test_five_upgrade_requests_at_once_charge_the_saved_card_once(app, buyer_client, session, buyer, auth_for,
                                                                   monkeypatch):
    from app.adapters.commerce.local_checkout import LocalCheckout

    instance, headers, base = _subscribed(buyer_client, session, buyer, auth_for)
    enterprise_id = _plan(session, "CUSTOMER-SUPPORT-AGENT-ENTERPRISE").id
    charges, charge_saved_card = [], LocalCheckout.charge_saved_card

    def counted(self, **kwargs):
        charges.append(kwargs["amount_minor"])
        return charge_saved_card(self, **kwargs)

    monkeypatch.setattr(LocalCheckout, "charge_saved_card", counted)
    barrier, answers = threading.Barrier(5), []
    tokens = [auth_for(buyer) for _ in range(5)]  # one each: a token's use is written on its own row

    def attempt(headers):
        client = app.test_client()
        barrier.wait()
        answer = client.post(f"{base}/plan", json={"plan_id": enterprise_id}, headers=headers)
        answers.append((answer.status_code, answer.get_json()["change"]))

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answers) == [(200, "unchanged")] * 4 + [(200, "upgrade")]
    assert len(charges) == 1
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order).where(Order.purpose == "upgrade")) == 1
    assert session.get(Instance, instance.id).plan_id == enterprise_id


def test_a_plan_of_another_agent_or_a_bad_body_is_refused_naming_the_field(buyer_client, session, buyer, auth_for):
    instance = _checkout(buyer_client, session, buyer)
    other = session.scalar(select(Plan).where(Plan.offering_id != instance.offering_id))
    headers = auth_for(buyer)
    base = f"/api/instances/{instance.id}/subscription"

    for body in ({"plan_id": other.id}, {"plan_id": 2_000_000_000}):
        refused = buyer_client.post(f"{base}/plan", json=body, headers=headers)
        assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "plan_id"
    for body in ({}, {"plan_id": "x"}, {"plan_id": 0}, {"plan_id": 1, "extra": True}):
        assert buyer_client.post(f"{base}/plan", json=body, headers=headers).status_code == 422
    quote = buyer_client.get(f"{base}/plan-change?plan_id={other.id}", headers=headers)
    assert quote.status_code == 422 and quote.get_json()["errors"][0]["field"] == "plan_id"
    session.expire_all()
    assert (session.get(Instance, instance.id).plan.sku, session.get(Instance, instance.id).pending_plan_id) == (
        PLAN, None)


def test_cancelling_through_the_api_refunds_the_unused_period_like_the_page(buyer_client, session, buyer, auth_for):
    instance = _checkout(buyer_client, session, buyer)
    headers = auth_for(buyer)
    quoted = buyer_client.get(f"/api/instances/{instance.id}/subscription", headers=headers).get_json()

    cancelled = buyer_client.post(f"/api/instances/{instance.id}/cancel", headers=headers)

    assert cancelled.status_code == 200
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["refund"]["status"] == "refunded"
    [refund] = session.scalars(select(Refund)).all()
    assert refund.order_line_id == instance.source_order_line_id
    # a few seconds pass between the quote and the cancel: the refund is for what is unused then
    assert 0 < body["refund"]["amount_minor"] == refund.amount_minor <= quoted["refund_if_cancelled_now_minor"]
    again = buyer_client.post(f"/api/instances/{instance.id}/cancel", headers=headers)
    assert again.status_code == 409 and len(session.scalars(select(Refund)).all()) == 1


def test_a_refund_the_store_refuses_stays_due_and_the_cancellation_holds(buyer_client, session, buyer, auth_for,
                                                                          monkeypatch):
    from app.services import refunds

    instance = _checkout(buyer_client, session, buyer)

    def refuse(*args, **kwargs):
        raise refunds.RefundError("The payment provider refused the refund.")

    monkeypatch.setattr(refunds, "refund_unused_period", refuse)
    cancelled = buyer_client.post(f"/api/instances/{instance.id}/cancel", headers=auth_for(buyer)).get_json()

    assert cancelled["status"] == "cancelled" and cancelled["refund"]["status"] == "due"
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    due = session.scalar(select(AuditEvent).where(AuditEvent.action == "subscription.refund_due"))
    assert due is not None and '"amount_minor": %d' % cancelled["refund"]["amount_minor"] in due.data_json


def test_a_trial_has_no_period_to_change(client, session, auth_for):
    from app.services import trials
    from tests.factories import make_offering, make_org

    seller = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=seller), trial_days=14, trial_credits=20)
    buyer = make_user(session)
    org = make_org(session, owner=buyer)
    instance = trials.start_trial(session, user=buyer, organization=org, offering=offering)
    session.commit()
    headers = auth_for(buyer)

    body = client.get(f"/api/instances/{instance.id}/subscription", headers=headers).get_json()
    assert (body["is_trial"], body["next_charge_at"], body["refund_if_cancelled_now_minor"]) == (True, None, 0)
    refused = client.post(f"/api/instances/{instance.id}/subscription/cancel-at-period-end", headers=headers)
    assert refused.status_code == 409 and "free trial" in refused.get_json()["detail"]
    cancelled = client.post(f"/api/instances/{instance.id}/cancel", headers=headers).get_json()
    assert cancelled["status"] == "cancelled" and cancelled["refund"] is None
