"""Invoices and credit notes, their gapless yearly number series, and a buyer organization's billing details.

An invoice is a snapshot: the buyer's billing details, the issuer, every line with its seller, and the
amounts are copied when it is issued and never change afterwards, whatever happens to the order, the
offering or the billing details later. A refund is a credit note against the invoice, never an edit.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class BillingDetails(Model):
    """Who an organization's invoices are addressed to; edited in account settings or at checkout."""

    __tablename__ = "billing_details"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    company: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)  # street, postal code and city, as lines
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    vat_id: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class DocumentSequence(Model):
    """The last number given in one series (INV, CN) and year. Its row is locked while a number is
    taken, and the increment commits or rolls back with the document: no gaps, no duplicates."""

    __tablename__ = "document_sequence"
    __table_args__ = (CheckConstraint("last_number >= 0", name="last_number_nonnegative"),)

    series: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(Model):
    """An invoice (kind `invoice`) or a credit note (kind `credit_note`, `credited_invoice_id` set)."""

    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("series", "year", "sequence"),
        CheckConstraint("subtotal_minor >= 0 AND tax_minor >= 0 AND total_minor >= 0", name="amounts_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # INV-2026-000123, CN-2026-000001
    kind: Mapped[str] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(8))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    # what the document is for, unique: `order:<id>` for an invoice, `credit:<reference>` for a credit note,
    # so issuing the same document twice (a repeated webhook, a retried refund) gives the first one back
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("customer_order.id"), index=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    credited_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"), index=True)
    issued_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(Integer)
    tax_minor: Mapped[int] = mapped_column(Integer, default=0)
    total_minor: Mapped[int] = mapped_column(Integer)
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_company: Mapped[str | None] = mapped_column(String(200))
    buyer_address: Mapped[str | None] = mapped_column(Text)
    buyer_country: Mapped[str | None] = mapped_column(String(2))
    buyer_vat_id: Mapped[str | None] = mapped_column(String(20))
    buyer_email: Mapped[str] = mapped_column(String(254))
    issuer_name: Mapped[str] = mapped_column(String(200))
    issuer_address: Mapped[str | None] = mapped_column(Text)
    issuer_vat_id: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)  # credit notes: why (as the buyer was told)
    reference: Mapped[str | None] = mapped_column(String(120))  # credit notes: the refund it documents
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    lines: Mapped[list["InvoiceLine"]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.id", cascade="all, delete-orphan"
    )
    order: Mapped["Order"] = relationship()  # noqa: F821
    credited_invoice: Mapped["Invoice | None"] = relationship(remote_side=[id])


class InvoiceLine(Model):
    __tablename__ = "invoice_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0 AND total_minor >= 0 AND tax_minor >= 0", name="amounts_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_line.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(String(300))
    seller_name: Mapped[str] = mapped_column(String(200))  # the publisher that sells it
    platform_name: Mapped[str] = mapped_column(String(200))  # the marketplace it was sold through
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_minor: Mapped[int] = mapped_column(Integer)
    tax_minor: Mapped[int] = mapped_column(Integer, default=0)
    total_minor: Mapped[int] = mapped_column(Integer)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
