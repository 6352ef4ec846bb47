"""Subscriptions over time: billing periods, renewals with a saved card, and dunning (what a buyer
changes, cancelling and plan changes, is app.services.subscription_changes; the proration rule below
is shared).

A paid instance has a period [period_start, period_end) of its plan's interval (a month or a year).
At period_end the `renew-subscriptions` sweep renews it once: a renewal order (an ordinary Order,
purpose `renewal`, naming the instance and the period it buys) for the plan's price, charged to the
saved card, marked paid through `orders.mark_order_paid` and provisioned through
`provisioning.handle_order_paid`, which calls `apply_paid_renewal` here. "Once" is kept twice: the
instance row is locked while it is renewed (PostgreSQL), and the order is unique per (instance,
period start).

Dunning: a declined renewal makes the instance `past_due`; it keeps running for the grace period
(RENEWAL_GRACE_DAYS) while the renewal is retried RENEWAL_RETRY_DAYS after the first failure (1, 3
and 5 days); each failure mails the buyer a link to pay the open renewal order with another card;
after the last failure the instance is suspended. Paying the open order starts a new period from
the payment date and makes the instance active again.

Proration (written in README): a change or a cancellation at moment t of a period [start, end)
counts the unused part as (end - t) / (end - start), in seconds, and every amount is rounded down
to a whole cent or credit:
- upgrade now: charge floor((new price - old price) * unused / period) and grant
  floor((new included credits - old included credits) * unused / period) credits ending with the period;
- downgrade: nothing now; the next period renews on the cheaper plan;
- cancel now: a refund of floor(plan price * unused / period) (nothing for a period not paid).
"""
from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import (
    BillingDetails, CreditGrant, GrantOrigin, Instance, InstanceStatus, LineKind, Order, OrderLine, OrderPurpose, OrderStatus,
    Payment, PaymentMethod, Plan, User,
)
from app.services import audit, mail, plan_credits, seller_webhooks
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

INTERVAL_MONTHS = {"month": 1, "year": 12}
DEFAULT_RETRY_DAYS = (1, 3, 5)
DEFAULT_GRACE_DAYS = 7
# statuses whose period the sweep renews (a past-due one only when a retry is due)
RENEWABLE = (InstanceStatus.ACTIVE.value, InstanceStatus.PAST_DUE.value)
# a store charge whose answer was lost: how long the sweep waits for the store to report it
STORE_CONFIRMATION_WAIT = timedelta(hours=1)
PAYMENT_SENT = "pending"  # a Payment sent to the store, not answered yet
# a renewal sweep catches up at most this many periods of one instance (e.g. after downtime)
MAX_CATCH_UP_PERIODS = 24


class SubscriptionError(ServiceError):
    """A subscription rule was broken; the message is safe to show."""


# --- periods -----------------------------------------------------------------------------------

def add_interval(moment: datetime, interval: str, count: int = 1) -> datetime:
    """`moment` plus `count` of the plan's intervals (months keep the day, or the month's last day)."""
    months = INTERVAL_MONTHS.get(interval)
    if months is None:
        raise SubscriptionError(f"Unknown billing interval {interval!r}.", field="interval")
    month_index = moment.month - 1 + months * count
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def start_first_period(instance: Instance, *, now: datetime) -> tuple[datetime, datetime]:
    """Set a new paid instance's first period: from `now` for one interval of its plan."""
    instance.period_start = now
    instance.period_end = add_interval(now, instance.plan.interval)
    return instance.period_start, instance.period_end


def unused_fraction(instance: Instance, *, now: datetime) -> tuple[int, int]:
    """(unused seconds, period seconds) of the instance's current period at `now`."""
    if instance.period_end is None:
        return 0, 1
    total = int((instance.period_end - instance.period_start).total_seconds())
    unused = int((instance.period_end - now).total_seconds())
    return max(0, min(unused, total)), max(total, 1)


def prorate(amount: int, *, unused: int, total: int) -> int:
    """floor(amount * unused / total) in integers: never a float, never more than the unused share."""
    if amount <= 0 or unused <= 0:
        return 0
    return amount * unused // total


