"""Wallets and the credit ledger.

Every change of a wallet is one conditional UPDATE of its row (no read-modify-write), then one
append-only LedgerEntry carrying the balance after it, in the caller's transaction.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import CreditGrant, LedgerEntry, LedgerKind, Wallet


class BillingError(Exception):
    """A billing rule was broken; the message is safe to show."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def wallet_for_organization(session: Session, organization_id: int) -> Wallet:
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == organization_id))
    if wallet is None:
        wallet = Wallet(organization_id=organization_id, balance=0, held=0)
        session.add(wallet)
        session.flush()
    return wallet


def grant_credits(
    session: Session,
    *,
    wallet: Wallet,
    amount: int,
    origin: str,
    reference: str | None = None,
    expires_at: datetime | None = None,
    instance_id: int | None = None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Add a lot of credits to a wallet; with an idempotency key, a repeat returns the first entry."""
    if amount <= 0:
        raise BillingError("Grant a positive number of credits.", field="amount")
    if idempotency_key:
        existing = session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    balance_after = session.execute(
        update(Wallet).where(Wallet.id == wallet.id)
        .values(balance=Wallet.balance + amount)
        .returning(Wallet.balance)
    ).scalar_one()
    grant = CreditGrant(
        wallet_id=wallet.id, origin=origin, amount=amount, remaining=amount, expires_at=expires_at,
        instance_id=instance_id, reference=reference,
    )
    session.add(grant)
    session.flush()
    entry = LedgerEntry(
        wallet_id=wallet.id, kind=LedgerKind.GRANT.value, amount=amount, held_delta=0,
        balance_after=balance_after, grant_id=grant.id, instance_id=instance_id,
        reference=reference or origin, idempotency_key=idempotency_key,
    )
    session.add(entry)
    session.flush()
    session.refresh(wallet)
    return entry
