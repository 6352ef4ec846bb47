"""Wallets, credit grants, the append-only ledger, holds and notifications.

Balance and held are folds over the ledger: balance = sum(amount), held = sum(held_delta).
The wallet row caches both and is updated in the same transaction as the entry.

Idempotency keys belong to their wallet: each is unique per wallet, never across the platform, so
one organization's keys can neither block another's nor tell it which keys exist elsewhere. The
key comes first in those unique indexes, so a look-up by key alone (provisioning's order-line keys)
still uses them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class LedgerKind(StrEnum):
    GRANT = "grant"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND = "refund"
    EXPIRY = "expiry"


class HoldStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class GrantOrigin(StrEnum):
    PURCHASE = "purchase"
    PLAN = "plan"
    TRIAL = "trial"
    PROMO = "promo"


class Wallet(Model):
    __tablename__ = "wallet"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_nonnegative"),
        CheckConstraint("held >= 0", name="held_nonnegative"),
        CheckConstraint("held <= balance", name="held_within_balance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), unique=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    low_balance_threshold: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    organization: Mapped["Organization"] = relationship()  # noqa: F821

    @property
    def available(self) -> int:
        return self.balance - self.held


class CreditGrant(Model):
    """A lot of credits with an origin; spent earliest-expiry first, purchased (never expiring) last."""

    __tablename__ = "credit_grant"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id", ondelete="CASCADE"), index=True)
    origin: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="SET NULL"))
    reference: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Hold(Model):
    __tablename__ = "hold"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="captured_range"),
        Index("ix_hold_status_expires_at", "status", "expires_at"),
        UniqueConstraint("idempotency_key", "wallet_id"),
        UniqueConstraint("settle_key", "wallet_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="SET NULL"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    captured: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.ACTIVE.value)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    settle_key: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    closed_at: Mapped[datetime | None]

    wallet: Mapped[Wallet] = relationship()


class LedgerEntry(Model):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint("balance_after >= 0", name="balance_after_nonnegative"),
        Index("ix_ledger_entry_wallet_id_id", "wallet_id", "id"),
        UniqueConstraint("idempotency_key", "wallet_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)  # signed change of the balance
    held_delta: Mapped[int] = mapped_column(Integer, default=0)  # signed change of held credits
    balance_after: Mapped[int] = mapped_column(Integer)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id", ondelete="SET NULL"), index=True)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("credit_grant.id", ondelete="SET NULL"))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="SET NULL"), index=True)
    reference: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(Model):
    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[datetime | None]