def retry_days(config=None) -> tuple[int, ...]:
    raw = _setting("RENEWAL_RETRY_DAYS", config)
    if raw in (None, ""):
        return DEFAULT_RETRY_DAYS
    if isinstance(raw, (tuple, list)):
        return tuple(int(d) for d in raw)
    days = tuple(int(part) for part in str(raw).split(",") if part.strip())
    if any(d <= 0 for d in days) or list(days) != sorted(days):
        raise SubscriptionError("RENEWAL_RETRY_DAYS must be increasing whole days, e.g. 1,3,5.")
    return days


def grace_days(config=None) -> int:
    raw = _setting("RENEWAL_GRACE_DAYS", config)
    return DEFAULT_GRACE_DAYS if raw in (None, "") else int(raw)


def _setting(name: str, config):
    if config is not None:
        return config.get(name)
    return current_app.config.get(name) if has_app_context() else None


def in_grace(instance: Instance, *, now: datetime, config=None) -> bool:
    """A past-due instance runs until its grace period ends."""
    return (instance.status == InstanceStatus.PAST_DUE.value and instance.past_due_since is not None
            and now < instance.past_due_since + timedelta(days=grace_days(config)))


@dataclass(frozen=True)
class NextCharge:
    at: datetime
    amount_minor: int
    currency: str
    plan: Plan


def next_charge(instance: Instance) -> NextCharge | None:
    """When the subscription is charged next and how much (the plan it renews on); None when it will
    not renew (a trial, cancelled, or ending at the period's end)."""
    if (instance.is_trial or instance.period_end is None or instance.cancel_at_period_end
            or instance.status not in (*RENEWABLE, InstanceStatus.SUSPENDED.value)):
        return None
    plan = instance.pending_plan or instance.plan
    at = instance.period_end
    if instance.status == InstanceStatus.PAST_DUE.value and instance.next_renewal_attempt_at is not None:
        at = instance.next_renewal_attempt_at
    return NextCharge(at=at, amount_minor=plan.price_minor, currency=plan.currency, plan=plan)


# --- saved cards -------------------------------------------------------------------------------

def save_payment_method(session: Session, *, organization_id: int, user: User | None, backend: str, token: str,
                        brand: str, last4: str, exp_month: int, exp_year: int) -> PaymentMethod:
    """Record a card the provider keeps for renewals: its token, brand, last four digits and expiry."""
    method = PaymentMethod(organization_id=organization_id, created_by_id=user.id if user else None,
                           backend=backend, token=token, brand=brand[:24], last4=last4[-4:],
                           exp_month=exp_month, exp_year=exp_year)
    session.add(method)
    session.flush()
    return method


def attach_payment_method(session: Session, *, order: Order, method: PaymentMethod) -> list[int]:
    """Renew the subscriptions this paid order bought or renewed with `method`; returns their ids."""
    line_ids = [line.id for line in order.lines if line.kind == LineKind.PLAN.value]
    query = update(Instance).where(Instance.organization_id == order.organization_id)
    if order.renews_instance_id is not None:
        query = query.where(Instance.id == order.renews_instance_id)
    else:
        query = query.where(Instance.source_order_line_id.in_(line_ids or [0]))
    ids = list(session.scalars(query.values(payment_method_id=method.id).returning(Instance.id)
                               .execution_options(synchronize_session=False)))
    for instance_id in ids:
        loaded = session.get(Instance, instance_id)
        if loaded is not None:
            session.refresh(loaded, ["payment_method_id"])
    return ids


# --- renewal -----------------------------------------------------------------------------------

@dataclass
class RenewalReport:
    renewed: list[int]
    failed: list[int]
    suspended: list[int]
    ended: list[int]
    skipped: list[int]
    submitted: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.renewed) + len(self.submitted) + len(self.failed) + len(self.ended)

    def summary(self) -> str:
        submitted = (f" {len(self.submitted)} charged through the store, awaiting its confirmation;"
                     if self.submitted else "")
        return (f"Renewed {len(self.renewed)} subscription(s);{submitted} {len(self.failed)} payment(s) failed, "
                f"{len(self.suspended)} suspended after the last retry; {len(self.ended)} ended at their "
                "period's end.")


