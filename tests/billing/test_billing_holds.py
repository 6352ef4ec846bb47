"""Authorize, settle and release: every rule and every refusal, with exact figures."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Hold, LedgerEntry
from app.services import billing
from app.services.billing import BillingError, HoldNotFound, InsufficientCredits
from app.services.instances import create_instance
from tests.billing.conftest import T0, at, entries_of, fund, snapshot
from tests.factories import make_offering


def test_authorize_reserves_credits_and_writes_a_hold_entry(session, wallet):
    fund(session, wallet, 100)

    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", ttl_seconds=120, now=T0)
    session.commit()

    assert (hold.amount, hold.captured, hold.status, hold.wallet_id) == (30, 0, "active", wallet.id)
    assert hold.expires_at == at(120)
    assert (wallet.balance, wallet.held) == (100, 30)
    assert billing.wallet_balances(session, wallet=wallet, now=T0) == billing.WalletBalances(100, 30, 70)
    assert entries_of(session, wallet) == [("grant", 100, 0, 100), ("hold", 0, 30, 100)]


def test_authorize_again_with_the_same_key_returns_the_same_hold(session, wallet):
    fund(session, wallet, 100)
    first = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)

    again = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=at(5))

    assert again.id == first.id
    assert snapshot(session) == before


def test_authorize_replay_returns_the_hold_even_after_it_was_settled(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=10, idempotency_key="s-1", now=at(1))
    session.commit()
    before = snapshot(session)

    again = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=at(2))

    assert (again.id, again.status, again.captured) == (hold.id, "settled", 10)
    assert snapshot(session) == before


def test_authorize_replay_returns_the_hold_even_when_the_wallet_is_now_short(session, wallet):
    fund(session, wallet, 30)
    first = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)

    again = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=at(1))

    assert again.id == first.id
    assert snapshot(session) == before


@pytest.mark.parametrize("change", [{"amount": 31}, {"instance_id": "other"}])
def test_authorize_key_reused_for_something_else_is_a_conflict(session, wallet, org, change):
    fund(session, wallet, 100)
    offering = make_offering(session, publisher=org)
    first, other = (create_instance(session, organization=org, plan=offering.plans[0]) for _ in range(2))
    billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", instance_id=first.id, now=T0)
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.authorize(session, wallet=wallet, amount=change.get("amount", 30), idempotency_key="run-1",
                          instance_id=other.id if change.get("instance_id") else first.id, now=T0)

    assert (refused.value.status, refused.value.field) == (409, "idempotency_key")
    assert snapshot(session) == before


def test_authorize_short_of_credits_is_402_and_leaves_nothing_behind(session, wallet):
    fund(session, wallet, 50)
    billing.authorize(session, wallet=wallet, amount=20, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)

    with pytest.raises(InsufficientCredits) as refused:
        billing.authorize(session, wallet=wallet, amount=31, idempotency_key="run-2", now=T0)

    assert (refused.value.status, refused.value.field) == (402, "amount")
    assert (refused.value.available, refused.value.requested) == (30, 31)
    assert str(refused.value) == "Not enough credits: 30 available, 31 requested."
    assert snapshot(session) == before
    assert session.scalar(select(Hold).where(Hold.idempotency_key == "run-2")) is None


def test_a_refused_key_can_be_used_once_credits_arrive(session, wallet):
    fund(session, wallet, 10)
    with pytest.raises(InsufficientCredits):
        billing.authorize(session, wallet=wallet, amount=25, idempotency_key="run-1", now=T0)
    session.rollback()
    fund(session, wallet, 20)

    hold = billing.authorize(session, wallet=wallet, amount=25, idempotency_key="run-1", now=T0)

    assert (hold.amount, hold.status, wallet.held) == (25, "active", 25)


def test_authorize_exactly_what_is_available_then_one_more_is_refused(session, wallet):
    fund(session, wallet, 40)
    billing.authorize(session, wallet=wallet, amount=40, idempotency_key="all", now=T0)
    session.commit()

    with pytest.raises(InsufficientCredits) as refused:
        billing.authorize(session, wallet=wallet, amount=1, idempotency_key="one-more", now=T0)

    assert refused.value.available == 0
    assert billing.wallet_balances(session, wallet=wallet, now=T0) == billing.WalletBalances(40, 40, 0)


@pytest.mark.parametrize("field,kwargs", [
    ("amount", {"amount": 0}),
    ("amount", {"amount": -5}),
    ("amount", {"amount": "5"}),
    ("amount", {"amount": True}),
    ("amount", {"amount": 2.5}),
    ("amount", {"amount": 2**31}),
    ("ttl_seconds", {"ttl_seconds": 0}),
    ("ttl_seconds", {"ttl_seconds": 24 * 3600 + 1}),
    ("idempotency_key", {"idempotency_key": ""}),
    ("idempotency_key", {"idempotency_key": "   "}),
    ("idempotency_key", {"idempotency_key": "k" * 129}),
    ("idempotency_key", {"idempotency_key": None}),
])
def test_authorize_rejects_bad_input_by_field(session, wallet, field, kwargs):
    fund(session, wallet, 100)
    before = snapshot(session)
    arguments = {"amount": 10, "idempotency_key": "run-1", "ttl_seconds": 60, **kwargs}

    with pytest.raises(BillingError) as refused:
        billing.authorize(session, wallet=wallet, now=T0, **arguments)

    assert (refused.value.status, refused.value.field) == (422, field)
    assert snapshot(session) == before


def test_settle_captures_the_usage_and_releases_the_rest_in_one_entry(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)

    settled = billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-1", now=at(10))
    session.commit()

    assert (settled.status, settled.captured, settled.settle_key, settled.closed_at) == ("settled", 12, "settle-1",
                                                                                        at(10))
    assert (wallet.balance, wallet.held) == (88, 0)
    assert entries_of(session, wallet) == [("grant", 100, 0, 100), ("hold", 0, 30, 100), ("capture", -12, -30, 88)]
    assert billing.wallet_balances(session, wallet=wallet, now=at(10)) == billing.WalletBalances(88, 0, 88)


def test_settle_twice_with_one_key_captures_once(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-1", now=at(10))
    session.commit()
    before = snapshot(session)

    again = billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-1", now=at(11))

    assert (again.id, again.captured) == (hold.id, 12)
    assert snapshot(session) == before


def test_settle_with_another_key_on_a_settled_hold_is_a_conflict(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-1", now=at(10))
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-2", now=at(11))

    assert (refused.value.status, str(refused.value)) == (409, "The hold is already settled.")
    assert snapshot(session) == before


def test_settle_replay_with_a_different_amount_is_a_conflict(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    billing.settle(session, hold_id=hold.id, amount=12, idempotency_key="settle-1", now=at(10))
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.settle(session, hold_id=hold.id, amount=13, idempotency_key="settle-1", now=at(11))

    assert (refused.value.status, refused.value.field) == (409, "idempotency_key")
    assert snapshot(session) == before


def test_settle_above_the_hold_captures_the_hold_and_notes_the_usage(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)

    settled = billing.settle(session, hold_id=hold.id, amount=45, idempotency_key="settle-1", now=at(10))
    session.commit()

    assert settled.captured == 30
    assert (wallet.balance, wallet.held) == (70, 0)
    capture = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "capture"))
    assert (capture.amount, capture.held_delta) == (-30, -30)
    assert capture.reference == "settled 30 of 30 (usage 45 capped at the hold)"
    # the replay of that request is recognised as the same settle
    assert billing.settle(session, hold_id=hold.id, amount=45, idempotency_key="settle-1", now=at(11)).id == hold.id


def test_settle_zero_releases_everything(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)

    settled = billing.settle(session, hold_id=hold.id, amount=0, idempotency_key="settle-1", now=at(10))
    session.commit()

    assert (settled.status, settled.captured) == ("settled", 0)
    assert (wallet.balance, wallet.held) == (100, 0)
    assert entries_of(session, wallet)[-1] == ("capture", 0, -30, 100)


@pytest.mark.parametrize("field,kwargs", [
    ("amount", {"amount": -1}),
    ("amount", {"amount": "3"}),
    ("hold_id", {"hold_id": 0}),
    ("hold_id", {"hold_id": "1"}),
    ("hold_id", {"hold_id": 2**31}),
    ("amount", {"amount": 2**31}),
    ("idempotency_key", {"idempotency_key": ""}),
])
def test_settle_rejects_bad_input_by_field(session, wallet, field, kwargs):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)
    arguments = {"hold_id": hold.id, "amount": 5, "idempotency_key": "settle-1", **kwargs}

    with pytest.raises(BillingError) as refused:
        billing.settle(session, now=at(1), **arguments)

    assert (refused.value.status, refused.value.field) == (422, field)
    assert snapshot(session) == before


def test_settle_of_an_unknown_hold_or_another_organizations_hold_is_not_found(session, wallet, other_wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)

    with pytest.raises(HoldNotFound) as unknown:
        billing.settle(session, hold_id=hold.id + 1000, amount=5, idempotency_key="settle-1", now=at(1))
    with pytest.raises(HoldNotFound) as foreign:
        billing.settle(session, hold_id=hold.id, amount=5, idempotency_key="settle-1",
                       organization_id=other_wallet.organization_id, now=at(1))

    assert unknown.value.status == foreign.value.status == 404
    assert snapshot(session) == before


def test_settle_key_already_used_on_another_hold_is_a_conflict(session, wallet):
    fund(session, wallet, 100)
    first = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    second = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-2", now=T0)
    billing.settle(session, hold_id=first.id, amount=5, idempotency_key="settle-1", now=at(1))
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.settle(session, hold_id=second.id, amount=5, idempotency_key="settle-1", now=at(2))

    assert (refused.value.status, refused.value.field) == (409, "idempotency_key")
    assert snapshot(session) == before


def test_settle_of_a_hold_past_its_ttl_is_refused_and_changes_nothing(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", ttl_seconds=60, now=T0)
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.settle(session, hold_id=hold.id, amount=5, idempotency_key="settle-1", now=at(60))

    assert refused.value.status == 409
    assert str(refused.value) == "The hold expired; its credits went back to the wallet."
    assert snapshot(session) == before


def test_release_returns_the_credits_and_is_idempotent(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)

    released = billing.release(session, hold_id=hold.id, idempotency_key="cancel-1", now=at(3))
    session.commit()
    before = snapshot(session)
    again = billing.release(session, hold_id=hold.id, now=at(4))

    assert (released.status, released.closed_at, again.id) == ("released", at(3), hold.id)
    assert (wallet.balance, wallet.held) == (100, 0)
    assert entries_of(session, wallet) == [("grant", 100, 0, 100), ("hold", 0, 30, 100), ("release", 0, -30, 100)]
    assert snapshot(session) == before


def test_release_of_a_settled_hold_and_settle_of_a_released_hold_are_conflicts(session, wallet):
    fund(session, wallet, 100)
    settled = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    released = billing.authorize(session, wallet=wallet, amount=20, idempotency_key="run-2", now=T0)
    billing.settle(session, hold_id=settled.id, amount=5, idempotency_key="settle-1", now=at(1))
    billing.release(session, hold_id=released.id, now=at(1))
    session.commit()
    before = snapshot(session)

    with pytest.raises(BillingError) as release_settled:
        billing.release(session, hold_id=settled.id, now=at(2))
    with pytest.raises(BillingError) as settle_released:
        billing.settle(session, hold_id=released.id, amount=5, idempotency_key="settle-2", now=at(2))

    assert (release_settled.value.status, str(release_settled.value)) == (409, "The hold is already settled.")
    assert (settle_released.value.status, str(settle_released.value)) == (
        409, "The hold was released; its credits went back to the wallet.")
    assert snapshot(session) == before


def test_release_of_an_unknown_or_foreign_hold_is_not_found(session, wallet, other_wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=T0)
    session.commit()
    before = snapshot(session)

    with pytest.raises(HoldNotFound):
        billing.release(session, hold_id=hold.id + 1000, now=at(1))
    with pytest.raises(HoldNotFound):
        billing.release(session, hold_id=hold.id, organization_id=other_wallet.organization_id, now=at(1))

    assert snapshot(session) == before
    assert billing.get_hold(session, hold_id=hold.id, organization_id=wallet.organization_id).status == "active"


def test_a_hold_past_its_ttl_is_not_held_even_before_it_is_expired(session, wallet):
    fund(session, wallet, 100)
    billing.authorize(session, wallet=wallet, amount=70, idempotency_key="run-1", ttl_seconds=60, now=T0)
    session.commit()

    assert billing.wallet_balances(session, wallet=wallet, now=at(59)) == billing.WalletBalances(100, 70, 30)
    assert billing.wallet_balances(session, wallet=wallet, now=at(60)) == billing.WalletBalances(100, 0, 100)


def test_authorize_uses_the_credits_of_expired_holds_and_releases_them(session, wallet):
    fund(session, wallet, 100)
    stale = billing.authorize(session, wallet=wallet, amount=70, idempotency_key="run-1", ttl_seconds=60, now=T0)
    live = billing.authorize(session, wallet=wallet, amount=20, idempotency_key="run-2", ttl_seconds=600, now=T0)
    session.commit()

    hold = billing.authorize(session, wallet=wallet, amount=80, idempotency_key="run-3", now=at(61))
    session.commit()

    assert hold.status == "active"
    assert billing.get_hold(session, hold_id=stale.id).status == "expired"
    assert billing.get_hold(session, hold_id=live.id).status == "active"
    assert (wallet.balance, wallet.held) == (100, 100)
    assert entries_of(session, wallet)[-2:] == [("release", 0, -70, 100), ("hold", 0, 80, 100)]
    assert billing.verify_ledger(session) == []


def test_expire_holds_releases_only_holds_past_their_ttl(session, wallet, other_wallet):
    fund(session, wallet, 100)
    fund(session, other_wallet, 100)
    first = billing.authorize(session, wallet=wallet, amount=10, idempotency_key="a", ttl_seconds=60, now=T0)
    second = billing.authorize(session, wallet=other_wallet, amount=20, idempotency_key="b", ttl_seconds=30, now=T0)
    kept = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="c", ttl_seconds=61, now=T0)
    session.commit()

    count = billing.expire_holds(session, now=at(60))
    session.commit()
    again = billing.expire_holds(session, now=at(60))

    assert (count, again) == (2, 0)
    statuses = [billing.get_hold(session, hold_id=h.id).status for h in (first, second, kept)]
    assert statuses == ["expired", "expired", "active"]
    assert billing.get_hold(session, hold_id=first.id).closed_at == at(60)
    assert entries_of(session, other_wallet) == [("grant", 100, 0, 100), ("hold", 0, 20, 100),
                                                 ("release", 0, -20, 100)]
    assert (wallet.held, other_wallet.held) == (30, 0)
    assert billing.verify_ledger(session) == []


def test_an_expired_hold_cannot_be_released_into_a_second_movement(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=10, idempotency_key="a", ttl_seconds=60, now=T0)
    billing.expire_holds(session, now=at(60))
    session.commit()
    before = snapshot(session)

    again = billing.release(session, hold_id=hold.id, now=at(61))

    assert again.status == "expired"
    assert snapshot(session) == before


def test_extend_hold_keeps_an_active_hold_longer_never_shorter_and_refuses_an_ended_one(session, wallet):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", ttl_seconds=120, now=T0)
    released = billing.authorize(session, wallet=wallet, amount=10, idempotency_key="run-2", ttl_seconds=120, now=T0)
    billing.release(session, hold_id=released.id, now=at(1))
    session.commit()
    before = snapshot(session)

    assert billing.extend_hold(session, hold_id=hold.id, until=at(600), now=at(100))
    assert billing.extend_hold(session, hold_id=hold.id, until=at(300), now=at(100))  # never shortened
    assert not billing.extend_hold(session, hold_id=released.id, until=at(600), now=at(100))
    assert not billing.extend_hold(session, hold_id=hold.id, until=at(900), now=at(600))  # its time ran out
    session.commit()

    assert session.get(Hold, hold.id, populate_existing=True).expires_at == at(600)
    assert session.get(Hold, released.id, populate_existing=True).status == "released"
    assert snapshot(session) == before  # no credits moved, no ledger entry
