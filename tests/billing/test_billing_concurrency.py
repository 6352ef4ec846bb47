"""Races: many threads (and processes), each on its own connection, against one wallet or one hold.

The PostgreSQL tests are the real ones (row locks, READ COMMITTED); one smaller race also runs on
SQLite, where writers queue on the database lock.
"""
from __future__ import annotations

import multiprocessing
import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.models import CreditGrant, Hold, LedgerEntry, Wallet, utcnow
from app.services import billing
from tests.billing.conftest import at, fund
from tests.billing.race import (
    active_hold_total, authorize_in_process, ledger_folds, run_threads, stored_wallets,
)


@pytest.fixture
def engine(db_url):
    options = {"connect_args": {"timeout": 30}} if db_url.startswith("sqlite") else {}
    engine = create_engine(db_url, pool_size=60, max_overflow=0, **options)
    yield engine
    engine.dispose()


def _authorize_job(wallet_id, key, amount, now):
    def job(session):
        wallet = session.get(Wallet, wallet_id)
        return billing.authorize(session, wallet=wallet, amount=amount, idempotency_key=key, now=now).id
    return job


def _watch_available(engine, wallet_id, stop: threading.Event, seen: list) -> threading.Thread:
    """Read the wallet row over and over while the race runs; keep every balance - held seen."""
    def watch():
        with Session(engine) as session:
            while not stop.is_set():
                balance, held = session.execute(select(Wallet.balance, Wallet.held).where(Wallet.id == wallet_id)).one()
                seen.append(balance - held)
                session.rollback()
    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def _assert_wallet_consistent(session, wallet_id):
    session.expire_all()
    assert billing.verify_ledger(session) == []
    assert stored_wallets(session)[wallet_id] == ledger_folds(session)[wallet_id]


