"""Subscriptions over time, with the clock as a parameter: renewals, dunning, cancelling at the
period's end, resuming, and plan changes with proration. Each test ends with exact ledger, order and
instance states."""
from __future__ import annotations

import json

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.local_checkout import LocalCheckout
from app.models import (
    AuditEvent, Instance, LedgerEntry, LineKind, MailMessage, Order, OrderLine, OrderStatus, Payment, PaymentMethod,
    Plan, Wallet,
)
from app.services import billing, instances, payments, subscription_changes, subscriptions
from tests.factories import make_offering, make_org, make_user

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=timezone.utc)
PAYS = "4242 4242 4242 4242"
DECLINES_LATER = "4000 0000 0000 0341"
GATEWAY = LocalCheckout()


@pytest.fixture
def shop(session):
    """A buyer in an organization, and an offering whose plans cost $10, $20 and $30 a month and include
    100, 200 and 300 credits."""
    buyer = make_user(session)
    org = make_org(session, owner=buyer, name="Acme")
    seller = make_user(session, roles=("seller",))
    offering = make_offering(session, publisher=make_org(session, owner=seller), name="Helper", price_minor=1000)
    session.commit()
    plans = {p.tier: p for p in offering.plans}
    return buyer, org, plans


def _buy(session, buyer, org, plan, *, card=PAYS, save=True, now=T0) -> Instance:
    order = Order(number=f"DM-T{plan.id}{now:%m%d}", user_id=buyer.id, organization_id=org.id, email=buyer.email,
                  total_minor=plan.price_minor, currency=plan.currency, backend="local")
    session.add(order)
    session.flush()
    session.add(OrderLine(order_id=order.id, kind=LineKind.PLAN.value, sku=plan.sku, name=plan.name,
                          plan_id=plan.id, offering_id=plan.offering_id, quantity=1,
                          unit_price_minor=plan.price_minor, total_minor=plan.price_minor))
    session.flush()
    session.refresh(order, ["lines"])
    payment = payments.pay_order(session, order=order, card=payments.CardDetails(card, "12/30", "123"),
                                 gateway=GATEWAY, actor=buyer, today=now.date(), save_card=save, now=now)
    session.commit()
    assert payment.status == "succeeded"
    return session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))


def _renew(session, now):
    report = subscriptions.renew_due_subscriptions(session, now=now, gateway=GATEWAY, config={})
    session.commit()
    return report


def _expire(session, now):
    billing.expire_grants(session, now=now)
    session.commit()


def _ledger(session, org):
    wallet = billing.wallet_for_organization(session, org.id)
    return [(e.kind, e.amount) for e in session.scalars(
        select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id).order_by(LedgerEntry.id))]


def _balance(session, org):
    session.expire_all()
    wallet = billing.wallet_for_organization(session, org.id)
    total = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                           .where(LedgerEntry.wallet_id == wallet.id))
    assert total == wallet.balance  # the ledger folds to the balance
    return wallet.balance


def _orders(session, instance):
    return [(o.purpose, o.status, o.total_minor) for o in session.scalars(
        select(Order).where(Order.renews_instance_id == instance.id).order_by(Order.id))]


def test_a_purchase_with_a_saved_card_stores_only_token_brand_last4_and_expiry(session, shop):
    buyer, org, plans = shop

    instance = _buy(session, buyer, org, plans["starter"])

    method = session.scalar(select(PaymentMethod))
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == ("Visa", "4242", 12, 2030)
    assert method.token.startswith("tok_test_") and "4242424242424242" not in method.token
    assert instance.payment_method_id == method.id
    assert (instance.period_start, instance.period_end) == (T0, datetime(2027, 2, 15, 10, 0, tzinfo=timezone.utc))
    ent = instances.entitlements(session, instance=instance, now=T0 + timedelta(days=3))
    assert (ent.period_start, ent.period_end, ent.next_charge_at, ent.next_charge_minor) == (
        T0, instance.period_end, instance.period_end, 1000)


