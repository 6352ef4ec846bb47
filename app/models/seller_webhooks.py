"""Seller webhooks: a publisher's endpoints, the events sent to them, and each delivery's attempts."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt or for the next one after a failure
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # no success within the retry window


class SellerWebhookEndpoint(Model):
    """A URL a publisher asked us to send events to. The signing secret is in the secrets port under
    `secret_ref`; only the publisher sees it, once, when it is made."""

    __tablename__ = "seller_webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_ref: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    secret_rotated_at: Mapped[datetime | None]


class SellerWebhookEvent(Model):
    """One event about a publisher's business, with the id every delivery of it carries (`webhook-id`)."""

    __tablename__ = "seller_webhook_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)  # the body sent, as a JSON object
    occurred_at: Mapped[datetime]


class SellerWebhookDelivery(Model):
    """One event to one endpoint: tried until the endpoint answers 2xx or the retry window closes."""

    __tablename__ = "seller_webhook_delivery"
    __table_args__ = (Index("ix_seller_webhook_delivery_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("seller_webhook_endpoint.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("seller_webhook_event.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=WebhookDeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]

    endpoint: Mapped[SellerWebhookEndpoint] = relationship()
    event: Mapped[SellerWebhookEvent] = relationship()


class SellerWebhookAttempt(Model):
    """What happened on one try of a delivery: the delivery log the publisher reads."""

    __tablename__ = "seller_webhook_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("seller_webhook_delivery.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(String(300))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    attempted_at: Mapped[datetime]
