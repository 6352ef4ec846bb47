"""Changes a buyer makes to a subscription: cancel at the period's end (and resume), cancel now with
a prorated refund, and plan changes (an upgrade is charged and granted prorated now, a downgrade
applies at the next period). The proration rule is in app.services.subscriptions and the README.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import (
    GrantOrigin, Instance, InstanceStatus, Order, OrderLine, OrderPurpose, OrderStatus, Payment, Plan, User, utcnow,
)
from app.services import audit, organizations, subscriptions
from app.services.subscriptions import SubscriptionError

log = logging.getLogger(__name__)

REFUNDED, REFUND_DUE = "refunded", "due"


def _require_manager(session: Session, *, instance: Instance, actor: User) -> None:
    from app.services.instances import InstanceNotFound

    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               not_found=InstanceNotFound())


def _require_subscription(instance: Instance) -> None:
    if instance.is_trial or instance.period_end is None:
        raise SubscriptionError("A free trial has no billing period to change.", status=409)
    if instance.status not in (*subscriptions.RENEWABLE, InstanceStatus.SUSPENDED.value):
        raise SubscriptionError(f"A {instance.status.replace('_', ' ')} subscription cannot be changed.", status=409)


def cancel_at_period_end(session: Session, *, instance: Instance, actor: User, now: datetime | None = None) -> Instance:
    """The subscription runs until its period ends and is not renewed (flushes; caller commits)."""
    _require_manager(session, instance=instance, actor=actor)
    _require_subscription(instance)
    if instance.cancel_at_period_end:
        raise SubscriptionError("This subscription already ends at the end of its period.", status=409)
    instance.cancel_at_period_end = True
    session.flush()
    audit.record(session, action="subscription.cancel_at_period_end", target_type="instance",
                 target_id=instance.id, organization_id=instance.organization_id, actor=actor,
                 data={"period_end": instance.period_end.isoformat()})
    return instance


def resume_subscription(session: Session, *, instance: Instance, actor: User, now: datetime | None = None) -> Instance:
    """Undo a cancellation at the period's end: the subscription renews again."""
    _require_manager(session, instance=instance, actor=actor)
    _require_subscription(instance)
    now = now or utcnow()
    if not instance.cancel_at_period_end:
        raise SubscriptionError("This subscription is not set to end.", status=409)
    if instance.period_end <= now:
        raise SubscriptionError("This subscription has already ended.", status=409)
    instance.cancel_at_period_end = False
    session.flush()
    audit.record(session, action="subscription.resumed", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor, data={})
    return instance


@dataclass(frozen=True)
class CancelNowQuote:
    refund_minor: int
    currency: str
    unused_seconds: int
    period_seconds: int
    order_id: int | None  # the order that paid the current period: what a refund is made against
    order_line_id: int | None


def paying_order_line(session: Session, *, instance: Instance) -> OrderLine | None:
    """The paid order line that bought the instance's current period (a renewal, or the purchase)."""
    line = session.scalar(
        select(OrderLine).join(Order, Order.id == OrderLine.order_id)
        .where(Order.renews_instance_id == instance.id, Order.purpose == OrderPurpose.RENEWAL.value,
               Order.status == OrderStatus.PAID.value)
        .order_by(Order.paid_at.desc(), Order.id.desc()).limit(1))
    if line is None and instance.source_order_line_id is not None:
        line = session.get(OrderLine, instance.source_order_line_id)
    return line


def quote_cancel_now(session: Session, *, instance: Instance, now: datetime | None = None) -> CancelNowQuote:
    """What cancelling now refunds: the plan's price for the unused part of a paid period, rounded down."""
    now = now or utcnow()
    plan = instance.plan
    unused, total = subscriptions.unused_fraction(instance, now=now)
    paid = instance.status in (InstanceStatus.ACTIVE.value,) and not instance.is_trial
    refund = subscriptions.prorate(plan.price_minor, unused=unused, total=total) if paid else 0
    line = paying_order_line(session, instance=instance) if paid else None
    return CancelNowQuote(refund_minor=refund, currency=plan.currency, unused_seconds=unused, period_seconds=total,
                          order_id=line.order_id if line else None, order_line_id=line.id if line else None)


