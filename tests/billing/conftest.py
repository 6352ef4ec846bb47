"""Fixtures for the billing tests: an organization with an empty wallet, and a snapshot of
everything billing writes, to show that a refused call changed nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.models import CreditGrant, Hold, LedgerEntry, Notification, Wallet
from app.services import billing
from tests.factories import make_org, make_user

# a fixed clock: every call in these tests passes `now`, so nothing depends on when they run
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: int = 0, *, days: int = 0) -> datetime:
    return T0 + timedelta(seconds=seconds, days=days)


@pytest.fixture
def org(session):
    organization = make_org(session, owner=make_user(session))
    session.commit()
    return organization


@pytest.fixture
def wallet(session, org):
    found = billing.wallet_for_organization(session, org.id)
    session.commit()
    return found


@pytest.fixture
def other_wallet(session):
    organization = make_org(session, owner=make_user(session))
    found = billing.wallet_for_organization(session, organization.id)
    session.commit()
    return found


def fund(session, wallet, amount: int, *, origin: str = "purchase", expires_at: datetime | None = None,
         now: datetime = T0):
    """Grant credits and commit."""
    entry = billing.grant_credits(session, wallet=wallet, amount=amount, origin=origin, expires_at=expires_at,
                                  now=now)
    session.commit()
    return entry


@dataclass(frozen=True)
class Snapshot:
    balance: int
    held: int
    holds: tuple
    entries: int
    grants: tuple
    notifications: int


def snapshot(session) -> Snapshot:
    """Everything billing can change, read from the database (not from loaded objects)."""
    session.flush()
    wallets = session.execute(select(func.sum(Wallet.balance), func.sum(Wallet.held))).one()
    return Snapshot(
        balance=wallets[0] or 0,
        held=wallets[1] or 0,
        holds=tuple(session.execute(
            select(Hold.id, Hold.status, Hold.amount, Hold.captured, Hold.settle_key).order_by(Hold.id)
        ).all()),
        entries=session.scalar(select(func.count()).select_from(LedgerEntry)),
        grants=tuple(session.execute(select(CreditGrant.id, CreditGrant.remaining).order_by(CreditGrant.id)).all()),
        notifications=session.scalar(select(func.count()).select_from(Notification)),
    )


def entries_of(session, wallet) -> list[tuple]:
    """(kind, amount, held_delta, balance_after) of the wallet's ledger, oldest first."""
    return [tuple(row) for row in session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.held_delta, LedgerEntry.balance_after)
        .where(LedgerEntry.wallet_id == wallet.id).order_by(LedgerEntry.id)
    )]
