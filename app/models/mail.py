"""Mail: the outbox of messages the app sends, and the embedded mailbox that stands in for SMTP."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model, StrEnum


class MailStatus(StrEnum):
    QUEUED = "queued"  # written with its cause, waiting for delivery (or for a retry after a failure)
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry; the error is on the message


class MailMessage(Model):
    """One mail the app sends, rendered when it is queued, in the transaction of its cause.

    `dedupe_key` names the event the mail is about (e.g. ``receipt:order:42``): the unique
    constraint makes queueing the same mail twice a no-op, so a handler that runs twice sends once.
    """

    __tablename__ = "mail_message"
    __table_args__ = (Index("ix_mail_message_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    # files sent with the mail: [{"filename", "content_type", "data" (base64)}], fixed when it is queued
    attachments: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    status: Mapped[str] = mapped_column(String(16), default=MailStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class OutboxDelivery(Model):
    """What the embedded mail adapter "sent": the mailbox a developer reads instead of an SMTP server."""

    __tablename__ = "outbox_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id_header: Mapped[str] = mapped_column(String(300))
    from_address: Mapped[str] = mapped_column(String(300))
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    attachments: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")  # as MailMessage's
    delivered_at: Mapped[datetime] = mapped_column(server_default=func.now())
