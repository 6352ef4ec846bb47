"""The checkout port: hands a placed order to the commerce backend and reads paid orders back.

Two adapters implement it: `local` (our own tables and a test-mode card gateway) and `saleor`
(a Saleor checkout completed with its payment gateway; Saleor then reports the payment through
the order-paid webhook). `get_checkout()` picks one from COMMERCE_BACKEND.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence

from flask import current_app

# metadata key on a backend checkout/order that names our order number
ORDER_REFERENCE_KEY = "digitlify_order"


class CheckoutError(Exception):
    """The backend refused or could not take the order; the message is safe to show.

    `checkout_id` names a backend checkout that was created before the failure, so that a retry
    can update it instead of creating another. `may_be_charged` says the failure came after the
    payment was asked for (or its outcome is unknown): the order must then stay, since the backend
    may still report it paid; otherwise nothing was charged and the order can be taken back.
    """

    def __init__(self, message: str, *, checkout_id: str | None = None, retryable: bool = False,
                 may_be_charged: bool = False) -> None:
        super().__init__(message)
        self.checkout_id = checkout_id
        self.retryable = retryable
        self.may_be_charged = may_be_charged


@dataclass(frozen=True)
class CheckoutLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class BillingDetails:
    email: str
    first_name: str
    last_name: str
    country: str  # ISO 3166-1 alpha-2


@dataclass(frozen=True)
class RemoteOrderLine:
    """A line of an order kept by the backend, in its own terms."""

    external_id: str | None
    sku: str | None
    name: str
    quantity: int
    unit_price_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class RemoteOrder:
    """An order as the backend reports it (checkout completion, webhook, reconciliation)."""

    external_id: str
    number: str | None
    email: str | None
    currency: str | None
    total_minor: int | None
    fully_paid: bool
    lines: tuple[RemoteOrderLine, ...] | None  # None: the report did not include the lines
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Submission:
    """What the backend did with a placed order."""

    needs_local_payment: bool  # True: our own test-mode payment step takes the money
    order: RemoteOrder | None = None  # the backend's order, when it made one
    checkout_id: str | None = None


@dataclass(frozen=True)
class ChargeOutcome:
    succeeded: bool
    message: str


@dataclass(frozen=True)
class RefundOutcome:
    """What the backend did with a refund request. `external_id` names the backend's record of the
    refund (Saleor: the REFUND_SUCCESS transaction event), None where our tables are the record."""

    succeeded: bool
    message: str
    external_id: str | None = None


@dataclass(frozen=True)
class RemoteRefund:
    """A refund the backend reports on an order (webhook): its own id, amount and currency."""

    external_id: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class SavedCardToken:
    """What the payment provider gives back for a card saved for later charges."""

    token: str
    brand: str


class CheckoutPort(Protocol):
    backend: str  # "local" | "saleor": stored on each order

    def submit_order(
        self, *, reference: str, billing: BillingDetails, lines: Sequence[CheckoutLine],
        total_minor: int, currency: str, checkout_id: str | None = None,
    ) -> Submission:
        """Hand a placed order to the backend; raises CheckoutError."""

    def charge_card(self, *, amount_minor: int, currency: str, card_number: str) -> ChargeOutcome:
        """Charge a card in test mode (local backend only; others raise CheckoutError)."""

    def paid_orders(self, *, since: datetime) -> list[RemoteOrder]:
        """Orders of ours (they carry our order reference) the backend holds as fully paid since `since`,
        in our channel only (empty when our tables are the truth)."""

    def refund_payment(
        self, *, order_external_id: str | None, amount_minor: int, currency: str, reason: str,
        known_refund_ids: frozenset[str],
    ) -> RefundOutcome:
        """Give `amount_minor` of an order's payment back; `known_refund_ids` are the backend refunds
        already recorded here, so the one this call made can be told apart. Raises CheckoutError when
        the backend cannot be asked (its message is safe to show)."""

    def save_card(self, *, card_number: str) -> SavedCardToken:
        """Keep a card at the provider for later charges (local test mode; others raise CheckoutError)."""

    def charge_saved_card(self, *, token: str, amount_minor: int, currency: str, reference: str) -> ChargeOutcome:
        """Charge a saved card, once per `reference` at a real provider (local test mode; others raise
        CheckoutError)."""


def get_checkout(backend: str | None = None) -> CheckoutPort:
    """The checkout adapter chosen by COMMERCE_BACKEND (or `backend`)."""
    backend = backend or current_app.config.get("COMMERCE_BACKEND", "local")
    if backend == "saleor":
        from app.adapters.commerce.saleor.checkout import SaleorCheckout

        return SaleorCheckout.from_config(current_app.config)
    if backend == "local":
        from app.adapters.commerce.local_checkout import LocalCheckout

        return LocalCheckout()
    raise RuntimeError(f"Unknown COMMERCE_BACKEND {backend!r}: use local or saleor.")
