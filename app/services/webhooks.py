"""Saleor's order-paid webhook: signature checks, payload parsing, and storing each event once.

Signatures (Saleor-Signature header):
- a JWS (RS256, `b64: false`, detached payload: `<header>..<signature>`) made with a key from
  Saleor's JWKS (SALEOR_JWKS_URL, or <origin of SALEOR_API_URL>/.well-known/jwks.json). The keys are
  cached per process and fetched again when a signature names an unknown `kid`.
- legacy: the hex HMAC-SHA256 of the raw body with SALEOR_WEBHOOK_SECRET (only when it is set).

Payloads: a subscription payload (the body is the event object, `{"__typename": ..., "order": ...}`)
or the legacy payload (a JSON array holding one snake_case order).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import urlsplit

import jwt
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adapters.commerce.checkout import ORDER_REFERENCE_KEY, RemoteOrder, RemoteOrderLine
from app.formatting import MAX_AMOUNT_MINOR
from app.models import Order, WebhookEvent, utcnow
from app.services import orders
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

SOURCE = "saleor"
PAID_CHARGE_STATUSES = {"FULL", "OVERCHARGED", "FULLY-CHARGED", "FULLY_CHARGED"}


class WebhookError(ServiceError):
    """A delivery was refused; `status` is the HTTP status to answer with."""

    status = 400
    title = "Bad Request"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class SignatureError(WebhookError):
    status = 401
    title = "Unauthorized"


class KeysUnavailable(WebhookError):
    status = 503
    title = "Service Unavailable"


class PayloadError(WebhookError):
    status = 400
    title = "Bad Request"


class RetryLater(WebhookError):
    """The event names an order of ours that is still being committed: Saleor should retry."""

    status = 503
    title = "Service Unavailable"


# --- Saleor's signing keys ---------------------------------------------------------------

def jwks_url(config: dict) -> str:
    explicit = (config.get("SALEOR_JWKS_URL") or "").strip()
    if explicit:
        return explicit
    parts = urlsplit(config.get("SALEOR_API_URL") or "")
    if not parts.scheme or not parts.netloc:
        raise KeysUnavailable("Set SALEOR_JWKS_URL or SALEOR_API_URL to verify Saleor's signatures.")
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


class KeySet:
    """Saleor's public keys by `kid`, fetched with a timeout and cached.

    An unknown `kid` triggers one fetch, at most every `min_refetch_seconds`, so signatures with
    made-up key ids cannot turn this server into a flood of requests to Saleor.
    """

    def __init__(self, url: str, *, timeout: float, ttl_seconds: float = 3600.0, min_refetch_seconds: float = 10.0,
                 fetch: Callable[[str, float], dict] | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.ttl_seconds = ttl_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._fetch = fetch or _http_get_json
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at > self.ttl_seconds
            unknown = kid not in self._keys
            may_refetch = self._fetched_at is None or now - self._fetched_at >= self.min_refetch_seconds
            if stale or (unknown and may_refetch):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch(self.url, self.timeout)
            keys = {}
            for data in document.get("keys", []):
                if not isinstance(data, dict) or not data.get("kid"):
                    continue
                try:
                    keys[str(data["kid"])] = jwt.PyJWK(data)
                except jwt.PyJWTError:
                    log.warning("skipping an unusable key %s in %s", data.get("kid"), self.url)
        except (requests.RequestException, ValueError, AttributeError) as exc:
            if self._keys and self._fetched_at is not None:
                log.warning("could not refresh Saleor's keys from %s (%s); keeping the cached ones", self.url, exc)
                return
            raise KeysUnavailable(f"Saleor's signing keys could not be fetched from {self.url}.") from exc
        self._keys = keys
        self._fetched_at = now


def _http_get_json(url: str, timeout: float) -> dict:
    response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response.json()


_key_sets: dict[str, KeySet] = {}
_key_sets_lock = threading.Lock()


def key_set_for(config: dict) -> KeySet:
    """The process-wide cached key set for the configured JWKS address."""
    url = jwks_url(config)
    timeout = float(config.get("SALEOR_TIMEOUT") or 3.0)
    with _key_sets_lock:
        key_set = _key_sets.get(url)
        if key_set is None:
            key_set = _key_sets[url] = KeySet(url, timeout=timeout)
        return key_set


# --- verifying a delivery ----------------------------------------------------------------

HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def verify_signature(body: bytes, signature: str | None, *, key_set: Callable[[], KeySet], secret: str | None) -> str:
    """Check the Saleor-Signature of a raw body; returns "jws" or "hmac", raises SignatureError."""
    signature = (signature or "").strip()
    if not signature:
        raise SignatureError("The request is not signed (no Saleor-Signature header).")
    if signature.count(".") == 2:
        return _verify_jws(body, signature, key_set())
    if HEX_SIGNATURE.fullmatch(signature):
        if not secret:
            raise SignatureError("HMAC signatures are not accepted: no webhook secret is configured.")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureError("The signature does not match the body.")
        return "hmac"
    raise SignatureError("The Saleor-Signature header is not a JWS or an HMAC.")


def _verify_jws(body: bytes, signature: str, key_set: KeySet) -> str:
    header_b64, payload_b64, _ = signature.split(".")
    if payload_b64:
        raise SignatureError("The signature must have a detached payload.")
    try:
        header = jwt.get_unverified_header(signature)
    except jwt.PyJWTError as exc:
        raise SignatureError("The signature header cannot be read.") from exc
    if header.get("alg") != "RS256":
        raise SignatureError("Only RS256 signatures are accepted.")
    kid = header.get("kid")
    if not kid or not isinstance(kid, str):
        raise SignatureError("The signature names no key (kid).")
    key = key_set.key_for(kid)
    if key is None:
        raise SignatureError("The signature was made with a key Saleor does not publish.")
    try:
        jwt.api_jws.decode_complete(signature, key=key, algorithms=["RS256"], detached_payload=body)
    except jwt.PyJWTError as exc:
        raise SignatureError("The signature does not match the body.") from exc
    return "jws"


# --- reading the payload -----------------------------------------------------------------

@dataclass(frozen=True)
class OrderPaidEvent:
    event_type: str
    order: RemoteOrder
    external_id: str  # what makes a delivery unique: event, order, body digest
    unknown_fields: list[str] = field(default_factory=list)


def _money(node: Any, currency_hint: str | None) -> tuple[int | None, str | None]:
    if not isinstance(node, dict):
        return None, currency_hint
    currency = node.get("currency") or currency_hint
    amount = node.get("amount")
    if amount is None or not currency:
        return None, currency
    return orders.to_minor(amount, str(currency)), str(currency).upper()


def _text(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]


def _quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise PayloadError("An order line has no quantity.")
    try:
        number = int(Decimal(str(value)))
    except Exception as exc:
        raise PayloadError("An order line has an unreadable quantity.") from exc
    if number < 1 or number > 100000:
        raise PayloadError("An order line has an impossible quantity.")
    return number


def _line_total_fits(unit_minor: int | None, quantity: int) -> None:
    if unit_minor is not None and unit_minor * quantity > MAX_AMOUNT_MINOR:
        raise PayloadError("An order line's total is larger than any order can be.")


def _metadata(value: Any) -> dict[str, str]:
    if isinstance(value, list):  # GraphQL: [{key, value}]
        return {str(m.get("key")): str(m.get("value")) for m in value if isinstance(m, dict) and m.get("key")}
    if isinstance(value, dict):  # legacy: {key: value}
        return {str(k): str(v) for k, v in value.items()}
    return {}


def _subscription_order(event: dict) -> tuple[str, RemoteOrder]:
    typename = str(event.get("__typename") or "")
    node = event.get("order")
    if not isinstance(node, dict) or not node.get("id"):
        raise PayloadError("The event has no order.")
    total, currency = _money((node.get("total") or {}).get("gross"), None)
    if total is None:
        total, currency = _money(node.get("totalCharged"), currency)
    lines = None
    if isinstance(node.get("lines"), list):
        parsed = []
        for line in node["lines"]:
            if not isinstance(line, dict):
                raise PayloadError("An order line is not an object.")
            unit, line_currency = _money(((line.get("unitPrice") or {}).get("gross")), currency)
            variant = line.get("variant") if isinstance(line.get("variant"), dict) else {}
            sku = line.get("productSku") or variant.get("sku")
            quantity = _quantity(line.get("quantity"))
            _line_total_fits(unit, quantity)
            parsed.append(RemoteOrderLine(
                external_id=_text(line.get("id"), 64), sku=_text(sku, 64),
                name=_text(" · ".join(x for x in (line.get("productName"), line.get("variantName")) if x) or sku) or "Item",
                quantity=quantity, unit_price_minor=unit, currency=line_currency,
            ))
        lines = tuple(parsed)
    charge = str(node.get("chargeStatus") or "").upper()
    fully_paid = charge in PAID_CHARGE_STATUSES or (not charge and (node.get("isPaid") is True or typename == "OrderFullyPaid"))
    user = node.get("user") if isinstance(node.get("user"), dict) else {}
    return typename or "OrderPaid", RemoteOrder(
        external_id=str(node["id"])[:64], number=_text(node.get("number"), 24),
        email=_text(node.get("userEmail") or user.get("email"), 254), currency=currency, total_minor=total,
        fully_paid=fully_paid, lines=lines, metadata=_metadata(node.get("metadata")),
    )


def _legacy_order(node: dict, event_header: str) -> tuple[str, RemoteOrder]:
    if not node.get("id"):
        raise PayloadError("The order has no id.")
    channel = node.get("channel") if isinstance(node.get("channel"), dict) else {}
    currency = node.get("currency") or channel.get("currency_code")
    total = orders.to_minor(node["total_gross_amount"], currency) if node.get("total_gross_amount") is not None and currency else None
    lines = None
    if isinstance(node.get("lines"), list):
        parsed = []
        for line in node["lines"]:
            if not isinstance(line, dict):
                raise PayloadError("An order line is not an object.")
            line_currency = line.get("currency") or currency
            unit = (orders.to_minor(line["unit_price_gross_amount"], line_currency)
                    if line.get("unit_price_gross_amount") is not None and line_currency else None)
            sku = line.get("product_sku")
            quantity = _quantity(line.get("quantity"))
            _line_total_fits(unit, quantity)
            parsed.append(RemoteOrderLine(
                external_id=_text(line.get("id"), 64), sku=_text(sku, 64),
                name=_text(" · ".join(x for x in (line.get("product_name"), line.get("variant_name")) if x) or sku) or "Item",
                quantity=quantity, unit_price_minor=unit, currency=line_currency,
            ))
        lines = tuple(parsed)
    charge = str(node.get("charge_status") or "").upper()
    event_type = event_header or "order_paid"
    fully_paid = charge in PAID_CHARGE_STATUSES or (not charge and (node.get("is_paid") is True or event_type == "order_fully_paid"))
    return event_type, RemoteOrder(
        external_id=str(node["id"])[:64], number=_text(node.get("number"), 24), email=_text(node.get("user_email"), 254),
        currency=currency.upper() if currency else None, total_minor=total, fully_paid=fully_paid, lines=lines,
        metadata=_metadata(node.get("metadata")),
    )


def parse_order_paid(body: bytes, *, event_header: str | None) -> OrderPaidEvent:
    """A subscription payload (the event object) or a legacy payload (an array with one order)."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("The body is not valid JSON.") from exc
    event_header = (event_header or "").strip().lower()[:64]
    try:
        if isinstance(data, dict):
            event_type, order = _subscription_order(data)
        elif isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
            event_type, order = _legacy_order(data[0], event_header)
        else:
            raise PayloadError("The body is neither an event object nor a one-order array.")
    except orders.OrderError as exc:
        raise PayloadError(str(exc)) from exc
    digest = hashlib.sha256(body).hexdigest()[:32]
    return OrderPaidEvent(event_type=event_type[:64], order=order,
                          external_id=f"{event_type[:32]}:{order.external_id}:{digest}")


