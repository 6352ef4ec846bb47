"""Refunds of order lines, and the sellers' accounting: earnings per sale and refund, payouts, fee rates.

No money moves through the marketplace's own books: a Refund records money the payment provider
gave back; an EarningEntry records what a sale or a refund means for the publisher of the offering
(gross, refunds, the platform's fee, the seller's net), with the fee rate fixed at the time of the
sale; a Payout records money the platform paid a publisher outside the app.

Every earning entry balances on its own: gross = refunds + fee + net.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class RefundSource(StrEnum):
    OPERATOR = "operator"  # an operator refunded from the Orders view
    BACKEND = "backend"  # the payment provider reported a refund made elsewhere (Saleor's dashboard)


class EarningKind(StrEnum):
    SALE = "sale"
    REFUND = "refund"


class Refund(Model):
    """Money given back on one order line. A refund the backend reported carries its event id; one
    backend event that covers several lines gives one row per line, all with that id."""

    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("credits_taken_back >= 0", name="credits_nonnegative"),
        UniqueConstraint("backend", "external_id", "order_line_id"),
        UniqueConstraint("order_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("customer_order.id", ondelete="CASCADE"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id", ondelete="CASCADE"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default=RefundSource.OPERATOR.value)
    backend: Mapped[str] = mapped_column(String(16), default="local")
    external_id: Mapped[str | None] = mapped_column(String(128))
    # the key an API caller gave the refund (a retry with it refunds nothing more); None from the console
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    credits_taken_back: Mapped[int] = mapped_column(Integer, default=0)
    instance_cancelled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)

    order: Mapped["Order"] = relationship()  # noqa: F821
    line: Mapped["OrderLine"] = relationship()  # noqa: F821
    actor: Mapped["User | None"] = relationship()  # noqa: F821


class UnconfirmedRefund(Model):
    """A refund asked of the payment provider through the API that the provider did not confirm (it
    did not answer in time): it may still have gone through, so its idempotency key is kept and a
    retry with that key refunds nothing. When the provider reports a refund of this amount on the
    order (webhook), it is recorded as this one (its line, reason, operator and key) and the row goes."""

    __tablename__ = "unconfirmed_refund"
    __table_args__ = (UniqueConstraint("order_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("customer_order.id", ondelete="CASCADE"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    line: Mapped["OrderLine"] = relationship()  # noqa: F821
    actor: Mapped["User | None"] = relationship()  # noqa: F821


class PublisherFee(Model):
    """An operator's platform fee for one publisher, instead of the configured default."""

    __tablename__ = "publisher_fee"
    __table_args__ = (CheckConstraint("basis_points >= 0 AND basis_points <= 10000", name="basis_points_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), unique=True)
    basis_points: Mapped[int] = mapped_column(Integer)  # 1 % = 100
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class EarningEntry(Model):
    """What one sale (a paid order line) or one refund means for the publisher, in the order's currency.

    sale:   gross = line total, refunds = 0, fee = gross × rate, net = gross − fee
    refund: gross = 0, refunds = amount, fee = −(the share of the sale's fee given back), net = −refunds − fee
    """

    __tablename__ = "earning_entry"
    __table_args__ = (
        CheckConstraint("gross_minor = refunds_minor + fee_minor + net_minor", name="balances"),
        CheckConstraint("fee_basis_points >= 0 AND fee_basis_points <= 10000", name="basis_points_range"),
        UniqueConstraint("refund_id"),
        Index("ix_earning_entry_publisher_month", "publisher_id", "month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id", ondelete="CASCADE"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id", ondelete="CASCADE"))
    # one sale entry per line: the refund entries have refund_id set, the sale entry has it NULL
    sale_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_line.id", ondelete="CASCADE"), unique=True)
    month: Mapped[str] = mapped_column(String(7))  # "2026-12": the month of the sale or of the refund
    occurred_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    gross_minor: Mapped[int] = mapped_column(Integer, default=0)
    refunds_minor: Mapped[int] = mapped_column(Integer, default=0)
    fee_minor: Mapped[int] = mapped_column(Integer, default=0)
    net_minor: Mapped[int] = mapped_column(Integer, default=0)
    fee_basis_points: Mapped[int] = mapped_column(Integer)  # the rate of the sale, kept on its refunds too
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    line: Mapped["OrderLine"] = relationship(foreign_keys=[order_line_id])  # noqa: F821


class Payout(Model):
    """Money the platform paid a publisher (by bank transfer, outside the app), as an operator recorded it."""

    __tablename__ = "payout"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(120))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