@pytest.mark.postgres_only
def test_fifty_threads_authorize_one_wallet_without_overdrawing(session, wallet, engine):
    fund(session, wallet, 1000)
    fund(session, wallet, 200, origin="promo", expires_at=utcnow() + timedelta(days=30), now=utcnow())
    now, wallet_id = utcnow(), wallet.id
    rng = random.Random(2026)
    requests = [[(f"t{t}-{n}", rng.randint(1, 40)) for n in range(3)] for t in range(50)]
    for t in range(10, 20):  # ten pairs of threads send the same first request at the same moment
        requests[t][0] = requests[t - 10][0]

    def thread_job(ops):
        def job(session):
            wallet_row = session.get(Wallet, wallet_id)
            got = []
            for key, amount in ops + ops[:1]:  # the first request is retried at the end
                try:
                    got.append((key, amount, billing.authorize(session, wallet=wallet_row, amount=amount,
                                                               idempotency_key=key, now=now).id))
                    session.commit()
                except billing.InsufficientCredits:
                    session.rollback()
                    got.append((key, amount, None))
            return got
        return job

    stop, seen = threading.Event(), []
    watcher = _watch_available(engine, wallet.id, stop, seen)
    results = run_threads(engine, [thread_job(ops) for ops in requests])
    stop.set()
    watcher.join()

    assert not [r for r in results if isinstance(r, Exception)]
    outcomes = [item for result in results for item in result]
    holds_by_key: dict[str, set] = {}
    for key, amount, hold_id in outcomes:
        if hold_id is not None:
            holds_by_key.setdefault(key, set()).add(hold_id)
    assert all(len(ids) == 1 for ids in holds_by_key.values())  # a key never opened two holds
    session.expire_all()
    holds = {h.idempotency_key: h for h in session.scalars(select(Hold).where(Hold.wallet_id == wallet.id))}
    assert {key: ids.pop() for key, ids in holds_by_key.items()} == {key: h.id for key, h in holds.items()}
    stored = session.get(Wallet, wallet.id)
    assert stored.balance == 1200
    assert stored.held == sum(h.amount for h in holds.values()) == active_hold_total(session, wallet.id)
    assert stored.held <= 1200
    # nothing was refused while credits were there: held only grew, so the end state bounds every refusal
    refused = [amount for _, amount, hold_id in outcomes if hold_id is None]
    assert refused and all(amount > stored.balance - stored.held for amount in refused)
    assert seen and min(seen) >= 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "hold")) == len(holds)
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_authorize_races_across_processes(session, wallet, db_url):
    fund(session, wallet, 500)
    now = utcnow()
    rng = random.Random(7)
    plans = [[(f"p{p}-{n}", rng.randint(1, 30)) for n in range(25)] for p in range(4)]
    plans[1][:5] = plans[0][:5]  # two processes send five of the same requests

    # fork: the children start at once with the modules already imported; each opens its own engine
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(len(plans)), context.Queue()
    processes = [context.Process(target=authorize_in_process, args=(db_url, wallet.id, plan, now, barrier, queue))
                 for plan in plans]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert [process.exitcode for process in processes] == [0] * len(plans)
    assert not [report for report in reports if isinstance(report, str)]
    outcomes = [item for report in reports for item in report]

    assert {status for _, _, _, status in outcomes} <= {None, 402}
    ids_by_key: dict[str, set] = {}
    for key, _, hold_id, _ in outcomes:
        if hold_id is not None:
            ids_by_key.setdefault(key, set()).add(hold_id)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    session.expire_all()
    stored = session.get(Wallet, wallet.id)
    held_amounts = session.scalars(select(Hold.amount).where(Hold.wallet_id == wallet.id)).all()
    assert len(held_amounts) == len(ids_by_key)
    assert stored.held == sum(held_amounts) <= stored.balance == 500
    refused = [amount for _, amount, hold_id, _ in outcomes if hold_id is None]
    assert refused and all(amount > 500 - stored.held for amount in refused)
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_settling_twice_with_one_key_at_once_captures_once(session, wallet, engine):
    fund(session, wallet, 100)
    hold_id = billing.authorize(session, wallet=wallet, amount=40, idempotency_key="run-1").id
    session.commit()

    def settle_job(session):
        return billing.settle(session, hold_id=hold_id, amount=25, idempotency_key="settle-1").captured

    results = run_threads(engine, [settle_job] * 8)

    assert results == [25] * 8
    session.expire_all()
    stored = session.get(Wallet, wallet.id)
    assert (stored.balance, stored.held) == (75, 0)
    kinds = session.scalars(select(LedgerEntry.kind).where(LedgerEntry.hold_id == hold_id).order_by(LedgerEntry.id))
    assert list(kinds) == ["hold", "capture"]
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_settling_one_hold_with_different_keys_at_once_lets_exactly_one_win(session, wallet, engine):
    fund(session, wallet, 100)
    hold_id = billing.authorize(session, wallet=wallet, amount=40, idempotency_key="run-1").id
    session.commit()

    def settle_with(key):
        return lambda session: billing.settle(session, hold_id=hold_id, amount=10, idempotency_key=key).settle_key

    results = run_threads(engine, [settle_with(f"settle-{n}") for n in range(8)])

    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert [r.status for r in results if not isinstance(r, str)] == [409] * 7
    session.expire_all()
    assert session.get(Hold, hold_id).settle_key == winners[0]
    assert session.get(Wallet, wallet.id).balance == 90
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_settle_and_release_raced_on_one_hold_make_exactly_one_movement(session, wallet, engine):
    fund(session, wallet, 1000)
    holds = [billing.authorize(session, wallet=wallet, amount=30, idempotency_key=f"run-{n}").id for n in range(20)]
    session.commit()
    jobs = []
    for n, hold_id in enumerate(holds):
        jobs.append(lambda s, h=hold_id, n=n: billing.settle(s, hold_id=h, amount=20, idempotency_key=f"s-{n}").status)
        jobs.append(lambda s, h=hold_id: billing.release(s, hold_id=h).status)

    results = run_threads(engine, jobs)

    session.expire_all()
    settled = 0
    for n, hold_id in enumerate(holds):
        settle_result, release_result = results[2 * n], results[2 * n + 1]
        final = session.get(Hold, hold_id)
        closing = session.scalars(
            select(LedgerEntry.kind).where(LedgerEntry.hold_id == hold_id, LedgerEntry.kind != "hold")
        ).all()
        if final.status == "settled":
            settled += 1
            assert (settle_result, release_result.status, closing) == ("settled", 409, ["capture"])
        else:
            assert final.status == "released"
            assert (settle_result.status, release_result, closing) == (409, "released", ["release"])
    stored = session.get(Wallet, wallet.id)
    assert (stored.balance, stored.held) == (1000 - 20 * settled, 0)
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_expired_holds_come_back_to_concurrent_authorizations(session, wallet, engine):
    fund(session, wallet, 100)
    now = utcnow()
    stale = [billing.authorize(session, wallet=wallet, amount=20, idempotency_key=f"old-{n}", ttl_seconds=60,
                               now=now - timedelta(hours=1)).id for n in range(5)]
    wallet_id = wallet.id
    session.commit()

    results = run_threads(engine, [_authorize_job(wallet_id, f"new-{n}", 20, now) for n in range(10)])

    opened = [r for r in results if isinstance(r, int)]
    assert len(opened) == 5
    assert [r.status for r in results if not isinstance(r, int)] == [402] * 5
    session.expire_all()
    assert [session.get(Hold, h).status for h in stale] == ["expired"] * 5
    releases = session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "release"))
    assert releases == 5
    stored = session.get(Wallet, wallet.id)
    assert (stored.balance, stored.held) == (100, 100)
    _assert_wallet_consistent(session, wallet.id)