def test_a_year_of_monthly_renewals_charges_each_period_once_and_grants_its_credits(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])

    # when: the sweep runs every day for a year (credits expire first, as the sweeps may run in any order)
    for day in range(1, 366):
        now = T0 + timedelta(days=day)
        _expire(session, now)
        _renew(session, now)

    # then: 12 renewals, one order and one charge each, the period of Jan 15 2028 running
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert _orders(session, instance) == [("renewal", "paid", 1000)] * 12
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.status == "succeeded")) == 13
    assert (instance.status, instance.period_start, instance.period_end) == (
        "active", datetime(2028, 1, 15, 10, 0, tzinfo=timezone.utc), datetime(2028, 2, 15, 10, 0, tzinfo=timezone.utc))
    # each period's 100 included credits were granted once and ended with it; the current one runs
    assert _ledger(session, org) == [("grant", 100)] + [("expiry", -100), ("grant", 100)] * 12
    assert _balance(session, org) == 100


def test_a_renewal_catches_up_missed_periods_without_charging_any_twice(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])

    first = _renew(session, T0 + timedelta(days=95))  # three periods ended while nothing ran
    again = _renew(session, T0 + timedelta(days=95))

    assert first.renewed == [instance.id] * 3 and again.renewed == []
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert _orders(session, instance) == [("renewal", "paid", 1000)] * 3
    assert instance.period_end == datetime(2027, 5, 15, 10, 0, tzinfo=timezone.utc)
    # credits for periods already over are not granted; the running one is
    _expire(session, T0 + timedelta(days=95))
    assert _ledger(session, org) == [("grant", 100), ("grant", 100), ("expiry", -100)]
    assert _balance(session, org) == 100


def test_a_failed_renewal_goes_through_dunning_to_suspension_and_paying_resumes_it(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"], card=DECLINES_LATER)
    end = instance.period_end

    # first attempt at the period's end: declined, past due, runs on through the grace period
    _renew(session, end)
    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.renewal_failures, instance.next_renewal_attempt_at) == (
        "past_due", 1, end + timedelta(days=1))
    assert instances.entitlements(session, instance=instance, now=end + timedelta(hours=2)).may_run is True
    assert _renew(session, end + timedelta(hours=12)).count == 0  # no retry before it is due

    # retries after 1 and 3 days fail; the one after 5 days is the last: suspended
    _renew(session, end + timedelta(days=1))
    _renew(session, end + timedelta(days=3))
    session.expire_all()
    assert session.get(Instance, instance.id).next_renewal_attempt_at == end + timedelta(days=5)
    report = _renew(session, end + timedelta(days=5))
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert report.suspended == [instance.id]
    assert (instance.status, instance.renewal_failures, instance.next_renewal_attempt_at) == ("suspended", 4, None)
    ent = instances.entitlements(session, instance=instance, now=end + timedelta(days=5, hours=1))
    assert (ent.may_run, ent.reason) == (False, "instance_suspended")
    # one open order, four declined charges, four mails with the pay link
    [order] = session.scalars(select(Order).where(Order.renews_instance_id == instance.id)).all()
    assert (order.status, order.total_minor) == ("pending", 1000)
    assert [p.status for p in order.payments] == ["declined"] * 4
    mails = session.scalars(select(MailMessage).where(MailMessage.template == "renewal_failed")
                            .order_by(MailMessage.id)).all()
    assert len(mails) == 4 and all(f"/account/instances/{instance.id}/renewal" in m.text_body for m in mails)
    assert "paused" in mails[-1].subject
    with pytest.raises(instances.InstanceError):  # a buyer cannot just resume it
        instances.resume_instance(session, instance=instance, actor=buyer)
    session.rollback()

    # the buyer pays the open order with another card 9 days after the period ended
    paid_at = end + timedelta(days=9)
    payments.pay_order(session, order=order, card=payments.CardDetails(PAYS, "11/31", "321"), gateway=GATEWAY,
                       actor=buyer, today=paid_at.date(), save_card=True, now=paid_at)
    session.commit()

    # then: active with a new period from the payment date, renewed later with the new card
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.period_start, instance.period_end, instance.renewal_failures,
            instance.past_due_since) == ("active", paid_at, subscriptions.add_interval(paid_at, "month"), 0, None)
    assert instance.payment_method.last4 == "4242"
    _expire(session, paid_at)  # the first period's credits ended with it; the new period's run
    assert _ledger(session, org) == [("grant", 100), ("grant", 100), ("expiry", -100)]
    assert _balance(session, org) == 100
    assert _renew(session, instance.period_end).renewed == [instance.id]


