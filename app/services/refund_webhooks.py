"""Saleor's refund webhooks (ORDER_REFUNDED / ORDER_FULLY_REFUNDED): each refund event of a delivery is
recorded once, through the same `refunds.record_refund` as an operator's refund, under the order's row
lock. A refund already recorded (by the operator's request, or an earlier delivery) is skipped, so a
repeat changes nothing. A refund the operator asked through the API whose answer was lost (an
`UnconfirmedRefund` of exactly the reported amount) is recorded as theirs; any other refund made in
Saleor's own dashboard is spread over the order's lines in their order, each up to what it has left.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adapters.commerce.checkout import RemoteRefund
from app.formatting import minor_units, money
from app.models import Order, OrderLine, Refund, RefundSource, UnconfirmedRefund, User, WebhookEvent, utcnow
from app.services import refunds

log = logging.getLogger(__name__)

REFUND_EVENT_TYPES = {"OrderRefunded", "OrderFullyRefunded"}
REFUND_EVENT_HEADERS = {"order_refunded", "order_fully_refunded"}
WEBHOOK_SOURCE = refunds.WEBHOOK_SOURCE


@dataclass(frozen=True)
class RefundEvent:
    event_type: str
    order_external_id: str
    refunds: tuple[RemoteRefund, ...]
    external_id: str  # what makes a delivery unique


def is_refund_event(body: bytes, *, event_header: str | None) -> bool:
    """Whether a verified Saleor delivery is ORDER_REFUNDED / ORDER_FULLY_REFUNDED (header or payload)."""
    if (event_header or "").strip().lower() in REFUND_EVENT_HEADERS:
        return True
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("__typename") in REFUND_EVENT_TYPES


def parse_refund_event(body: bytes) -> RefundEvent:
    """The subscription payload: the order and its transactions' REFUND_SUCCESS events."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise refunds.RefundError("The body is not valid JSON.", status=400) from exc
    order = data.get("order") if isinstance(data, dict) else None
    if not isinstance(order, dict) or not order.get("id"):
        raise refunds.RefundError("The event has no order.", status=400)
    found = []
    for transaction in order.get("transactions") or []:
        if not isinstance(transaction, dict):
            raise refunds.RefundError("A transaction is not an object.", status=400)
        for event in transaction.get("events") or []:
            if not isinstance(event, dict) or event.get("type") != "REFUND_SUCCESS":
                continue
            amount = event.get("amount") or {}
            if not event.get("id") or not isinstance(amount, dict) or not amount.get("currency"):
                raise refunds.RefundError("A refund event has no id or amount.", status=400)
            currency = str(amount["currency"]).upper()[:3]
            try:
                minor = minor_units(amount.get("amount"), currency)
            except ValueError as exc:
                raise refunds.RefundError(str(exc), status=400) from exc
            if minor > 0:
                found.append(RemoteRefund(external_id=str(event["id"])[:128], amount_minor=minor, currency=currency))
    typename = str(data.get("__typename") or "OrderRefunded")[:32]
    digest = hashlib.sha256(body).hexdigest()[:32]
    return RefundEvent(event_type=typename, order_external_id=str(order["id"])[:64], refunds=tuple(found),
                       external_id=f"{typename}:{str(order['id'])[:64]}:{digest}")


@dataclass
class RefundReceipt:
    event: WebhookEvent
    duplicate: bool = False
    order_id: int | None = None
    recorded: list[int] = field(default_factory=list)
    problem: str | None = None


def receive_refund_event(session: Session, *, event: RefundEvent, body: bytes) -> RefundReceipt:
    """Store the delivery once and record each refund of it not recorded yet (flushes; caller commits).

    Under the order's lock: a concurrent operator refund or delivery waits, then finds the refund."""
    from app.services.orders import insert_once

    def stored() -> WebhookEvent | None:
        return session.scalar(select(WebhookEvent).where(WebhookEvent.source == WEBHOOK_SOURCE,
                                                         WebhookEvent.external_id == event.external_id))

    row = stored()
    if row is None:
        row = WebhookEvent(source=WEBHOOK_SOURCE, external_id=event.external_id, event_type=event.event_type,
                           payload=body.decode("utf-8"), status="received")
        if not insert_once(session, row):
            row = stored()
            if row is None:  # the concurrent delivery that held the key rolled back: let Saleor retry
                raise refunds.RefundError("The event could not be stored; try again.", status=503)
    if row.status not in ("received", "failed"):
        return RefundReceipt(event=row, duplicate=True)
    order_id = session.scalar(select(Order.id).where(Order.backend == "saleor",
                                                     Order.external_id == event.order_external_id))
    receipt = RefundReceipt(event=row, order_id=order_id)
    if order_id is None:
        receipt.problem = "No order here has this Saleor order id."
        row.status, row.error = "ignored", receipt.problem
    else:
        order = refunds.lock_order(session, order_id)
        notes = []
        for remote in event.refunds:
            recorded, note = _record_remote_refund(session, order=order, remote=remote)
            receipt.recorded += recorded
            if note:
                notes.append(note)
        receipt.problem = " ".join(notes) or None
        row.status, row.error = "processed", receipt.problem
    row.processed_at = utcnow()
    session.flush()
    return receipt


def _record_remote_refund(session: Session, *, order: Order, remote: RemoteRefund) -> tuple[list[int], str | None]:
    already = session.scalar(select(Refund.id).where(Refund.backend == order.backend,
                                                     Refund.external_id == remote.external_id).limit(1))
    if already is not None:
        return [], None
    if remote.currency != order.currency:
        return [], f"Refund {remote.external_id} is in {remote.currency}, the order in {order.currency}."
    asked = _unconfirmed_refund_for(session, order=order, amount_minor=remote.amount_minor)
    if asked is not None:  # the operator's refund whose answer was lost: record it as theirs
        refund = refunds.record_refund(
            session, order=order, line=session.get(OrderLine, asked.order_line_id), amount_minor=remote.amount_minor,
            reason=asked.reason, source=RefundSource.OPERATOR, external_id=remote.external_id,
            actor=session.get(User, asked.actor_user_id) if asked.actor_user_id else None,
            idempotency_key=asked.idempotency_key)
        session.delete(asked)
        return [refund.id], None
    left = remote.amount_minor
    recorded = []
    for line in sorted(order.lines, key=lambda l: l.id):
        if left == 0:
            break
        room = refunds.refundable_minor(session, line=line)
        part = min(room, left)
        if part <= 0:
            continue
        refund = refunds.record_refund(session, order=order, line=line, amount_minor=part,
                                reason="Refunded in the store's dashboard.", source=RefundSource.BACKEND,
                                external_id=remote.external_id, actor=None)
        recorded.append(refund.id)
        left -= part
    note = None
    if left:
        log.warning("Saleor refund %s of order %s is %s more than the order has left", remote.external_id,
                    order.number, left)
        note = f"Refund {remote.external_id}: {money(left, order.currency)} more than the order had left to refund."
    return recorded, note


def _unconfirmed_refund_for(session: Session, *, order: Order, amount_minor: int) -> UnconfirmedRefund | None:
    """The oldest unconfirmed refund of the order for exactly this amount whose line still has room
    for it."""
    for asked in session.scalars(select(UnconfirmedRefund).where(
            UnconfirmedRefund.order_id == order.id, UnconfirmedRefund.amount_minor == amount_minor)
            .order_by(UnconfirmedRefund.id)):
        line = session.get(OrderLine, asked.order_line_id)
        if line is not None and refunds.refundable_minor(session, line=line) >= amount_minor:
            return asked
    return None
