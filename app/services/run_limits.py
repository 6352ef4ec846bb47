"""Limits a run must pass before anything is held: runs in progress at once (per instance and per
wallet, from the plan) and the calling API key's monthly credit quota.

Both are counts over rows other requests are writing, so the check first takes the wallet's row
lock (the same lock a hold takes), and keeps it until the caller commits the run and its hold: two
runs of one wallet cannot both see room for one more. The API key belongs to an instance of that
wallet's organization, so its quota is guarded by the same lock.

Per-key request rates are counted before the request reaches a view (app.auth.rate_limits).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from app.models import ApiKey, Hold, Instance, Run, RunStatus, Wallet, utcnow
from app.services import billing

# runs in progress count against the concurrency limits (the runner adds "queued")
IN_PROGRESS = (RunStatus.RUNNING.value, "queued")
# how long a caller refused for concurrency is asked to wait: about one short run
CONCURRENCY_RETRY_AFTER_SECONDS = 2


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s calendar month (UTC)."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def check_run_allowed(
    session: Session, *, instance: Instance, api_key: ApiKey | None, amount: int, now: datetime | None = None,
) -> Wallet:
    """Raise runs.RunError unless one more run of `instance` (holding up to `amount` credits, started by
    `api_key` if given) fits the plan's concurrency limits and the key's monthly quota.

    Takes the wallet's row lock until the caller's transaction ends (see the module's notes), so call
    it right before the run and its hold are written, in the same transaction. Returns the wallet
    (locked), for the hold.
    """
    now = now or utcnow()
    plan = instance.plan
    wallet = _lock_wallet_of(session, instance.organization_id)
    on_instance, on_wallet = session.execute(
        select(func.count().filter(Run.instance_id == instance.id), func.count())
        .select_from(Run).join(Instance, Instance.id == Run.instance_id)
        .where(Run.status.in_(IN_PROGRESS), Instance.organization_id == instance.organization_id)
    ).one()
    if on_instance >= plan.max_concurrent_runs:
        _refuse(
            f"This instance already has {on_instance} runs in progress, the most its plan allows at once "
            f"({plan.max_concurrent_runs}). Wait for one to finish and try again.",
            status=429, code="instance_concurrency_limit", retry_after=CONCURRENCY_RETRY_AFTER_SECONDS,
            limit=plan.max_concurrent_runs, in_progress=on_instance,
        )
    if on_wallet >= plan.max_concurrent_runs_per_wallet:
        _refuse(
            f"Your organization already has {on_wallet} runs in progress, the most this plan allows at once "
            f"across your instances ({plan.max_concurrent_runs_per_wallet}). Wait for one to finish and try again.",
            status=429, code="wallet_concurrency_limit", retry_after=CONCURRENCY_RETRY_AFTER_SECONDS,
            limit=plan.max_concurrent_runs_per_wallet, in_progress=on_wallet,
        )
    if api_key is not None and api_key.monthly_credit_quota is not None:
        used = credits_used_by_key(session, api_key_id=api_key.id, since=month_start(now))
        quota = api_key.monthly_credit_quota
        if used + amount > quota:
            _refuse(
                f"This API key's monthly quota of {quota:,} credits would be exceeded: {used:,} are used or held "
                f"this month and this run may cost up to {amount:,}. Raise the key's quota, or wait for next month.",
                status=402, code="key_quota_exceeded", quota=quota, used=used, requested=amount,
            )
    return wallet


def _refuse(message: str, *, status: int, code: str, **extra) -> None:
    """Raise the gateway's RunError (imported here: the gateway module imports this one). `code` names
    the limit; a 429 carries `retry_after` (seconds) for the Retry-After header."""
    from app.services.runs import RunError

    raise RunError(message, status=status, code=code, **extra)


def credits_used_by_key(session: Session, *, api_key_id: int, since: datetime) -> int:
    """Credits the key's runs since `since` were charged, plus what its runs in progress hold."""
    in_progress = Run.status.in_(IN_PROGRESS)
    return int(session.scalar(
        select(func.coalesce(func.sum(case((in_progress, func.coalesce(Hold.amount, 0)), else_=Run.credits)), 0))
        .select_from(Run).outerjoin(Hold, Hold.id == Run.hold_id)
        .where(Run.api_key_id == api_key_id, Run.created_at >= since)
    ) or 0)


def _lock_wallet_of(session: Session, organization_id: int) -> Wallet:
    """The organization's wallet, its row held until the transaction ends (created if needed)."""
    if session.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE, as billing takes it: holds and ledger rows reference the wallet
        wallet = session.scalar(
            select(Wallet).where(Wallet.organization_id == organization_id).with_for_update(key_share=True),
            execution_options={"populate_existing": True},
        )
    else:  # SQLite has no row locks: a write takes the database's write lock for the transaction
        locked = session.execute(
            update(Wallet).where(Wallet.organization_id == organization_id).values(balance=Wallet.balance)
            .returning(Wallet.id), execution_options={"synchronize_session": False},
        ).scalar()
        wallet = session.get(Wallet, locked, populate_existing=True) if locked is not None else None
    if wallet is None:
        billing.wallet_for_organization(session, organization_id)
        return _lock_wallet_of(session, organization_id)
    return wallet
