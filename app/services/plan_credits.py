"""Included plan credits: they belong to their billing period.

A plan's included credits are one grant per period (origin `plan`) that expires at the period's
end, so they are spent before purchased packs (billing draws earliest expiry first) and what is
left at the end goes with the `expire-holds` sweep (`billing.expire_grants`). Cancelling the
instance ends the grant at once: `end_included_credits` moves its expiry to the moment of
cancellation and takes its unused credits out of the wallet with an `expiry` ledger entry that
says why, plus an audit event. Purchased packs are never touched.

Ending a grant follows the same rules as billing's expiry sweep, under the same lock order
(wallet, then grants): the wallet row is locked first, so no settle, hold or sweep of the wallet
runs in between; credits that an active hold may still capture from the grant stay on it (a run
that started before the cancellation may still be settled from them) and go with the next sweep,
since the grant has expired. So the balance never goes below what is held, and the ledger still
folds to the balance.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.models import (
    CreditGrant, GrantOrigin, Hold, HoldStatus, Instance, LedgerEntry, LedgerKind, Notification, User, Wallet,
    utcnow,
)
from app.services import audit, billing
from app.services.errors import ServiceError

AUDIT_PLAN_CREDITS_ENDED = "credits.plan_credits_ended"


class PlanCreditsError(ServiceError):
    """Included credits could not be granted or ended; the message is safe to show."""


def grant_included_credits(
    session: Session,
    *,
    instance: Instance,
    period_end: datetime,
    reference: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> LedgerEntry | None:
    """Grant the plan's included credits for the period that ends at `period_end` (their expiry).

    None when the plan includes none. With the same key a repeat returns the first entry (billing's
    idempotency). Flushes; the caller commits."""
    amount = instance.plan.included_credits
    if amount <= 0:
        return None
    now = now or utcnow()
    if period_end <= now:
        raise PlanCreditsError("The billing period has already ended.", field="period_end", status=422)
    wallet = billing.wallet_for_organization(session, instance.organization_id)
    return billing.grant_credits(
        session, wallet=wallet, amount=amount, origin=GrantOrigin.PLAN.value, reference=reference[:120],
        expires_at=period_end, instance_id=instance.id, idempotency_key=idempotency_key, now=now,
    )


def included_grants(session: Session, *, instance: Instance, now: datetime | None = None) -> list[CreditGrant]:
    """The instance's included-credit grants still running at `now` (credits left, not past their end)."""
    now = now or utcnow()
    return list(session.scalars(
        select(CreditGrant)
        .where(CreditGrant.instance_id == instance.id, CreditGrant.origin == GrantOrigin.PLAN.value,
               CreditGrant.remaining > 0,
               CreditGrant.expires_at.is_(None) | (CreditGrant.expires_at > now))
        .order_by(CreditGrant.id),
        execution_options={"populate_existing": True},
    ))


