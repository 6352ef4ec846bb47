"""Orders to invoice: pending orders built from the demo catalog, as checkout would place them."""
from __future__ import annotations

import itertools

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import CreditPack, LineKind, Order, OrderLine, OrderStatus, Organization, Plan, User
from app.services import orders

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00, 1,200 credits included
PACK = "CREDITS-500"  # $45.00, 500 credits

_seq = itertools.count(1)


def pending_order(session: Session, *, user: User, organization: Organization, plan_sku: str | None = PLAN,
                  packs: int = 1) -> Order:
    """A pending local order of the plan (if any) and `packs` × the 500-credit pack (flushes)."""
    order = Order(number=f"DM-T{next(_seq):08d}", user_id=user.id, organization_id=organization.id,
                  email=user.email, status=OrderStatus.PENDING.value, total_minor=0, currency="USD", backend="local")
    session.add(order)
    session.flush()
    total = 0
    if plan_sku:
        plan = session.scalar(select(Plan).where(Plan.sku == plan_sku))
        session.add(OrderLine(order_id=order.id, kind=LineKind.PLAN.value, sku=plan.sku,
                              name=f"{plan.offering.name} — {plan.name}", plan_id=plan.id,
                              offering_id=plan.offering_id, quantity=1, unit_price_minor=plan.price_minor,
                              total_minor=plan.price_minor))
        total += plan.price_minor
    if packs:
        pack = session.scalar(select(CreditPack).where(CreditPack.sku == PACK))
        session.add(OrderLine(order_id=order.id, kind=LineKind.CREDIT_PACK.value, sku=pack.sku, name=pack.name,
                              credit_pack_id=pack.id, quantity=packs, unit_price_minor=pack.price_minor,
                              total_minor=pack.price_minor * packs))
        total += pack.price_minor * packs
    order.total_minor = total
    session.flush()
    session.refresh(order)
    return order


def paid_order(session: Session, **kwargs) -> Order:
    order = pending_order(session, **kwargs)
    assert orders.mark_order_paid(session, order=order, actor_label="test")
    return order