def test_cancel_at_period_end_runs_to_the_end_then_ends_and_resume_undoes_it(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])
    end = instance.period_end

    subscription_changes.cancel_at_period_end(session, instance=instance, actor=buyer, now=T0 + timedelta(days=3))
    session.commit()
    ent = instances.entitlements(session, instance=instance, now=T0 + timedelta(days=3))
    assert (ent.may_run, ent.cancel_at_period_end, ent.next_charge_at) == (True, True, None)

    subscription_changes.resume_subscription(session, instance=instance, actor=buyer, now=T0 + timedelta(days=4))
    session.commit()
    assert instances.entitlements(session, instance=instance, now=T0 + timedelta(days=4)).next_charge_at == end

    subscription_changes.cancel_at_period_end(session, instance=instance, actor=buyer, now=T0 + timedelta(days=5))
    session.commit()
    assert _renew(session, end - timedelta(seconds=1)).count == 0  # still running
    _expire(session, end)
    report = _renew(session, end)

    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert report.ended == [instance.id]
    assert (instance.status, instance.cancelled_at) == ("cancelled", end)
    assert _orders(session, instance) == []  # nothing charged
    assert _ledger(session, org) == [("grant", 100), ("expiry", -100)]
    assert _balance(session, org) == 0
    with pytest.raises(subscriptions.SubscriptionError):
        subscription_changes.resume_subscription(session, instance=instance, actor=buyer, now=end)


def test_cancel_now_quotes_the_prorated_refund_to_the_cent_and_records_it(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])  # $10.00 for Jan 15 – Feb 15 (31 days)
    now = T0 + timedelta(days=10, hours=5)  # 20 days 19 hours unused: 1,796,400 of 2,678,400 seconds

    quote = subscription_changes.cancel_now(session, instance=instance, actor=buyer, now=now)
    session.commit()

    assert (quote.unused_seconds, quote.period_seconds) == (1_796_400, 2_678_400)
    assert quote.refund_minor == 670  # floor(1000 * 1796400 / 2678400) = floor(670.69)
    session.expire_all()
    assert session.get(Instance, instance.id).status == "cancelled"
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "subscription.refund_due"))
    data = json.loads(event.data_json)
    assert (event.target_type, event.target_id, data["amount_minor"], data["currency"], data["order"]) == (
        "order_line", str(quote.order_line_id), 670, "USD", quote.order_id)
    assert quote.order_id == session.scalar(select(Order.id).where(Order.renews_instance_id.is_(None)))
    assert _balance(session, org) == 0  # the included credits ended with the cancellation


def test_upgrade_mid_period_charges_the_prorated_difference_and_grants_prorated_credits(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])  # $10 / 100 credits
    now = T0 + timedelta(days=21)  # 10 of 31 days left

    change = subscription_changes.change_plan(session, instance=instance, plan=plans["pro"], actor=buyer,
                                       gateway=GATEWAY, now=now)
    session.commit()

    # (2000 - 1000) * 864000 / 2678400 = 322.58 -> 322 cents; (200 - 100) * 10/31 = 32.26 -> 32 credits
    assert (change.kind, change.charge_minor, change.credits) == ("upgrade", 322, 32)
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.plan.tier, instance.period_end) == ("pro", datetime(2027, 2, 15, 10, 0, tzinfo=timezone.utc))
    assert _orders(session, instance) == [("upgrade", "paid", 322)]
    assert _ledger(session, org) == [("grant", 100), ("grant", 32)]
    # the next period renews at the new plan's price and included credits
    _expire(session, instance.period_end)
    _renew(session, instance.period_end)
    assert _orders(session, instance) == [("upgrade", "paid", 322), ("renewal", "paid", 2000)]
    assert _ledger(session, org) == [("grant", 100), ("grant", 32), ("expiry", -100), ("expiry", -32),
                                    ("grant", 200)]
    assert _balance(session, org) == 200


def test_downgrade_mid_period_takes_effect_at_the_next_period(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["pro"])  # $20 / 200 credits

    change = subscription_changes.change_plan(session, instance=instance, plan=plans["starter"], actor=buyer,
                                       gateway=GATEWAY, now=T0 + timedelta(days=12))
    session.commit()

    assert (change.kind, change.charge_minor) == ("downgrade", 0)
    ent = instances.entitlements(session, instance=instance, now=T0 + timedelta(days=12))
    assert (ent.plan_tier, ent.next_charge_minor, ent.next_plan_tier) == ("pro", 1000, "starter")
    end = instance.period_end
    _expire(session, end)
    _renew(session, end)
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.plan.tier, instance.pending_plan_id, instance.period_start) == ("starter", None, end)
    assert _orders(session, instance) == [("renewal", "paid", 1000)]
    assert _ledger(session, org) == [("grant", 200), ("expiry", -200), ("grant", 100)]
    assert _balance(session, org) == 100


