"""Paid orders to refund: placed from the demo catalog and paid with the test-mode card."""
from __future__ import annotations

from datetime import date

import pytest

from app.adapters.commerce.local_checkout import LocalCheckout
from app.services import cart as carts
from app.services import orders, payments

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $87.00, 1,200 included credits, published by Northwind AI
PACK = "CREDITS-500"  # $45.00, 500 credits, the platform's own
CARD = payments.CardDetails(number="4242 4242 4242 4242", expiry="12/30", cvc="123")


def paid_order(session, user, *lines, backend: str = "local"):
    """An order of `lines` ((sku, quantity), ...) placed and paid by `user` (committed)."""
    cart = carts.get_or_create_cart(session, user=user, token=None)
    for sku, quantity in lines:
        carts.add_to_cart(session, cart=cart, sku=sku, quantity=quantity)
    order = orders.place_order(session, user=user, cart=cart, organization_id=None, email=user.email,
                               backend=backend)
    if backend == "local":
        payments.pay_order(session, order=order, card=CARD, gateway=LocalCheckout(), actor=user, today=date(2026, 12, 6))
    session.commit()
    return order


@pytest.fixture
def local_gateway():
    return LocalCheckout()
