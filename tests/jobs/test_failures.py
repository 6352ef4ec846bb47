"""A failing job: retried with backoff, then shown as failed on the operator's Jobs page with its
error, and run again from the page's retry button (the store sync against a failing fake Saleor)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.jobs.worker import work_off
from app.models import JobFailure, Offering
from app.services import jobs
from app.services.jobs import QueueDepth
from tests.conftest import ON_POSTGRES, login

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="the in-process engine is SQLite's")


def _job(db_url: str):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, status, attempts, scheduled_at FROM procrastinate_jobs")).one()
    engine.dispose()
    return row


def _make_it_due(db_url: str) -> None:
    """Let the backoff pass at once (the wait itself was checked)."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now() - interval '1 second'"))
    engine.dispose()


@pytest.mark.postgres_only
def test_a_failing_job_retries_with_backoff_then_shows_as_failed_and_runs_again_from_its_retry_button(
    saleor_app, saleor_fake, store, operator, published_offering_id, db_url,
):
    # given: a store sync deferred while Saleor answers every request with a 500
    saleor_fake.fail_with_status(500)
    with saleor_app.app_context():
        jobs.defer(db.session, "sync-offering", offering_id=published_offering_id)
        db.session.commit()

    # when: a worker runs it each time its retry is due
    waits = []
    for _ in range(10):
        before = datetime.now(timezone.utc)
        work_off(saleor_app)
        job = _job(db_url)
        if job.status == "failed":
            break
        waits.append((job.scheduled_at - before).total_seconds())
        _make_it_due(db_url)

    # then: seven runs (six retries, each waiting three times longer), then failed for good, every error recorded
    assert (job.status, job.attempts) == ("failed", 7)
    assert len(waits) == 6
    for wait, expected in zip(waits, (3, 9, 27, 81, 243, 729)):
        assert expected <= wait < expected + 10
    with saleor_app.app_context():
        offering = db.session.get(Offering, published_offering_id)
        assert offering.sync_status == "failed"
        failures = db.session.scalars(select(JobFailure).order_by(JobFailure.id)).all()
        assert [(f.job_id, f.task_name, f.attempt) for f in failures] == [
            (job.id, "sync-offering", n) for n in range(1, 8)]
        assert {f.error for f in failures} == {f"StoreSyncFailed: {offering.sync_error}"}
        assert jobs.queue_depth(db.session) == QueueDepth(ready=0, scheduled=0, running=0, failed=1, workers=0)
        error = failures[-1].error

    # and: the Jobs page shows it, with its error and a retry button
    client = saleor_app.test_client()
    login(client, operator)
    page = client.get("/operator/jobs").get_data(as_text=True)
    assert "sync-offering" in page and f"offering_id={published_offering_id}" in page
    assert '<td data-label="Attempts" class="num">7</td>' in page
    assert _escaped(error) in page
    assert f'action="/operator/jobs/{job.id}/retry"' in page
    assert '<span class="badge badge-failed">Failed</span>' in page

    # when: Saleor is back and the operator presses Retry
    saleor_fake.recover()
    response = client.post(f"/operator/jobs/{job.id}/retry")
    assert response.status_code == 302
    assert _job(db_url).status == "todo"
    work_off(saleor_app)

    # then: it ran again and succeeded; the page has no failure left
    assert _job(db_url).status == "succeeded"
    with saleor_app.app_context():
        assert db.session.get(Offering, published_offering_id).sync_status == "synced"
        assert db.session.scalars(select(JobFailure.retried_at)).all() != [] and None not in db.session.scalars(
            select(JobFailure.retried_at)).all()
    page = client.get("/operator/jobs").get_data(as_text=True)
    assert "No failed jobs." in page
    again = client.post(f"/operator/jobs/{job.id}/retry", follow_redirects=True).get_data(as_text=True)
    assert "That job has not failed (it may have been retried already)." in again
    assert _job(db_url).status == "succeeded"


@sqlite_only
def test_in_process_a_failing_job_is_recorded_shown_and_runs_again_from_its_retry_button(
    saleor_app, saleor_fake, store, operator, published_offering_id,
):
    # given: Saleor answers every request with a 500
    saleor_fake.fail_with_status(500)

    # when: a store sync is deferred and the transaction commits
    with saleor_app.app_context():
        jobs.defer(db.session, "sync-offering", offering_id=published_offering_id)
        db.session.commit()

        # then: it ran at once, failed, and the failure is recorded with its arguments
        offering = db.session.get(Offering, published_offering_id)
        assert offering.sync_status == "failed"
        failure = db.session.scalars(select(JobFailure)).one()
        assert (failure.job_id, failure.task_name, failure.args_json, failure.attempt, failure.retried_at) == (
            None, "sync-offering", f'{{"offering_id": {published_offering_id}}}', 1, None)
        assert failure.error == f"StoreSyncFailed: {offering.sync_error}"
        assert jobs.queue_depth(db.session) is None

    client = saleor_app.test_client()
    login(client, operator)
    page = client.get("/operator/jobs").get_data(as_text=True)
    assert _escaped(failure.error) in page
    assert f'action="/operator/jobs/failures/{failure.id}/retry"' in page
    assert "there is no queue" in page

    # when: Saleor is back and the operator presses Retry
    saleor_fake.recover()
    response = client.post(f"/operator/jobs/failures/{failure.id}/retry")

    # then: the job ran again, in process, and succeeded
    assert response.status_code == 302
    with saleor_app.app_context():
        assert db.session.get(Offering, published_offering_id).sync_status == "synced"
        assert db.session.get(JobFailure, failure.id).retried_at is not None
    assert "No failed jobs." in client.get("/operator/jobs").get_data(as_text=True)
    saleor_fake.clear_log()
    again = client.post(f"/operator/jobs/failures/{failure.id}/retry", follow_redirects=True).get_data(as_text=True)
    assert "That job has been retried already." in again
    assert saleor_fake.operation_names() == []


def _escaped(value: str) -> str:
    from markupsafe import escape

    return str(escape(value))


def test_the_store_sync_sweep_queues_one_sync_per_offering_and_the_jobs_sync_them(saleor_app, store, db_url):
    from app.jobs import TASKS, load_tasks
    from app.jobs.runtime import run_task
    from app.services import offerings

    load_tasks()
    with saleor_app.app_context():
        todo = [o.id for o in offerings.offerings_to_sync(db.session)]
    assert len(todo) == 10  # the demo catalog, never synced

    first = run_task(saleor_app, TASKS["sync-saleor"], {})
    if ON_POSTGRES:
        run_task(saleor_app, TASKS["sync-saleor"], {})  # a second tick while they wait adds nothing
        engine = create_engine(db_url)
        with engine.connect() as conn:
            queued = conn.execute(text("SELECT args->>'offering_id', queueing_lock FROM procrastinate_jobs"
                                       " WHERE task_name = 'sync-offering' ORDER BY id")).all()
        engine.dispose()
        assert [tuple(row) for row in queued] == [(str(i), f"sync-offering:{i}") for i in todo]
        work_off(saleor_app)  # on SQLite they ran right after the sweep's commit

    assert str(first) == "10 offering(s) to sync with the store; the credit packs too."
    with saleor_app.app_context():
        assert offerings.offerings_to_sync(db.session) == []
        assert not offerings.credit_packs_to_sync(db.session)
    assert len(store.products) == 11  # the ten offerings and the credit-pack product
    assert store.product_by_slug("digitlify-credits") is not None
