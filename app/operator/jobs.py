"""The operator console's Jobs page: queue depth, failed jobs with their error and a retry button,
and when each periodic task last ran."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for

from app.extensions import db
from app.operator.forms import ActionForm
from app.operator.views import bp
from app.services import jobs
from app.services.jobs import JobError


@bp.get("/jobs")
def jobs_overview():
    return render_template(
        "operator/jobs.html", uses_queue=jobs.uses_queue(db.session), depth=jobs.queue_depth(db.session),
        failures=jobs.recent_failures(db.session), periodic=jobs.periodic_status(db.session, config=current_app.config),
        action_form=ActionForm(),
    )


@bp.post("/jobs/<int:job_id>/retry")
def job_retry(job_id: int):
    return _retry(lambda: jobs.retry_job(db.session, job_id=job_id))


@bp.post("/jobs/failures/<int:failure_id>/retry")
def job_failure_retry(failure_id: int):
    return _retry(lambda: jobs.retry_failure(db.session, failure_id=failure_id))


def _retry(retry):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        task_name = retry()
    except JobError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("operator.jobs_overview"))
    db.session.commit()  # on SQLite the job runs in process right here, after the commit
    flash(f"The {task_name} job will run again." if jobs.uses_queue(db.session)
          else f"The {task_name} job ran again; see below whether it failed.", "success")
    return redirect(url_for("operator.jobs_overview"))
