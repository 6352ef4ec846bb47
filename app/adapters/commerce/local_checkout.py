"""The embedded checkout: orders live in our own tables and a test-mode gateway takes the payment.

The gateway knows two card numbers, like the test modes of real payment providers: one that
always succeeds and one that is always declined. Every other number is refused. No money moves.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from app.adapters.commerce.checkout import (
    BillingDetails, ChargeOutcome, CheckoutLine, RefundOutcome, RemoteOrder, Submission,
)

TEST_CARD_SUCCEEDS = "4242424242424242"
TEST_CARD_DECLINED = "4000000000000002"


class LocalCheckout:
    backend = "local"

    def submit_order(
        self, *, reference: str, billing: BillingDetails, lines: Sequence[CheckoutLine],
        total_minor: int, currency: str, checkout_id: str | None = None,
    ) -> Submission:
        return Submission(needs_local_payment=True)

    def charge_card(self, *, amount_minor: int, currency: str, card_number: str) -> ChargeOutcome:
        if card_number == TEST_CARD_SUCCEEDS:
            return ChargeOutcome(True, "Payment approved (test mode).")
        if card_number == TEST_CARD_DECLINED:
            return ChargeOutcome(False, "Your card was declined. Nothing was charged; try another card.")
        return ChargeOutcome(
            False, "This card number is not accepted in test mode. Use 4242 4242 4242 4242 to pay.",
        )

    def paid_orders(self, *, since: datetime) -> list[RemoteOrder]:
        return []  # our own tables are the record of payment

    def refund_payment(
        self, *, order_external_id: str | None, amount_minor: int, currency: str, reason: str,
        known_refund_ids: frozenset[str],
    ) -> RefundOutcome:
        # test mode: the card was never charged, so the refund is recorded here and nothing moves
        return RefundOutcome(True, "Refund recorded (test mode).")
