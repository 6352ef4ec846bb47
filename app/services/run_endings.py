"""Ending a run from outside its runner: a cancel from its caller, and the sweep that fails runs
which will not end by themselves (`fail-stale-runs`)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.models import Run, RunStatus, utcnow
from app.services import billing, runs

log = logging.getLogger(__name__)


class RunNotCancellable(runs.RunError):
    pass


def cancel_run(session: Session, *, run: Run, now: datetime | None = None) -> Run:
    """Cancel a run. A queued one ends now: its hold is released and its stream ends with an
    `error` event (code run_cancelled). A running one is flagged: its runner stops the runtime where
    it can and releases the hold (or settles what the runtime reports as used so far). Flushes.
    RunNotCancellable (409) when it has already ended."""
    from app.services import run_events

    now = now or utcnow()
    taken = session.execute(
        update(Run).where(Run.id == run.id, Run.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.CANCELLED.value, finished_at=now, cancel_requested_at=now,
                error="Cancelled before it started. You were not charged.", credits=0)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(run)
    if taken:
        if run.hold_id is not None:
            billing.release(session, hold_id=run.hold_id, idempotency_key=billing.run_key(run.id, "release"), now=now)
        run_events.append_event(session, run_id=run.id, kind="error",
                                data={"message": run.error, "code": "run_cancelled", "run": runs.run_view(run)})
        return run
    if run.status == RunStatus.RUNNING.value:
        if run.cancel_requested_at is None:
            run.cancel_requested_at = now
            session.flush()
            run_events.notify(session, run.id)
        return run
    raise RunNotCancellable("This run has already ended.", status=409, code="run_finished")


def fail_stale_runs(session: Session, *, now: datetime | None = None, older_than: timedelta = runs.STALE_AFTER,
                    run_timeout: float = 60.0) -> int:
    """Runs that will not end by themselves: still `queued` `older_than` after they were started (the
    job was lost, or no runner took it while its hold lasted), or still `running` longer after a
    runner took them than their time limit (`run_timeout`) and runs.RUN_HOLD_MARGIN (the runner died).
    Mark them failed, release their holds and end their event streams. Idempotent; for the
    scheduler (the `fail-stale-runs` periodic job)."""
    from app.services import run_events

    now = now or utcnow()
    started = func.coalesce(Run.started_at, Run.created_at)
    lost_runner = now - timedelta(seconds=run_timeout) - runs.RUN_HOLD_MARGIN
    stale = list(session.scalars(
        select(Run).where(or_(
            (Run.status == RunStatus.QUEUED.value) & (Run.created_at < now - older_than),
            (Run.status == RunStatus.RUNNING.value) & (started < lost_runner),
        )).order_by(Run.id).limit(500)
    ))
    for run in stale:
        if run.hold_id is not None:
            try:
                billing.release(session, hold_id=run.hold_id, idempotency_key=billing.run_key(run.id, "release"),
                                now=now)
            except billing.BillingError as exc:  # already settled: the run finished but its record did not
                log.warning("stale run %s: hold not released: %s", run.id, exc)
        run.status = RunStatus.FAILED.value
        run.error = "The run did not finish. You were not charged."
        run.finished_at = now
        run.session_stale = True
        session.flush()
        run_events.append_event(session, run_id=run.id, kind="error",
                                data={"message": run.error, "code": "run_failed", "run": runs.run_view(run)})
    session.flush()
    return len(stale)
