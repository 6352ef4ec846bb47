"""The embedded checkout: orders live in our own tables and a test-mode gateway takes the payment.

The gateway knows three card numbers, like the test modes of real payment providers: one that
always succeeds, one that pays at checkout and can be saved but whose later charges are declined,
and one that is always declined. Every other number is refused. No money moves.

A saved card is a token; this gateway keeps no card store, so the token itself says how the test
card behaves (a real provider looks its token up instead).
"""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Sequence

from app.adapters.commerce.checkout import (
    BillingDetails, ChargeOutcome, CheckoutError, CheckoutLine, RefundOutcome, RemoteOrder, SavedCardToken,
    Submission,
)

TEST_CARD_SUCCEEDS = "4242424242424242"
TEST_CARD_DECLINED = "4000000000000002"
TEST_CARD_DECLINES_LATER = "4000000000000341"  # pays now, saved, every later charge declined
TOKEN_PREFIX = "tok_test_"
_LATER_DECLINED = "d"
_PAYS = "p"


class LocalCheckout:
    backend = "local"

    def submit_order(
        self, *, reference: str, billing: BillingDetails, lines: Sequence[CheckoutLine],
        total_minor: int, currency: str, checkout_id: str | None = None,
    ) -> Submission:
        return Submission(needs_local_payment=True)

    def charge_card(self, *, amount_minor: int, currency: str, card_number: str) -> ChargeOutcome:
        if card_number in (TEST_CARD_SUCCEEDS, TEST_CARD_DECLINES_LATER):
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

    def save_card(self, *, card_number: str) -> SavedCardToken:
        if card_number not in (TEST_CARD_SUCCEEDS, TEST_CARD_DECLINES_LATER):
            raise CheckoutError("This card cannot be saved in test mode. Use 4242 4242 4242 4242.")
        kind = _PAYS if card_number == TEST_CARD_SUCCEEDS else _LATER_DECLINED
        return SavedCardToken(token=f"{TOKEN_PREFIX}{kind}_{secrets.token_hex(12)}", brand=card_brand(card_number))

    def charge_saved_card(self, *, token: str, amount_minor: int, currency: str, reference: str) -> ChargeOutcome:
        if token.startswith(f"{TOKEN_PREFIX}{_PAYS}_"):
            return ChargeOutcome(True, "Payment approved (test mode).")
        if token.startswith(f"{TOKEN_PREFIX}{_LATER_DECLINED}_"):
            return ChargeOutcome(False, "Your saved card was declined. Nothing was charged.")
        return ChargeOutcome(False, "This saved card is not known to the test-mode gateway.")


def card_brand(card_number: str) -> str:
    """The card network by the number's first digits (as printed on the card)."""
    if card_number.startswith("4"):
        return "Visa"
    if card_number[:2] in ("51", "52", "53", "54", "55") or "2221" <= card_number[:4] <= "2720":
        return "Mastercard"
    if card_number[:2] in ("34", "37"):
        return "American Express"
    return "Card"
