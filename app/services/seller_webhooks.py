"""Seller webhooks: a publisher's endpoints, the events we send them, and every delivery's attempts.

Signing follows the Standard Webhooks scheme. Each endpoint has a secret ``whsec_<base64 key>``,
kept in the secrets port and shown to the publisher once. A delivery is a POST of the event's JSON
body with the headers

    webhook-id: <the event id, the same on every attempt and resend>
    webhook-timestamp: <seconds since the epoch when the attempt was signed>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

so a receiver recomputes the HMAC over the raw body, compares it in constant time, rejects old
timestamps, and deduplicates by webhook-id.

`emit(session, publisher_id=..., event=..., data=...)` records the event in the caller's transaction
with one delivery per subscribed active endpoint and defers the `deliver-seller-webhook` job for
each. A job tries once; a failure (no 2xx answer in time) is logged as an attempt and the next try is
scheduled with exponential backoff; the `deliver-seller-webhooks` sweep defers the jobs of deliveries
that are due. After RETRY_WINDOW without success the delivery is marked failed. "Resend" sends the
same event (same id) again as a new delivery.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.adapters.secrets import SecretsError, get_secret_store
from app.adapters.webhooks import DestinationRefused, SendResult, check_destination, private_allowed
from app.models import (
    SellerWebhookAttempt, SellerWebhookDelivery, SellerWebhookEndpoint, SellerWebhookEvent,
    WebhookDeliveryStatus, utcnow,
)
from app.services import audit, jobs, organizations
from app.services.errors import ServiceError

EVENTS: dict[str, str] = {
    "instance.created": "A customer starts a subscription or a free trial",
    "instance.renewed": "A subscription renews for another period",
    "instance.cancelled": "A customer cancels",
    "instance.suspended": "An instance is suspended",
    "order.refunded": "An order with your offering is refunded",
    "review.created": "A customer reviews your offering",
}
MAX_ENDPOINTS = 10
MAX_URL = 2000
RETRY_WINDOW = timedelta(hours=24)
FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 8 * 3600
SECRET_PREFIX = "whsec_"


class WebhookError(ServiceError):
    """A webhook rule was broken; the message is safe to show the seller."""


class EndpointNotFound(WebhookError):
    def __init__(self, message: str = "Webhook endpoint not found.") -> None:
        super().__init__(message, status=404)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# --- signing ---------------------------------------------------------------------------------------

def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt: ``v1,<base64 HMAC-SHA256>``."""
    key = base64.b64decode(secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed try a delivery is tried again: 5 s, 20 s, 80 s, ... 8 h."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 4 ** max(0, attempts - 1), MAX_RETRY_SECONDS))


# --- endpoints (the seller console) ----------------------------------------------------------------

def _manage(session: Session, *, user, organization_id: int) -> None:
    organizations.require_role(session, user=user, organization_id=organization_id)


def _secret_ref(endpoint_id: int) -> str:
    return f"seller-webhooks/endpoint-{endpoint_id}"


def _clean_events(events) -> list[str]:
    chosen = [e for e in EVENTS if e in set(events or ())]
    unknown = set(events or ()) - set(EVENTS)
    if unknown:
        raise WebhookError(f"Unknown event: {', '.join(sorted(unknown))}.", field="events")
    if not chosen:
        raise WebhookError("Choose at least one event to send.", field="events")
    return chosen


def _check_url(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise WebhookError(f"Enter the endpoint's address (at most {MAX_URL} characters).", field="url")
    try:
        check_destination(url, allow_private=private_allowed())
    except DestinationRefused as exc:
        raise WebhookError(str(exc), field="url") from None
    return url


def list_endpoints(session: Session, *, user, organization_id: int) -> list[SellerWebhookEndpoint]:
    _manage(session, user=user, organization_id=organization_id)
    return list(session.scalars(select(SellerWebhookEndpoint)
                                .where(SellerWebhookEndpoint.organization_id == organization_id)
                                .order_by(SellerWebhookEndpoint.id)))


def get_endpoint(session: Session, *, user, organization_id: int, endpoint_id: int) -> SellerWebhookEndpoint:
    _manage(session, user=user, organization_id=organization_id)
    endpoint = session.get(SellerWebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.organization_id != organization_id:
        raise EndpointNotFound()
    return endpoint


def find_endpoint(session: Session, *, user, endpoint_id: int) -> SellerWebhookEndpoint:
    """An endpoint of a publisher the user owns or administers; anything else is not found."""
    endpoint = session.get(SellerWebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound()
    membership = organizations.membership(session, user=user, organization_id=endpoint.organization_id)
    if membership is None or membership.role not in organizations.MANAGER_ROLES:
        raise EndpointNotFound()
    return endpoint


def create_endpoint(session: Session, *, user, organization_id: int, url: str, events, description: str = ""
                    ) -> tuple[SellerWebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown once, kept in the secrets port)."""
    _manage(session, user=user, organization_id=organization_id)
    url = _check_url(url)
    chosen = _clean_events(events)
    description = (description or "").strip()
    if len(description) > 200:
        raise WebhookError("Keep the description under 200 characters.", field="description")
    count = len(list_endpoints(session, user=user, organization_id=organization_id))
    if count >= MAX_ENDPOINTS:
        raise WebhookError(f"A publisher can have at most {MAX_ENDPOINTS} endpoints; remove one first.", status=409)
    endpoint = SellerWebhookEndpoint(organization_id=organization_id, url=url, events=chosen,
                                     description=description, secret_ref="", is_active=True)
    session.add(endpoint)
    session.flush()
    endpoint.secret_ref = _secret_ref(endpoint.id)
    secret = new_secret()
    _store_secret(session, endpoint.secret_ref, secret)
    session.flush()
    audit.record(session, action="seller_webhook.endpoint_created", target_type="seller_webhook_endpoint",
                 target_id=endpoint.id, organization_id=organization_id, actor=user,
                 data={"url": url, "events": chosen})
    return endpoint, secret


def _store_secret(session: Session, ref: str, secret: str) -> None:
    try:
        get_secret_store(session).put(ref, secret)
    except SecretsError as exc:
        raise WebhookError(f"The signing secret could not be stored: {exc}", status=503) from exc


def update_endpoint(session: Session, *, user, organization_id: int, endpoint_id: int, url: str, events,
                    is_active: bool, description: str = "") -> SellerWebhookEndpoint:
    endpoint = get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=endpoint_id)
    endpoint.url = _check_url(url)
    endpoint.events = _clean_events(events)
    endpoint.is_active = bool(is_active)
    endpoint.description = (description or "").strip()[:200]
    session.flush()
    audit.record(session, action="seller_webhook.endpoint_updated", target_type="seller_webhook_endpoint",
                 target_id=endpoint.id, organization_id=organization_id, actor=user,
                 data={"url": endpoint.url, "events": endpoint.events, "active": endpoint.is_active})
    return endpoint


def rotate_secret(session: Session, *, user, organization_id: int, endpoint_id: int,
                  now: datetime | None = None) -> tuple[SellerWebhookEndpoint, str]:
    """A new signing secret (shown once); attempts from now on are signed with it."""
    endpoint = get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=endpoint_id)
    secret = new_secret()
    _store_secret(session, endpoint.secret_ref, secret)
    endpoint.secret_rotated_at = now or utcnow()
    session.flush()
    audit.record(session, action="seller_webhook.secret_rotated", target_type="seller_webhook_endpoint",
                 target_id=endpoint.id, organization_id=organization_id, actor=user)
    return endpoint, secret


def delete_endpoint(session: Session, *, user, organization_id: int, endpoint_id: int) -> None:
    endpoint = get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=endpoint_id)
    try:
        get_secret_store(session).delete(endpoint.secret_ref)
    except SecretsError as exc:
        raise WebhookError(f"The signing secret could not be destroyed: {exc}", status=503) from exc
    audit.record(session, action="seller_webhook.endpoint_deleted", target_type="seller_webhook_endpoint",
                 target_id=endpoint.id, organization_id=organization_id, actor=user, data={"url": endpoint.url})
    session.delete(endpoint)
    session.flush()


@dataclass(frozen=True)
class LogLine:
    attempt: SellerWebhookAttempt
    delivery: SellerWebhookDelivery
    event: SellerWebhookEvent


def delivery_log(session: Session, *, user, organization_id: int, endpoint_id: int, limit: int = 50
                 ) -> list[LogLine]:
    """The endpoint's latest attempts, newest first, with their delivery and event."""
    get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=endpoint_id)
    rows = session.execute(
        select(SellerWebhookAttempt, SellerWebhookDelivery, SellerWebhookEvent)
        .join(SellerWebhookDelivery, SellerWebhookDelivery.id == SellerWebhookAttempt.delivery_id)
        .join(SellerWebhookEvent, SellerWebhookEvent.id == SellerWebhookDelivery.event_id)
        .where(SellerWebhookDelivery.endpoint_id == endpoint_id)
        .order_by(SellerWebhookAttempt.id.desc()).limit(limit)
    ).all()
    return [LogLine(*row) for row in rows]


def waiting_deliveries(session: Session, *, user, organization_id: int, endpoint_id: int
                       ) -> list[SellerWebhookDelivery]:
    """Deliveries of the endpoint not tried yet (newest first)."""
    get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=endpoint_id)
    return list(session.scalars(
        select(SellerWebhookDelivery).where(SellerWebhookDelivery.endpoint_id == endpoint_id,
                                            SellerWebhookDelivery.attempts == 0,
                                            SellerWebhookDelivery.status == WebhookDeliveryStatus.PENDING.value)
        .order_by(SellerWebhookDelivery.id.desc()).limit(50)
    ))


def resend_delivery(session: Session, *, user, organization_id: int, delivery_id: int,
                    endpoint_id: int | None = None, now: datetime | None = None) -> SellerWebhookDelivery:
    """Send a delivery's event to its endpoint again, as a new delivery with the same event id."""
    delivery = session.get(SellerWebhookDelivery, delivery_id)
    if delivery is None or (endpoint_id is not None and delivery.endpoint_id != endpoint_id):
        raise WebhookError("Delivery not found.", status=404)
    endpoint = get_endpoint(session, user=user, organization_id=organization_id, endpoint_id=delivery.endpoint_id)
    if not endpoint.is_active:
        raise WebhookError("Turn the endpoint on before resending to it.", status=409)
    now = now or utcnow()
    again = SellerWebhookDelivery(endpoint_id=endpoint.id, event_id=delivery.event_id, created_at=now,
                                  next_attempt_at=now, status=WebhookDeliveryStatus.PENDING.value, attempts=0)
    session.add(again)
    session.flush()
    jobs.defer(session, "deliver-seller-webhook", delivery_id=again.id)
    audit.record(session, action="seller_webhook.resent", target_type="seller_webhook_delivery", target_id=again.id,
                 organization_id=organization_id, actor=user, data={"event_id": delivery.event.event_id})
    return again


# --- emitting events -------------------------------------------------------------------------------

def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return _aware(value).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def emit(session: Session, *, publisher_id: int, event: str, data: dict[str, Any],
         now: datetime | None = None) -> SellerWebhookEvent | None:
    """Record `event` for the publisher and queue a delivery to each active endpoint subscribed to it,
    in the caller's transaction (flushes). None when no endpoint wants it."""
    if event not in EVENTS:
        raise WebhookError(f"Unknown webhook event {event!r}.", field="event")
    endpoints = [e for e in session.scalars(
        select(SellerWebhookEndpoint).where(SellerWebhookEndpoint.organization_id == publisher_id,
                                            SellerWebhookEndpoint.is_active.is_(True))
        .order_by(SellerWebhookEndpoint.id)
    ) if event in (e.events or ())]
    if not endpoints:
        return None
    now = now or utcnow()
    event_id = "evt_" + secrets.token_hex(16)
    payload = json.loads(json.dumps({"type": event, "timestamp": now, "data": data}, default=_json_default))
    record = SellerWebhookEvent(event_id=event_id, organization_id=publisher_id, event_type=event, payload=payload,
                                occurred_at=now)
    session.add(record)
    session.flush()
    for endpoint in endpoints:
        delivery = SellerWebhookDelivery(endpoint_id=endpoint.id, event_id=record.id, created_at=now,
                                         next_attempt_at=now, status=WebhookDeliveryStatus.PENDING.value,
                                         attempts=0)
        session.add(delivery)
        session.flush()
        jobs.defer(session, "deliver-seller-webhook", delivery_id=delivery.id)
    return record


def instance_data(instance) -> dict[str, Any]:
    """The `data` of an instance.* event: what the publisher needs to know about their customer's instance."""
    offering, plan, customer = instance.offering, instance.plan, instance.organization
    return {
        "instance_id": instance.id, "status": instance.status, "is_trial": bool(instance.is_trial),
        "trial_ends_at": instance.trial_ends_at, "cancelled_at": instance.cancelled_at,
        "offering": {"id": offering.id, "slug": offering.slug, "name": offering.name},
        "plan": {"sku": plan.sku, "name": plan.name} if plan is not None else None,
        "customer": {"organization_id": customer.id, "name": customer.name} if customer is not None else None,
    }


def emit_instance_event(session: Session, *, instance, event: str, now: datetime | None = None) -> None:
    """emit() for an instance of one of the publisher's offerings."""
    emit(session, publisher_id=instance.offering.publisher_id, event=event, data=instance_data(instance), now=now)


# --- delivering ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedDelivery:
    delivery_id: int
    attempt: int
    url: str
    body: bytes
    headers: dict[str, str]


def claim_delivery(session: Session, *, delivery_id: int, lease: timedelta,
                   now: datetime | None = None) -> PreparedDelivery | None:
    """Take a due delivery for one attempt and build its signed request (flushes; commit before sending).

    The claim moves `next_attempt_at` past the attempt's `lease`, so no other worker or sweep takes it
    meanwhile; a worker that dies mid-attempt leaves it due again after the lease. None when the
    delivery is not due (done, failed, claimed or scheduled later)."""
    now = now or utcnow()
    claimed = session.execute(
        update(SellerWebhookDelivery)
        .where(SellerWebhookDelivery.id == delivery_id,
               SellerWebhookDelivery.status == WebhookDeliveryStatus.PENDING.value,
               SellerWebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=now + lease).execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return None
    delivery = session.scalar(select(SellerWebhookDelivery).where(SellerWebhookDelivery.id == delivery_id)
                              .execution_options(populate_existing=True))
    endpoint, event = delivery.endpoint, delivery.event
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    timestamp = int(now.timestamp())
    try:
        secret = get_secret_store(session).get(endpoint.secret_ref)
    except SecretsError as exc:
        raise WebhookError(f"The signing secret could not be read: {exc}", status=503) from exc
    headers = {
        "content-type": "application/json",
        "user-agent": "Digitlify-Webhooks/1",
        "webhook-id": event.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=event.event_id, timestamp=timestamp, body=body),
    }
    session.flush()
    return PreparedDelivery(delivery_id=delivery.id, attempt=delivery.attempts + 1, url=endpoint.url, body=body,
                            headers=headers)


def record_attempt(session: Session, *, delivery_id: int, attempt: int, result: SendResult,
                   now: datetime | None = None) -> SellerWebhookDelivery:
    """Log the attempt; a success ends the delivery, a failure schedules the next try or, past the retry
    window, marks the delivery failed (flushes)."""
    now = now or utcnow()
    delivery = session.get(SellerWebhookDelivery, delivery_id)
    session.add(SellerWebhookAttempt(
        delivery_id=delivery_id, attempt=attempt, status_code=result.status_code, duration_ms=result.duration_ms,
        response_excerpt=result.response_excerpt or "", error=(result.error or None) and result.error[:300],
        succeeded=result.ok, attempted_at=now,
    ))
    delivery.attempts = attempt
    delivery.last_attempt_at = now
    if result.ok:
        delivery.status = WebhookDeliveryStatus.SUCCEEDED.value
        delivery.next_attempt_at = None
    else:
        following = now + retry_delay(attempt)
        if following - _aware(delivery.created_at) > RETRY_WINDOW:
            delivery.status = WebhookDeliveryStatus.FAILED.value
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = following
    session.flush()
    return delivery


def due_delivery_ids(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose next try is due (the sweep defers a job for each)."""
    now = now or utcnow()
    return list(session.scalars(
        select(SellerWebhookDelivery.id)
        .where(SellerWebhookDelivery.status == WebhookDeliveryStatus.PENDING.value,
               SellerWebhookDelivery.next_attempt_at <= now)
        .order_by(SellerWebhookDelivery.next_attempt_at).limit(limit)
    ))
