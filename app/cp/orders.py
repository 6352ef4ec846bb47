"""Orders and invoices for a buyer's own books: /api/orders/... and /api/invoices/...

Orders are the caller's own (as on Account → Orders; operators read any order, as on the operator
console, and refund it through /api/orders/{id}/refunds); invoices and credit notes are those of every
organization the caller belongs to (as on Account → Invoices), each also as its PDF. Anything else
is not found. Amounts are in the currency's minor unit.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Response, g, url_for
from pydantic import BaseModel, Field

from app.cp import schemas
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Invoice, Order
from app.services import invoice_pdf, invoices, orders, refunds

ID = "int(min=1, max=2147483647)"
MAX_PER_PAGE = 100


class PageQuery(BaseModel):
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)


class OrderLineOut(schemas.Out):
    id: int
    kind: str = Field(description="plan, credit_pack, or unknown (a store line we do not sell).")
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    total_minor: int
    refunded_minor: int = 0


class OrderOut(schemas.Out):
    id: int
    number: str
    organization_id: int
    status: str
    purpose: str = Field(description="purchase, renewal or upgrade.")
    total_minor: int
    currency: str
    created_at: datetime
    paid_at: datetime | None
    lines: list[OrderLineOut]
    invoice_id: int | None = Field(None, description="Its invoice, once paid: GET /api/invoices/{id}.")


class OrderList(schemas.Out):
    items: list[OrderOut]
    page: int
    per_page: int
    total: int


class InvoiceLineOut(schemas.Out):
    description: str
    seller_name: str
    quantity: int
    unit_price_minor: int
    tax_minor: int
    total_minor: int


class InvoiceOut(schemas.Out):
    id: int
    number: str
    kind: Literal["invoice", "credit_note"]
    organization_id: int
    order_id: int
    credited_invoice_id: int | None = Field(description="A credit note: the invoice it corrects.")
    issued_at: datetime
    currency: str
    subtotal_minor: int
    tax_minor: int
    total_minor: int = Field(description="A credit note's amounts are what it gives back, as positive numbers.")
    buyer_name: str
    buyer_company: str | None
    buyer_country: str | None
    buyer_vat_id: str | None
    reason: str | None = Field(description="A credit note: why it was issued.")
    pdf_url: str
    lines: list[InvoiceLineOut] | None = Field(None, description="In GET /api/invoices/{id}.")


class InvoiceList(schemas.Out):
    items: list[InvoiceOut]
    page: int
    per_page: int
    total: int


def _order_out(order: Order, *, refunded: dict[int, int] | None = None, invoice_id: int | None = None) -> OrderOut:
    refunded = refunded or {}
    return OrderOut(
        id=order.id, number=order.number, organization_id=order.organization_id, status=order.status,
        purpose=order.purpose, total_minor=order.total_minor, currency=order.currency, created_at=order.created_at,
        paid_at=order.paid_at, invoice_id=invoice_id,
        lines=[OrderLineOut(id=line.id, kind=line.kind, sku=line.sku, name=line.name, quantity=line.quantity,
                            unit_price_minor=line.unit_price_minor, total_minor=line.total_minor,
                            refunded_minor=refunded.get(line.id, 0)) for line in order.lines],
    )


def _invoice_out(invoice: Invoice, *, with_lines: bool = False) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id, number=invoice.number, kind=invoice.kind, organization_id=invoice.organization_id,
        order_id=invoice.order_id, credited_invoice_id=invoice.credited_invoice_id, issued_at=invoice.issued_at,
        currency=invoice.currency, subtotal_minor=invoice.subtotal_minor, tax_minor=invoice.tax_minor,
        total_minor=invoice.total_minor, buyer_name=invoice.buyer_name, buyer_company=invoice.buyer_company,
        buyer_country=invoice.buyer_country, buyer_vat_id=invoice.buyer_vat_id, reason=invoice.reason,
        pdf_url=url_for("cp.get_invoice_pdf", invoice_id=invoice.id),
        lines=[InvoiceLineOut(description=line.description, seller_name=line.seller_name, quantity=line.quantity,
                              unit_price_minor=line.unit_price_minor, tax_minor=line.tax_minor,
                              total_minor=line.total_minor) for line in invoice.lines] if with_lines else None,
    )


@bp.get("/orders/")
@api_auth(*USER_KINDS)
@spec.validate(query=PageQuery, resp=responses(200, OrderList), tags=["orders"])
def list_orders(query: PageQuery):
    """Your orders, newest first."""
    items, total = orders.list_orders_for_user(db.session, user=g.api_user, page=query.page, per_page=query.per_page)
    return OrderList(items=[_order_out(o) for o in items], page=query.page, per_page=query.per_page, total=total)


@bp.get(f"/orders/<{ID}:order_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, OrderOut, 404), tags=["orders"])
def get_order(order_id: int):
    """One of your orders, with what was refunded of each line and its invoice (operators: any order)."""
    order = orders.get_order_for_user(db.session, user=g.api_user, order_id=order_id, operators_see_all=True)
    invoice = invoices.invoice_for_order(db.session, order_id=order.id)
    return _order_out(order, refunded=refunds.refunded_by_line(db.session, order_id=order.id),
                      invoice_id=invoice.id if invoice is not None else None)


@bp.get("/invoices/")
@api_auth(*USER_KINDS)
@spec.validate(query=PageQuery, resp=responses(200, InvoiceList), tags=["orders"])
def list_invoices(query: PageQuery):
    """Invoices and credit notes of every organization you belong to, newest first."""
    items, total = invoices.list_invoices_for_user(db.session, user=g.api_user, page=query.page,
                                                   per_page=query.per_page)
    return InvoiceList(items=[_invoice_out(i) for i in items], page=query.page, per_page=query.per_page, total=total)


@bp.get(f"/invoices/<{ID}:invoice_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, InvoiceOut, 404), tags=["orders"])
def get_invoice(invoice_id: int):
    """One invoice or credit note, with its lines."""
    return _invoice_out(invoices.get_invoice_for_user(db.session, user=g.api_user, invoice_id=invoice_id),
                        with_lines=True)


@bp.get(f"/invoices/<{ID}:invoice_id>/pdf")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, None, 404), tags=["orders"])
def get_invoice_pdf(invoice_id: int):
    """The document as a PDF (application/pdf)."""
    invoice = invoices.get_invoice_for_user(db.session, user=g.api_user, invoice_id=invoice_id)
    return Response(invoice_pdf.render_invoice_pdf(invoice), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{invoice_pdf.pdf_filename(invoice)}"',
        "Cache-Control": "private, no-store"})
