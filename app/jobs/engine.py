"""The job engine: procrastinate on PostgreSQL, and the in-process twin used with SQLite.

PostgreSQL: a job is a row in procrastinate's tables, inserted through the connection of the
caller's own transaction (procrastinate's `configure(connection=...)`), so it exists exactly when
the change that caused it is committed. Workers (`flask --app app worker`) run the jobs, retry them
with their task's backoff, and defer each periodic task once per tick across all workers.

SQLite: there is no queue. A deferred job waits in the session until its transaction commits and
then runs at once in the same process (dropped on rollback); a failure is recorded for the Jobs
page, where an operator can run it again. `flask --app app worker` runs the periodic sweeps on
procrastinate's in-memory connector. Nothing survives a restart, and nothing needs to: every
periodic task is an idempotent sweep over the database.
"""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import procrastinate
from flask import Flask
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from app.jobs import TaskSpec, cron_for_interval, load_tasks
from app.jobs import runtime

log = logging.getLogger("app.jobs")

_PENDING = "app.jobs.pending"


def uses_queue(session: Session) -> bool:
    """True where jobs go through procrastinate's queue (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def conninfo(database_uri: str) -> str:
    """The libpq connection string for the app's SQLAlchemy URL (`postgresql+psycopg://...`)."""
    return make_url(database_uri).set(drivername="postgresql").render_as_string(hide_password=False)


def build(flask_app: Flask, connector: Any, *, periodic: bool) -> procrastinate.App:
    """A procrastinate App whose tasks run our registered task functions for `flask_app`; with
    `periodic`, the sweeps enabled by the app's configuration are scheduled at their intervals."""
    engine = procrastinate.App(connector=connector)
    for spec in load_tasks().values():
        registered = engine.task(
            name=spec.name, pass_context=True, retry=spec.retry or False, queue=spec.queue,
            # a sweep never runs twice at once, and never piles up behind a slow run
            lock=spec.name if spec.periodic else None, queueing_lock=spec.name if spec.periodic else None,
        )(_job_function(flask_app, spec))
        if periodic and spec.enabled(flask_app.config):
            engine.periodic(cron=cron_for_interval(spec.interval(flask_app.config), setting=spec.every_setting))(
                registered)
    return engine


def _job_function(flask_app: Flask, spec: TaskSpec):
    def run(context: procrastinate.JobContext, timestamp: int | None = None, **kwargs: Any) -> str | None:
        job = context.job
        return runtime.run_task(flask_app, spec, kwargs, job_id=job.id, attempt=job.attempts + 1, tick=timestamp)

    run.__name__ = run.__qualname__ = "run_" + spec.name.replace("-", "_")
    return run


def _deferrer(flask_app: Flask) -> procrastinate.App:
    """One App per Flask app for deferring; its connector never opens a pool of its own, since
    every defer passes the caller's connection."""
    jobs = flask_app.extensions.get("jobs")
    if jobs is None:
        jobs = flask_app.extensions["jobs"] = build(flask_app, procrastinate.SyncPsycopgConnector(), periodic=False)
    return jobs


def defer(session: Session, flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any],
          queueing_lock: str | None) -> None:
    if isinstance(session, scoped_session):  # db.session: the transaction is its current session's
        session = session()
    if uses_queue(session):
        _defer_in_transaction(session, flask_app, spec, kwargs, queueing_lock)
    else:
        _defer_after_commit(session, flask_app, spec, kwargs, queueing_lock)


def _defer_in_transaction(session: Session, flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any],
                          queueing_lock: str | None) -> None:
    task = _deferrer(flask_app).tasks[spec.name]
    if queueing_lock is None and not spec.periodic:  # nothing can refuse it: no savepoint (two round trips)
        connection = session.connection().connection.driver_connection
        task.configure(connection=connection).defer(**kwargs)
        return
    try:
        # a savepoint: a job already waiting under the same queueing lock is a unique violation,
        # which must not abort the caller's transaction
        with session.begin_nested():
            connection = session.connection().connection.driver_connection
            task.configure(queueing_lock=queueing_lock, connection=connection).defer(**kwargs)
    except AlreadyEnqueued:
        log.debug("job %s not deferred: one is already waiting under %s", spec.name, queueing_lock)


