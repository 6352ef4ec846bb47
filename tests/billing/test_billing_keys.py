"""Idempotency keys belong to their wallet: a key answers with what its own wallet stored under it,
another wallet's key of the same name is another key, and the run gateway's keys are its own."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from app.models import CreditGrant, Hold, LedgerEntry, Wallet
from app.services import billing
from app.services.billing import BillingError
from tests.billing.conftest import T0, at, fund, snapshot
from tests.billing.race import ledger_folds, run_threads, stored_wallets


def balances(session, wallet) -> tuple[int, int]:
    session.expire_all()
    stored = session.get(Wallet, wallet.id)
    return stored.balance, stored.held


def test_one_key_in_two_wallets_makes_two_independent_holds(session, wallet, other_wallet):
    fund(session, wallet, 100)
    fund(session, other_wallet, 100)

    mine = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="job-1", now=T0)
    theirs = billing.authorize(session, wallet=other_wallet, amount=45, idempotency_key="job-1", now=T0)
    session.commit()

    assert mine.id != theirs.id
    assert (mine.wallet_id, mine.amount, theirs.wallet_id, theirs.amount) == (wallet.id, 30, other_wallet.id, 45)
    assert balances(session, wallet) == (100, 30)
    assert balances(session, other_wallet) == (100, 45)

    # settle keys are the wallet's own too: one settle key closes one hold in each wallet
    billing.settle(session, hold_id=mine.id, amount=10, idempotency_key="done-1", now=at(1))
    billing.release(session, hold_id=theirs.id, now=at(1))
    session.commit()
    assert balances(session, wallet) == (90, 0)
    assert balances(session, other_wallet) == (100, 0)
    third = billing.authorize(session, wallet=other_wallet, amount=5, idempotency_key="job-2", now=at(2))
    settled = billing.settle(session, hold_id=third.id, amount=5, idempotency_key="done-1", now=at(3))
    session.commit()
    assert (settled.status, settled.captured, settled.settle_key) == ("settled", 5, "done-1")
    assert balances(session, other_wallet) == (95, 0)
    assert billing.verify_ledger(session) == []


def test_a_key_reused_in_its_wallet_replays_the_stored_hold_and_only_there(session, wallet, other_wallet):
    fund(session, wallet, 100)
    fund(session, other_wallet, 100)
    first = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="job-1", now=T0)
    billing.settle(session, hold_id=first.id, amount=12, idempotency_key="done-1", now=at(1))
    session.commit()
    before = snapshot(session)

    replayed = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="job-1", now=at(2))
    settled_again = billing.settle(session, hold_id=first.id, amount=12, idempotency_key="done-1", now=at(2))
    session.commit()

    assert (replayed.id, replayed.status, replayed.captured) == (first.id, "settled", 12)
    assert settled_again.id == first.id
    assert snapshot(session) == before

    # in the other wallet the same key is a new key: another amount is no conflict, and it holds
    elsewhere = billing.authorize(session, wallet=other_wallet, amount=31, idempotency_key="job-1", now=at(3))
    session.commit()
    assert (elsewhere.id != first.id, elsewhere.status, elsewhere.amount) == (True, "active", 31)
    assert balances(session, wallet) == (88, 0)
    assert balances(session, other_wallet) == (100, 31)


def test_one_grant_key_in_two_wallets_grants_twice_and_replays_in_each(session, wallet, other_wallet):
    mine = billing.grant_credits(session, wallet=wallet, amount=50, origin="purchase", idempotency_key="order-7",
                                 now=T0)
    theirs = billing.grant_credits(session, wallet=other_wallet, amount=70, origin="purchase",
                                   idempotency_key="order-7", now=T0)
    session.commit()
    before = snapshot(session)

    again = billing.grant_credits(session, wallet=other_wallet, amount=70, origin="purchase",
                                  idempotency_key="order-7", now=T0)
    session.commit()

    assert mine.id != theirs.id and again.id == theirs.id
    assert snapshot(session) == before
    assert balances(session, wallet) == (50, 0)
    assert balances(session, other_wallet) == (70, 0)
    assert session.scalars(select(CreditGrant.amount).order_by(CreditGrant.id)).all() == [50, 70]


@pytest.mark.parametrize("call", ["authorize", "settle", "release"])
def test_callers_cannot_write_the_run_gateways_keys(session, wallet, call):
    fund(session, wallet, 100)
    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="job-1", now=T0)
    session.commit()
    before = snapshot(session)
    calls = {
        "authorize": lambda: billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run:7", now=T0),
        "settle": lambda: billing.settle(session, hold_id=hold.id, amount=5, idempotency_key="run:7:settle",
                                         now=at(1)),
        "release": lambda: billing.release(session, hold_id=hold.id, idempotency_key="run:7:release", now=at(1)),
    }

    with pytest.raises(BillingError) as refused:
        calls[call]()

    assert (refused.value.status, refused.value.field) == (422, "idempotency_key")
    assert "run:" in refused.value.message
    session.rollback()
    assert snapshot(session) == before


def test_the_run_gateways_own_keys_hold_settle_and_release(session, wallet):
    fund(session, wallet, 100)

    hold = billing.authorize(session, wallet=wallet, amount=30, idempotency_key=billing.run_key(7), now=T0)
    settled = billing.settle(session, hold_id=hold.id, amount=4, idempotency_key=billing.run_key(7, "settle"),
                             now=at(1))
    other = billing.authorize(session, wallet=wallet, amount=20, idempotency_key=billing.run_key(8), now=at(2))
    released = billing.release(session, hold_id=other.id, idempotency_key=billing.run_key(8, "release"), now=at(3))
    session.commit()

    assert (hold.idempotency_key, settled.settle_key, settled.captured) == ("run:7", "run:7:settle", 4)
    assert (other.idempotency_key, released.status) == ("run:8", "released")
    assert balances(session, wallet) == (96, 0)
    with pytest.raises(ValueError):
        billing.run_key(9, "capture")


@pytest.mark.parametrize("key", ["run:7", "hold:1", "close:1"])
def test_grants_cannot_take_the_keys_of_runs_and_holds(session, wallet, key):
    before = snapshot(session)

    with pytest.raises(BillingError) as refused:
        billing.grant_credits(session, wallet=wallet, amount=10, origin="purchase", idempotency_key=key, now=T0)

    assert (refused.value.status, refused.value.field) == (422, "idempotency_key")
    session.rollback()
    assert snapshot(session) == before


@pytest.fixture
def engine(db_url):
    engine = create_engine(db_url, pool_size=30, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.mark.postgres_only
def test_two_tenants_racing_with_one_key_get_exactly_one_hold_each(session, wallet, other_wallet, engine):
    fund(session, wallet, 100)
    fund(session, other_wallet, 100)
    wallets = [wallet.id, other_wallet.id] * 12

    def job(wallet_id):
        def authorize(thread_session):
            found = thread_session.get(Wallet, wallet_id)
            return billing.authorize(thread_session, wallet=found, amount=10, idempotency_key="shared", now=T0).id
        return authorize

    results = run_threads(engine, [job(wallet_id) for wallet_id in wallets])

    assert [r for r in results if not isinstance(r, int)] == []
    session.expire_all()
    holds = session.execute(select(Hold.id, Hold.wallet_id, Hold.amount).order_by(Hold.id)).all()
    assert sorted(wallet_id for _, wallet_id, _ in holds) == sorted([wallet.id, other_wallet.id])
    hold_of = {wallet_id: hold_id for hold_id, wallet_id, _ in holds}
    assert results == [hold_of[wallet_id] for wallet_id in wallets]
    assert balances(session, wallet) == (100, 10)
    assert balances(session, other_wallet) == (100, 10)
    assert billing.verify_ledger(session) == []
    assert stored_wallets(session) == ledger_folds(session)
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "hold")) == 2


@pytest.mark.postgres_only
def test_two_holds_settled_at_once_with_one_key_settle_one_and_refuse_the_other(session, wallet, engine):
    fund(session, wallet, 100)
    holds = [billing.authorize(session, wallet=wallet, amount=10, idempotency_key=f"job-{n}", now=T0).id
             for n in range(8)]
    session.commit()

    def job(hold_id):
        return lambda thread_session: billing.settle(thread_session, hold_id=hold_id, amount=4,
                                                     idempotency_key="same-settle", now=at(1)).id

    results = run_threads(engine, [job(hold_id) for hold_id in holds])

    settled = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, BillingError)]
    assert len(settled) == 1 and len(refused) == 7
    assert {(e.status, e.field) for e in refused} == {(409, "idempotency_key")}
    assert balances(session, wallet) == (96, 70)  # one capture of 4; seven holds still open
    assert billing.verify_ledger(session) == []
