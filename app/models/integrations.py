"""Webhook events received, connector bindings and locally encrypted secrets."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model


class WebhookEvent(Model):
    __tablename__ = "webhook_event"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | processed | failed
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]


class ConnectorBinding(Model):
    __tablename__ = "connector_binding"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    config_json: Mapped[str] = mapped_column(Text, default="{}")
    secret_ref: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]


class StoredSecret(Model):
    """Ciphertext of a secret kept by the local secrets adapter (authenticated encryption)."""

    __tablename__ = "stored_secret"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    destroyed_at: Mapped[datetime | None]


STORE_SYNC_KEY = "saleor"  # the one row of store_sync_state the Saleor sync keeps


class StoreSyncState(Model):
    """What the store sync (Saleor) has done, for every process to see: `generation` goes up with each
    sync, so per-process caches of the store's catalog (facet vocabulary, scope) know they are stale;
    `data` (JSON) keeps the store ids the catalog reads filter on and the last credit-pack push."""

    __tablename__ = "store_sync_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    data: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