def cancel_now(session: Session, *, instance: Instance, actor: User, now: datetime | None = None) -> CancelNowQuote:
    """Cancel at once (`instances.cancel_instance`) and record the refund it gives: the audit event
    `subscription.refund_due` names the order line and the amount, for the refund through the commerce
    port. Returns the quote (flushes; caller commits)."""
    from app.services import instances

    now = now or utcnow()
    quote = quote_cancel_now(session, instance=instance, now=now)
    instances.cancel_instance(session, instance=instance, actor=actor)
    if quote.refund_minor > 0:
        audit.record(session, action="subscription.refund_due", target_type="order_line",
                     target_id=quote.order_line_id, organization_id=instance.organization_id, actor=actor,
                     data={"instance": instance.id, "order": quote.order_id, "amount_minor": quote.refund_minor,
                           "currency": quote.currency, "unused_seconds": quote.unused_seconds,
                           "period_seconds": quote.period_seconds})
    return quote


def refund_cancelled_period(session: Session, *, quote: CancelNowQuote, actor: User,
                            gateway_for: Callable[[str], Any]) -> str | None:
    """Give back the unused part of the period a subscription cancelled now had paid for (`cancel_now`'s
    quote), through the commerce backend of the order that paid it (`gateway_for(backend)`). Call it once
    the cancellation is committed. REFUNDED: done and committed. REFUND_DUE: the store refused; this is
    rolled back and the refund stays recorded as due (the cancellation's `subscription.refund_due` audit
    event) for the marketplace's team. None: nothing was due."""
    from app.services import refunds

    if not quote.refund_minor or quote.order_line_id is None:
        return None
    order = session.get(Order, quote.order_id)
    try:
        refunds.refund_unused_period(session, order_id=quote.order_id, line_id=quote.order_line_id,
                                     amount_minor=quote.refund_minor, actor=actor,
                                     gateway=gateway_for(order.backend))
    except refunds.RefundError:
        session.rollback()
        log.exception("cancel now: the refund of order %s could not be made", order.number)
        return REFUND_DUE
    session.commit()
    return REFUNDED


@dataclass(frozen=True)
class PlanChange:
    kind: str  # upgrade | downgrade | unchanged
    plan: Plan
    charge_minor: int  # upgrade: charged now
    credits: int  # upgrade: included credits granted now for the rest of the period
    order: Order | None = None


def quote_plan_change(session: Session, *, instance: Instance, plan: Plan, now: datetime | None = None) -> PlanChange:
    now = now or utcnow()
    current = instance.plan
    if plan.offering_id != instance.offering_id:
        raise SubscriptionError("Choose a plan of the same agent.", field="plan_id")
    if plan.currency != current.currency:
        raise SubscriptionError("Choose a plan in the same currency.", field="plan_id")
    if plan.interval != current.interval:
        raise SubscriptionError("Choose a plan with the same billing interval.", field="plan_id")
    if plan.id == current.id:
        return PlanChange("unchanged", plan, 0, 0)
    if plan.price_minor < current.price_minor:
        return PlanChange("downgrade", plan, 0, 0)
    unused, total = subscriptions.unused_fraction(instance, now=now)
    return PlanChange("upgrade", plan, subscriptions.prorate(plan.price_minor - current.price_minor, unused=unused, total=total),
                      subscriptions.prorate(plan.included_credits - current.included_credits, unused=unused, total=total))


