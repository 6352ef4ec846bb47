"""The Jobs page: operators only, retry needs the CSRF token, periodic runs as recorded."""
from __future__ import annotations

from datetime import datetime, timezone

from app.extensions import db
from app.jobs.runtime import record_periodic_run
from app.models import JobFailure
from tests.conftest import ON_POSTGRES, login


def test_only_operators_see_the_jobs_page_or_retry(client, buyer, app):
    login(client, buyer)

    assert client.get("/operator/jobs").status_code == 403
    assert client.post("/operator/jobs/1/retry").status_code == 403
    assert client.post("/operator/jobs/failures/1/retry").status_code == 403


def test_retry_without_the_csrf_token_is_refused_and_changes_nothing(make_app, operator):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        failure = JobFailure(task_name="expire-holds", args_json="{}", attempt=1, error="RuntimeError: boom",
                             failed_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
        db.session.add(failure)
        db.session.commit()
        failure_id = failure.id
    client = app.test_client()
    login(client, operator)

    response = client.post(f"/operator/jobs/failures/{failure_id}/retry")

    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(JobFailure, failure_id).retried_at is None


def test_the_page_lists_every_periodic_task_with_its_schedule_and_last_run(app, client, operator):
    with app.app_context():
        record_periodic_run(db.session, name="expire-holds", tick=1_900_000_000,
                            started=datetime(2030, 3, 17, 17, 46, 39, tzinfo=timezone.utc), succeeded=True,
                            summary="Released 2 expired hold(s).")
        record_periodic_run(db.session, name="expire-trials", tick=None,
                            started=datetime(2030, 3, 17, 17, 40, 0, tzinfo=timezone.utc), succeeded=False,
                            summary="OperationalError: database is locked")
        db.session.commit()
    login(client, operator)

    page = client.get("/operator/jobs").get_data(as_text=True)

    assert '<a href="/operator/jobs" aria-current="page">Jobs</a>' in page
    assert "Release credit holds past their TTL." in page and "every 1 minute" in page
    assert '<span class="badge badge-succeeded">Done</span> <span class="small">Released 2 expired hold(s).</span>' in page
    assert '<span class="badge badge-failed">Failed</span> <span class="small">OperationalError: database is locked</span>' in page
    # Saleor's sweeps (and, on SQLite, the queue purge) are listed, but this configuration does not run them
    assert page.count("Not with this configuration") == (2 if ON_POSTGRES else 4)
    assert page.count("<span class=\"muted\">Never</span>") == 12  # 14 periodic tasks, 2 of them ran
    assert "Send queued mail that is due" in page and "Mail &#34;your free trial ends in two days&#34;" in page
