"""Instances (a subscription or trial of an offering), their API keys, runs and documents."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum
from sqlalchemy.sql.expression import false


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PAST_DUE = "past_due"  # a renewal payment failed: runs on through the grace period while it is retried


class RunStatus(StrEnum):
    QUEUED = "queued"  # checked, held and waiting for a runner
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


# a run in one of these has ended: its hold is settled or released and it has a done or error event
RUN_FINISHED = frozenset({RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value,
                          RunStatus.TIMED_OUT.value})


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
    # the version the buyer is on; unless pinned, runs use the latest version of the same major line
    version_id: Mapped[int | None] = mapped_column(ForeignKey("offering_version.id"))
    version_pinned: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.ACTIVE.value)
    is_trial: Mapped[bool] = mapped_column(default=False)
    trial_ends_at: Mapped[datetime | None]
    # the paid order line that created it: unique, so a line provisions exactly once
    source_order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_line.id", ondelete="SET NULL"), unique=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    period_start: Mapped[datetime] = mapped_column(server_default=func.now())
    # the end of the paid period (a paid subscription); None: a trial, whose period is counted in months
    period_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    cancelled_at: Mapped[datetime | None]
    # the subscription ends at period_end instead of renewing (undone by "Resume subscription")
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    # a downgrade: the plan the next period renews on
    pending_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id"))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_method.id", ondelete="SET NULL"))
    # dunning: when the first renewal payment of the open period failed, how many attempts failed,
    # and when the next one is due (None: no retry left)
    past_due_since: Mapped[datetime | None]
    renewal_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_renewal_attempt_at: Mapped[datetime | None]

    offering: Mapped["Offering"] = relationship()  # noqa: F821
    plan: Mapped["Plan"] = relationship(foreign_keys=[plan_id])  # noqa: F821
    pending_plan: Mapped["Plan | None"] = relationship(foreign_keys=[pending_plan_id])  # noqa: F821
    payment_method: Mapped["PaymentMethod | None"] = relationship()  # noqa: F821
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
    # the caller's own conversation id (session_id above is the one the runtime is sent)
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]  # when a runner took it
    cancel_requested_at: Mapped[datetime | None]  # the runner stops the run when it sees this
    # a reply that arrived after the run timed out or was cancelled: kept, never shown as the answer, not charged
    late_output: Mapped[str | None] = mapped_column(Text)
    # the runtime may hold a turn the caller never saw: the conversation's next turn starts a new runtime session
    session_stale: Mapped[bool] = mapped_column(default=False, server_default=false())

    instance: Mapped[Instance] = relationship()


class RunEvent(Model):
    """What a run produced, in order: `status`, `token` (batched text), then one `done` or `error`.
    Replayed to event-stream followers from any `seq` on."""

    __tablename__ = "run_event"

    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class KnowledgeDocument(Model):
    """A document a buyer added to an instance; the Knowledge Base Assistant searches these."""

    __tablename__ = "knowledge_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
