"""Publisher applications: the operator approves a new publisher (its people get the seller role) or declines
it with a reason the applicant is mailed."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for

from app.extensions import db
from app.forms_flow import act, submit
from app.models import PublisherProfile
from app.operator.forms import ActionForm, DeclinePublisherForm
from app.operator.views import bp
from app.services import publishers


def _profile_or_404(profile_id: int) -> PublisherProfile:
    profile = db.session.get(PublisherProfile, profile_id)
    if profile is None:
        abort(404)
    return profile


def _page(decline_forms=None, status: int = 200):
    pending = publishers.applications(db.session)
    decided = [p for p in publishers.applications(db.session, status=None) if p.status != "pending"][-20:][::-1]
    forms = {p.id: DeclinePublisherForm(prefix=f"p{p.id}") for p in pending}
    forms.update(decline_forms or {})
    return render_template(
        "operator/publishers.html", pending=pending, decided=decided, decline_forms=forms, action_form=ActionForm(),
        acceptances={p.id: publishers.acceptances_of(db.session, organization_id=p.organization_id) for p in pending},
    ), status


@bp.get("/publishers")
def publisher_applications():
    return _page()


@bp.post("/publishers/<int:profile_id>/approve")
def publisher_approve(profile_id: int):
    profile = _profile_or_404(profile_id)
    if act(ActionForm(), lambda: publishers.decide_application(db.session, profile=profile, actor=g.user,
                                                               approve=True)).ok:
        flash(f"{profile.organization.name} is approved; its people can now submit offerings.", "success")
    return redirect(url_for("operator.publisher_applications"))


@bp.post("/publishers/<int:profile_id>/decline")
def publisher_decline(profile_id: int):
    profile = _profile_or_404(profile_id)
    form = DeclinePublisherForm(prefix=f"p{profile.id}")
    done = submit(form, lambda: publishers.decide_application(db.session, profile=profile, actor=g.user,
                                                              approve=False, reason=form.reason.data))
    if done.ok:
        flash(f"{profile.organization.name} was declined; the applicant has been told why.", "success")
        return redirect(url_for("operator.publisher_applications"))
    return _page({profile.id: form}, status=done.status)
