"""Running one job: the same code path for a worker (procrastinate, PostgreSQL) and for the
in-process engine (SQLite). The task runs in its own app context with `db.session`; the session is
committed when the task returns and rolled back when it raises. Periodic runs and failed attempts
are written down in our own tables for the operator's Jobs page."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from app.jobs import TaskSpec

log = logging.getLogger("app.jobs")

ERROR_MAX = 2000
SUMMARY_MAX = 500


def run_task(flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any], *, job_id: int | None = None,
             attempt: int = 1, tick: int | None = None, record_failures: bool = True) -> Any:
    """Run `spec` once with `kwargs`; return what the task returned. A failure is recorded (unless
    `record_failures` is False: a command prints it instead), then raised again so the engine can
    schedule its retry. A periodic task's run is recorded either way. Its log lines and outgoing calls
    carry the id of the request that ran it in process, or one naming the job."""
    from app import context

    token = context.set_request_id(context.current_request_id() or
                                   (f"job-{spec.name}-{job_id}" if job_id else f"job-{spec.name}"))
    try:
        return _run(flask_app, spec, kwargs, job_id=job_id, attempt=attempt, tick=tick,
                    record_failures=record_failures)
    finally:
        context.reset_request_id(token)


def _run(flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any], *, job_id: int | None, attempt: int,
         tick: int | None, record_failures: bool) -> Any:
    from app.extensions import db
    from app.models import utcnow

    with flask_app.app_context():
        started = utcnow()
        try:
            outcome = spec.func(db.session, **kwargs)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            error = _describe(exc)
            log.warning("job %s (id %s, attempt %s) failed: %s", spec.name, job_id, attempt, error)
            if record_failures:
                _record_safely(lambda: record_failure(db.session, spec=spec, kwargs=kwargs, job_id=job_id,
                                                      attempt=attempt, error=error))
            if spec.periodic:
                _record_safely(lambda: record_periodic_run(db.session, name=spec.name, tick=tick, started=started,
                                                           succeeded=False, summary=error))
            raise
        summary = _summary(outcome)
        if spec.periodic:
            _record_safely(lambda: record_periodic_run(db.session, name=spec.name, tick=tick, started=started,
                                                       succeeded=True, summary=summary))
        if summary:  # a sweep that found nothing to do stays quiet
            log.log(logging.DEBUG if getattr(outcome, "count", None) == 0 else logging.INFO,
                    "job %s: %s", spec.name, summary)
        return outcome


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:ERROR_MAX]


def _summary(outcome: Any) -> str | None:
    if outcome is None:
        return None
    return str(outcome)[:SUMMARY_MAX]


def _record_safely(write) -> None:
    """Bookkeeping must never hide the task's own outcome: a failure to write it is only logged."""
    from app.extensions import db

    try:
        write()
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not record a job's outcome")


def record_failure(session: Session, *, spec: TaskSpec, kwargs: dict[str, Any], job_id: int | None,
                   attempt: int, error: str) -> None:
    from app.models import JobFailure, utcnow

    session.add(JobFailure(job_id=job_id, task_name=spec.name, args_json=json.dumps(kwargs, sort_keys=True),
                           attempt=attempt, error=error, failed_at=utcnow()))
    session.flush()


def record_periodic_run(session: Session, *, name: str, tick: int | None, started: datetime,
                        succeeded: bool, summary: str | None) -> None:
    """Replace the task's row with this run (an upsert: a worker and a hand-run command may race)."""
    from app.models import PeriodicRun, utcnow

    values = {
        "task_name": name, "started_at": started, "finished_at": utcnow(), "succeeded": succeeded,
        "summary": summary, "tick_at": datetime.fromtimestamp(tick, timezone.utc) if tick is not None else None,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    statement = upsert(PeriodicRun).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[PeriodicRun.task_name],
        set_={key: statement.excluded[key] for key in values if key != "task_name"},
    )
    session.execute(statement)


