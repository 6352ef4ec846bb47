"""Instances (a subscription or trial of an offering), their API keys, runs and documents."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CapOutcome(StrEnum):
    """What happened when a run's usage reached the most it may cost (its hold)."""

    CUT = "cut"  # the output was cut where the limit was reached; charged what was delivered
    OVERRUN = "overrun"  # the runtime could not stop: delivered in full, charged the limit, overrun recorded


class Instance(Model):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("offering_version.id"))
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.ACTIVE.value)
    is_trial: Mapped[bool] = mapped_column(default=False)
    trial_ends_at: Mapped[datetime | None]
    # the paid order line that created it: unique, so a line provisions exactly once
    source_order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_line.id", ondelete="SET NULL"), unique=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    period_start: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    cancelled_at: Mapped[datetime | None]

    offering: Mapped["Offering"] = relationship()  # noqa: F821
    plan: Mapped["Plan"] = relationship()  # noqa: F821
    version: Mapped["OfferingVersion | None"] = relationship()  # noqa: F821
    organization: Mapped["Organization"] = relationship()  # noqa: F821


class TrialClaim(Model):
    """One free trial per user per offering, guarded by the unique constraint."""

    __tablename__ = "trial_claim"
    __table_args__ = (UniqueConstraint("user_id", "offering_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Model):
    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint("monthly_credit_quota >= 1", name="monthly_credit_quota_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(200), default="runs:write")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # requests per period for this key ("30 per minute"); None: the configured default
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    # the most credits this key's runs may use (settled + held) in a calendar month (UTC); None: no quota
    monthly_credit_quota: Mapped[int | None] = mapped_column(Integer)

    instance: Mapped[Instance] = relationship()


class Run(Model):
    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint("credits >= 0", name="credits_nonnegative"),
        CheckConstraint("overrun_credits >= 0", name="overrun_credits_nonnegative"),
        Index("ix_run_instance_id_created_at", "instance_id", "created_at"),
        Index("ix_run_api_key_id_created_at", "api_key_id", "created_at"),
        Index("ix_run_status_instance_id", "status", "instance_id"),  # runs in progress, for the limits
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING.value)
    input_text: Mapped[str] = mapped_column(Text, default="")
    output_text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    usage_units: Mapped[int] = mapped_column(Integer, default=0)
    # None when the run's cost stayed within its limit; otherwise a CapOutcome value
    cap_outcome: Mapped[str | None] = mapped_column(String(16))
    # credits the usage would have cost above the limit, not charged (an overrun only)
    overrun_credits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[str | None] = mapped_column(String(80))
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]

    instance: Mapped[Instance] = relationship()


class KnowledgeDocument(Model):
    """A document a buyer added to an instance; the Knowledge Base Assistant searches these."""

    __tablename__ = "knowledge_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