@dataclass
class PendingJob:
    flask_app: Flask
    spec: TaskSpec
    kwargs: dict[str, Any]
    queueing_lock: str | None
    transaction: SessionTransaction


def _defer_after_commit(session: Session, flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any],
                        queueing_lock: str | None) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        session.connection()  # begins the transaction the job belongs to
        transaction = session.get_transaction()
    pending: list[PendingJob] = session.info.setdefault(_PENDING, [])
    if queueing_lock is not None and any(job.queueing_lock == queueing_lock for job in pending):
        return
    pending.append(PendingJob(flask_app, spec, kwargs, queueing_lock, transaction))


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back_jobs(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [job for job in pending if not _within(job.transaction, previous_transaction)]


@event.listens_for(Session, "after_commit")
def _run_committed_jobs(session: Session) -> None:
    if _PENDING not in session.info:
        return
    root = session.get_transaction()
    if root is not None and root.is_active:  # a savepoint was released; the transaction goes on
        return
    pending = session.info.pop(_PENDING, None)
    for job in pending or ():
        if job.spec.background:
            run_in_background(job.flask_app, job.spec, job.kwargs)
        else:
            run_inline(job.flask_app, job.spec, job.kwargs)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_flight: set[Future] = set()


def run_in_background(flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any]) -> Future:
    """SQLite: run a job on a small in-process thread pool (its size is the setting
    `JOB_BACKGROUND_THREADS`), so the request that deferred it answers at once."""
    global _pool
    with _pool_lock:
        if _pool is None:
            size = int(flask_app.config.get("JOB_BACKGROUND_THREADS") or 4)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="jobs")
        future = _pool.submit(run_inline, flask_app, spec, kwargs)
        _in_flight.add(future)
    future.add_done_callback(_in_flight.discard)
    return future


def wait_for_background(timeout: float = 30.0) -> bool:
    """Wait until every background job started so far has ended; False when `timeout` passed first."""
    done, not_done = wait(list(_in_flight), timeout=timeout)
    return not not_done


def run_inline(flask_app: Flask, spec: TaskSpec, kwargs: dict[str, Any]) -> bool:
    """Run a job in this process now (its own app context and session); True when it succeeded.
    A failure is recorded by the runtime and never reaches the caller, whose change is committed."""
    try:
        runtime.run_task(flask_app, spec, kwargs)
    except Exception:
        return False
    return True


def purge_finished_jobs(session: Session, *, hours: int) -> int:
    """Delete jobs that succeeded more than `hours` ago (and their events), with procrastinate's own
    query, in the session's transaction. Failed jobs stay for the Jobs page."""
    from procrastinate import sql

    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        cursor.execute(sql.queries["delete_old_jobs"], {"nb_hours": hours, "queue": None, "statuses": ["succeeded"]})
        return cursor.rowcount


def retry_stalled_jobs(session: Session, *, seconds_since_heartbeat: int = 60) -> int:
    """Put back in the queue the jobs whose worker died while running them (no heartbeat for
    `seconds_since_heartbeat`), with procrastinate's own query and retry function, in the session's
    transaction; returns how many. Without this a job of a killed worker would stay "running"."""
    from procrastinate import sql

    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        cursor.execute(sql.queries["select_stalled_jobs_by_heartbeat"],
                       {"queue": None, "task_name": None, "seconds_since_heartbeat": seconds_since_heartbeat})
        stalled = [row[0] for row in cursor.fetchall()]
        for job_id in stalled:
            cursor.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", (job_id,))
    return len(stalled)


def args_of(failure_args_json: str) -> dict[str, Any]:
    return json.loads(failure_args_json or "{}")