@pytest.mark.postgres_only
def test_a_mixed_workload_on_many_wallets_leaves_every_wallet_equal_to_its_ledger(session, engine):
    from tests.factories import make_org, make_user

    wallets = []
    for _ in range(4):
        wallet = billing.wallet_for_organization(session, make_org(session, owner=make_user(session)).id)
        billing.grant_credits(session, wallet=wallet, amount=300, origin="purchase")
        billing.grant_credits(session, wallet=wallet, amount=100, origin="promo",
                              expires_at=utcnow() + timedelta(seconds=1))
        wallets.append(wallet.id)
    session.commit()

    def worker(seed):
        def job(session):
            rng = random.Random(seed)
            for n in range(15):
                wallet = session.get(Wallet, rng.choice(wallets))
                try:
                    hold = billing.authorize(session, wallet=wallet, amount=rng.randint(1, 60),
                                             idempotency_key=f"w{seed}-{n}", ttl_seconds=rng.choice([1, 300]))
                    session.commit()
                    choice = rng.random()
                    if choice < 0.6:
                        billing.settle(session, hold_id=hold.id, amount=rng.randint(0, 80),
                                       idempotency_key=f"w{seed}-{n}-s")
                    elif choice < 0.8:
                        billing.release(session, hold_id=hold.id)
                    session.commit()  # the rest are left to expire
                except billing.BillingError:
                    session.rollback()
            return "done"
        return job

    def sweeper(session):
        for _ in range(10):
            billing.expire_holds(session)
            billing.expire_grants(session)
            session.commit()
        return "done"

    results = run_threads(engine, [worker(seed) for seed in range(16)] + [sweeper])

    assert results == ["done"] * 17
    session.expire_all()
    assert billing.verify_ledger(session) == []
    folds = ledger_folds(session)
    for wallet_id in wallets:
        stored = session.get(Wallet, wallet_id)
        assert folds[wallet_id] == (stored.balance, stored.held)
        assert 0 <= stored.held <= stored.balance


def test_threads_on_either_database_never_overdraw(session, wallet, engine):
    fund(session, wallet, 50)
    now, wallet_id = utcnow(), wallet.id
    jobs = [_authorize_job(wallet_id, f"k{n}", 9, now) for n in range(8)]

    results = run_threads(engine, jobs)

    opened = [r for r in results if isinstance(r, int)]
    assert len(opened) == 5  # 5 x 9 = 45 of 50; a sixth would need 54
    assert [r.status for r in results if not isinstance(r, int)] == [402] * 3
    session.expire_all()
    stored = session.get(Wallet, wallet.id)
    assert (stored.balance, stored.held) == (50, 45)
    _assert_wallet_consistent(session, wallet.id)


def _wait_for_a_lock_wait(engine) -> None:
    """Return once some other connection of this database waits for a row lock (the race is set up)."""
    with Session(engine) as watcher:
        for _ in range(3000):
            waiting = watcher.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ))
            watcher.rollback()
            if waiting:
                return
            threading.Event().wait(0.01)
    raise AssertionError("the settle never waited for the wallet row")


@pytest.mark.postgres_only
def test_a_settle_that_waited_for_a_concurrent_grant_draws_from_that_grant_first(session, wallet, engine):
    # given purchased credits, a hold on them, and a promotional grant being made (its transaction holds
    # the wallet row) while a settle starts: the settle's statement began before the grant was committed
    fund(session, wallet, 100, now=at())
    hold_id = billing.authorize(session, wallet=wallet, amount=30, idempotency_key="run-1", now=at(1)).id
    session.commit()
    results: list = []
    with Session(engine) as granting:
        billing.grant_credits(granting, wallet=granting.get(Wallet, wallet.id), amount=50, origin="promo",
                              expires_at=at(days=30), now=at(2))
        settler = threading.Thread(target=lambda: results.extend(run_threads(engine, [
            lambda s: billing.settle(s, hold_id=hold_id, amount=25, idempotency_key="settle-1", now=at(3)).captured
        ])))
        settler.start()
        _wait_for_a_lock_wait(engine)

        # when the grant commits and the settle goes on
        granting.commit()
        settler.join()

    # then the settle spent the promotional credits (they expire first), not the purchased ones
    assert results == [25]
    session.expire_all()
    remaining = dict(session.execute(select(CreditGrant.origin, CreditGrant.remaining)
                                     .where(CreditGrant.wallet_id == wallet.id)).all())
    assert remaining == {"purchase": 100, "promo": 25}
    stored = session.get(Wallet, wallet.id)
    assert (stored.balance, stored.held) == (125, 0)
    _assert_wallet_consistent(session, wallet.id)
