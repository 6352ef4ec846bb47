"""Paying an order with a card on the local backend's test-mode gateway.

The card is checked here (Luhn checksum, expiry in the future, a 3–4 digit CVC) before the
gateway sees it. Only the last four digits are kept. A successful charge marks the order paid and
runs the one order-paid handler in the same transaction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from app.adapters.commerce.checkout import CheckoutError, CheckoutPort
from app.models import Order, OrderStatus, Payment, User
from app.services import orders, provisioning, subscriptions
from app.services.errors import ServiceError


class PaymentError(ServiceError):
    """The card or the order cannot be charged; the message is safe to show."""


class OrderAlreadyPaid(PaymentError):
    """Another payment of this order got there first (a second tab, a double click)."""

    def __init__(self) -> None:
        super().__init__("This order is already paid.", status=409)


@dataclass(frozen=True)
class CardDetails:
    number: str
    expiry: str  # "MM/YY" or "MM/YYYY"
    cvc: str


def card_digits(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw or "")


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def parse_expiry(raw: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", raw or "")
    if not match:
        raise PaymentError("Enter the expiry date as MM/YY.", field="expiry")
    month, year = int(match.group(1)), int(match.group(2))
    if year < 100:
        year += 2000
    if not 1 <= month <= 12:
        raise PaymentError("The expiry month must be between 01 and 12.", field="expiry")
    return month, year


def validate_card(card: CardDetails, *, today: date) -> str:
    """The card's digits when number, expiry and CVC are well formed; PaymentError otherwise."""
    digits = card_digits(card.number)
    if not luhn_valid(digits):
        raise PaymentError("Enter a valid card number.", field="card_number")
    month, year = parse_expiry(card.expiry)
    if (year, month) < (today.year, today.month):
        raise PaymentError("This card has expired.", field="expiry")
    if year > today.year + 20:
        raise PaymentError("Enter a real expiry date.", field="expiry")
    if not re.fullmatch(r"\d{3,4}", (card.cvc or "").strip()):
        raise PaymentError("Enter the 3 or 4 digit security code.", field="cvc")
    return digits


def pay_order(
    session: Session, *, order: Order, card: CardDetails, gateway: CheckoutPort, actor: User, today: date,
    save_card: bool = False, now: datetime | None = None,
) -> Payment:
    """Charge the order's total to the card. A success marks the order paid and provisions it;
    a decline is recorded and changes nothing else (flushes; caller commits). With `save_card`, a
    paid card is kept at the gateway for renewals (only its token, brand, last four digits and
    expiry are stored here) and the subscriptions the order pays for renew with it.

    The order row is locked first, so parallel payments of one order run one after the other: the
    first charges the card, the others find the order paid (OrderAlreadyPaid) and charge nothing.
    """
    session.refresh(order, with_for_update=True)
    if order.status == OrderStatus.PAID.value:
        raise OrderAlreadyPaid()
    if order.status != OrderStatus.PENDING.value:
        raise PaymentError("This order can no longer be paid.")
    if order.backend != "local":
        raise PaymentError("This order is paid through the store's payment provider.")
    owned = orders.active_plan_ids(session, organization_id=order.organization_id)
    taken = [line.name for line in order.lines if line.plan_id is not None and line.plan_id in owned
             and order.renews_instance_id is None]  # a renewal or upgrade pays for a plan it has
    if taken:  # e.g. the same plan was bought in another tab meanwhile
        raise PaymentError(f"{order.organization.name} already has an active {taken[0]}, so this order is not "
                           "charged. Start a new order without it.")
    digits = validate_card(card, today=today)
    outcome = gateway.charge_card(amount_minor=order.total_minor, currency=order.currency, card_number=digits)
    payment = Payment(
        order_id=order.id, amount_minor=order.total_minor, currency=order.currency,
        status="succeeded" if outcome.succeeded else "declined", card_last4=digits[-4:], message=outcome.message,
    )
    session.add(payment)
    session.flush()
    if outcome.succeeded:
        if not orders.mark_order_paid(session, order=order, actor=actor):
            raise OrderAlreadyPaid()
        provisioning.handle_order_paid(session, order=order, actor_label=actor.email, now=now)
        if save_card:
            _save_card(session, order=order, digits=digits, expiry=card.expiry, gateway=gateway, actor=actor)
    return payment


def _save_card(session: Session, *, order: Order, digits: str, expiry: str, gateway: CheckoutPort,
               actor: User) -> None:
    try:
        saved = gateway.save_card(card_number=digits)
    except CheckoutError as exc:
        raise PaymentError(str(exc), field="save_card") from None
    month, year = parse_expiry(expiry)
    method = subscriptions.save_payment_method(
        session, organization_id=order.organization_id, user=actor, backend=gateway.backend, token=saved.token,
        brand=saved.brand, last4=digits[-4:], exp_month=month, exp_year=year)
    subscriptions.attach_payment_method(session, order=order, method=method)


def settle_free_order(session: Session, *, order: Order, actor: User) -> None:
    """An order that costs nothing is paid as soon as it is placed."""
    if order.total_minor != 0:
        raise PaymentError("Only an order that costs nothing is paid without a card.")
    if orders.mark_order_paid(session, order=order, actor=actor):
        provisioning.handle_order_paid(session, order=order, actor_label=actor.email)
