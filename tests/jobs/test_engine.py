"""The job engine: a job belongs to the transaction that deferred it (PostgreSQL: a row in
procrastinate's queue; SQLite: a run right after the commit), with the real tasks."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text

from app.extensions import db
from app.jobs import IntervalError, TASKS, cron_for_interval, load_tasks
from app.jobs.worker import work_off
from app.models import JobFailure, PeriodicRun
from app.services import jobs
from app.services.jobs import JobError
from tests.conftest import ON_POSTGRES

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="the in-process engine is SQLite's")


def _queued(db_url: str) -> list[tuple]:
    """procrastinate's queue as another connection sees it (only committed jobs)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT task_name, status, args::text FROM procrastinate_jobs ORDER BY id")).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_intervals_become_clock_ticks_that_every_worker_agrees_on():
    assert [cron_for_interval(s) for s in (1, 15, 60, 300, 3600, 21600, 86400)] == [
        "* * * * * */1", "* * * * * */15", "*/1 * * * *", "*/5 * * * *", "0 */1 * * *", "0 */6 * * *", "0 0 * * *"]
    with pytest.raises(IntervalError, match=r"^JOB_EVERY_X=7000 does not divide a minute, an hour or a day evenly"):
        cron_for_interval(7000, setting="JOB_EVERY_X")
    with pytest.raises(IntervalError, match="must be a positive number of seconds"):
        cron_for_interval(0)


def test_the_periodic_tasks_are_registered_with_their_settings():
    load_tasks()
    periodic = {name: (spec.every, spec.every_setting) for name, spec in TASKS.items() if spec.periodic}

    assert periodic == {
        "expire-holds": (60, "JOB_EVERY_EXPIRE_HOLDS"), "expire-grants": (300, "JOB_EVERY_EXPIRE_GRANTS"),
        "expire-trials": (300, "JOB_EVERY_EXPIRE_TRIALS"), "fail-stale-runs": (300, "JOB_EVERY_FAIL_STALE_RUNS"),
        "send-mail": (60, "JOB_EVERY_SEND_MAIL"), "trial-reminders": (3600, "JOB_EVERY_TRIAL_REMINDERS"),
        "low-balance-mails": (300, "JOB_EVERY_LOW_BALANCE_MAILS"),
        "reconcile-orders": (300, "JOB_EVERY_RECONCILE_ORDERS"), "sync-saleor": (300, "JOB_EVERY_SYNC_SALEOR"),
        "purge-finished-jobs": (3600, "JOB_EVERY_PURGE_FINISHED_JOBS"),
        "retry-stalled-jobs": (60, "JOB_EVERY_RETRY_STALLED_JOBS"),
        "purge-sessions": (3600, "JOB_EVERY_PURGE_SESSIONS"),
        "renew-subscriptions": (300, "JOB_EVERY_RENEW_SUBSCRIPTIONS"),
        "deliver-seller-webhooks": (60, "JOB_EVERY_DELIVER_SELLER_WEBHOOKS"),
    }
    assert TASKS["renew-subscriptions"].enabled({"COMMERCE_BACKEND": "local"}) is True
    assert TASKS["renew-subscriptions"].enabled({"COMMERCE_BACKEND": "saleor"}) is True
    assert TASKS["reconcile-orders"].enabled({"COMMERCE_BACKEND": "local"}) is False
    assert TASKS["reconcile-orders"].enabled({"COMMERCE_BACKEND": "saleor"}) is True
    assert TASKS["expire-holds"].interval({"JOB_EVERY_EXPIRE_HOLDS": 30}) == 30


def test_defer_refuses_an_unknown_task_and_arguments_that_are_not_json(app, db_url):
    with app.app_context():
        with pytest.raises(JobError, match="There is no job task named 'no-such-task'."):
            jobs.defer(db.session, "no-such-task")
        with pytest.raises(JobError, match="must be JSON values"):
            jobs.defer(db.session, "sync-offering", offering_id=object())
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(JobFailure)) == 0
    if ON_POSTGRES:
        assert _queued(db_url) == []


@sqlite_only
def test_in_process_a_committed_job_runs_after_the_commit_and_a_rolled_back_one_never(app, expired_hold):
    with app.app_context():
        # given: a job deferred in a transaction that rolls back, and one in a savepoint that rolls back
        jobs.defer(db.session, "expire-holds")
        db.session.rollback()
        with db.session.begin_nested():
            pass
        savepoint = db.session.begin_nested()
        jobs.defer(db.session, "expire-holds")
        savepoint.rollback()
        db.session.commit()
        assert expired_hold.status() == "active"

        # when: one is deferred and the transaction commits
        jobs.defer(db.session, "expire-holds")
        assert expired_hold.status() == "active"  # not before the commit
        db.session.commit()

        # then: it ran, in process, right after the commit
        assert expired_hold.status() == "expired"
        assert db.session.scalar(select(func.count()).select_from(JobFailure)) == 0


