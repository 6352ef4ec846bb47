"""The one order-paid handler: what a paid order gives its organization, exactly once per line.

Both payment paths end here: the local test-mode payment and Saleor's order-paid webhook (and
reconciliation, which replays either). Each subscription line becomes one active Instance with
its plan's included credits; each credit-pack line becomes one ledger grant. "Once" is kept by
unique constraints, not by reading first: Instance.source_order_line_id and
LedgerEntry.idempotency_key. Each line is written inside a savepoint; when a concurrent delivery
won the race the savepoint is rolled back and the winner's rows are read instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import (
    GrantOrigin, Instance, LedgerEntry, LineKind, Order, OrderLine, OrderPurpose, OrderStatus, utcnow,
)
from app.services import (
    audit, billing, instances, mail, payouts, plan_credits, subscription_changes, subscriptions,
)
from app.services.errors import ServiceError

log = logging.getLogger(__name__)


class ProvisioningError(ServiceError):
    """The order cannot be provisioned; the message is safe to show."""


def plan_credit_key(line_id: int) -> str:
    return f"order-line:{line_id}:plan-credits"


def credit_key(line_id: int) -> str:
    return f"order-line:{line_id}:credits"


@dataclass
class ProvisionResult:
    provisioned_line_ids: list[int] = field(default_factory=list)  # lines this call provisioned
    already_line_ids: list[int] = field(default_factory=list)  # lines provisioned before (or concurrently)
    skipped_line_ids: list[int] = field(default_factory=list)  # unknown SKUs: nothing to give


def handle_order_paid(session: Session, *, order: Order, actor_label: str,
                      now: datetime | None = None) -> ProvisionResult:
    """Provision every line of a paid order that is not provisioned yet (flushes; caller commits).

    A renewal order starts the period it paid for and an upgrade order switches the plan of the
    subscription it names (`subscriptions.apply_paid_renewal` / `subscription_changes.apply_paid_upgrade`); every other
    plan line creates an instance. `now` is the moment of payment (the clock, for time-travel tests)."""
    if order.status != OrderStatus.PAID.value:
        raise ProvisioningError(f"Order {order.number} is not paid.")
    now = now or utcnow()
    result = ProvisionResult()
    for line in list(order.lines):
        if line.kind == LineKind.PLAN.value and line.plan_id is not None and order.renews_instance_id is not None:
            apply = (subscriptions.apply_paid_renewal if order.purpose == OrderPurpose.RENEWAL.value
                     else subscription_changes.apply_paid_upgrade)
            created = apply(session, order=order, line=line, now=now)
        elif line.kind == LineKind.PLAN.value and line.plan_id is not None:
            created = _provision_plan_line(session, order=order, line=line, actor_label=actor_label, now=now)
        elif line.kind == LineKind.CREDIT_PACK.value and line.credit_pack_id is not None:
            created = _provision_credit_line(session, order=order, line=line, actor_label=actor_label)
        else:
            result.skipped_line_ids.append(line.id)
            continue
        (result.provisioned_line_ids if created else result.already_line_ids).append(line.id)
    _mark_lines_done(session, order=order)
    payouts.record_sale_earnings(session, order=order)  # the publishers' earnings, at today's fee
    mail.order_receipt(session, order=order)  # once per order: a repeat of this handler queues nothing
    if result.provisioned_line_ids:
        audit.record(
            session, action="order.provisioned", target_type="order", target_id=order.id,
            organization_id=order.organization_id, actor_label=actor_label,
            data={"number": order.number, "lines": result.provisioned_line_ids,
                  "skipped_lines": result.skipped_line_ids},
        )
    return result


def _provision_plan_line(session: Session, *, order: Order, line: OrderLine, actor_label: str,
                         now: datetime) -> bool:
    if _instance_of(session, line.id) is not None:
        return False
    plan = line.plan
    try:
        with session.begin_nested():
            instance = instances.create_instance(
                session, organization=order.organization, plan=plan, created_by=order.user,
                source_order_line_id=line.id, actor_label=actor_label,
            )
            # included credits belong to the instance's current billing period: they end with it
            _, period_end = subscriptions.start_first_period(instance, now=now)
            session.flush()
            plan_credits.grant_included_credits(
                session, instance=instance, period_end=period_end, now=now,
                reference=f"{plan.offering.name} {plan.name} plan, order {order.number}",
                idempotency_key=plan_credit_key(line.id),
            )
    except IntegrityError:
        if _instance_of(session, line.id) is None:
            raise
        log.info("order line %s was provisioned by a concurrent delivery", line.id)
        return False
    return True


def _provision_credit_line(session: Session, *, order: Order, line: OrderLine, actor_label: str) -> bool:
    key = credit_key(line.id)
    if _entry_of(session, key) is not None:
        return False
    pack = line.credit_pack
    amount = pack.credits * line.quantity
    try:
        with session.begin_nested():
            wallet = billing.wallet_for_organization(session, order.organization_id)
            entry = billing.grant_credits(
                session, wallet=wallet, amount=amount, origin=GrantOrigin.PURCHASE.value,
                reference=f"{line.quantity} × {pack.name}, order {order.number}"[:120], idempotency_key=key,
            )
            audit.record(
                session, action="credits.purchased", target_type="wallet", target_id=wallet.id,
                organization_id=order.organization_id, actor_label=actor_label,
                data={"order": order.number, "line": line.id, "credits": amount, "ledger_entry": entry.id},
            )
    except IntegrityError:
        if _entry_of(session, key) is None:
            raise
        log.info("order line %s was provisioned by a concurrent delivery", line.id)
        return False
    return True


def _instance_of(session: Session, line_id: int) -> Instance | None:
    return session.scalar(select(Instance).where(Instance.source_order_line_id == line_id))


def _entry_of(session: Session, key: str) -> LedgerEntry | None:
    return session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == key))


def _mark_lines_done(session: Session, *, order: Order) -> None:
    now = utcnow()
    provisionable = [l for l in order.lines if l.kind in (LineKind.PLAN.value, LineKind.CREDIT_PACK.value)]
    done_ids = [l.id for l in provisionable if l.provisioned_at is None]
    if done_ids:
        session.execute(
            update(OrderLine).where(OrderLine.id.in_(done_ids), OrderLine.provisioned_at.is_(None))
            .values(provisioned_at=now).execution_options(synchronize_session=False)
        )
    session.execute(
        update(Order).where(Order.id == order.id, Order.provisioned_at.is_(None)).values(provisioned_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    for line in order.lines:
        session.refresh(line, ["provisioned_at"])
    session.refresh(order, ["provisioned_at"])
