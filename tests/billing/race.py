"""Helpers for the race tests: run billing calls from many threads or processes, each on its own
connection, all released at once by a barrier. Importable by spawned processes."""
from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.models import Hold, LedgerEntry, Wallet
from app.services import billing


def run_threads(engine, jobs) -> list:
    """Run each job(session) in its own thread with its own Session; commit on success, roll back on a
    BillingError. Returns each job's result, or the BillingError it raised, in job order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def runner(index, job):
        with Session(engine) as session:
            barrier.wait()
            try:
                results[index] = job(session)
                session.commit()
            except billing.BillingError as exc:
                session.rollback()
                results[index] = exc
            except Exception as exc:  # reported by the test, not swallowed
                session.rollback()
                results[index] = exc

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def authorize_many(db_url: str, wallet_id: int, requests: list[tuple[str, int]], now: datetime,
                   barrier=None) -> list[tuple[str, int, int | None, int | None]]:
    """In this process: authorize each (key, amount), one transaction each. Returns
    (key, amount, hold id or None, HTTP status of a refusal or None)."""
    engine = create_engine(db_url, pool_size=1, max_overflow=0)
    out = []
    try:
        with Session(engine) as session:
            wallet = session.get(Wallet, wallet_id)
            if barrier is not None:
                barrier.wait()
            for key, amount in requests:
                try:
                    hold = billing.authorize(session, wallet=wallet, amount=amount, idempotency_key=key, now=now)
                    session.commit()
                    out.append((key, amount, hold.id, None))
                except billing.BillingError as exc:
                    session.rollback()
                    out.append((key, amount, None, exc.status))
    finally:
        engine.dispose()
    return out


def authorize_in_process(db_url, wallet_id, requests, now, barrier, results) -> None:
    """Process target: authorize_many after the barrier, the outcomes put on the `results` queue."""
    try:
        results.put(authorize_many(db_url, wallet_id, requests, now, barrier))
    except Exception as exc:  # the test reports it
        results.put(repr(exc))


def ledger_folds(session) -> dict[int, tuple[int, int]]:
    """wallet id -> (sum of amount, sum of held_delta) over its ledger."""
    return {wallet_id: (int(amount), int(held)) for wallet_id, amount, held in session.execute(
        select(LedgerEntry.wallet_id, func.sum(LedgerEntry.amount), func.sum(LedgerEntry.held_delta))
        .group_by(LedgerEntry.wallet_id)
    )}


def stored_wallets(session) -> dict[int, tuple[int, int]]:
    return {wallet_id: (balance, held) for wallet_id, balance, held in session.execute(
        select(Wallet.id, Wallet.balance, Wallet.held).where(Wallet.id.in_(select(LedgerEntry.wallet_id)))
    )}


def active_hold_total(session, wallet_id: int) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(Hold.amount), 0)).where(Hold.wallet_id == wallet_id, Hold.status == "active")
    )