def change_plan(session: Session, *, instance: Instance, plan: Plan, actor: User, gateway,
                now: datetime | None = None) -> PlanChange:
    """Upgrade now (the prorated difference charged to the saved card, or an order to pay on the card
    page when none is saved or it is declined) or downgrade at the next period. Choosing the current plan
    cancels a pending downgrade. Flushes; the caller commits.

    The instance row is locked first (PostgreSQL), so two changes at once run one after the other: the
    second sees the plan the first chose, and a double click charges one upgrade."""
    _require_manager(session, instance=instance, actor=actor)
    subscriptions.lock_instance(session, instance.id)  # refreshes `instance` as it is now
    _require_subscription(instance)
    now = now or utcnow()
    if instance.status != InstanceStatus.ACTIVE.value:
        raise SubscriptionError("Pay the open renewal first; then you can change the plan.", status=409)
    change = quote_plan_change(session, instance=instance, plan=plan, now=now)
    if change.kind in ("unchanged", "downgrade"):
        instance.pending_plan_id = plan.id if change.kind == "downgrade" else None
        session.flush()
        action = "downgrade_scheduled" if change.kind == "downgrade" else "plan_kept"
        audit.record(session, action=f"subscription.{action}", target_type="instance", target_id=instance.id,
                     organization_id=instance.organization_id, actor=actor, data={"plan": plan.sku})
        return change
    if instance.period_end <= now:
        raise SubscriptionError("This period has ended; change the plan after the renewal.", status=409)
    if gateway.backend == "saleor":
        return _upgrade_through_store(session, instance=instance, change=change, actor=actor, gateway=gateway, now=now)
    end = instance.period_end
    name = f"{plan.offering.name}: upgrade to {plan.name} for the rest of the period to {end:%b} {end.day}"
    order = subscriptions.new_plan_order(session, instance=instance, purpose=OrderPurpose.UPGRADE.value, plan=plan,
                       amount=change.charge_minor, name=name, period_start=now)
    if order is None:
        raise SubscriptionError("A plan change is already being made; reload the page.", status=409)
    instance.pending_plan_id = None
    method = instance.payment_method
    if change.charge_minor == 0:
        subscriptions.mark_paid(session, order=order, now=now, actor_label=actor.email)
    elif method is not None and method.backend == order.backend == gateway.backend:
        outcome = gateway.charge_saved_card(token=method.token, amount_minor=order.total_minor,
                                            currency=order.currency, reference=order.number)
        session.add(Payment(order_id=order.id, amount_minor=order.total_minor, currency=order.currency,
                            status="succeeded" if outcome.succeeded else "declined", card_last4=method.last4,
                            message=outcome.message, created_at=now))
        session.flush()
        if outcome.succeeded:
            subscriptions.mark_paid(session, order=order, now=now, actor_label=actor.email)
    audit.record(session, action="subscription.upgrade_ordered", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"plan": plan.sku, "order": order.number, "charge_minor": change.charge_minor,
                       "credits": change.credits})
    session.refresh(order)
    return PlanChange("upgrade", plan, change.charge_minor, change.credits, order)


