"""Account page: starting a free trial of a published offering."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from app.account.forms import ActionForm
from app.account.views import bp, has_endpoint
from app.auth.session_user import current_org, login_required
from app.extensions import db
from app.services import account, trials


@bp.route("/trials/<slug>", methods=["GET", "POST"])
@login_required
def trial_start(slug: str):
    """POST starts the trial and lands on the console. GET (after signing in from "Try free")
    shows the offer again with its button, since a redirect cannot repeat the POST."""
    offering = account.published_offering(db.session, slug)
    if offering is None:
        abort(404)
    form = ActionForm()
    error = None
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        try:
            instance = trials.start_trial(db.session, user=g.user, organization=current_org(), offering=offering)
        except trials.TrialError as exc:
            db.session.rollback()
            error, status = str(exc), exc.status
        else:
            db.session.commit()
            days = offering.trial_days
            flash(f"Your {days}-day free trial of {offering.name} has started"
                  + (f" with {offering.trial_credits:,} credits" if offering.trial_credits else "")
                  + ". Try it below.", "success")
            return redirect(url_for("account.instance_detail", instance_id=instance.id, _anchor="console"), 303)
    elif request.method == "POST":
        error, status = "Your session expired. Start the trial again.", 400
    claimed = trials.has_claimed(db.session, user=g.user, offering=offering)
    return render_template(
        "account/trial_start.html", offering=offering, form=ActionForm(formdata=None), error=error, claimed=claimed,
        previous=account.trial_instance(db.session, user=g.user, offering=offering) if claimed else None,
        plan=trials.cheapest_plan(offering), org=current_org(),
        product_url=url_for("storefront.product", slug=offering.slug) if has_endpoint("storefront.product") else None,
    ), status
