"""Included plan credits belong to their billing period: the grant expires at the period's end and
ends at once when the instance is cancelled; purchased packs are never touched."""
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.adapters.runtime import RunOutput
from app.extensions import db
from app.models import AuditEvent, CreditGrant, Instance, LedgerEntry, Offering, User, Wallet, utcnow
from app.services import billing, identity, instances, orders, plan_credits, runs
from app.services import cart as carts
from app.services import provisioning
from tests.billing.race import run_threads
from tests.conftest import login
from tests.factories import make_user

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86, 1,200 credits included
PACK = "CREDITS-500"
QUESTION = "How do I reset my password?"


def buy(session, user, *lines):
    cart = carts.get_or_create_cart(session, user=user, token=None)
    for sku, quantity in lines:
        carts.add_to_cart(session, cart=cart, sku=sku, quantity=quantity)
    order = orders.place_order(session, user=user, cart=cart, organization_id=None, email=user.email, backend="local")
    orders.mark_order_paid(session, order=order, actor_label="test")
    provisioning.handle_order_paid(session, order=order, actor_label="test")
    session.commit()
    return order


def wallet_of(session, user):
    session.expire_all()
    org = identity.ensure_personal_organization(session, user=user)
    return session.scalar(select(Wallet).where(Wallet.organization_id == org.id))


def grants_by_origin(session, wallet):
    session.expire_all()
    return {origin: remaining for origin, remaining in session.execute(
        select(CreditGrant.origin, CreditGrant.remaining).where(CreditGrant.wallet_id == wallet.id)
    )}


def test_the_included_grant_expires_at_the_end_of_the_instances_billing_period(session, buyer):
    order = buy(session, buyer, (PLAN, 1))

    instance = session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))
    grant = session.scalar(select(CreditGrant).where(CreditGrant.instance_id == instance.id))
    period_start, period_end = instances.current_period(instance, utcnow())
    assert (grant.origin, grant.amount, grant.remaining) == ("plan", 1200, 1200)
    assert grant.expires_at == period_end == instances._add_months(instance.period_start, 1)
    assert period_start == instance.period_start

    # at the period's end the sweep takes what is left, and only that
    wallet = wallet_of(session, buyer)
    before = wallet.balance
    billing.expire_grants(session, now=period_end)
    session.commit()
    assert wallet_of(session, buyer).balance == before - 1200
    assert grants_by_origin(session, wallet)["plan"] == 0
    assert billing.verify_ledger(session) == []


def test_cancelling_right_after_buying_removes_the_unspent_included_credits_but_not_the_packs(
        buyer_client, session, buyer):
    # given: Pro bought with four 500-credit packs, and one run on it (paid from the included credits)
    before = wallet_of(session, buyer).balance  # the welcome credits
    order = buy(session, buyer, (PLAN, 1), (PACK, 4))
    instance = session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))
    ran = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})
    assert ran.status_code == 201 and ran.get_json()["credits"] == 3
    wallet = wallet_of(session, buyer)
    assert wallet.balance == before + 1200 + 2000 - 3
    assert grants_by_origin(session, wallet) == {"promo": before, "plan": 1197, "purchase": 2000}

    # when: the instance is cancelled from its page
    done = buyer_client.post(f"/account/instances/{instance.id}/cancel")

    # then: the 1,197 unspent included credits are gone through the ledger, the packs stay
    assert done.status_code == 303
    wallet = wallet_of(session, buyer)
    assert (wallet.balance, wallet.held) == (before + 2000, 0)
    assert grants_by_origin(session, wallet) == {"promo": before, "plan": 0, "purchase": 2000}
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id)
                            .order_by(LedgerEntry.id.desc())).first()
    assert (entry.kind, entry.amount, entry.balance_after, entry.instance_id) == (
        "expiry", -1197, before + 2000, instance.id)
    assert entry.reference == ("Customer Support Agent Pro plan: 1,197 unused included credits ended, "
                               "the plan was cancelled")
    cancelled = session.get(Instance, instance.id)
    grant = session.scalar(select(CreditGrant).where(CreditGrant.instance_id == instance.id))
    assert grant.expires_at == cancelled.cancelled_at
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "credits.plan_credits_ended"))
    assert (event.actor_user_id, event.target_id, event.organization_id) == (
        buyer.id, str(instance.id), instance.organization_id)
    assert billing.verify_ledger(session) == []

    # and the ledger on Billing & Credits says so in words
    page = buyer_client.get("/account/billing").get_data(as_text=True)
    assert "1,197 unused included credits ended, the plan was cancelled" in page


