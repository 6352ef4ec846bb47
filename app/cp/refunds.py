"""Refunds of an order: /api/orders/<id>/refunds.

Buyers read the refunds of their own orders; operators read any order's and refund a line of it, in
full or in part, through the commerce backend (the same rules as the operator console's Orders page:
never more than is left on the line, the credits the line gave are taken back as far as unspent, a
subscription refunded in full ends, the buyer is mailed and gets a credit note). A refund needs an
idempotency key: a retry with the key answers with the refund it made and refunds nothing more.
Amounts are in the currency's minor unit.
"""
from __future__ import annotations

from datetime import datetime

from flask import g, request
from pydantic import Field
from spectree import Response

from app.adapters.commerce.checkout import get_checkout
from app.cp import schemas
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Refund
from app.services import orders, refunds
from app.web import problem

ID = "int(min=1, max=2147483647)"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TAGS = ["orders"]
FIELDS = {"amount": "amount_minor"}  # the service's field names, as this API spells them


class RefundIn(schemas.In):
    line_id: schemas.Id = Field(description="The order line to refund (GET /api/orders/{id} lists them).")
    amount_minor: int = Field(ge=1, le=2_000_000_000, strict=True,
                              description="At most what is left to refund on the line.")
    reason: str = Field(min_length=1, max_length=refunds.MAX_REASON, description="The buyer reads it.")
    idempotency_key: schemas.IdempotencyKey | None = Field(
        None, description="Required, here or as the Idempotency-Key header: a retry with the same key returns "
                          "the refund it made; the key with another line or amount is a 409.")


class RefundOut(schemas.Out):
    id: int
    order_id: int
    line_id: int
    amount_minor: int
    currency: str
    reason: str
    source: str = Field(description="operator, or backend (made in the store's own dashboard).")
    credits_taken_back: int
    instance_cancelled: bool = Field(description="The line's subscription ended with this refund.")
    created_at: datetime
    replayed: bool = Field(False, description="True when this answers a retry with a key already used.")


class WaitingRefundOut(schemas.Out):
    line_id: int
    amount_minor: int
    reason: str
    idempotency_key: str
    asked_at: datetime


class RefundList(schemas.Out):
    items: list[RefundOut]
    waiting: list[WaitingRefundOut] = Field(
        default_factory=list, description="Operators only: refunds asked through the API that the payment "
                                          "provider did not confirm; each moves to `items` when it reports it.")


def _refund_out(refund: Refund, *, replayed: bool = False) -> RefundOut:
    return RefundOut(id=refund.id, order_id=refund.order_id, line_id=refund.order_line_id,
                     amount_minor=refund.amount_minor, currency=refund.currency, reason=refund.reason,
                     source=refund.source, credits_taken_back=refund.credits_taken_back,
                     instance_cancelled=refund.instance_cancelled, created_at=refund.created_at, replayed=replayed)


@bp.get(f"/orders/<{ID}:order_id>/refunds")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, RefundList, 404), tags=TAGS)
def list_refunds(order_id: int):
    """The refunds of one of your orders (operators: of any order, and those waiting for the payment
    provider), oldest first."""
    items = [_refund_out(r) for r in refunds.refunds_for_user(db.session, user=g.api_user, order_id=order_id)]
    waiting = [WaitingRefundOut(line_id=u.order_line_id, amount_minor=u.amount_minor, reason=u.reason,
                                idempotency_key=u.idempotency_key, asked_at=u.created_at)
               for u in refunds.unconfirmed_refunds_for_operator(db.session, user=g.api_user, order_id=order_id)]
    return RefundList(items=items, waiting=waiting)


@bp.post(f"/orders/<{ID}:order_id>/refunds")
@api_auth(*USER_KINDS)
@spec.validate(resp=Response(HTTP_201=RefundOut, HTTP_200=RefundOut, **{f"HTTP_{code}": schemas.Problem
                                                                          for code in (403, 404, 409, 422, 502)}),
               tags=TAGS)
def create_refund(order_id: int, json: RefundIn):
    """Refund all or part of one line of a paid order (operators only). 201 with the refund; 200 with
    `replayed` for a retry with the same key; 409 when the line is refunded in full already or the key
    was used for another refund; 422 above what is left; 502 when the payment provider refused."""
    header = request.headers.get(IDEMPOTENCY_HEADER) or None
    key = json.idempotency_key or header
    if key is None or (header is not None and header != key) or not schemas.valid_idempotency_key(key):
        return problem(422, "Unprocessable Content", "Give the refund an idempotency key.",
                       errors=[{"field": "idempotency_key",
                                "message": "1 to 128 letters, digits, '.', '_', ':' or '-', in the body or the "
                                           "Idempotency-Key header (the same in both)."}])
    order = orders.get_order_for_user(db.session, user=g.api_user, order_id=order_id, operators_see_all=True)
    try:
        result = refunds.refund_line_as_operator(
            db.session, actor=g.api_user, order_id=order.id, line_id=json.line_id, amount_minor=json.amount_minor,
            reason=json.reason, gateway=get_checkout(order.backend), idempotency_key=key)
    except refunds.RefundError as exc:
        db.session.rollback()
        status = 422 if exc.status == 400 else exc.status
        extra = {"errors": [{"field": FIELDS.get(exc.field, exc.field), "message": str(exc)}]} if exc.field else {}
        return problem(status, "Refund not made", str(exc), **extra)
    db.session.commit()
    return _refund_out(result.refund, replayed=result.replayed), 200 if result.replayed else 201