def test_a_plan_with_roll_over_carries_unused_credits_into_the_next_period(session, shop):
    buyer, org, plans = shop
    plans["starter"].rollover_credits = True
    session.commit()
    instance = _buy(session, buyer, org, plans["starter"])

    _renew(session, instance.period_end)
    _expire(session, T0 + timedelta(days=32))

    assert _ledger(session, org) == [("grant", 100), ("grant", 100)]
    assert _balance(session, org) == 200


def test_changes_are_for_owners_and_admins_and_bad_plans_change_nothing(session, shop):
    buyer, org, plans = shop
    instance = _buy(session, buyer, org, plans["starter"])
    other = make_offering(session, publisher=org, name="Other")
    session.commit()

    with pytest.raises(subscriptions.SubscriptionError) as refused:
        subscription_changes.change_plan(session, instance=instance, plan=other.plans[1], actor=buyer, gateway=GATEWAY,
                                  now=T0 + timedelta(days=1))
    assert refused.value.field == "plan_id"
    session.rollback()
    stranger = make_user(session)
    session.commit()
    with pytest.raises(instances.InstanceNotFound):
        subscription_changes.cancel_at_period_end(session, instance=instance, actor=stranger)
    session.rollback()
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.plan.tier, instance.cancel_at_period_end, instance.pending_plan_id) == ("starter", False, None)
    assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_proration_rounds_down_to_the_cent():
    assert subscriptions.prorate(1000, unused=1, total=3) == 333
    assert subscriptions.prorate(999, unused=2, total=3) == 666
    assert subscriptions.prorate(1000, unused=0, total=3) == 0
    assert subscriptions.prorate(-500, unused=1, total=2) == 0
    assert subscriptions.add_interval(datetime(2027, 1, 31, tzinfo=timezone.utc), "month") == datetime(
        2027, 2, 28, tzinfo=timezone.utc)
    assert subscriptions.add_interval(datetime(2028, 2, 29, tzinfo=timezone.utc), "year") == datetime(
        2029, 2, 28, tzinfo=timezone.utc)


def test_a_yearly_plan_runs_a_year_and_renews_at_its_own_price(session, shop):
    buyer, org, plans = shop
    yearly = plans["enterprise"]
    yearly.interval, yearly.price_minor = "year", 30_000
    session.commit()
    instance = _buy(session, buyer, org, yearly)

    assert instance.period_end == datetime(2028, 1, 15, 10, 0, tzinfo=timezone.utc)
    assert _renew(session, datetime(2027, 12, 31, tzinfo=timezone.utc)).count == 0
    _expire(session, instance.period_end)
    _renew(session, instance.period_end)

    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert instance.period_end == datetime(2029, 1, 15, 10, 0, tzinfo=timezone.utc)
    assert _orders(session, instance) == [("renewal", "paid", 30_000)]
    assert _ledger(session, org) == [("grant", 300), ("expiry", -300), ("grant", 300)]


def test_the_grace_period_and_the_retry_schedule_come_from_configuration(app, session, shop):
    buyer, org, plans = shop
    app.config.update(RENEWAL_GRACE_DAYS=2, RENEWAL_RETRY_DAYS="4")
    instance = _buy(session, buyer, org, plans["starter"], card=DECLINES_LATER)
    end = instance.period_end

    subscriptions.renew_due_subscriptions(session, now=end, gateway=GATEWAY)
    session.commit()

    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.next_renewal_attempt_at) == ("past_due", end + timedelta(days=4))
    assert instances.entitlements(session, instance=instance, now=end + timedelta(days=1)).may_run is True
    late = instances.entitlements(session, instance=instance, now=end + timedelta(days=2))
    assert (late.may_run, late.reason) == (False, "instance_past_due")
    subscriptions.renew_due_subscriptions(session, now=end + timedelta(days=4), gateway=GATEWAY)
    session.commit()
    session.expire_all()
    assert session.get(Instance, instance.id).status == "suspended"  # one retry, and it failed
    with pytest.raises(subscriptions.SubscriptionError):
        subscriptions.retry_days({"RENEWAL_RETRY_DAYS": "3,1"})