def test_cancelling_through_the_api_ends_the_included_credits_too(buyer_client, session, buyer):
    before = wallet_of(session, buyer).balance
    order = buy(session, buyer, (PLAN, 1))
    instance = session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))

    response = buyer_client.post(f"/api/instances/{instance.id}/cancel")
    again = buyer_client.post(f"/api/instances/{instance.id}/cancel")

    assert response.status_code == 200 and again.status_code == 409
    assert wallet_of(session, buyer).balance == before
    assert session.scalar(select(LedgerEntry.amount).where(LedgerEntry.kind == "expiry")) == -1200
    assert billing.verify_ledger(session) == []


def test_the_account_pages_say_that_included_credits_end_with_the_period_or_the_cancellation(
        buyer_client, session, buyer):
    order = buy(session, buyer, (PLAN, 1))
    instance = session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))
    _, period_end = instances.current_period(instance, utcnow())

    instance_page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    confirm_page = buyer_client.get(f"/account/instances/{instance.id}/cancel").get_data(as_text=True)
    billing_page = buyer_client.get("/account/billing").get_data(as_text=True)

    assert "1,200 for each billing period" in instance_page
    assert "Included credits are for use within the current period" in instance_page
    assert f"{period_end.strftime('%b')}" in instance_page.split('id="included-credits-rule"')[1].split("</p>")[0]
    assert "Any left unused end when the period ends, and end at once if you cancel the plan." in instance_page
    assert "the unused included credits of its plan end now" in confirm_page
    assert "credits you bought in packs stay in your wallet" in confirm_page
    assert ("Credits included with a plan belong to its current billing period: they are spent first, and any left "
            "unused end when the period ends, or at once when the plan is cancelled. Credits you buy in packs never "
            "expire.") in billing_page


def test_a_run_in_progress_at_cancellation_is_still_settled_and_the_rest_goes_with_the_sweep(session, demo):
    # given: an organization whose only credits are Pro's included 1,200, and a run holding 12 of them
    user, instance = subscriber(session)
    prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=user)
    session.commit()

    # when: the instance is cancelled while the run works, then the run finishes
    removed = instances.cancel_instance(session, instance=instance, actor=user)
    session.commit()
    finished = runs.finish_run(session, prepared=prepared, outcome=RunOutput(text="done", usage_units=1500))
    session.commit()

    # then: the held 12 stayed for the run, which is charged its 4; the other 8 leave with the sweep
    assert removed.status == "cancelled"
    assert finished.run.credits == 4
    wallet = session.get(Wallet, wallet_id(session, instance))
    session.refresh(wallet)
    assert (wallet.balance, wallet.held) == (8, 0)
    assert billing.wallet_balances(session, wallet=wallet).available == 0  # the grant has ended
    billing.expire_grants(session, now=utcnow())
    session.commit()
    session.refresh(wallet)
    assert (wallet.balance, wallet.held) == (0, 0)
    assert billing.verify_ledger(session) == []


def test_only_the_cancelled_instances_included_credits_end(session, demo):
    user, first = subscriber(session)
    second = add_subscription(session, user, tier="starter")

    instances.cancel_instance(session, instance=first, actor=user)
    session.commit()

    wallet = session.get(Wallet, wallet_id(session, first))
    session.refresh(wallet)
    assert wallet.balance == second.plan.included_credits
    assert plan_credits.included_grants(session, instance=second)[0].remaining == second.plan.included_credits
    assert plan_credits.included_grants(session, instance=first) == []


