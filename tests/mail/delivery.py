"""What a worker does for the mail tests, honestly for each database.

SQLite: a deferred job runs in process right after its transaction commits, so there is nothing to
run afterwards; "the process stopped before delivering" is the pending job dropped from the session.
PostgreSQL: a deferred job is a row that waits for a worker; `run_jobs` is that worker, and a
process that stopped before delivering is simply a worker that never ran.
"""
from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session

from app.jobs import engine
from app.jobs.worker import work_off
from tests.conftest import ON_POSTGRES


def run_jobs(app) -> None:
    """Run the jobs that are ready, as a worker would (PostgreSQL); they already ran on SQLite."""
    if ON_POSTGRES:
        work_off(app)


def stop_before_delivering(session) -> None:
    """Before the commit: lose the delivery job as a process that stops after the commit would."""
    if not ON_POSTGRES:
        assert [job.spec.name for job in _own(session).info.pop(engine._PENDING)] == ["deliver-mail"]


def pending_in_process(session) -> list[tuple[str, dict]]:
    """SQLite: the jobs waiting in the session for its transaction to commit."""
    return [(job.spec.name, job.kwargs) for job in _own(session).info.get(engine._PENDING, [])]


def queued_jobs(db_url: str) -> list[tuple]:
    """PostgreSQL: procrastinate's queue as another connection sees it (only committed jobs)."""
    bind = create_engine(db_url)
    with bind.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, task_name, status, args, attempts, scheduled_at FROM procrastinate_jobs ORDER BY id")).all()
    bind.dispose()
    return rows


def make_jobs_due(db_url: str) -> None:
    """PostgreSQL: bring the waiting retries forward to now (the backoff is asserted before)."""
    bind = create_engine(db_url)
    with bind.begin() as conn:
        conn.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now() - interval '1 second'"
                          " WHERE status = 'todo'"))
    bind.dispose()


def _own(session):
    return session() if isinstance(session, scoped_session) else session