def due_subscription_ids(session: Session, *, now: datetime) -> list[int]:
    """Paid instances whose period has ended (active), or whose renewal retry is due (past due)."""
    return list(session.scalars(
        select(Instance.id).where(
            Instance.is_trial.is_(False), Instance.period_end.is_not(None), Instance.period_end <= now,
            (Instance.status == InstanceStatus.ACTIVE.value)
            | ((Instance.status == InstanceStatus.PAST_DUE.value) & (Instance.next_renewal_attempt_at <= now)),
        ).order_by(Instance.period_end, Instance.id)
    ))


def lock_instance(session: Session, instance_id: int) -> Instance | None:
    return session.scalar(select(Instance).where(Instance.id == instance_id).with_for_update()
                          .execution_options(populate_existing=True))


def renew_subscription(session: Session, *, instance_id: int, now: datetime, gateway, config=None) -> str:
    """Renew one instance if it is due at `now`: 'renewed', 'submitted' (charged through Saleor, whose
    order-paid webhook provisions the period), 'failed', 'suspended', 'ended' or 'skipped'.

    Locks the instance row first, so two workers renewing the same instance run one after the other;
    the second finds the period renewed (or its order charged) and does nothing. Flushes; the caller
    commits."""
    instance = lock_instance(session, instance_id)
    if (instance is None or instance.is_trial or instance.period_end is None or instance.period_end > now
            or instance.status not in RENEWABLE):
        return "skipped"
    if instance.status == InstanceStatus.PAST_DUE.value and (
            instance.next_renewal_attempt_at is None or instance.next_renewal_attempt_at > now):
        return "skipped"
    if instance.cancel_at_period_end:
        return _end_at_period_end(session, instance=instance, now=now)
    order = open_renewal_order(session, instance=instance)
    if order is None:
        order = _create_renewal_order(session, instance=instance, backend=gateway.backend)
        if order is None:  # another worker created it meanwhile (SQLite has no row lock)
            return "skipped"
    elif any(payment.status == "succeeded" for payment in order.payments):
        return "skipped"  # charged already: the store has yet to confirm the order
    elif (sent := next((p for p in order.payments if p.status == PAYMENT_SENT), None)) is not None:
        if sent.created_at > now - STORE_CONFIRMATION_WAIT:
            return "skipped"  # sent to the store, whose answer was lost: it may have charged
        # neither the store's answer, nor its webhook, nor reconciliation reported it paid: a failed
        # attempt, retried on the dunning schedule (by then reconciliation has seen any charge)
        sent.status, sent.message = "declined", "The store did not confirm this charge."
        session.flush()
        return _renewal_failed(session, instance=instance, order=order, now=now, config=config)
    if gateway.backend != order.backend:
        raise SubscriptionError(f"This renewal is charged through the {order.backend} backend, not {gateway.backend}.")
    if gateway.backend == "saleor":
        return _renew_through_saleor(session, instance=instance, order=order, now=now, gateway=gateway,
                                     config=config)
    method = instance.payment_method
    if method is None:
        outcome_ok, message, last4 = False, "No card is saved for renewals.", None
    else:
        outcome = gateway.charge_saved_card(token=method.token, amount_minor=order.total_minor,
                                            currency=order.currency, reference=order.number)
        outcome_ok, message, last4 = outcome.succeeded, outcome.message, method.last4
    _record_payment(session, order=order, succeeded=outcome_ok, last4=last4, message=message, now=now)
    if outcome_ok:
        mark_paid(session, order=order, now=now, actor_label="renewal")
        return "renewed"
    return _renewal_failed(session, instance=instance, order=order, now=now, config=config)


