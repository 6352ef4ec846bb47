"""Seller webhooks in the seller console: the selected publisher's endpoints (register, edit, rotate the
signing secret, remove) and each endpoint's delivery log with a Resend button. The rules and the
signing are in app.services.seller_webhooks."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_wtf import FlaskForm

from app.extensions import db
from app.forms_flow import act
from app.seller.forms import WebhookEndpointForm
from app.seller.views import bp, publishers, selected_publisher
from app.services import organizations, seller_webhooks
from app.services.errors import ServiceError


class _Button(FlaskForm):
    """A POST button: the CSRF token is its only field."""


def _put_error(form, exc: ServiceError) -> None:
    target = getattr(form, exc.field, None) if exc.field else None
    (target.errors if target is not None and hasattr(target, "errors") else form.form_errors).append(str(exc))


def _list_page(status: int = 200, **overrides):
    choices = publishers()
    publisher = selected_publisher(choices)
    membership = organizations.membership(db.session, user=g.user, organization_id=publisher.id)
    manager = membership is not None and membership.role in organizations.MANAGER_ROLES
    context = {
        "publishers": choices, "publisher": publisher, "manager": manager,
        "endpoints": seller_webhooks.list_endpoints(db.session, user=g.user, organization_id=publisher.id)
        if manager else [],
        "form": WebhookEndpointForm(formdata=None), "new_secret": None, "events": seller_webhooks.EVENTS,
    }
    context.update(overrides)
    return render_template("seller/webhooks.html", **context), status, {"Cache-Control": "no-store"}


@bp.get("/webhooks")
def webhooks():
    return _list_page()


@bp.post("/webhooks")
def webhook_create():
    form = WebhookEndpointForm()
    publisher = selected_publisher(publishers())
    if form.validate_on_submit():
        try:
            endpoint, secret = seller_webhooks.create_endpoint(
                db.session, user=g.user, organization_id=publisher.id, url=form.url.data,
                events=form.events.data, description=form.description.data or "",
            )
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            db.session.commit()
            # shown in this response only, never stored in the session cookie
            return _list_page(201, new_secret={"endpoint": endpoint, "secret": secret})
    return _list_page(400, form=form)


def _endpoint_or_404(endpoint_id: int):
    try:
        return seller_webhooks.find_endpoint(db.session, user=g.user, endpoint_id=endpoint_id)
    except seller_webhooks.EndpointNotFound:
        abort(404)


def _detail_page(endpoint_id: int, status: int = 200, **overrides):
    endpoint = _endpoint_or_404(endpoint_id)
    org_id = endpoint.organization_id
    form = WebhookEndpointForm(formdata=None, url=endpoint.url, description=endpoint.description,
                               events=list(endpoint.events or ()), is_active=endpoint.is_active)
    context = {
        "endpoint": endpoint, "publisher": endpoint_publisher(endpoint), "publishers": publishers(),
        "form": form, "button": _Button(formdata=None), "new_secret": None,
        "log": seller_webhooks.delivery_log(db.session, user=g.user, organization_id=org_id, endpoint_id=endpoint.id),
        "waiting": seller_webhooks.waiting_deliveries(db.session, user=g.user, organization_id=org_id,
                                                       endpoint_id=endpoint.id),
    }
    context.update(overrides)
    return render_template("seller/webhook_detail.html", **context), status, {"Cache-Control": "no-store"}


def endpoint_publisher(endpoint):
    return next((p for p in publishers() if p.id == endpoint.organization_id), None)


@bp.get("/webhooks/<int:endpoint_id>")
def webhook_detail(endpoint_id: int):
    return _detail_page(endpoint_id)


@bp.post("/webhooks/<int:endpoint_id>/update")
def webhook_update(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    form = WebhookEndpointForm()
    if form.validate_on_submit():
        try:
            seller_webhooks.update_endpoint(
                db.session, user=g.user, organization_id=endpoint.organization_id, endpoint_id=endpoint.id,
                url=form.url.data, events=form.events.data, is_active=form.is_active.data,
                description=form.description.data or "",
            )
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            db.session.commit()
            flash("Endpoint saved.", "success")
            return redirect(url_for("seller.webhook_detail", endpoint_id=endpoint_id), 303)
    return _detail_page(endpoint_id, 400, form=form)


@bp.post("/webhooks/<int:endpoint_id>/rotate")
def webhook_rotate(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    if not _Button().validate_on_submit():
        abort(400)
    try:
        _, secret = seller_webhooks.rotate_secret(db.session, user=g.user, organization_id=endpoint.organization_id,
                                                  endpoint_id=endpoint.id)
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("seller.webhook_detail", endpoint_id=endpoint_id), 303)
    db.session.commit()
    return _detail_page(endpoint_id, 200, new_secret=secret)


@bp.post("/webhooks/<int:endpoint_id>/delete")
def webhook_delete(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    url = endpoint.url
    done = act(_Button(), lambda: seller_webhooks.delete_endpoint(
        db.session, user=g.user, organization_id=endpoint.organization_id, endpoint_id=endpoint.id))
    if done.ok:
        flash(f"Endpoint {url} removed; no more events go there.", "success")
        return redirect(url_for("seller.webhooks"), 303)
    return redirect(url_for("seller.webhook_detail", endpoint_id=endpoint_id), 303)


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
def webhook_resend(endpoint_id: int, delivery_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    done = act(_Button(), lambda: seller_webhooks.resend_delivery(
        db.session, user=g.user, organization_id=endpoint.organization_id, delivery_id=delivery_id,
        endpoint_id=endpoint.id))
    if done.ok:
        flash("The event was queued to be sent again.", "success")
    return redirect(url_for("seller.webhook_detail", endpoint_id=endpoint_id), 303)
