"""Saleor adapter of the checkout port.

A placed order becomes a Saleor checkout (our plan and credit-pack SKUs are Saleor variant SKUs),
is paid through a payment app with the Transactions API (`transactionInitialize`; in development
the Dummy Payment App, `saleor.io.dummy-payment-app`, answering CHARGE_SUCCESS), and is completed
with `checkoutComplete`. Saleor then reports the payment through the order-paid webhook, which is
what provisions. Our order number travels as checkout/order metadata (`digitlify_order`).

A checkout left over from a failed attempt is reused: its lines are brought up to date with
checkoutLinesAdd / checkoutLinesUpdate / checkoutLinesDelete and its email with
checkoutEmailUpdate, so a retry never leaves a second checkout behind.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Sequence

from app.adapters.commerce.checkout import (
    ORDER_REFERENCE_KEY, BillingDetails, ChargeOutcome, CheckoutError, CheckoutLine, RefundOutcome, RemoteOrder,
    RemoteOrderLine, Submission,
)
from app.adapters.commerce.saleor import client
from app.formatting import CURRENCY_EXPONENT, minor_units

DUMMY_PAYMENT_APP = "saleor.io.dummy-payment-app"
PAID_CHARGE_STATUSES = {"FULL", "OVERCHARGED"}
MAX_ORDER_PAGES = 20  # reconciliation reads at most 20 × 50 orders per run

Execute = Callable[..., dict[str, Any]]


def to_minor(amount: Any, currency: str) -> int:
    """Saleor's decimal amount in minor units; ValueError for an amount no order can have (see minor_units)."""
    return minor_units(amount, currency)


def to_major(minor: int, currency: str) -> str:
    """Minor units as the decimal string Saleor's PositiveDecimal takes (no floats)."""
    exponent = CURRENCY_EXPONENT.get(currency.upper(), 2)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def order_from_graphql(node: Mapping[str, Any]) -> RemoteOrder:
    gross = ((node.get("total") or {}).get("gross")) or {}
    currency = gross.get("currency")
    lines = []
    for line in node.get("lines") or []:
        unit = ((line.get("unitPrice") or {}).get("gross")) or {}
        lines.append(RemoteOrderLine(
            external_id=line.get("id"), sku=line.get("productSku"),
            name=" · ".join(x for x in (line.get("productName"), line.get("variantName")) if x) or "Item",
            quantity=int(line.get("quantity") or 0),
            unit_price_minor=to_minor(unit["amount"], unit["currency"]) if unit.get("amount") is not None else None,
            currency=unit.get("currency"),
        ))
    created = node.get("created")
    return RemoteOrder(
        external_id=node["id"], number=str(node.get("number") or "") or None, email=node.get("userEmail"),
        currency=currency, total_minor=to_minor(gross["amount"], currency) if gross.get("amount") is not None else None,
        fully_paid=str(node.get("chargeStatus") or "").upper() in PAID_CHARGE_STATUSES,
        lines=tuple(lines),
        metadata={m["key"]: m["value"] for m in node.get("metadata") or [] if m.get("key")},
        created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
    )


def error_messages(payload: Mapping[str, Any] | None) -> list[str]:
    """The messages of a mutation's `errors` list (its code where there is no message)."""
    return [e.get("message") or e.get("code") or "error" for e in (payload or {}).get("errors") or []]


class SaleorPayments:
    """What the checkout and the renewals share: the channel they sell in, the payment app that takes the
    money (SALEOR_PAYMENT_GATEWAY) and the client that sends each operation."""

    backend = "saleor"

    def __init__(self, *, channel: str, gateway: str = DUMMY_PAYMENT_APP, execute: Execute | None = None) -> None:
        self.channel = channel
        self.gateway = gateway
        self._execute = execute or client.execute

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(channel=config.get("SALEOR_CHANNEL") or "default-channel",
                   gateway=config.get("SALEOR_PAYMENT_GATEWAY") or DUMMY_PAYMENT_APP)


