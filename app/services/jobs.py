"""Jobs: deferring work to the job engine inside the caller's transaction, and what the operator's
Jobs page shows (queue depth, failures with their error, periodic runs) and does (retry).

`defer(session, "task-name", **kwargs)` is the one way to start background work. The job belongs to
the caller's transaction: on PostgreSQL it is a row in procrastinate's queue written through the
same connection, on SQLite it runs in process right after the commit; either way a rolled-back
change never runs its job and a committed one always does. Task names and functions are in
`app/jobs/tasks.py`; arguments must be JSON values.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.jobs import TaskSpec, load_tasks
from app.jobs import engine
from app.models import JobFailure, PeriodicRun, utcnow
from app.services.errors import ServiceError


class JobError(ServiceError):
    """A job could not be deferred or retried; the message is safe to show."""


def defer(session: Session, task_name: str, *, queueing_lock: str | None = None, **kwargs: Any) -> None:
    """Defer the task `task_name` with `kwargs`, in the session's transaction.

    With `queueing_lock`, nothing is added while a job with the same lock is still waiting (a
    sweep that finds the same work again does not queue it twice)."""
    from flask import current_app

    spec = load_tasks().get(task_name)
    if spec is None:
        raise JobError(f"There is no job task named {task_name!r}.", field="task_name")
    try:
        json.dumps(kwargs)
    except (TypeError, ValueError) as exc:
        raise JobError(f"The arguments of job {task_name!r} must be JSON values ({exc}).") from exc
    engine.defer(session, current_app._get_current_object(), spec, kwargs, queueing_lock)


# --- the operator's Jobs page ----------------------------------------------------------------------

@dataclass(frozen=True)
class QueueDepth:
    ready: int  # waiting to be picked up now
    scheduled: int  # waiting for a later time (retries backing off)
    running: int
    failed: int
    workers: int  # workers that reported in the last minute


@dataclass(frozen=True)
class FailedJob:
    task_name: str
    args: dict[str, Any]
    attempts: int
    error: str | None  # None when the job failed before our code ran (e.g. an unknown task)
    failed_at: datetime | None
    retry_at: datetime | None  # set while the engine is going to try again by itself
    job_id: int | None  # procrastinate's job (PostgreSQL)
    failure_id: int | None  # our record of an in-process job (SQLite)


@dataclass(frozen=True)
class PeriodicStatus:
    name: str
    description: str
    every: int
    enabled: bool
    last_run: PeriodicRun | None


def uses_queue(session: Session) -> bool:
    return engine.uses_queue(session)


def queue_depth(session: Session) -> QueueDepth | None:
    """Counts from procrastinate's queue; None on SQLite, where nothing waits in a queue."""
    if not engine.uses_queue(session):
        return None
    row = session.execute(text(
        "SELECT count(*) FILTER (WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())),"
        " count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()),"
        " count(*) FILTER (WHERE status = 'doing'),"
        " count(*) FILTER (WHERE status = 'failed'),"
        " (SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '1 minute')"
        " FROM procrastinate_jobs"
    )).one()
    return QueueDepth(*row)


def recent_failures(session: Session, *, limit: int = 25) -> list[FailedJob]:
    """Failed jobs, newest first, with the error of their last attempt; on PostgreSQL also the jobs
    that failed and are waiting for their next attempt."""
    if engine.uses_queue(session):
        rows = session.execute(text(
            "SELECT id, task_name, args, attempts, status, scheduled_at FROM procrastinate_jobs"
            " WHERE status = 'failed' OR (status = 'todo' AND attempts > 0)"
            " ORDER BY id DESC LIMIT :limit"
        ), {"limit": limit}).all()
        last = _last_failures(session, [row.id for row in rows])
        return [
            FailedJob(
                task_name=row.task_name, args=dict(row.args or {}),
                attempts=row.attempts,  # runs so far: procrastinate counts the last one when it finishes
                error=last[row.id].error if row.id in last else None,
                failed_at=last[row.id].failed_at if row.id in last else None,
                retry_at=(row.scheduled_at or utcnow()) if row.status == "todo" else None,
                job_id=row.id, failure_id=None,
            )
            for row in rows
        ]
    failures = session.scalars(
        select(JobFailure).where(JobFailure.job_id.is_(None), JobFailure.retried_at.is_(None))
        .order_by(JobFailure.id.desc()).limit(limit)
    )
    return [FailedJob(task_name=f.task_name, args=engine.args_of(f.args_json), attempts=f.attempt, error=f.error,
                      failed_at=f.failed_at, retry_at=None, job_id=None, failure_id=f.id) for f in failures]


def _last_failures(session: Session, job_ids: list[int]) -> dict[int, JobFailure]:
    if not job_ids:
        return {}
    last: dict[int, JobFailure] = {}
    for failure in session.scalars(select(JobFailure).where(JobFailure.job_id.in_(job_ids)).order_by(JobFailure.id)):
        last[failure.job_id] = failure
    return last


def periodic_status(session: Session, *, config: Mapping[str, Any]) -> list[PeriodicStatus]:
    """Every periodic task with its interval, whether this configuration runs it, and its last run."""
    runs = {run.task_name: run for run in session.scalars(select(PeriodicRun))}
    return [
        PeriodicStatus(name=spec.name, description=_description(spec), every=spec.interval(config),
                       enabled=spec.enabled(config), last_run=runs.get(spec.name))
        for spec in load_tasks().values() if spec.periodic
    ]


def _description(spec: TaskSpec) -> str:
    return (spec.func.__doc__ or spec.name).strip().split("\n")[0]


def retry_job(session: Session, *, job_id: int) -> str:
    """Queue a failed job (PostgreSQL) to run again now; returns its task name."""
    if not engine.uses_queue(session):
        raise JobError("Jobs run in process on this database; retry the failure instead.")
    row = session.execute(
        text("SELECT task_name, status FROM procrastinate_jobs WHERE id = :id FOR UPDATE"), {"id": job_id}
    ).one_or_none()
    if row is None:
        raise JobError("That job no longer exists.", status=404)
    if row.status != "failed":
        raise JobError("That job has not failed (it may have been retried already).", status=409)
    # procrastinate's own function moves it from failed back to todo, in this transaction
    session.execute(text("SELECT procrastinate_retry_job_v2(:id, now(), NULL, NULL, NULL)"), {"id": job_id})
    session.execute(update(JobFailure).where(JobFailure.job_id == job_id, JobFailure.retried_at.is_(None))
                    .values(retried_at=utcnow()))
    return row.task_name


def retry_failure(session: Session, *, failure_id: int) -> str:
    """Run a job that failed in process (SQLite) again, after the caller's commit; returns its task name."""
    failure = session.get(JobFailure, failure_id)
    if failure is None or failure.job_id is not None:
        raise JobError("That failure no longer exists.", status=404)
    claimed = session.execute(  # one retry however often the button is pressed
        update(JobFailure).where(JobFailure.id == failure_id, JobFailure.retried_at.is_(None))
        .values(retried_at=utcnow()).execution_options(synchronize_session="fetch")
    ).rowcount
    if not claimed:
        raise JobError("That job has been retried already.", status=409)
    defer(session, failure.task_name, **engine.args_of(failure.args_json))
    return failure.task_name
