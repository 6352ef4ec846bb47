"""Expiry sweeps: holds past their TTL and trial or promotional credits past their date.

Expired holds. A hold past its TTL never reduces the credits a caller can use: `wallet_balances`
leaves it out of `held`, and `authorize`, when the fast path finds too few credits, locks the
wallet, releases that wallet's expired holds and tries once more (so the common path pays
nothing for it). `expire_holds` (the `flask --app app expire-holds` command) releases them all.

Expiring grants. So that a sweep cannot take credits a hold reserved, `expire_grants` removes only
the part of an expired grant that no earlier hold can still draw on; the rest goes at a later sweep.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import CreditGrant, Hold, HoldStatus, LedgerEntry, LedgerKind, Wallet, utcnow
from app.services.billing.common import (
    _take_from_grant, _ACTIVE, _NO_SYNC, _aware, _expire_loaded_grants, _expire_loaded_holds, _lock_wallet,
    _notify_if_crossed, _sync_wallet,
)


def expire_holds(session: Session, *, now: datetime | None = None) -> int:
    """Release every active hold past its TTL (status `expired`); returns how many. Safe to run at any time."""
    now = now or utcnow()
    rows = session.execute(
        select(Hold.id, Hold.wallet_id)
        .where(Hold.status == _ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.wallet_id, Hold.id)
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    by_wallet: dict[int, list[int]] = defaultdict(list)
    for hold_id, wallet_id in rows:
        by_wallet[wallet_id].append(hold_id)
    count = 0
    for wallet_id in sorted(by_wallet):  # one wallet order for every sweep: no deadlock between two sweeps
        count += _expire_hold_ids(session, wallet_id=wallet_id, hold_ids=by_wallet[wallet_id], now=now)
    return count


def _release_expired_holds(session: Session, *, wallet_id: int, now: datetime) -> int:
    hold_ids = session.scalars(
        select(Hold.id)
        .where(Hold.wallet_id == wallet_id, Hold.status == _ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.id)
        .with_for_update(skip_locked=True, key_share=True)  # a hold being settled or released now is theirs
    ).all()
    return _expire_hold_ids(session, wallet_id=wallet_id, hold_ids=list(hold_ids), now=now) if hold_ids else 0


def _expire_hold_ids(session: Session, *, wallet_id: int, hold_ids: list[int], now: datetime) -> int:
    expired = session.execute(
        update(Hold)
        .where(Hold.id.in_(hold_ids), Hold.status == _ACTIVE, Hold.expires_at <= now)
        .values(status=HoldStatus.EXPIRED.value, closed_at=now)
        .returning(Hold.id, Hold.amount, Hold.instance_id),
        execution_options=_NO_SYNC,
    ).all()
    if not expired:
        return 0
    total = sum(amount for _, amount, _ in expired)
    balance, held = session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(held=Wallet.held - total)
        .returning(Wallet.balance, Wallet.held), execution_options=_NO_SYNC,
    ).one()
    for hold_id, amount, instance_id in sorted(expired):
        session.add(LedgerEntry(
            wallet_id=wallet_id, kind=LedgerKind.RELEASE.value, amount=0, held_delta=-amount,
            balance_after=balance, hold_id=hold_id, instance_id=instance_id, reference="hold expired",
            idempotency_key=f"close:{hold_id}",
        ))
    session.flush()
    _expire_loaded_holds(session, [hold_id for hold_id, _, _ in expired])
    _sync_wallet(session, wallet_id, balance, held)
    return len(expired)


def expire_grants(session: Session, *, now: datetime | None = None) -> int:
    """Remove the unused credits of trial and promotional grants past their expiry with `expiry`
    entries; returns the number of entries written. Safe to run at any time."""
    now = now or utcnow()
    wallet_ids = session.scalars(
        select(CreditGrant.wallet_id)
        .where(CreditGrant.expires_at <= now, CreditGrant.remaining > 0)
        .distinct().order_by(CreditGrant.wallet_id)
    ).all()
    return sum(_expire_wallet_grants(session, wallet_id=wallet_id, now=now) for wallet_id in wallet_ids)


def _expire_wallet_grants(session: Session, *, wallet_id: int, now: datetime) -> int:
    balance, held = _lock_wallet(session, wallet_id)
    expired = session.execute(
        select(CreditGrant.id, CreditGrant.remaining, CreditGrant.expires_at, CreditGrant.origin,
               CreditGrant.instance_id)
        .where(CreditGrant.wallet_id == wallet_id, CreditGrant.expires_at <= now, CreditGrant.remaining > 0)
        .order_by(CreditGrant.expires_at, CreditGrant.id)
    ).all()
    holds = session.execute(
        select(Hold.amount, Hold.created_at).where(Hold.wallet_id == wallet_id, Hold.status == _ACTIVE)
    ).all()
    removable = balance - held  # never take credits that back a hold: held <= balance stays true
    reserved = 0
    plan: list[tuple] = []
    for grant_id, remaining, expires_at, origin, instance_id in expired:
        expires_at = _aware(expires_at)
        # what holds made before this grant expired may still draw from it, after earlier grants
        may_draw = sum(amount for amount, made_at in holds if _aware(made_at) < expires_at)
        kept = min(remaining, max(0, may_draw - reserved))
        reserved += kept
        take = min(remaining - kept, removable)
        if take > 0:
            removable -= take
            plan.append((grant_id, take, origin, instance_id))
    if not plan:
        return 0
    total = sum(take for _, take, _, _ in plan)
    new_balance, new_held, threshold, org_id = session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(balance=Wallet.balance - total)
        .returning(Wallet.balance, Wallet.held, Wallet.low_balance_threshold, Wallet.organization_id),
        execution_options=_NO_SYNC,
    ).one()
    running = new_balance + total
    for grant_id, take, origin, instance_id in plan:
        _take_from_grant(session, wallet_id=wallet_id, grant_id=grant_id, credits=take)
        running -= take
        session.add(LedgerEntry(
            wallet_id=wallet_id, kind=LedgerKind.EXPIRY.value, amount=-take, held_delta=0, balance_after=running,
            grant_id=grant_id, instance_id=instance_id, reference=f"{origin} credits expired",
        ))
    _notify_if_crossed(session, org_id, threshold, before=new_balance + total, after=new_balance)
    session.flush()
    _expire_loaded_grants(session, wallet_id)
    _sync_wallet(session, wallet_id, new_balance, new_held)
    return len(plan)