def end_included_credits(
    session: Session,
    *,
    instance: Instance,
    reason: str = "the plan was cancelled",
    actor: User | None = None,
    actor_label: str | None = None,
    now: datetime | None = None,
) -> int:
    """End the instance's included credits now; returns the credits taken out of the wallet.

    Each running grant of the instance's plan credits expires at `now`; its unused credits leave the
    wallet in an `expiry` entry whose reference gives the plan and `reason`, except those that active
    holds may still capture (they leave with the next `expire-holds` sweep). Nothing to end: 0, and
    nothing is written. Flushes; the caller commits.
    """
    now = now or utcnow()
    wallet = billing.wallet_for_organization(session, instance.organization_id)
    if not _has_running_grants(session, instance_id=instance.id, now=now):
        return 0
    balance, held, threshold = _lock_wallet(session, wallet.id)
    grants = session.execute(  # read again holding the wallet: every change of a grant holds it too
        select(CreditGrant.id, CreditGrant.remaining)
        .where(CreditGrant.instance_id == instance.id, CreditGrant.wallet_id == wallet.id,
               CreditGrant.origin == GrantOrigin.PLAN.value, CreditGrant.remaining > 0,
               CreditGrant.expires_at.is_(None) | (CreditGrant.expires_at > now))
        .order_by(CreditGrant.id)
    ).all()
    if not grants:
        return 0
    session.execute(
        update(CreditGrant).where(CreditGrant.id.in_([grant_id for grant_id, _ in grants]))
        .values(expires_at=now).execution_options(synchronize_session=False)
    )
    # any active hold was made before now, while these grants could be spent: it may capture from them
    may_capture = session.scalar(
        select(func.coalesce(func.sum(Hold.amount), 0))
        .where(Hold.wallet_id == wallet.id, Hold.status == HoldStatus.ACTIVE.value)
    ) or 0
    removable = balance - held  # never take credits that back a hold: held <= balance stays true
    plan = instance.plan
    label = f"{plan.offering.name} {plan.name} plan"
    taken_total = 0
    for grant_id, remaining in grants:
        kept = min(remaining, may_capture)
        may_capture -= kept
        take = min(remaining - kept, removable)
        if take <= 0:
            continue
        removable -= take
        moved = session.execute(
            update(Wallet).where(Wallet.id == wallet.id, Wallet.balance - Wallet.held >= take)
            .values(balance=Wallet.balance - take).returning(Wallet.balance, Wallet.held)
            .execution_options(synchronize_session=False)
        ).first()
        drawn = session.execute(
            update(CreditGrant).where(CreditGrant.id == grant_id, CreditGrant.remaining >= take)
            .values(remaining=CreditGrant.remaining - take).execution_options(synchronize_session=False)
        ).rowcount
        if moved is None or drawn != 1:
            raise billing.LedgerOutOfStep(wallet.id)
        balance, held = moved
        session.execute(insert(LedgerEntry.__table__).values(
            wallet_id=wallet.id, kind=LedgerKind.EXPIRY.value, amount=-take, held_delta=0, balance_after=balance,
            grant_id=grant_id, instance_id=instance.id,
            reference=f"{label}: {take:,} unused included credit{'' if take == 1 else 's'} ended, {reason}"[:200],
        ))
        taken_total += take
    audit.record(
        session, action=AUDIT_PLAN_CREDITS_ENDED, target_type="instance", target_id=instance.id,
        organization_id=instance.organization_id, actor=actor, actor_label=actor_label,
        data={"grants": [grant_id for grant_id, _ in grants], "credits_removed": taken_total,
              "credits_kept_for_runs_in_progress": sum(r for _, r in grants) - taken_total, "reason": reason},
    )
    if taken_total and threshold is not None and balance + taken_total >= threshold > balance:
        session.add(Notification(  # the low-balance rule billing applies to every other fall of the balance
            organization_id=instance.organization_id, kind=billing.NOTIFICATION_LOW_BALANCE,
            message=f"Your credit balance fell below {threshold}: {balance} credits left.",
        ))
    session.flush()
    _refresh_loaded(session, wallet.id, balance, held, [grant_id for grant_id, _ in grants])
    return taken_total


def _has_running_grants(session: Session, *, instance_id: int, now: datetime) -> bool:
    return session.scalar(
        select(CreditGrant.id)
        .where(CreditGrant.instance_id == instance_id, CreditGrant.origin == GrantOrigin.PLAN.value,
               CreditGrant.remaining > 0,
               CreditGrant.expires_at.is_(None) | (CreditGrant.expires_at > now))
        .limit(1)
    ) is not None


def lock_wallet_of(session: Session, *, organization_id: int) -> None:
    """Hold the organization's wallet row until the transaction ends (the lock every grant change takes)."""
    wallet = billing.wallet_for_organization(session, organization_id)
    _lock_wallet(session, wallet.id)


def _lock_wallet(session: Session, wallet_id: int) -> tuple[int, int, int | None]:
    """Hold the wallet row until the transaction ends: (balance, held, low-balance threshold) as of now.

    A no-op UPDATE takes the lock an UPDATE of the row takes (FOR NO KEY UPDATE on PostgreSQL, the
    database write lock on SQLite), the same one every billing change of the wallet takes, and on
    PostgreSQL it returns the newest committed row once the lock is ours."""
    return tuple(session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(balance=Wallet.balance)
        .returning(Wallet.balance, Wallet.held, Wallet.low_balance_threshold)
        .execution_options(synchronize_session=False)
    ).one())


def _refresh_loaded(session: Session, wallet_id: int, balance: int, held: int, grant_ids: list[int]) -> None:
    wallet = session.identity_map.get(identity_key(Wallet, wallet_id))
    if wallet is not None:
        set_committed_value(wallet, "balance", balance)
        set_committed_value(wallet, "held", held)
    for grant_id in grant_ids:
        grant = session.identity_map.get(identity_key(CreditGrant, grant_id))
        if grant is not None:
            session.expire(grant, ["remaining", "expires_at"])