def _upgrade_through_store(session: Session, *, instance: Instance, change: PlanChange, actor: User, gateway,
                           now: datetime) -> PlanChange:
    """An upgrade with Saleor: an order at the prorated price (a custom price on the plan's line),
    charged to the card the store's payment app keeps for the customer, as a renewal is. Saleor's
    order-paid webhook (or `reconcile-orders`) then switches the plan (`apply_paid_upgrade`).

    The order is committed before Saleor is called, because a Saleor without a task queue sends that
    webhook while it completes the checkout. A declined charge takes the order back (nothing was
    charged) and raises 402; a store that does not answer leaves the order pending with its payment
    "sent", since it may have charged, and raises 503. While a charged upgrade (or one sent within the
    last hour) waits for the store's confirmation, another one is refused, so a second click never
    charges twice."""
    from app.adapters.commerce import CommerceUnavailable
    from app.models import BillingDetails

    plan = change.plan
    waiting = session.scalar(select(Order.id).where(
        Order.renews_instance_id == instance.id, Order.purpose == OrderPurpose.UPGRADE.value,
        Order.status == OrderStatus.PENDING.value, Order.backend == gateway.backend,
        Order.id.in_(select(Payment.order_id).where(
            (Payment.status == "succeeded")
            | ((Payment.status == subscriptions.PAYMENT_SENT)
               & (Payment.created_at > now - subscriptions.STORE_CONFIRMATION_WAIT))))).limit(1))
    if waiting is not None:
        raise SubscriptionError("An upgrade of this subscription is waiting for the store to confirm its payment; "
                                "the plan changes as soon as it does.", status=409)
    end = instance.period_end
    name = f"{plan.offering.name}: upgrade to {plan.name} for the rest of the period to {end:%b} {end.day}"
    order = subscriptions.new_plan_order(session, instance=instance, purpose=OrderPurpose.UPGRADE.value, plan=plan,
                                         amount=change.charge_minor, name=name, period_start=now,
                                         backend=gateway.backend)
    if order is None:
        raise SubscriptionError("A plan change is already being made; reload the page.", status=409)
    instance.pending_plan_id = None
    audit.record(session, action="subscription.upgrade_ordered", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"plan": plan.sku, "order": order.number, "charge_minor": change.charge_minor,
                       "credits": change.credits})
    details = session.scalar(select(BillingDetails).where(BillingDetails.organization_id == order.organization_id))
    order_id, number, email, currency = order.id, order.number, order.email, order.currency
    sent = Payment(order_id=order_id, amount_minor=change.charge_minor, currency=currency,
                   status=subscriptions.PAYMENT_SENT, message="Sent to the store.", created_at=now)
    session.add(sent)
    session.commit()
    try:
        charge = gateway.charge_renewal(
            reference=number, email=email, sku=plan.sku, total_minor=change.charge_minor, currency=currency,
            country=details.country if details and details.country else "US", line_price_minor=change.charge_minor,
            price_reason=f"Upgrade for the rest of the period to {end:%Y-%m-%d}, prorated")
    except CommerceUnavailable as exc:
        session.rollback()
        raise SubscriptionError("The store did not answer in time. If your card was charged, the plan changes as "
                                "soon as the store confirms the payment; check again in a few minutes.",
                                status=503) from exc
    order = session.scalar(select(Order).where(Order.id == order_id).with_for_update()
                           .execution_options(populate_existing=True))
    sent = session.get(Payment, sent.id, populate_existing=True)
    if not charge.succeeded:
        if order is not None and order.status == OrderStatus.PENDING.value:
            audit.record(session, action="subscription.upgrade_declined", target_type="instance",
                         target_id=instance.id, organization_id=instance.organization_id, actor=actor,
                         data={"plan": plan.sku, "order": number, "message": charge.message[:500]})
            session.delete(sent)
            session.delete(order)  # nothing was charged: no order is left to pay
            session.commit()
        raise SubscriptionError(f"{charge.message} Nothing was charged and the plan is unchanged.", status=402)
    if charge.order is not None and not order.external_id:
        order.external_id = charge.order.external_id[:64]
    if sent is not None and sent.status == subscriptions.PAYMENT_SENT:  # not confirmed by the webhook yet
        sent.status, sent.message = "succeeded", charge.message[:500]
    session.flush()
    session.refresh(order)
    return PlanChange("upgrade", plan, change.charge_minor, change.credits, order)


def apply_paid_upgrade(session: Session, *, order: Order, line: OrderLine, now: datetime) -> bool:
    """Switch the instance to the upgrade's plan now and grant the prorated included credits for the rest
    of the period (once per order line). Called by the order-paid handler."""
    instance = subscriptions.lock_instance(session, order.renews_instance_id)
    if instance is None or instance.status not in subscriptions.RENEWABLE or instance.plan_id == line.plan_id:
        return False
    old = instance.plan
    new = line.plan
    as_of = order.renewal_period_start or now
    unused, total = subscriptions.unused_fraction(instance, now=as_of)
    credits = subscriptions.prorate(new.included_credits - old.included_credits, unused=unused, total=total)
    session.execute(update(Instance).where(Instance.id == instance.id)
                    .values(plan_id=new.id, pending_plan_id=None).execution_options(synchronize_session=False))
    session.refresh(instance)
    if credits > 0 and instance.period_end > now:
        from app.services import billing, provisioning

        wallet = billing.wallet_for_organization(session, instance.organization_id)
        billing.grant_credits(
            session, wallet=wallet, amount=credits, origin=GrantOrigin.PLAN.value,
            reference=f"{new.offering.name} upgrade to {new.name}: included credits for the rest of the period, "
                      f"order {order.number}"[:120],
            expires_at=instance.period_end, instance_id=instance.id,
            idempotency_key=provisioning.plan_credit_key(line.id), now=now,
        )
    audit.record(session, action="subscription.upgraded", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor_label="system",
                 data={"from": old.sku, "to": new.sku, "order": order.number, "credits": credits})
    return True
