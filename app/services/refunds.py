"""Refunds: an operator gives back all or part of an order line, or the payment provider reports one.

Both paths end in `record_refund`, under the order's row lock (so they run one after the other):
- the refund is never more than what is left refundable on the line (its total minus its refunds);
- the credits the line gave (a plan's included credits of the refunded period, or a credit pack) are
  taken back in proportion to the money refunded, as far as they are unspent and not held by a run in
  progress, never below zero, in a ledger entry of kind `refund` that names the order;
- a subscription line refunded in full cancels its instance (its remaining included credits end);
- the publisher's earnings lose the refund and regain the share of the platform fee (payouts);
- the buyer is mailed, and an audit event is written.

The operator's refund is made through the commerce port (local test mode records it; Saleor refunds
the transaction that charged the order) while the order row is locked: a webhook for the same refund,
or a second operator, waits and then sees it. Saleor's refund webhooks are app.services.refund_webhooks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload

from app.adapters.commerce.checkout import CheckoutError, CheckoutPort
from app.formatting import money
from app.models import (
    CreditGrant, Instance, InstanceStatus, LedgerEntry, LedgerKind, LineKind, Offering, Order, OrderLine, OrderStatus,
    Organization, Refund, RefundSource, UnconfirmedRefund, User, Wallet, utcnow,
)
from app.services import (
    audit, billing, invoices, mail, orders, organizations, payouts, plan_credits, seller_webhooks,
)
from app.services.errors import ServiceError
from app.services.provisioning import credit_key, plan_credit_key

log = logging.getLogger(__name__)

AUDIT_REFUNDED = "order.refunded"
AUDIT_INSTANCE_CANCELLED = "instance.cancelled"
MAX_REASON = 1000
WEBHOOK_SOURCE = "saleor"
PER_PAGE = 25


class RefundError(ServiceError):
    """A refund cannot be made; the message is safe to show."""


class RefundUnconfirmed(RefundError):
    """The payment provider was asked and did not answer: the refund may still go through."""


class OrderNotFound(RefundError):
    def __init__(self) -> None:
        super().__init__("Order not found.", status=404)


# --- reading orders (operator console) ----------------------------------------------------------

@dataclass(frozen=True)
class OrderSearch:
    items: list[Order]
    total: int
    page: int
    pages: int


def search_orders(session: Session, *, q: str | None = None, page: int = 1, per_page: int = PER_PAGE) -> OrderSearch:
    """Every order, newest first; `q` matches the order number, the receipt email or the organization's
    name (case-insensitive, part of it is enough)."""
    query = select(Order).join(Organization, Organization.id == Order.organization_id)
    q = (q or "").strip()[:120]
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(or_(func.lower(Order.number).like(pattern), func.lower(Order.email).like(pattern),
                                func.lower(Organization.name).like(pattern)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    items = list(session.scalars(
        query.options(selectinload(Order.organization), selectinload(Order.lines))
        .order_by(Order.created_at.desc(), Order.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ))
    return OrderSearch(items=items, total=total, page=page, pages=pages)


def get_order(session: Session, *, order_id: int) -> Order:
    order = session.scalar(select(Order).where(Order.id == order_id).options(
        selectinload(Order.lines), selectinload(Order.payments), selectinload(Order.organization)))
    if order is None:
        raise OrderNotFound()
    return order


def refunds_of_order(session: Session, *, order_id: int) -> list[Refund]:
    return list(session.scalars(select(Refund).where(Refund.order_id == order_id)
                                .options(selectinload(Refund.actor)).order_by(Refund.id)))


def unconfirmed_refunds_of_order(session: Session, *, order_id: int) -> list[UnconfirmedRefund]:
    """Refunds asked through the API that the provider has neither confirmed nor reported yet."""
    return list(session.scalars(select(UnconfirmedRefund).where(UnconfirmedRefund.order_id == order_id)
                                .options(selectinload(UnconfirmedRefund.line), selectinload(UnconfirmedRefund.actor))
                                .order_by(UnconfirmedRefund.id)))


def refunded_by_line(session: Session, *, order_id: int) -> dict[int, int]:
    """Money refunded so far per line of the order."""
    return {line_id: int(total) for line_id, total in session.execute(
        select(Refund.order_line_id, func.sum(Refund.amount_minor)).where(Refund.order_id == order_id)
        .group_by(Refund.order_line_id))}


def refundable_minor(session: Session, *, line: OrderLine) -> int:
    """What is left to refund on a line: its total minus its refunds."""
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount_minor), 0))
                              .where(Refund.order_line_id == line.id)) or 0
    return max(line.total_minor - int(refunded), 0)


# --- the operator's refund ----------------------------------------------------------------------

def lock_order(session: Session, order_id: int) -> Order | None:
    """Hold the order row until the transaction ends (PostgreSQL: FOR UPDATE; SQLite: the write lock a
    no-op UPDATE takes), then read it as it is now."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Order).where(Order.id == order_id).values(id=Order.id)
                        .execution_options(synchronize_session=False))
        return session.scalar(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
    return session.scalar(select(Order).where(Order.id == order_id).with_for_update()
                          .execution_options(populate_existing=True))


def _clean_reason(reason: str | None) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise RefundError("Say why the order is refunded; the buyer reads it.", field="reason")
    if len(reason) > MAX_REASON:
        raise RefundError(f"Use at most {MAX_REASON} characters.", field="reason")
    return reason


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    replayed: bool = False  # an earlier request with the same idempotency key made it; nothing changed now


def refund_order_line(
    session: Session, *, order_id: int, line_id: int, amount_minor: int | None, reason: str, actor: User,
    gateway: CheckoutPort, now: datetime | None = None,
) -> Refund:
    """Refund `amount_minor` of one paid order line through the commerce backend and record it, with
    everything a refund takes back (see the module). Flushes; the caller commits, or rolls back on a
    RefundError (nothing is changed then)."""
    return refund_line(session, order_id=order_id, line_id=line_id, amount_minor=amount_minor, reason=reason,
                       actor=actor, gateway=gateway, now=now).refund


def refund_line(
    session: Session, *, order_id: int, line_id: int, amount_minor: int | None, reason: str, actor: User,
    gateway: CheckoutPort, idempotency_key: str | None = None, now: datetime | None = None,
) -> RefundResult:
    """`refund_order_line`, once per `idempotency_key` on the order: a request that repeats a key
    answers with the refund the key made (replayed) and changes nothing; a key reused for another line
    or amount is refused (409). The key is looked up under the order's row lock, so two requests that
    race with one key make one refund and one call to the backend."""
    reason = _clean_reason(reason)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise RefundError("Enter an amount above zero.", field="amount")
    order = lock_order(session, order_id)
    if order is None:
        raise OrderNotFound()
    if idempotency_key is not None:
        earlier = session.scalar(select(Refund).where(Refund.order_id == order.id,
                                                      Refund.idempotency_key == idempotency_key))
        if earlier is not None:
            if (earlier.order_line_id, earlier.amount_minor) != (line_id, amount_minor):
                raise RefundError("This idempotency key was used for another refund of this order; use a new key.",
                                  field="idempotency_key", status=409)
            return RefundResult(earlier, replayed=True)
        if session.scalar(select(UnconfirmedRefund.id).where(UnconfirmedRefund.order_id == order.id,
                                                             UnconfirmedRefund.idempotency_key == idempotency_key)):
            raise RefundError("The refund asked with this idempotency key was not confirmed by the payment provider "
                              "and may still go through: it appears on the order once the provider reports it. "
                              "Read the order's refunds before refunding again with a new key.",
                              field="idempotency_key", status=409)
    line = session.scalar(select(OrderLine).where(OrderLine.id == line_id, OrderLine.order_id == order.id)
                          .execution_options(populate_existing=True))
    if line is None:
        raise RefundError("That line is not on this order.", field="line_id", status=404)
    if order.status != OrderStatus.PAID.value:
        raise RefundError("Only a paid order can be refunded.", status=409)
    left = refundable_minor(session, line=line)
    if left == 0:
        raise RefundError("This line is refunded in full already.", field="amount", status=409)
    if amount_minor > left:
        raise RefundError(f"At most {money(left, order.currency)} is left to refund on this line.", field="amount")
    known = frozenset(session.scalars(select(Refund.external_id).where(
        Refund.order_id == order.id, Refund.external_id.is_not(None))))
    try:
        outcome = gateway.refund_payment(
            order_external_id=order.external_id, amount_minor=amount_minor, currency=order.currency, reason=reason,
            known_refund_ids=known,
        )
    except CheckoutError as exc:
        raise RefundUnconfirmed(str(exc), status=502) from exc
    if not outcome.succeeded:
        raise RefundError(outcome.message, status=502)
    return RefundResult(record_refund(
        session, order=order, line=line, amount_minor=amount_minor, reason=reason, source=RefundSource.OPERATOR,
        external_id=outcome.external_id, actor=actor, idempotency_key=idempotency_key, now=now,
    ))


def refund_line_as_operator(
    session: Session, *, actor: User, order_id: int, line_id: int, amount_minor: int | None, reason: str,
    gateway: CheckoutPort, idempotency_key: str, now: datetime | None = None,
) -> RefundResult:
    """`refund_line` for the API, where the caller's role is not checked by a console: operators only."""
    if not actor.has_role("operator"):
        raise RefundError("Only operators refund orders.", status=403)
    try:
        return refund_line(session, order_id=order_id, line_id=line_id, amount_minor=amount_minor, reason=reason,
                           actor=actor, gateway=gateway, idempotency_key=idempotency_key, now=now)
    except RefundUnconfirmed:
        # the provider may still refund: keep the key (committed, whatever the caller does next), so
        # that a retry with it refunds nothing more
        session.rollback()
        orders.insert_once(session, UnconfirmedRefund(order_id=order_id, order_line_id=line_id,
                                                      idempotency_key=idempotency_key, amount_minor=amount_minor,
                                                      reason=_clean_reason(reason), actor_user_id=actor.id))
        session.commit()
        raise


def refunds_for_user(session: Session, *, user: User, order_id: int) -> list[Refund]:
    """The refunds of an order the user placed (any order for an operator); anyone else's is not found."""
    order = session.get(Order, order_id)
    if order is None or not (order.user_id == user.id or user.has_role("operator")):
        raise OrderNotFound()
    return refunds_of_order(session, order_id=order_id)


def unconfirmed_refunds_for_operator(session: Session, *, user: User, order_id: int) -> list[UnconfirmedRefund]:
    """The order's refunds waiting for the payment provider, for an operator; none for anyone else
    (a buyer sees a refund once it is made)."""
    if not user.has_role("operator"):
        return []
    return unconfirmed_refunds_of_order(session, order_id=order_id)


def refund_unused_period(session: Session, *, order_id: int, line_id: int, amount_minor: int, actor: User,
                         gateway: CheckoutPort, now: datetime | None = None) -> Refund:
    """The refund a buyer's "Cancel now" gives: the prorated unused part of the period that the order line
    paid for (computed by `subscription_changes.quote_cancel_now`), through the commerce backend like any refund.
    The buyer must manage the order's organization. Flushes; the caller commits."""
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound()
    organizations.require_role(session, user=actor, organization_id=order.organization_id, not_found=OrderNotFound())
    return refund_order_line(session, order_id=order_id, line_id=line_id, amount_minor=amount_minor,
                             reason="Cancelled before the end of the period: the unused part is refunded.",
                             actor=actor, gateway=gateway, now=now)


# --- recording a refund --------------------------------------------------------------------------

def record_refund(
    session: Session, *, order: Order, line: OrderLine, amount_minor: int, reason: str, source: RefundSource,
    external_id: str | None, actor: User | None, idempotency_key: str | None = None, now: datetime | None = None,
) -> Refund:
    """Write the refund and its consequences; the caller holds the order row and has checked the amount."""
    now = now or utcnow()
    refund = Refund(
        order_id=order.id, order_line_id=line.id, amount_minor=amount_minor, currency=order.currency,
        reason=reason, source=source.value, backend=order.backend, external_id=external_id,
        actor_user_id=actor.id if actor else None, idempotency_key=idempotency_key, created_at=now,
    )
    session.add(refund)
    session.flush()
    refunded = line.total_minor - refundable_minor(session, line=line)
    refund.credits_taken_back = _take_back_credits(session, order=order, line=line, refund=refund,
                                                   refunded_total=refunded, now=now)
    if line.kind == LineKind.PLAN.value and refunded >= line.total_minor:
        refund.instance_cancelled = _cancel_refunded_instance(session, order=order, line=line, actor=actor, now=now)
    session.flush()
    payouts.record_refund_earning(session, refund=refund)
    actor_label = actor.email if actor else WEBHOOK_SOURCE
    audit.record(
        session, action=AUDIT_REFUNDED, target_type="order", target_id=order.id,
        organization_id=order.organization_id, actor=actor, actor_label=actor_label,
        data={"number": order.number, "refund": refund.id, "line": line.id, "amount_minor": amount_minor,
              "currency": order.currency, "reason": reason, "source": source.value, "external_id": external_id,
              "credits_taken_back": refund.credits_taken_back, "instance_cancelled": refund.instance_cancelled},
    )
    _mail_buyer(session, order=order, line=line, refund=refund, fully=refunded >= line.total_minor)
    _after_refund(session, refund)
    return refund


def _after_refund(session: Session, refund: Refund) -> None:
    """The one place a recorded refund is announced to the rest of the app, in the refund's transaction:
    the credit note of the order's invoice. The money has already gone back at the backend, so a credit
    note that cannot be issued (an invoice line a store discount made smaller than the refund) is logged
    for the finance team rather than undoing the refund's record."""
    order = session.get(Order, refund.order_id)
    try:
        with session.begin_nested():
            invoices.issue_credit_note(session, order=order, lines={refund.order_line_id: refund.amount_minor},
                                       reason=refund.reason, reference=f"refund:{refund.id}", now=refund.created_at)
    except invoices.InvoiceError:
        log.exception("refund %s of order %s: no credit note could be issued", refund.id, order.number)
    line = session.get(OrderLine, refund.order_line_id)
    offering = session.get(Offering, line.offering_id) if line.offering_id else None
    if offering is not None:  # a credit pack is the marketplace's own: no publisher to tell
        seller_webhooks.emit(session, publisher_id=offering.publisher_id, event="order.refunded", data={
            "order_number": order.number, "refund_id": refund.id, "amount_minor": refund.amount_minor,
            "currency": refund.currency, "offerings": [{"id": offering.id, "slug": offering.slug,
                                                        "name": offering.name}],
        }, now=refund.created_at)


def _grant_of_line(session: Session, line: OrderLine) -> CreditGrant | None:
    """The credit grant the line gave: a plan's included credits of the period it paid, or a credit pack."""
    key = plan_credit_key(line.id) if line.kind == LineKind.PLAN.value else credit_key(line.id)
    grant_id = session.scalar(select(LedgerEntry.grant_id).where(LedgerEntry.idempotency_key == key,
                                                                 LedgerEntry.kind == LedgerKind.GRANT.value))
    return session.get(CreditGrant, grant_id, populate_existing=True) if grant_id else None


def _take_back_credits(session: Session, *, order: Order, line: OrderLine, refund: Refund, refunded_total: int,
                       now: datetime) -> int:
    """Take back the credits the refunded share of the line paid for, as far as they are unspent: never
    more than the grant has left, never credits that back an active hold, never below zero."""
    grant = _grant_of_line(session, line)
    if grant is None or line.total_minor <= 0:
        return 0
    target = grant.amount * min(refunded_total, line.total_minor) // line.total_minor
    already = session.scalar(select(func.coalesce(func.sum(Refund.credits_taken_back), 0))
                             .where(Refund.order_line_id == line.id, Refund.id != refund.id)) or 0
    wanted = target - int(already)
    if wanted <= 0 or grant.remaining <= 0:
        return 0
    # the wallet row first, as every billing change of the wallet does; then the grant
    balance, held = session.execute(
        update(Wallet).where(Wallet.id == grant.wallet_id).values(balance=Wallet.balance)
        .returning(Wallet.balance, Wallet.held).execution_options(synchronize_session=False)
    ).one()
    remaining = session.scalar(select(CreditGrant.remaining).where(CreditGrant.id == grant.id))
    take = min(wanted, remaining, balance - held)
    if take <= 0:
        return 0
    moved = session.execute(
        update(Wallet).where(Wallet.id == grant.wallet_id, Wallet.balance - Wallet.held >= take)
        .values(balance=Wallet.balance - take).returning(Wallet.balance)
        .execution_options(synchronize_session=False)
    ).first()
    drawn = session.execute(
        update(CreditGrant).where(CreditGrant.id == grant.id, CreditGrant.remaining >= take)
        .values(remaining=CreditGrant.remaining - take).execution_options(synchronize_session=False)
    ).rowcount
    if moved is None or drawn != 1:
        raise billing.LedgerOutOfStep(grant.wallet_id)
    session.execute(insert(LedgerEntry.__table__).values(
        wallet_id=grant.wallet_id, kind=LedgerKind.REFUND.value, amount=-take, held_delta=0, balance_after=moved[0],
        grant_id=grant.id, instance_id=grant.instance_id,
        reference=f"Refund of order {order.number}: {take:,} credit{'' if take == 1 else 's'} of {line.name} "
                  "taken back"[:200],
        idempotency_key=f"refund:{refund.id}:credits",
    ))
    wallet = session.get(Wallet, grant.wallet_id)
    session.refresh(wallet, ["balance", "held"])
    session.expire(grant, ["remaining"])
    return take


def _cancel_refunded_instance(session: Session, *, order: Order, line: OrderLine, actor: User | None,
                              now: datetime) -> bool:
    """The subscription a fully refunded line bought ends now: cancelled, its included credits ended.

    The operator is not a member of the buyer's organization, so this is the refund's own cancellation
    (the same conditional change of status as `instances.cancel_instance`, and the same end of credits)."""
    if order.renews_instance_id is not None:  # a renewal (or an upgrade) paid for a period of an existing one
        instance = session.get(Instance, order.renews_instance_id)
    else:
        instance = session.scalar(select(Instance).where(Instance.source_order_line_id == line.id))
    if instance is None:
        return False
    changed = session.execute(
        update(Instance).where(Instance.id == instance.id, Instance.status.in_((
            InstanceStatus.ACTIVE.value, InstanceStatus.PAST_DUE.value, InstanceStatus.SUSPENDED.value)))
        .values(status=InstanceStatus.CANCELLED.value, cancelled_at=now).execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(instance)
    if not changed:
        return False
    audit.record(session, action=AUDIT_INSTANCE_CANCELLED, target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 actor_label=actor.email if actor else WEBHOOK_SOURCE,
                 data={"status": InstanceStatus.CANCELLED.value, "reason": f"order {order.number} refunded"})
    plan_credits.end_included_credits(session, instance=instance, reason="the plan was refunded", actor=actor,
                                      actor_label=None if actor else WEBHOOK_SOURCE, now=now)
    seller_webhooks.emit_instance_event(session, instance=instance, event="instance.cancelled", now=now)
    return True


def _mail_buyer(session: Session, *, order: Order, line: OrderLine, refund: Refund, fully: bool) -> None:
    mail.queue_mail(
        session, to=order.email, template="refund_issued", dedupe_key=f"refund:{refund.id}", user_id=order.user_id,
        context={"number": order.number, "item": line.name, "amount": refund.amount_minor,
                 "currency": refund.currency, "reason": refund.reason, "fully": fully,
                 "credits": refund.credits_taken_back, "cancelled": refund.instance_cancelled,
                 "organization": order.organization.name,
                 "order_url": mail.link("account.order_detail", order_id=order.id)},
    )