def subscriber(session, tier="pro"):
    """A new user whose personal organization holds one subscription and nothing else."""
    user = make_user(session)
    session.flush()
    return user, add_subscription(session, user, tier=tier)


def add_subscription(session, user, *, tier):
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    plan = next(p for p in offering.plans if p.tier == tier)
    org = identity.ensure_personal_organization(session, user=user)
    instance = instances.create_instance(session, organization=org, plan=plan, created_by=user)
    now = utcnow()
    plan_credits.grant_included_credits(
        session, instance=instance, period_end=instances.current_period(instance, now)[1], now=now,
        reference=f"{plan.name} plan", idempotency_key=f"test:{instance.id}:included",
    )
    session.commit()
    return instance


def wallet_id(session, instance):
    return session.scalar(select(Wallet.id).where(Wallet.organization_id == instance.organization_id))


@pytest.mark.postgres_only
def test_a_run_settling_while_its_instance_is_cancelled_never_overdraws(app, session, demo, monkeypatch):
    """Real threads on PostgreSQL: the settle and the cancellation race on the same wallet. In even
    rounds the cancellation holds the wallet while the settle arrives (the settle waits, then captures
    from the credits kept for its hold); in odd rounds they start together (the settle usually wins).
    The balance never goes negative and the ledger folds to it."""
    real_lock = plan_credits._lock_wallet
    for round_number in range(8):
        user, instance = subscriber(session, tier="starter")  # only its included credits; a hold of 12
        prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=user)
        session.commit()
        usage = 1000 * (round_number % 5)  # costs 2 to 6 credits
        instance_id, user_id = instance.id, user.id  # plain values: the threads have sessions of their own
        cancel_holds_wallet = threading.Event()
        cancel_first = round_number % 2 == 0

        def lock_then_linger(s, wallet_id):
            locked = real_lock(s, wallet_id)
            cancel_holds_wallet.set()
            time.sleep(0.3)  # the settle now queues behind this transaction's wallet lock
            return locked

        monkeypatch.setattr(plan_credits, "_lock_wallet", lock_then_linger if cancel_first else real_lock)

        def settle(s):
            if cancel_first:
                assert cancel_holds_wallet.wait(10)
            return runs.finish_run(s, prepared=prepared, outcome=RunOutput(text="done", usage_units=usage)).run.credits

        def cancel(s):
            return instances.cancel_instance(s, instance=s.get(Instance, instance_id), actor=s.get(User, user_id)).status

        results = run_threads(db.engine, [settle, cancel])

        charged = 2 + usage // 1000
        assert results == [charged, "cancelled"], results
        session.expire_all()
        wallet = session.get(Wallet, wallet_id(session, instance))
        assert wallet.balance >= 0 and wallet.held == 0
        assert billing.verify_ledger(session) == []
        ended = json.loads(session.scalars(
            select(AuditEvent.data_json).where(AuditEvent.action == "credits.plan_credits_ended",
                                               AuditEvent.target_id == str(instance_id))).one())
        if cancel_first:  # the hold's 12 credits stayed for the run; the rest left at once
            assert ended["credits_kept_for_runs_in_progress"] == 12
            assert wallet.balance == 12 - charged
        billing.expire_grants(session, now=utcnow() + timedelta(seconds=1))
        session.commit()
        session.expire_all()
        wallet = session.get(Wallet, wallet.id)
        assert (wallet.balance, wallet.held) == (0, 0)
        spent = -sum(session.scalars(select(LedgerEntry.amount).where(
            LedgerEntry.wallet_id == wallet.id, LedgerEntry.kind == "capture")))
        assert spent == charged
        assert billing.verify_ledger(session) == []