def _record_payment(session: Session, *, order: Order, succeeded: bool, last4: str | None, message: str,
                    now: datetime) -> None:
    session.add(Payment(order_id=order.id, amount_minor=order.total_minor, currency=order.currency,
                        status="succeeded" if succeeded else "declined", card_last4=last4, message=message[:500],
                        created_at=now))
    session.flush()
    session.refresh(order, ["payments"])


def _renew_through_saleor(session: Session, *, instance: Instance, order: Order, now: datetime, gateway,
                          config=None) -> str:
    """Have Saleor's payment app charge the card it keeps for the customer. A charged renewal waits for Saleor's
    order-paid webhook (or reconciliation), which provisions the period through the order-paid handler;
    a declined one goes through dunning like a local one."""
    from app.adapters.commerce import CommerceUnavailable

    details = session.scalar(select(BillingDetails).where(BillingDetails.organization_id == order.organization_id))
    order_id, instance_id, number, email, sku = order.id, instance.id, order.number, order.email, order.lines[0].sku
    total_minor, currency = order.total_minor, order.currency
    # committed before the store is asked (it releases the instance's lock): Saleor without a task
    # queue sends the order-paid webhook while it completes the checkout, and that must find the
    # order; and the "sent" payment tells any later sweep not to charge again while the answer is out
    sent = Payment(order_id=order_id, amount_minor=total_minor, currency=currency, status=PAYMENT_SENT,
                   message="Sent to the store.", created_at=now)
    session.add(sent)
    session.commit()
    try:
        charge = gateway.charge_renewal(reference=number, email=email, sku=sku, total_minor=total_minor,
                                        currency=currency, country=details.country if details else "US")
    except CommerceUnavailable:
        log.warning("renewal %s: the store did not answer; it is confirmed by its webhook or reconciliation",
                    number, exc_info=True)
        return "submitted"
    instance = lock_instance(session, instance_id)
    order = session.scalar(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
    sent = session.get(Payment, sent.id, populate_existing=True)
    if sent.status == PAYMENT_SENT:  # else the store's webhook confirmed it meanwhile
        sent.status = "succeeded" if charge.succeeded else "declined"
        sent.message = charge.message[:500]  # the payment app keeps the card: its digits are not known here
    if charge.succeeded and charge.order is not None and not order.external_id:
        order.external_id = charge.order.external_id[:64]
    session.flush()
    session.refresh(order, ["payments"])
    if charge.succeeded:
        audit.record(session, action="subscription.renewal_submitted", target_type="order", target_id=order.id,
                     organization_id=order.organization_id, actor_label="system",
                     data={"number": order.number, "instance": instance.id, "external_id": order.external_id})
        return "submitted"
    return _renewal_failed(session, instance=instance, order=order, now=now, config=config)


def renew_due_subscriptions(session: Session, *, now: datetime, gateway, config=None,
                            commit=None) -> RenewalReport:
    """Renew every instance due at `now` (catching up missed periods, at most MAX_CATCH_UP_PERIODS each).
    `commit`, when given, is called after each instance so that one failure keeps the others."""
    report = RenewalReport([], [], [], [], [])
    for instance_id in due_subscription_ids(session, now=now):
        for _ in range(MAX_CATCH_UP_PERIODS):
            outcome = renew_subscription(session, instance_id=instance_id, now=now, gateway=gateway, config=config)
            if commit is not None:
                commit()
            if outcome == "renewed":
                report.renewed.append(instance_id)
                continue  # renewed to a period that may have ended too: go again
            if outcome == "failed":
                report.failed.append(instance_id)
            elif outcome == "suspended":
                report.failed.append(instance_id)
                report.suspended.append(instance_id)
            elif outcome == "ended":
                report.ended.append(instance_id)
            elif outcome == "submitted":
                report.submitted.append(instance_id)
            else:
                report.skipped.append(instance_id)
            break
    return report


def open_renewal_order(session: Session, *, instance: Instance) -> Order | None:
    """The pending renewal order of the instance's current period end, if any."""
    return session.scalar(select(Order).where(
        Order.renews_instance_id == instance.id, Order.purpose == OrderPurpose.RENEWAL.value,
        Order.renewal_period_start == instance.period_end, Order.status == OrderStatus.PENDING.value))


def _order_email(session: Session, instance: Instance) -> tuple[str, int | None]:
    if instance.source_order_line_id is not None:
        row = session.execute(select(Order.email, Order.user_id).join(OrderLine, OrderLine.order_id == Order.id)
                              .where(OrderLine.id == instance.source_order_line_id)).first()
        if row is not None:
            return row[0], row[1]
    user = session.get(User, instance.created_by_id) if instance.created_by_id else None
    return (user.email if user else ""), instance.created_by_id


def new_plan_order(session: Session, *, instance: Instance, purpose: str, plan: Plan, amount: int, name: str,
               period_start: datetime, backend: str = "local") -> Order | None:
    from app.services import orders  # orders imports nothing of ours; imported late to keep start-up light

    email, user_id = _order_email(session, instance)
    order = Order(number=orders.new_order_number(), user_id=user_id, organization_id=instance.organization_id,
                  email=email or "billing@invalid", status=OrderStatus.PENDING.value, total_minor=amount,
                  currency=plan.currency, backend=backend,
                  purpose=purpose, renews_instance_id=instance.id, renewal_period_start=period_start)
    if not orders.insert_once(session, order):
        return None
    session.add(OrderLine(order_id=order.id, kind=LineKind.PLAN.value, sku=plan.sku, name=name[:200],
                          plan_id=plan.id, offering_id=plan.offering_id, quantity=1, unit_price_minor=amount,
                          total_minor=amount))
    session.flush()
    session.refresh(order, ["lines"])
    audit.record(session, action=f"order.{purpose}_placed", target_type="order", target_id=order.id,
                 organization_id=order.organization_id, actor_label="system",
                 data={"number": order.number, "instance": instance.id, "total_minor": amount,
                       "currency": order.currency})
    return order


def _create_renewal_order(session: Session, *, instance: Instance, backend: str = "local") -> Order | None:
    plan = instance.pending_plan or instance.plan
    start = instance.period_end
    end = add_interval(start, plan.interval)
    name = f"{plan.offering.name} {plan.name} plan, {period_label(start, end)}"
    return new_plan_order(session, instance=instance, purpose=OrderPurpose.RENEWAL.value, plan=plan,
                      amount=plan.price_minor, name=name, period_start=start, backend=backend)


def period_label(start: datetime, end: datetime) -> str:
    """"Jan 5 – Feb 5, 2027" for a period, as a buyer reads it."""
    last = end - timedelta(seconds=1)
    if start.year == last.year:
        return f"{start:%b} {start.day} – {end:%b} {end.day}, {end.year}"
    return f"{start:%b} {start.day}, {start.year} – {end:%b} {end.day}, {end.year}"


def mark_paid(session: Session, *, order: Order, now: datetime, actor_label: str) -> None:
    from app.services import orders, provisioning

    if orders.mark_order_paid(session, order=order, actor_label=actor_label):
        provisioning.handle_order_paid(session, order=order, actor_label=actor_label, now=now)


def _renewal_failed(session: Session, *, instance: Instance, order: Order, now: datetime, config=None) -> str:
    schedule = retry_days(config)
    since = instance.past_due_since or now
    failures = instance.renewal_failures + 1
    if failures > len(schedule):
        values = {"status": InstanceStatus.SUSPENDED.value, "renewal_failures": failures,
                  "next_renewal_attempt_at": None, "past_due_since": since}
        outcome = "suspended"
    else:
        values = {"status": InstanceStatus.PAST_DUE.value, "renewal_failures": failures, "past_due_since": since,
                  "next_renewal_attempt_at": since + timedelta(days=schedule[failures - 1])}
        outcome = "failed"
    session.execute(update(Instance).where(Instance.id == instance.id).values(**values)
                    .execution_options(synchronize_session=False))
    session.refresh(instance)
    action = "subscription.renewal_failed" if outcome == "failed" else "subscription.suspended_unpaid"
    next_attempt = instance.next_renewal_attempt_at
    audit.record(session, action=action, target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor_label="system",
                 data={"order": order.number, "failures": failures,
                       "next_attempt": next_attempt.isoformat() if next_attempt else None})
    mail.renewal_failed(session, instance=instance, order=order, failures=failures,
                        grace_ends_at=since + timedelta(days=grace_days(config)))
    if outcome == "suspended":
        seller_webhooks.emit_instance_event(session, instance=instance, event="instance.suspended", now=now)
    return outcome


def _end_at_period_end(session: Session, *, instance: Instance, now: datetime) -> str:
    ended_at = instance.period_end
    changed = session.execute(
        update(Instance).where(Instance.id == instance.id, Instance.status.in_(RENEWABLE))
        .values(status=InstanceStatus.CANCELLED.value, cancelled_at=ended_at)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(instance)
    if not changed:
        return "skipped"
    # the period's credits expired with it; a roll-over plan's grant that would have carried on ends now
    plan_credits.end_included_credits(session, instance=instance, actor_label="system", now=now,
                                      reason="the subscription ended at the end of its period")
    audit.record(session, action="instance.cancelled", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor_label="system",
                 data={"status": InstanceStatus.CANCELLED.value, "at_period_end": True})
    seller_webhooks.emit_instance_event(session, instance=instance, event="instance.cancelled", now=now)
    return "ended"


def apply_paid_renewal(session: Session, *, order: Order, line: OrderLine, now: datetime) -> bool:
    """Start the period a paid renewal order bought (once): on time, it follows the old period; after a
    failed renewal (past due or suspended), it starts at the payment. Grants the period's included
    credits; a roll-over plan's unused credits carry on to the new period's end. Called by the order-paid
    handler; False when this order's period was applied before."""
    instance = lock_instance(session, order.renews_instance_id)
    if instance is None or instance.period_end != order.renewal_period_start:
        return False
    if instance.status not in (*RENEWABLE, InstanceStatus.SUSPENDED.value):
        log.warning("renewal order %s paid for instance %s, which is %s", order.number, instance.id,
                    instance.status)
        return False
    plan = line.plan
    late = instance.past_due_since is not None
    start = now if late else order.renewal_period_start
    end = add_interval(start, plan.interval)
    old_end = instance.period_end
    session.execute(update(Instance).where(Instance.id == instance.id).values(
        plan_id=plan.id, pending_plan_id=None, period_start=start, period_end=end,
        status=InstanceStatus.ACTIVE.value, past_due_since=None, renewal_failures=0, next_renewal_attempt_at=None,
    ).execution_options(synchronize_session=False))
    session.refresh(instance)
    if plan.rollover_credits:
        _carry_over(session, instance=instance, old_end=old_end, new_end=end)
    if end > now:
        from app.services import provisioning

        plan_credits.grant_included_credits(
            session, instance=instance, period_end=end, now=now,
            reference=f"{plan.offering.name} {plan.name} plan, {period_label(start, end)}, order {order.number}",
            idempotency_key=provisioning.plan_credit_key(line.id),
        )
    audit.record(session, action="subscription.renewed", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor_label="system",
                 data={"order": order.number, "period_start": start.isoformat(), "period_end": end.isoformat(),
                       "plan": plan.sku, "after_failed_payment": late})
    seller_webhooks.emit_instance_event(session, instance=instance, event="instance.renewed", now=now)
    return True


def _carry_over(session: Session, *, instance: Instance, old_end: datetime, new_end: datetime) -> None:
    """A roll-over plan: the unused credits of the period that ended move their end to the new period's."""
    plan_credits.lock_wallet_of(session, organization_id=instance.organization_id)
    session.execute(update(CreditGrant).where(
        CreditGrant.instance_id == instance.id, CreditGrant.origin == GrantOrigin.PLAN.value,
        CreditGrant.remaining > 0, CreditGrant.expires_at == old_end,
    ).values(expires_at=new_end).execution_options(synchronize_session=False))
