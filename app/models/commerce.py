"""Cart, orders and payments of the local commerce backend (orders from Saleor land here too)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class LineKind(StrEnum):
    PLAN = "plan"
    CREDIT_PACK = "credit_pack"


class OrderPurpose(StrEnum):
    PURCHASE = "purchase"  # from a cart
    RENEWAL = "renewal"  # the next period of a subscription
    UPGRADE = "upgrade"  # the prorated difference of a plan change for the rest of a period


class OrderStatus(StrEnum):
    PENDING = "pending"  # placed, awaiting payment
    PAID = "paid"
    CANCELLED = "cancelled"


class Cart(Model):
    __tablename__ = "cart"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    # +1 on every change of its lines: an order records the revision it was placed from, and a
    # cart revision gives at most one order (double submits of checkout get the same order)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    lines: Mapped[list["CartLine"]] = relationship(
        back_populates="cart", order_by="CartLine.id", cascade="all, delete-orphan"
    )


class CartLine(Model):
    __tablename__ = "cart_line"
    __table_args__ = (
        UniqueConstraint("cart_id", "sku"),
        CheckConstraint("quantity > 0 AND quantity <= 1000", name="quantity_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("cart.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    cart: Mapped[Cart] = relationship(back_populates="lines")


class Order(Model):
    __tablename__ = "customer_order"
    __table_args__ = (
        UniqueConstraint("backend", "external_id"),
        UniqueConstraint("cart_id", "cart_revision"),  # one order per state of a cart
        # one renewal order per subscription and period, however many workers renew it
        UniqueConstraint("renews_instance_id", "purpose", "renewal_period_start", name="uq_customer_order_renewal_once"),
        CheckConstraint("total_minor >= 0", name="total_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PENDING.value, index=True)
    total_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    backend: Mapped[str] = mapped_column(String(16), default="local")  # local | saleor
    external_id: Mapped[str | None] = mapped_column(String(64))
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("cart.id", ondelete="SET NULL"))
    cart_revision: Mapped[int | None] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(16), default=OrderPurpose.PURCHASE.value,
                                         server_default=OrderPurpose.PURCHASE.value)
    # a renewal or upgrade: the subscription it pays for, and the start of the period it buys (a renewal)
    # or the moment its price was prorated from (an upgrade)
    renews_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instance.id", ondelete="SET NULL", use_alter=True), index=True)
    renewal_period_start: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    paid_at: Mapped[datetime | None]
    provisioned_at: Mapped[datetime | None]

    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    payments: Mapped[list["Payment"]] = relationship(back_populates="order", order_by="Payment.id")
    organization: Mapped["Organization"] = relationship()  # noqa: F821
    user: Mapped["User | None"] = relationship()  # noqa: F821


class OrderLine(Model):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("customer_order.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # plan | credit_pack | unknown
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id"), index=True)
    credit_pack_id: Mapped[int | None] = mapped_column(ForeignKey("credit_pack.id"))
    offering_id: Mapped[int | None] = mapped_column(ForeignKey("offering.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_minor: Mapped[int] = mapped_column(Integer)
    total_minor: Mapped[int] = mapped_column(Integer)
    external_line_id: Mapped[str | None] = mapped_column(String(64))
    provisioned_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="lines")
    plan: Mapped["Plan | None"] = relationship()  # noqa: F821
    credit_pack: Mapped["CreditPack | None"] = relationship()  # noqa: F821


class Payment(Model):
    """A payment attempt (test-mode card on the local backend)."""

    __tablename__ = "payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("customer_order.id", ondelete="CASCADE"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # succeeded | declined
    card_last4: Mapped[str | None] = mapped_column(String(4))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    order: Mapped[Order] = relationship(back_populates="payments")


class PaymentMethod(Model):
    """A card saved for renewals: only the payment provider's token and what a person recognises it by."""

    __tablename__ = "payment_method"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    backend: Mapped[str] = mapped_column(String(16), default="local")
    token: Mapped[str] = mapped_column(String(128), unique=True)
    brand: Mapped[str] = mapped_column(String(24))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
