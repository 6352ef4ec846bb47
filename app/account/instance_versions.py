"""The instance page's version box: pin the version it runs, follow updates again, accept a new major."""
from __future__ import annotations

from flask import flash, g, redirect, request, url_for

from app.account.agents import _instance_or_404
from app.account.forms import ActionForm
from app.account.views import bp, refusal_text
from app.auth.session_user import login_required
from app.extensions import db
from app.services import offerings, organizations


def _change(instance_id: int, change, done) -> object:
    """Run `change` for an owner or admin; refusals come back as a message on the instance page."""
    instance = _instance_or_404(instance_id)
    if ActionForm().validate_on_submit():
        try:
            change(instance)
        except (offerings.OfferingError, organizations.OrganizationError) as exc:
            db.session.rollback()
            flash(refusal_text(exc, "change the version it runs"), "error")
        else:
            db.session.commit()
            flash(done(instance), "success")
    else:
        flash("Your session expired. Reload the page and try again.", "error")
    return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="version"), 303)


@bp.post("/instances/<int:instance_id>/version/pin")
@login_required
def instance_version_pin(instance_id: int):
    return _change(
        instance_id, lambda i: offerings.pin_version(db.session, instance=i, actor=g.user),
        lambda i: f"{i.offering.name} stays on version {i.version.version} until you choose to follow updates.",
    )


@bp.post("/instances/<int:instance_id>/version/follow")
@login_required
def instance_version_follow(instance_id: int):
    def done(instance) -> str:
        running = offerings.version_for_instance(db.session, instance)
        return f"{instance.offering.name} follows updates: it runs version {running.version} and gets new " \
               f"{running.major}.x releases from its next run."

    return _change(instance_id, lambda i: offerings.follow_updates(db.session, instance=i, actor=g.user), done)


@bp.post("/instances/<int:instance_id>/version/upgrade")
@login_required
def instance_version_upgrade(instance_id: int):
    version = request.form.get("version", "")
    return _change(
        instance_id, lambda i: offerings.upgrade_instance(db.session, instance=i, actor=g.user, version=version),
        lambda i: f"{i.offering.name} is upgraded to version {i.version.version}; its next run uses it.",
    )
