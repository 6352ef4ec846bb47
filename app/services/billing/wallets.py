"""Wallets: one per organization, created on first use; what a wallet can spend now; its low-balance alert."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.models import CreditGrant, Hold, User, Wallet, utcnow
from app.services import audit
from app.services.billing.common import _ACTIVE, _NO_SYNC, _insert, _positive_int


@dataclass(frozen=True)
class WalletBalances:
    """What a wallet can spend now: `held` counts live holds only, `available` is never negative."""

    balance: int
    held: int
    available: int


def wallet_for_organization(session: Session, organization_id: int) -> Wallet:
    """The organization's wallet, created empty on first use (safe when two requests race to create it)."""
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == organization_id))
    if wallet is None:
        session.execute(
            _insert(session, Wallet).values(organization_id=organization_id, balance=0, held=0)
            .on_conflict_do_nothing(index_elements=[Wallet.organization_id])
        )
        wallet = session.scalars(
            select(Wallet).where(Wallet.organization_id == organization_id),
            execution_options={"populate_existing": True},
        ).one()
    return wallet


def wallet_balances(session: Session, *, wallet: Wallet, now: datetime | None = None) -> WalletBalances:
    """Balance, live holds and available credits, read fresh from the database.

    `balance` is the stored fold of the ledger. Holds past their TTL are not in `held` even before
    `expire_holds` runs. Credits of grants past their expiry are not available to new holds.
    """
    now = now or utcnow()
    expired_holds = (
        select(func.coalesce(func.sum(Hold.amount), 0))
        .where(Hold.wallet_id == wallet.id, Hold.status == _ACTIVE, Hold.expires_at <= now)
        .scalar_subquery()
    )
    balance, held, stale_held, expired_credits = session.execute(
        select(Wallet.balance, Wallet.held, expired_holds, _expired_credits(wallet.id, now))
        .where(Wallet.id == wallet.id)
    ).one()
    live_held = held - stale_held
    return WalletBalances(balance=balance, held=live_held, available=max(0, balance - live_held - expired_credits))


def _expired_credits(wallet_id: int, now: datetime):
    """Credits still on grants past their expiry (not yet swept, or reserved by older holds)."""
    return (
        select(func.coalesce(func.sum(CreditGrant.remaining), 0))
        .where(CreditGrant.wallet_id == wallet_id, CreditGrant.expires_at <= now)
        .scalar_subquery()
    )


def set_low_balance_threshold(
    session: Session, *, wallet: Wallet, threshold: int | None, actor: User | None = None,
) -> Wallet:
    """Notify the organization when its balance falls below `threshold` (None switches it off).

    Only a fall from at-or-above to below the threshold notifies, so each crossing notifies once.
    """
    if threshold is not None:
        threshold = _positive_int(threshold, "threshold")
    session.execute(
        update(Wallet).where(Wallet.id == wallet.id).values(low_balance_threshold=threshold),
        execution_options=_NO_SYNC,
    )
    set_committed_value(wallet, "low_balance_threshold", threshold)
    audit.record(
        session, action="wallet.low_balance_threshold_set", target_type="wallet", target_id=wallet.id,
        organization_id=wallet.organization_id, actor=actor, data={"threshold": threshold},
    )
    session.flush()
    return wallet