# --- storing and handling an event once --------------------------------------------------

@dataclass
class Receipt:
    event: WebhookEvent
    duplicate: bool = False
    order_id: int | None = None
    unknown_skus: list[str] = field(default_factory=list)
    problem: str | None = None


def _order_id_of(session: Session, remote: RemoteOrder) -> int | None:
    """Our order a delivery refers to: by the backend's id, else by our order reference."""
    found = session.scalar(select(Order.id).where(Order.backend == SOURCE, Order.external_id == remote.external_id[:64]))
    reference = remote.metadata.get(ORDER_REFERENCE_KEY)
    if found is None and reference:
        found = session.scalar(select(Order.id).where(Order.backend == SOURCE, Order.number == reference[:32]))
    return found


def receive_order_paid(session: Session, *, event: OrderPaidEvent, body: bytes) -> Receipt:
    """Store the delivery once and handle it; a repeat of a handled delivery changes nothing.

    The event row and everything the order gives are written in the caller's transaction, so a
    crash stores neither and Saleor's retry starts afresh (RetryLater: the caller rolls back too). A concurrent repeat waits on the unique
    (source, external_id) key and then finds the stored event.
    """
    def stored() -> WebhookEvent | None:
        return session.scalar(select(WebhookEvent).where(
            WebhookEvent.source == SOURCE, WebhookEvent.external_id == event.external_id))

    row = stored()
    if row is None:
        row = WebhookEvent(
            source=SOURCE, external_id=event.external_id, event_type=event.event_type,
            payload=body.decode("utf-8"), status="received",
        )
        if not orders.insert_once(session, row):  # a concurrent delivery stored it first
            row = stored()
            if row is None:
                raise WebhookError("The event could not be stored.")
    if row.id is not None and row.status not in ("received", "failed"):
        return Receipt(event=row, duplicate=True, order_id=_order_id_of(session, event.order))
    # new, or a delivery that could not be handled before: handle it (handling is idempotent)
    applied = orders.apply_remote_payment(session, remote=event.order, actor_label="saleor")
    if applied.retry_later:
        raise RetryLater(applied.problem or "Try again later.")
    notes = []
    if applied.unknown_skus:
        notes.append("Unknown SKUs: " + ", ".join(sorted(set(applied.unknown_skus))))
        log.warning("Saleor order %s has unknown SKUs: %s", event.order.external_id, applied.unknown_skus)
    if applied.problem:
        notes.append(applied.problem)
    failed = applied.order is None and event.order.fully_paid
    row.status = "failed" if failed else ("ignored" if not event.order.fully_paid else "processed")
    row.error = " ".join(notes) or None
    row.processed_at = utcnow()
    session.flush()
    if failed:
        log.warning("Saleor event %s could not be handled: %s", event.external_id, applied.problem)
    return Receipt(event=row, order_id=applied.order.id if applied.order else None,
                   unknown_skus=applied.unknown_skus, problem=applied.problem)
