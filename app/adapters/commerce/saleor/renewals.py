"""Renewals through Saleor: a new Saleor order for the next period, paid with the card the payment app
keeps for the customer.

Saleor 3.23 shows a customer's stored payment methods (`User.storedPaymentMethods`) to that customer
only: an app's token, whatever its permissions, reads an empty list (seen on a real Saleor 3.23.28).
So a renewal does not pick a method itself: it creates a checkout for the customer's email with the
plan's variant and our order number as metadata, asks our payment app (SALEOR_PAYMENT_GATEWAY) to
charge off-session the card it saved for that customer (`transactionInitialize` with
`data: {offSession: true, customerEmail, reference}`), and completes the checkout. Saleor then reports
the paid order through the order-paid webhook, which provisions the new period like a first purchase.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.adapters.commerce.checkout import ORDER_REFERENCE_KEY, RemoteOrder
from app.adapters.commerce.saleor import client
from app.adapters.commerce.saleor.checkout import (
    SaleorPayments, error_messages, order_from_graphql, to_major, to_minor,
)

CHARGED_EVENTS = ("CHARGE_SUCCESS", "CHARGE_REQUEST")  # REQUEST: the app confirms it later (webhook)
ADDRESS_RULES = {"checkRequiredFields": False, "checkFieldsFormat": False}  # digital goods


@dataclass(frozen=True)
class RenewalCharge:
    succeeded: bool
    message: str
    order: RemoteOrder | None = None  # the Saleor order made, when the charge went through


class SaleorRenewals(SaleorPayments):
    def charge_renewal(self, *, reference: str, email: str, sku: str, total_minor: int,
                       currency: str, country: str = "US", line_price_minor: int | None = None,
                       price_reason: str | None = None) -> RenewalCharge:
        """Make and pay the Saleor order of a renewal. A refusal (a declined charge, a plan no longer sold,
        a price that differs) is a RenewalCharge that did not succeed; an unreachable Saleor raises
        client.SaleorError (nothing to count against the customer: try again later).

        `line_price_minor` sets the plan line's price instead of the variant's (a prorated upgrade for the
        rest of a period), with `price_reason` kept on the line for the store's staff. Saleor lets only an
        app with HANDLE_CHECKOUTS set it (deploy/scripts/saleor_setup.py grants it)."""
        variants = self._execute("VariantsBySku", {"channel": self.channel, "skus": [sku], "first": 1})
        edges = (variants.get("productVariants") or {}).get("edges") or []
        if not edges:
            return RenewalCharge(False, "The plan is no longer sold in the store.")
        checkout_input: dict[str, Any] = {
            "channel": self.channel, "email": email,
            "lines": [self._line(edges[0]["node"]["id"], line_price_minor, currency, price_reason)],
            "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
            # Saleor completes no checkout without a billing address; digital goods need only the country
            "billingAddress": {"country": country}, "validationRules": {"billingAddress": ADDRESS_RULES},
        }
        payload = self._execute("CheckoutCreate", {"input": checkout_input}).get("checkoutCreate") or {}
        if error_messages(payload) or not payload.get("checkout"):
            return RenewalCharge(False, "The store refused the renewal: " + "; ".join(error_messages(payload) or ["no checkout"]))
        checkout = payload["checkout"]
        gross = checkout["totalPrice"]["gross"]
        if gross["currency"] != currency or to_minor(gross["amount"], gross["currency"]) != total_minor:
            return RenewalCharge(False, "The store's price for the plan differs from the subscription's; nothing "
                                        "was charged.")
        paid = self._execute("TransactionInitialize", {
            "id": checkout["id"], "amount": to_major(total_minor, currency), "gateway": self.gateway,
            "data": {"offSession": True, "customerEmail": email, "reference": reference},
            "idempotencyKey": f"{reference}:{checkout['id']}"[:512],
        }, timeout=client.payment_timeout_seconds()).get("transactionInitialize") or {}
        event = (paid.get("transactionEvent") or {}).get("type")
        if error_messages(paid) or event not in CHARGED_EVENTS:
            message = (paid.get("transactionEvent") or {}).get("message") or "; ".join(error_messages(paid))
            return RenewalCharge(False, f"Your saved card was declined. {message}".strip())
        done = self._execute("CheckoutComplete", {
            "id": checkout["id"], "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
        }, timeout=client.payment_timeout_seconds()).get("checkoutComplete") or {}
        if error_messages(done) or not done.get("order"):
            # the card was charged: never a decline (that would charge it again on the next try). Saleor
            # completes a fully paid checkout itself (the channel's setting), and the order-paid webhook
            # or reconciliation then finds the order by its reference.
            return RenewalCharge(True, "Paid; the store has not completed the order yet ("
                                 + "; ".join(error_messages(done) or ["no order"]) + ").")
        return RenewalCharge(True, "Paid through the store.", order=order_from_graphql(done["order"]))

    @staticmethod
    def _line(variant_id: str, price_minor: int | None, currency: str, reason: str | None) -> dict[str, Any]:
        line: dict[str, Any] = {"variantId": variant_id, "quantity": 1}
        if price_minor is not None:
            line["price"] = to_major(price_minor, currency)
            if reason:
                line["priceOverrideReason"] = reason[:255]
        return line
