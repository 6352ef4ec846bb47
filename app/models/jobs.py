"""What the job engine leaves behind for operators: when each periodic task last ran, and why jobs
failed. The queue itself is procrastinate's (its tables on PostgreSQL); these two small tables hold
what it does not keep (a job's error) and what the in-process engine on SQLite knows."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model


class PeriodicRun(Model):
    """The latest run of one periodic task (one row per task, replaced on every run)."""

    __tablename__ = "periodic_run"

    task_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    tick_at: Mapped[datetime | None]  # the schedule's tick this run belongs to
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    succeeded: Mapped[bool | None]
    summary: Mapped[str | None] = mapped_column(Text)  # what the sweep did, or its error


class JobFailure(Model):
    """One failed attempt of a job, with its error. `job_id` is procrastinate's job on PostgreSQL;
    None for a job the in-process engine ran (SQLite), which keeps its arguments here to retry it."""

    __tablename__ = "job_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    task_name: Mapped[str] = mapped_column(String(128))
    args_json: Mapped[str] = mapped_column(Text, default="{}")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime]
    retried_at: Mapped[datetime | None]  # an operator asked for another run


# procrastinate's own tables, types and functions (created by a migration, not by these models):
# schema comparisons leave them alone
QUEUE_OBJECT_PREFIX = "procrastinate_"