@pytest.mark.postgres_only
def test_a_job_deferred_in_a_transaction_that_rolls_back_never_runs(app, db_url, expired_hold):
    with app.app_context():
        # given: a job deferred in a transaction that rolls back, and one in a savepoint that rolls back
        jobs.defer(db.session, "expire-holds")
        db.session.rollback()
        savepoint = db.session.begin_nested()
        jobs.defer(db.session, "expire-holds")
        savepoint.rollback()
        db.session.commit()
    assert _queued(db_url) == []

    work_off(app)

    assert _queued(db_url) == []
    with app.app_context():
        assert expired_hold.status() == "active"
        # when: deferred in a transaction that commits; invisible to others until the commit
        jobs.defer(db.session, "expire-holds")
        assert _queued(db_url) == []
        db.session.commit()
    assert _queued(db_url) == [("expire-holds", "todo", "{}")]

    work_off(app)

    # then: a worker ran it, once
    assert _queued(db_url) == [("expire-holds", "succeeded", "{}")]
    with app.app_context():
        assert expired_hold.status() == "expired"


@pytest.mark.postgres_only
def test_a_queueing_lock_keeps_one_waiting_job_and_never_aborts_the_callers_transaction(app, db_url, expired_hold):
    with app.app_context():
        jobs.defer(db.session, "expire-holds", queueing_lock="holds")
        db.session.commit()
        jobs.defer(db.session, "expire-holds", queueing_lock="holds")  # one is waiting: nothing added
        db.session.execute(text("SELECT 1"))  # the transaction is still usable
        db.session.commit()

    assert _queued(db_url) == [("expire-holds", "todo", "{}")]


def test_sweep_commands_run_the_periodic_tasks_and_record_their_last_run(app, expired_hold):
    runner = app.test_cli_runner()

    grants = runner.invoke(args=["expire-grants"])
    holds = runner.invoke(args=["expire-holds"])

    assert (grants.exit_code, grants.output) == (0, "Expired credits of 0 grant(s).\n")
    assert (holds.exit_code, holds.output) == (0, "Released 1 expired hold(s); expired credits of 0 grant(s).\n")
    with app.app_context():
        runs = {r.task_name: (r.succeeded, r.summary, r.tick_at) for r in db.session.scalars(select(PeriodicRun))}
        assert expired_hold.status() == "expired"
    assert runs == {"expire-grants": (True, "Expired credits of 0 grant(s).", None),
                    "expire-holds": (True, "Released 1 expired hold(s).", None)}


def test_registering_a_sweep_is_one_line_that_makes_a_periodic_task_a_setting_and_a_command(make_app):
    from app.jobs import register_sweep

    def purge_things(session) -> int:
        """Purge things past their date."""
        return 3

    register_sweep("purge-test-things", purge_things, every=30, says="Purged {} thing(s).")
    try:
        app = make_app(JOB_EVERY_PURGE_TEST_THINGS=15)

        result = app.test_cli_runner().invoke(args=["purge-test-things"])

        assert (result.exit_code, result.output) == (0, "Purged 3 thing(s).\n")
        assert TASKS["purge-test-things"].interval(app.config) == 15
        assert TASKS["purge-test-things"].interval({}) == 30
        with app.app_context():
            run = db.session.get(PeriodicRun, "purge-test-things")
            assert (run.succeeded, run.summary) == (True, "Purged 3 thing(s).")
            statuses = {s.name: s.description for s in jobs.periodic_status(db.session, config=app.config)}
        assert statuses["purge-test-things"] == "Purge things past their date."
    finally:
        del TASKS["purge-test-things"]


@pytest.mark.postgres_only
def test_a_job_whose_worker_died_mid_run_is_queued_again_and_runs(app, db_url, expired_hold):
    # given: a job a worker took, and the worker died (its last heartbeat long ago)
    with app.app_context():
        jobs.defer(db.session, "expire-holds")
        db.session.commit()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        dead = conn.scalar(text("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
                                " RETURNING id"))
        conn.execute(text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w"), {"w": dead})
    engine.dispose()

    result = app.test_cli_runner().invoke(args=["retry-stalled-jobs"])

    assert (result.exit_code, result.output) == (0, "Queued 1 job(s) of stopped workers again.\n")
    assert _queued(db_url) == [("expire-holds", "todo", "{}")]
    work_off(app)
    assert _queued(db_url) == [("expire-holds", "succeeded", "{}")]
    with app.app_context():
        assert expired_hold.status() == "expired"


def test_a_reconciliation_that_cannot_reach_saleor_is_recorded_as_a_failed_run(make_app):
    import socket

    from app.jobs.runtime import run_task
    from app.jobs.tasks import ReconcileIncomplete

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=f"http://127.0.0.1:{closed}/graphql/",
                   SALEOR_APP_TOKEN="token", SALEOR_TIMEOUT=2)
    load_tasks()
    assert TASKS["reconcile-orders"].enabled(app.config)

    with pytest.raises(ReconcileIncomplete):
        run_task(app, TASKS["reconcile-orders"], {}, tick=1_900_000_000)

    with app.app_context():
        run = db.session.get(PeriodicRun, "reconcile-orders")
        failure = db.session.scalars(select(JobFailure)).one()
    assert run.succeeded is False
    assert run.summary.startswith("ReconcileIncomplete: Reconciled: 0 order(s) provisioned, 1 failed. "
                                  "Saleor could not be asked for paid orders: ")
    assert run.tick_at.timestamp() == 1_900_000_000
    assert (failure.task_name, failure.error) == ("reconcile-orders", run.summary)
