"""Renewals through Saleor: a new Saleor order for the next period, paid with the customer's stored
payment method.

Saleor 3.23 lists the payment methods a payment app keeps for a customer (`User.storedPaymentMethods`,
per channel). A renewal picks the one of our payment app (SALEOR_PAYMENT_GATEWAY), creates a checkout
for the customer's email with the plan's variant and our order number as metadata, asks the payment
app to charge the stored method off-session (`transactionInitialize` with the method's ids in `data`),
and completes the checkout. Saleor then reports the paid order through the order-paid webhook, which
provisions the new period like a first purchase.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from app.adapters.commerce.checkout import ORDER_REFERENCE_KEY, RemoteOrder
from app.adapters.commerce.saleor import client
from app.adapters.commerce.saleor.checkout import DUMMY_PAYMENT_APP, order_from_graphql, to_major, to_minor

Execute = Callable[..., dict[str, Any]]
CHARGED_EVENTS = ("CHARGE_SUCCESS", "CHARGE_REQUEST")  # REQUEST: the app confirms it later (webhook)
ADDRESS_RULES = {"checkRequiredFields": False, "checkFieldsFormat": False}  # digital goods


@dataclass(frozen=True)
class StoredCard:
    id: str
    payment_method_id: str
    brand: str
    last4: str


@dataclass(frozen=True)
class RenewalCharge:
    succeeded: bool
    message: str
    card: StoredCard | None = None
    order: RemoteOrder | None = None  # the Saleor order made, when the charge went through


def _errors(payload: Mapping[str, Any] | None) -> list[str]:
    return [e.get("message") or e.get("code") or "error" for e in (payload or {}).get("errors") or []]


class SaleorRenewals:
    backend = "saleor"

    def __init__(self, *, channel: str, gateway: str = DUMMY_PAYMENT_APP, execute: Execute | None = None) -> None:
        self.channel = channel
        self.gateway = gateway
        self._execute = execute or client.execute

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SaleorRenewals":
        return cls(channel=config.get("SALEOR_CHANNEL") or "default-channel",
                   gateway=config.get("SALEOR_PAYMENT_GATEWAY") or DUMMY_PAYMENT_APP)

    def charge_renewal(self, *, reference: str, email: str, sku: str, total_minor: int,
                       currency: str) -> RenewalCharge:
        """Make and pay the Saleor order of a renewal. A refusal (no stored method, a declined charge,
        a price that differs) is a RenewalCharge that did not succeed; an unreachable Saleor raises
        client.SaleorError (nothing to count against the customer: try again later)."""
        user = self._execute("UserStoredPaymentMethods", {"email": email, "channel": self.channel}).get("user")
        methods = [m for m in (user or {}).get("storedPaymentMethods") or []
                   if (m.get("gateway") or {}).get("id") == self.gateway]
        if not methods:
            return RenewalCharge(False, "No payment method is saved at the store for renewals.")
        method = methods[0]
        info = method.get("creditCardInfo") or {}
        card = StoredCard(id=method["id"], payment_method_id=method["paymentMethodId"],
                          brand=info.get("brand") or method.get("type") or "Card",
                          last4=(info.get("lastDigits") or method.get("name") or "")[-4:])
        variants = self._execute("VariantsBySku", {"channel": self.channel, "skus": [sku], "first": 1})
        edges = (variants.get("productVariants") or {}).get("edges") or []
        if not edges:
            return RenewalCharge(False, "The plan is no longer sold in the store.", card)
        checkout_input: dict[str, Any] = {
            "channel": self.channel, "email": email,
            "lines": [{"variantId": edges[0]["node"]["id"], "quantity": 1}],
            "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
        }
        billing = (user or {}).get("defaultBillingAddress")
        if billing:
            checkout_input["billingAddress"] = {"firstName": billing["firstName"], "lastName": billing["lastName"],
                                                "country": billing["country"]["code"]}
            checkout_input["validationRules"] = {"billingAddress": ADDRESS_RULES}
        payload = self._execute("CheckoutCreate", {"input": checkout_input}).get("checkoutCreate") or {}
        if _errors(payload) or not payload.get("checkout"):
            return RenewalCharge(False, "The store refused the renewal: " + "; ".join(_errors(payload) or ["no checkout"]),
                                 card)
        checkout = payload["checkout"]
        gross = checkout["totalPrice"]["gross"]
        if gross["currency"] != currency or to_minor(gross["amount"], gross["currency"]) != total_minor:
            return RenewalCharge(False, "The store's price for the plan differs from the subscription's; nothing "
                                        "was charged.", card)
        paid = self._execute("TransactionInitialize", {
            "id": checkout["id"], "amount": to_major(total_minor, currency), "gateway": self.gateway,
            "data": {"storedPaymentMethodId": card.id, "paymentMethodId": card.payment_method_id,
                     "offSession": True},
            "idempotencyKey": f"{reference}:{checkout['id']}"[:512],
        }).get("transactionInitialize") or {}
        event = (paid.get("transactionEvent") or {}).get("type")
        if _errors(paid) or event not in CHARGED_EVENTS:
            message = (paid.get("transactionEvent") or {}).get("message") or "; ".join(_errors(paid))
            return RenewalCharge(False, f"Your saved card was declined. {message}".strip(), card)
        done = self._execute("CheckoutComplete", {
            "id": checkout["id"], "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
        }).get("checkoutComplete") or {}
        if _errors(done) or not done.get("order"):
            return RenewalCharge(False, "The store could not complete the renewal: "
                                 + "; ".join(_errors(done) or ["no order"]), card)
        return RenewalCharge(True, "Renewal paid through the store.", card, order_from_graphql(done["order"]))
