"""The operator console: review queue, all offerings, organizations, the audit log."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from app.adapters.commerce.product_sync import get_product_sync
from app.auth.session_user import role_required
from app.extensions import db
from app.forms_flow import act, submit
from app.models import Offering
from app.operator.forms import (
    ActionForm, AuditFilterForm, as_choices, OfferingFilterForm, OrganizationFilterForm, RejectForm,
)
from app.services import offerings as svc
from app.services import audit_text, oversight

bp = Blueprint("operator", __name__)


@bp.before_request
@role_required("operator")
def _operators_only():
    """Every page here needs the operator role (403 for anyone else, sign-in first)."""
    return None


def _offering_or_404(offering_id: int) -> Offering:
    offering = db.session.get(
        Offering, offering_id, options=[selectinload(Offering.plans), selectinload(Offering.versions)]
    )
    if offering is None:
        abort(404)
    return offering


def _flash_store_update() -> None:
    """An approval or archive queued a store sync (see offerings.queue_store_sync): say so."""
    if get_product_sync() is not None:
        flash("The store will be updated in a moment; a failure shows on this offering and is retried.", "info")


def _sync_now(offering: Offering) -> None:
    """The operator's "Sync to the store now": push the offering inside this request and say how it went.
    A failure is recorded on the offering and retried by the periodic sync-saleor sweep."""
    sync = get_product_sync()
    ok = svc.sync_offering(db.session, offering=offering, sync=sync, actor=g.user)
    db.session.commit()
    if ok:
        flash("The store was updated.", "success")
    else:
        flash("The store could not be updated; it will be retried. See the offering's sync error.", "warning")


@bp.get("/")
def dashboard():
    return render_template(
        "operator/dashboard.html", queue=svc.review_queue(db.session), counts=oversight.status_counts(db.session),
        sync_failures=oversight.sync_failures(db.session), action_form=ActionForm(),
    )


@bp.get("/offerings")
def offerings():
    form = OfferingFilterForm(request.args)
    valid = form.validate()
    result = oversight.list_offerings(
        db.session, status=form.status.data or None if valid else None, q=form.q.data if valid else None,
        sync=form.sync.data or None if valid else None, page=request.args.get("page", 1, type=int),
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("operator/offerings.html", form=form, result=result, args=args), (200 if valid else 400)


def _review_page(offering: Offering, reject_form: RejectForm | None = None, status: int = 200):
    return render_template(
        "operator/offering_review.html", offering=offering, action_form=ActionForm(),
        reject_form=reject_form or RejectForm(), description_html=svc.render_description(offering.description_md),
        latest=svc.latest_version(offering), sync_enabled=current_app.config.get("COMMERCE_BACKEND") == "saleor",
        history=oversight.search_audit(db.session, target_type="offering", target_id=str(offering.id),
                                       per_page=20).items, describe=audit_text.describe,
    ), status


@bp.get("/offerings/<int:offering_id>")
def offering_review(offering_id: int):
    return _review_page(_offering_or_404(offering_id))


@bp.post("/offerings/<int:offering_id>/approve")
def offering_approve(offering_id: int):
    offering = _offering_or_404(offering_id)
    if not act(ActionForm(), lambda: svc.approve(db.session, offering=offering, actor=g.user)).ok:
        return redirect(url_for("operator.offering_review", offering_id=offering_id))
    flash(f"“{offering.name}” is published.", "success")
    _flash_store_update()
    return redirect(url_for("operator.dashboard"))


@bp.post("/offerings/<int:offering_id>/reject")
def offering_reject(offering_id: int):
    offering = _offering_or_404(offering_id)
    form = RejectForm()
    done = submit(form, lambda: svc.reject(db.session, offering=offering, actor=g.user, reason=form.reason.data))
    if not done.ok:
        return _review_page(_offering_or_404(offering_id), form, done.status)  # looked up again after a rollback
    flash(f"“{offering.name}” went back to the seller with your note.", "success")
    return redirect(url_for("operator.dashboard"))


@bp.post("/offerings/<int:offering_id>/archive")
def offering_archive(offering_id: int):
    offering = _offering_or_404(offering_id)
    if act(ActionForm(), lambda: svc.archive(db.session, offering=offering, actor=g.user)).ok:
        flash(f"“{offering.name}” is archived.", "success")
        if offering.saleor_product_id:
            _flash_store_update()
    return redirect(url_for("operator.offering_review", offering_id=offering_id))


@bp.post("/offerings/<int:offering_id>/sync")
def offering_sync(offering_id: int):
    offering = _offering_or_404(offering_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if get_product_sync() is None:
        flash("The store sync runs only with the Saleor commerce backend.", "error")
    elif offering.status not in ("published", "archived"):
        flash("Only published or archived offerings are synced to the store.", "error")
    else:
        _sync_now(offering)
    return redirect(url_for("operator.offering_review", offering_id=offering_id))


@bp.get("/organizations")
def organizations():
    form = OrganizationFilterForm(request.args)
    valid = form.validate()
    result = oversight.list_organizations(
        db.session, q=form.q.data if valid else None, page=request.args.get("page", 1, type=int)
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("operator/organizations.html", form=form, result=result, args=args), (200 if valid else 400)


@bp.get("/audit")
def audit_log():
    form = AuditFilterForm(request.args)
    form.action.choices = as_choices([("", "Any action")] + [(a, a) for a in oversight.audit_actions(db.session)])
    valid = form.validate()
    filters = {}
    if valid:
        filters = dict(
            action=form.action.data or None, actor=form.actor.data or None, organization_id=form.organization.data,
            target_type=form.target_type.data or None, target_id=form.target_id.data or None,
            start=form.start.data, end=form.end.data,
        )
    result = oversight.search_audit(db.session, page=request.args.get("page", 1, type=int), **filters)
    org_names = oversight.organization_names(db.session, {e.organization_id for e in result.items if e.organization_id})
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "operator/audit.html", form=form, result=result, args=args, org_names=org_names,
        describe=audit_text.describe,
    ), (200 if valid else 400)
