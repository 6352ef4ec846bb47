"""Grants: their origins and expiry, the order settles spend them in, expiry sweeps, low-balance notices."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import CreditGrant, LedgerEntry, Notification
from app.services import billing
from app.services.billing import BillingError, InsufficientCredits
from tests.billing.conftest import T0, at, entries_of, fund, snapshot


def remaining(session, wallet) -> dict[str, int]:
    return {origin: left for origin, left in session.execute(
        select(CreditGrant.origin, CreditGrant.remaining).where(CreditGrant.wallet_id == wallet.id)
        .order_by(CreditGrant.id).execution_options(populate_existing=True)
    )}


def test_grant_adds_a_lot_and_an_entry(session, wallet):
    entry = billing.grant_credits(session, wallet=wallet, amount=120, origin="trial", expires_at=at(days=14),
                                  instance_id=None, reference="Trial of Support FAQ", now=T0)
    session.commit()

    grant = session.get(CreditGrant, entry.grant_id)
    assert (grant.origin, grant.amount, grant.remaining, grant.expires_at) == ("trial", 120, 120, at(days=14))
    assert (entry.kind, entry.amount, entry.balance_after, entry.reference) == ("grant", 120, 120,
                                                                                "Trial of Support FAQ")
    assert (wallet.balance, wallet.held) == (120, 0)


def test_grant_with_a_repeated_key_returns_the_first_entry(session, wallet):
    first = billing.grant_credits(session, wallet=wallet, amount=50, origin="purchase", idempotency_key="order-7",
                                  now=T0)
    session.commit()
    before = snapshot(session)

    again = billing.grant_credits(session, wallet=wallet, amount=50, origin="purchase", idempotency_key="order-7",
                                  now=T0)

    assert again.id == first.id
    assert snapshot(session) == before


def test_grant_key_used_in_its_wallet_for_something_else_is_a_conflict(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    opening_key = session.scalar(select(LedgerEntry.idempotency_key).where(LedgerEntry.hold_id == hold.id))
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.grant_credits(session, wallet=wallet, amount=50, origin="purchase", idempotency_key=opening_key,
                              now=T0)

    assert (refused.value.status, refused.value.field) == (422, "idempotency_key")
    assert snapshot(session) == before


@pytest.mark.parametrize("field,kwargs", [
    ("amount", {"amount": 0}),
    ("amount", {"amount": -10}),
    ("origin", {"origin": "gift"}),
    ("expires_at", {"origin": "purchase", "expires_at": "later"}),
    ("expires_at", {"origin": "trial", "expires_at": None}),
    ("expires_at", {"origin": "promo", "expires_at": None}),
    ("expires_at", {"origin": "promo", "expires_at": "past"}),
])
def test_grant_rules_by_field(session, wallet, field, kwargs):
    before = snapshot(session)
    expires = {"later": at(days=30), "past": T0}
    arguments = {"amount": 10, "origin": "promo", **kwargs}
    arguments["expires_at"] = expires.get(kwargs.get("expires_at"), kwargs.get("expires_at", at(days=30)))

    with pytest.raises(BillingError) as refused:
        billing.grant_credits(session, wallet=wallet, now=T0, **arguments)

    assert (refused.value.status, refused.value.field) == (422, field)
    assert snapshot(session) == before


def test_a_grant_that_would_overflow_the_wallet_is_refused(session, wallet):
    fund(session, wallet, 2**31 - 10)
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.grant_credits(session, wallet=wallet, amount=11, origin="purchase", now=T0)

    assert (refused.value.status, refused.value.field) == (422, "amount")
    assert snapshot(session) == before


def test_plan_credits_may_expire_or_not(session, wallet):
    billing.grant_credits(session, wallet=wallet, amount=10, origin="plan", now=T0)
    billing.grant_credits(session, wallet=wallet, amount=10, origin="plan", expires_at=at(days=30), now=T0)
    session.commit()

    assert wallet.balance == 20


def test_wallet_for_organization_is_one_wallet_per_organization(session, org, wallet):
    assert billing.wallet_for_organization(session, org.id).id == wallet.id


def test_settles_spend_earliest_expiry_first_and_purchased_credits_last(session, wallet):
    fund(session, wallet, 100, origin="purchase")
    fund(session, wallet, 40, origin="promo", expires_at=at(days=30))
    fund(session, wallet, 25, origin="trial", expires_at=at(days=7))

    first = billing.authorize(session, wallet=wallet, amount=50, idempotency_key="r1", now=T0)
    billing.settle(session, hold_id=first.id, amount=30, idempotency_key="s1", now=at(1))
    assert remaining(session, wallet) == {"purchase": 100, "promo": 35, "trial": 0}

    second = billing.authorize(session, wallet=wallet, amount=50, idempotency_key="r2", now=at(2))
    billing.settle(session, hold_id=second.id, amount=50, idempotency_key="s2", now=at(3))
    session.commit()

    assert remaining(session, wallet) == {"purchase": 85, "promo": 0, "trial": 0}
    assert (wallet.balance, wallet.held) == (85, 0)
    assert billing.verify_ledger(session) == []


def test_expired_trial_credits_are_not_available_before_the_sweep(session, wallet):
    fund(session, wallet, 30, origin="purchase")
    fund(session, wallet, 50, origin="trial", expires_at=at(days=7))
    session.commit()
    before = snapshot(session)

    assert billing.wallet_balances(session, wallet=wallet, now=at(days=7)) == billing.WalletBalances(80, 0, 30)
    with pytest.raises(InsufficientCredits) as refused:
        billing.authorize(session, wallet=wallet, amount=31, idempotency_key="r1", now=at(days=7))

    assert refused.value.available == 30
    assert snapshot(session) == before


def test_expire_grants_removes_what_is_left_of_expired_trial_and_promo_credits(session, wallet):
    fund(session, wallet, 30, origin="purchase")
    trial = fund(session, wallet, 50, origin="trial", expires_at=at(days=7))
    fund(session, wallet, 20, origin="promo", expires_at=at(days=60))
    hold = billing.authorize(session, wallet=wallet, amount=20, idempotency_key="r1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=20, idempotency_key="s1", now=at(1))
    session.commit()

    count = billing.expire_grants(session, now=at(days=7))
    session.commit()
    again = billing.expire_grants(session, now=at(days=8))

    assert (count, again) == (1, 0)
    assert remaining(session, wallet) == {"purchase": 30, "trial": 0, "promo": 20}
    expiry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "expiry"))
    assert (expiry.amount, expiry.held_delta, expiry.balance_after, expiry.grant_id) == (-30, 0, 50, trial.grant_id)
    assert expiry.reference == "trial credits expired"
    assert (wallet.balance, wallet.held) == (50, 0)
    assert billing.verify_ledger(session) == []


def test_a_hold_made_before_a_grant_expired_may_still_spend_it(session, wallet):
    fund(session, wallet, 10, origin="purchase")
    fund(session, wallet, 50, origin="trial", expires_at=at(100))
    hold = billing.authorize(session, wallet=wallet, amount=40, idempotency_key="r1", ttl_seconds=300, now=T0)
    session.commit()

    swept = billing.expire_grants(session, now=at(100))  # 40 of the trial's 50 stay for the hold
    session.commit()
    assert remaining(session, wallet) == {"purchase": 10, "trial": 40}
    assert billing.wallet_balances(session, wallet=wallet, now=at(100)).available == 0

    billing.settle(session, hold_id=hold.id, amount=35, idempotency_key="s1", now=at(150))
    session.commit()
    after_settle = remaining(session, wallet)
    billing.expire_grants(session, now=at(151))
    session.commit()

    assert swept == 1
    assert after_settle == {"purchase": 10, "trial": 5}
    assert remaining(session, wallet) == {"purchase": 10, "trial": 0}
    assert [e for e in entries_of(session, wallet) if e[0] == "expiry"] == [("expiry", -10, 0, 50),
                                                                           ("expiry", -5, 0, 10)]
    assert (wallet.balance, wallet.held) == (10, 0)
    assert billing.verify_ledger(session) == []


def test_a_hold_made_after_a_grant_expired_never_spends_it(session, wallet):
    fund(session, wallet, 40, origin="purchase")
    fund(session, wallet, 50, origin="trial", expires_at=at(100))

    hold = billing.authorize(session, wallet=wallet, amount=40, idempotency_key="r1", now=at(100))
    billing.settle(session, hold_id=hold.id, amount=40, idempotency_key="s1", now=at(101))
    billing.expire_grants(session, now=at(102))
    session.commit()

    assert remaining(session, wallet) == {"purchase": 0, "trial": 0}
    assert (wallet.balance, wallet.held) == (0, 0)
    assert billing.verify_ledger(session) == []


def test_low_balance_notifies_once_per_crossing(session, wallet, org):
    fund(session, wallet, 100)
    billing.set_low_balance_threshold(session, wallet=wallet, threshold=50)

    def spend(n: int, credits: int) -> None:
        hold = billing.authorize(session, wallet=wallet, amount=credits, idempotency_key=f"r{n}", now=T0)
        billing.settle(session, hold_id=hold.id, amount=credits, idempotency_key=f"s{n}", now=T0)

    spend(1, 50)   # 100 -> 50: at the threshold, not below
    assert session.scalars(select(Notification)).all() == []
    spend(2, 1)    # 50 -> 49: crosses
    spend(3, 10)   # 49 -> 39: already below
    fund(session, wallet, 30)  # back to 69
    spend(4, 20)   # 69 -> 49: crosses again
    session.commit()

    notes = session.scalars(select(Notification).order_by(Notification.id)).all()
    assert [(n.organization_id, n.kind, n.message) for n in notes] == [
        (org.id, "low_balance", "Your credit balance fell below 50: 49 credits left."),
        (org.id, "low_balance", "Your credit balance fell below 50: 49 credits left."),
    ]
    assert wallet.low_balance_threshold == 50


def test_expiry_that_crosses_the_threshold_notifies(session, wallet):
    fund(session, wallet, 20)
    fund(session, wallet, 50, origin="promo", expires_at=at(days=1))
    billing.set_low_balance_threshold(session, wallet=wallet, threshold=25)

    billing.expire_grants(session, now=at(days=1))
    session.commit()

    assert [n.message for n in session.scalars(select(Notification))] == [
        "Your credit balance fell below 25: 20 credits left."]


def test_threshold_none_switches_notices_off_and_bad_thresholds_are_refused(session, wallet):
    fund(session, wallet, 100)
    billing.set_low_balance_threshold(session, wallet=wallet, threshold=90)
    billing.set_low_balance_threshold(session, wallet=wallet, threshold=None)
    session.commit()
    before = snapshot(session)

    for bad in (0, -1, "10", 2.5):
        with pytest.raises(BillingError) as refused:
            billing.set_low_balance_threshold(session, wallet=wallet, threshold=bad)
        assert (refused.value.status, refused.value.field) == (422, "threshold")
    hold = billing.authorize(session, wallet=wallet, amount=50, idempotency_key="r1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=50, idempotency_key="s1", now=T0)

    assert snapshot(session).notifications == before.notifications == 0
    session.expire(wallet)
    assert wallet.low_balance_threshold is None