class SaleorCheckout(SaleorPayments):

    # --- the port ------------------------------------------------------------------------
    def submit_order(
        self, *, reference: str, billing: BillingDetails, lines: Sequence[CheckoutLine],
        total_minor: int, currency: str, checkout_id: str | None = None,
    ) -> Submission:
        variants = self._variants([line.sku for line in lines])
        wanted = {variants[line.sku]: line.quantity for line in lines}
        checkout = self._checkout(checkout_id) if checkout_id else None
        if checkout_id and checkout is None:
            # completed or expired: a lost answer may have completed it, so never pay twice blindly
            raise CheckoutError("Your previous payment attempt may have gone through. Check your orders before "
                                "paying again.", may_be_charged=True)
        if checkout is None:
            checkout = self._create(reference, billing, wanted)
        else:
            checkout = self._bring_up_to_date(checkout, billing, wanted)
        checkout_id = checkout["id"]
        try:
            gross = checkout["totalPrice"]["gross"]
            if gross["currency"] != currency or to_minor(gross["amount"], gross["currency"]) != total_minor:
                raise CheckoutError(
                    "The store's price for your order differs from the price shown here, so nothing was charged. "
                    "Reload your cart and try again.", checkout_id=checkout_id)
            self._pay(checkout_id, total_minor, currency, reference)
            order = self._complete(checkout_id, reference)
        except client.SaleorError as exc:
            raise CheckoutError("The store's payment service did not answer in time. Check your orders before "
                                "paying again.", checkout_id=checkout_id, retryable=True,
                                may_be_charged=True) from exc
        return Submission(needs_local_payment=False, order=order, checkout_id=checkout_id)

    def charge_card(self, *, amount_minor: int, currency: str, card_number: str) -> ChargeOutcome:
        raise CheckoutError("Cards are charged by the store's payment provider, not here.")

    def charge_renewal(self, **order):
        """A plan order charged to the card the payment app keeps for the customer (see SaleorRenewals;
        a mid-period upgrade goes this way)."""
        from app.adapters.commerce.saleor.renewals import SaleorRenewals  # it builds on this module

        return SaleorRenewals(channel=self.channel, gateway=self.gateway, execute=self._execute).charge_renewal(**order)

    def paid_orders(self, *, since: datetime) -> list[RemoteOrder]:
        """Fully paid orders of our channel carrying our order reference; others are left alone."""
        channel = self._execute("SyncChannel", {"slug": self.channel}).get("channel")
        if channel is None:
            raise client.SaleorError(f"Saleor has no channel {self.channel!r} (SALEOR_CHANNEL).", operation="SyncChannel")
        found: list[RemoteOrder] = []
        after = None
        for _ in range(MAX_ORDER_PAGES):
            data = self._execute("PaidOrders", {
                "since": since.astimezone(timezone.utc).isoformat(), "channelId": channel["id"], "first": 50,
                "after": after})
            connection = data.get("orders") or {}
            for edge in connection.get("edges") or []:
                order = order_from_graphql(edge["node"])
                if order.metadata.get(ORDER_REFERENCE_KEY):  # the filter holds; a store that ignores it is skipped quietly
                    found.append(order)
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                break
            after = page.get("endCursor")
        return found

    def refund_payment(
        self, *, order_external_id: str | None, amount_minor: int, currency: str, reason: str,
        known_refund_ids: frozenset[str],
    ) -> RefundOutcome:
        """Refund through the transaction that charged the order (`transactionRequestAction` REFUND).

        The refund this call made is the new REFUND_SUCCESS event of that amount on the transaction;
        a payment app that answers later (REFUND_REQUEST) is reported as not done yet: its webhook
        records the refund when it succeeds."""
        if not order_external_id:
            raise CheckoutError("This order is not known to the store, so it cannot be refunded there.")
        try:
            order = self._execute("OrderTransactions", {"id": order_external_id}).get("order")
            if not order:
                raise CheckoutError("The store has no such order.")
            transaction = self._refundable_transaction(order, amount_minor, currency)
            before = {event["id"] for event in transaction.get("events") or []}
            payload = self._execute("TransactionRequestAction", {
                "id": transaction["id"], "amount": to_major(amount_minor, currency), "reason": reason[:1000],
            }).get("transactionRequestAction") or {}
        except client.SaleorError as exc:
            raise CheckoutError("The store did not answer in time, so nothing was recorded from this request. The "
                                "refund may still go through: it appears on this order when the store reports it. "
                                "Reload the order before trying again.", retryable=True) from exc
        if error_messages(payload):
            raise CheckoutError("The store refused the refund: " + "; ".join(error_messages(payload)))
        events = (payload.get("transaction") or {}).get("events") or []
        new = [e for e in events if e.get("id") not in before and e.get("id") not in known_refund_ids]
        for event in new:
            amount = event.get("amount") or {}
            if (event.get("type") == "REFUND_SUCCESS" and amount.get("currency") == currency
                    and to_minor(amount.get("amount"), currency) == amount_minor):
                return RefundOutcome(True, "Refunded by the store's payment provider.", external_id=event["id"])
        if any(e.get("type") == "REFUND_FAILURE" for e in new):
            return RefundOutcome(False, "The payment provider declined the refund; nothing was refunded.")
        return RefundOutcome(False, "The payment provider is still processing the refund; it appears on this order "
                                    "when the store reports it.")

    def _refundable_transaction(self, order: Mapping[str, Any], amount_minor: int, currency: str) -> dict[str, Any]:
        best = 0
        for transaction in order.get("transactions") or []:
            charged = transaction.get("chargedAmount") or {}
            refunded = transaction.get("refundedAmount") or {}
            if charged.get("currency") != currency:
                continue
            left = to_minor(charged.get("amount") or 0, currency) - to_minor(refunded.get("amount") or 0, currency)
            if left >= amount_minor:
                return transaction
            best = max(best, left)
        raise CheckoutError(f"The store's payment can give back at most {to_major(best, currency)} {currency}.")

    # --- steps ---------------------------------------------------------------------------
    def _variants(self, skus: list[str]) -> dict[str, str]:
        data = self._execute("VariantsBySku", {"channel": self.channel, "skus": sorted(set(skus)), "first": 100})
        found = {edge["node"]["sku"]: edge["node"]["id"]
                 for edge in (data.get("productVariants") or {}).get("edges") or [] if edge["node"].get("sku")}
        missing = sorted(set(skus) - set(found))
        if missing:
            raise CheckoutError(f"Not sold in the store right now: {', '.join(missing)}. Remove it from your cart.")
        return found

    def _checkout(self, checkout_id: str) -> dict[str, Any] | None:
        return self._execute("Checkout", {"id": checkout_id}).get("checkout")

    def _address(self, billing: BillingDetails) -> dict[str, Any]:
        return {"firstName": billing.first_name[:256], "lastName": billing.last_name[:256], "country": billing.country}

    # digital goods: a name and a country are the whole billing address we ask for
    ADDRESS_RULES = {"checkRequiredFields": False, "checkFieldsFormat": False}

    def _create(self, reference: str, billing: BillingDetails, wanted: dict[str, int]) -> dict[str, Any]:
        data = self._execute("CheckoutCreate", {"input": {
            "channel": self.channel, "email": billing.email,
            "lines": [{"variantId": v, "quantity": q} for v, q in wanted.items()],
            "billingAddress": self._address(billing),
            "validationRules": {"billingAddress": self.ADDRESS_RULES},
            "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
        }})
        payload = data.get("checkoutCreate") or {}
        if error_messages(payload) or not payload.get("checkout"):
            raise CheckoutError("The store refused the order: " + "; ".join(error_messages(payload) or ["no checkout"]))
        return payload["checkout"]

    def _bring_up_to_date(self, checkout: dict[str, Any], billing: BillingDetails, wanted: dict[str, int]) -> dict[str, Any]:
        checkout_id = checkout["id"]
        current = {line["variant"]["id"]: line for line in checkout.get("lines") or [] if line.get("variant")}
        add = [{"variantId": v, "quantity": q} for v, q in wanted.items() if v not in current]
        change = [{"lineId": current[v]["id"], "quantity": q} for v, q in wanted.items()
                  if v in current and current[v]["quantity"] != q]
        remove = [line["id"] for v, line in current.items() if v not in wanted]
        for operation, field, variables in (
            ("CheckoutLinesAdd", "checkoutLinesAdd", {"lines": add}),
            ("CheckoutLinesUpdate", "checkoutLinesUpdate", {"lines": change}),
            ("CheckoutLinesDelete", "checkoutLinesDelete", {"linesIds": remove}),
        ):
            if not next(iter(variables.values())):
                continue
            payload = self._execute(operation, {"id": checkout_id, **variables}).get(field) or {}
            if error_messages(payload):
                raise CheckoutError("The store refused the order: " + "; ".join(error_messages(payload)), checkout_id=checkout_id)
            checkout = payload.get("checkout") or checkout
        if (checkout.get("email") or "").lower() != billing.email.lower():
            payload = self._execute("CheckoutEmailUpdate", {"id": checkout_id, "email": billing.email}).get(
                "checkoutEmailUpdate") or {}
            if error_messages(payload):
                raise CheckoutError("The store refused the email address: " + "; ".join(error_messages(payload)),
                                    checkout_id=checkout_id)
        payload = self._execute("CheckoutBillingAddressUpdate", {
            "id": checkout_id, "address": self._address(billing), "rules": self.ADDRESS_RULES,
        }).get("checkoutBillingAddressUpdate") or {}
        if error_messages(payload):
            raise CheckoutError("The store refused the billing address: " + "; ".join(error_messages(payload)),
                                checkout_id=checkout_id)
        return checkout

    def _pay(self, checkout_id: str, total_minor: int, currency: str, reference: str) -> None:
        data = ({"event": {"type": "CHARGE_SUCCESS", "includePspReference": True}}
                if self.gateway == DUMMY_PAYMENT_APP else None)
        payload = self._execute("TransactionInitialize", {
            "id": checkout_id, "amount": to_major(total_minor, currency), "gateway": self.gateway, "data": data,
            "idempotencyKey": f"{reference}:{checkout_id}"[:512],
        }, timeout=client.payment_timeout_seconds()).get("transactionInitialize") or {}
        if error_messages(payload):
            raise CheckoutError("The payment was refused: " + "; ".join(error_messages(payload)), checkout_id=checkout_id)
        event = (payload.get("transactionEvent") or {}).get("type")
        if event not in ("CHARGE_SUCCESS", "CHARGE_REQUEST"):
            raise CheckoutError("The payment was declined; nothing was charged. Try again or use another method.",
                                checkout_id=checkout_id)

    def _complete(self, checkout_id: str, reference: str) -> RemoteOrder:
        payload = self._execute("CheckoutComplete", {
            "id": checkout_id, "metadata": [{"key": ORDER_REFERENCE_KEY, "value": reference}],
        }, timeout=client.payment_timeout_seconds()).get("checkoutComplete") or {}
        if error_messages(payload) or not payload.get("order"):
            raise CheckoutError("The store could not complete the order: " + "; ".join(error_messages(payload) or ["no order"]),
                                checkout_id=checkout_id, may_be_charged=True)
        if payload.get("confirmationNeeded"):
            raise CheckoutError("The store needs the order confirmed by its staff; it will appear in your orders.",
                                checkout_id=checkout_id, may_be_charged=True)
        return order_from_graphql(payload["order"])
