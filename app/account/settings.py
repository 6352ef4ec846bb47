"""Account pages: the profile, settings (password, personal access tokens) and switching organization."""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, url_for

from app.account.forms import (
    ActionForm, BillingDetailsForm, ChangePasswordForm, OrganizationSwitchForm, TokenCreateForm,
)
from app.account.views import bp
from app.auth.session_user import current_org, login_required, safe_next, sign_in
from app.extensions import db
from app.services import identity, invoices, tokens


@bp.get("/")
@login_required
def profile():
    memberships = identity.memberships_of(db.session, g.user)
    return render_template("account/profile.html", memberships=memberships, org=current_org())


@bp.get("/settings")
@login_required
def settings():
    return _settings_page()


def _settings_page(status: int = 200, **overrides):
    oidc = current_app.config.get("AUTH_BACKEND") == "oidc"
    issuer = (current_app.config.get("KEYCLOAK_ISSUER") or "").rstrip("/")
    context = {
        "oidc": oidc,
        "account_console": f"{issuer}/account" if oidc and issuer else None,
        "password_form": ChangePasswordForm(formdata=None),
        "token_form": TokenCreateForm(formdata=None),
        "action_form": ActionForm(formdata=None),
        "tokens": tokens.list_tokens(db.session, user=g.user),
        "new_token": None,
        "billing_org": current_org(),
        "billing_form": BillingDetailsForm(formdata=None, obj=invoices.get_billing_details(
            db.session, organization_id=current_org().id)),
    }
    context.update(overrides)
    return render_template("account/settings.html", **context), status, {"Cache-Control": "no-store"}


@bp.post("/settings/password")
@login_required
def settings_password():
    if current_app.config.get("AUTH_BACKEND") == "oidc":
        abort(404)
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            identity.change_password(db.session, user=g.user, current=form.current_password.data,
                                     new=form.new_password.data)
        except identity.IdentityError as exc:
            db.session.rollback()
            target = getattr(form, exc.field, None) if exc.field else None
            (target.errors if target is not None else form.form_errors).append(str(exc))
        else:
            db.session.commit()
            sign_in(g.user)  # the session stamp follows the password; other sessions end
            flash("Your password was changed. Other signed-in sessions were signed out.", "success")
            return redirect(url_for("account.settings"), 303)
    return _settings_page(400, password_form=form)


@bp.post("/settings/tokens")
@login_required
def settings_token_create():
    form = TokenCreateForm()
    if form.validate_on_submit():
        days = int(form.expires_in_days.data) if form.expires_in_days.data else None
        try:
            token, secret = tokens.create_token(db.session, user=g.user, name=form.name.data, expires_in_days=days)
        except tokens.TokenError as exc:
            db.session.rollback()
            (getattr(form, exc.field).errors if exc.field and hasattr(form, exc.field) else form.form_errors).append(str(exc))
        else:
            db.session.commit()
            # shown in this response only: never stored in the (signed, not encrypted) session cookie
            return _settings_page(201, new_token={"token": token, "secret": secret})
    return _settings_page(400, token_form=form)


@bp.post("/settings/tokens/<int:token_id>/revoke")
@login_required
def settings_token_revoke(token_id: int):
    if ActionForm().validate_on_submit():
        try:
            token = tokens.revoke_token(db.session, user=g.user, token_id=token_id)
        except tokens.TokenNotFound:
            db.session.rollback()
            abort(404)
        db.session.commit()
        flash(f"Token “{token.name}” revoked. Scripts using it can no longer sign in.", "success")
    return redirect(url_for("account.settings"), 303)


@bp.post("/organization")
@login_required
def organization_switch():
    form = OrganizationSwitchForm()
    target = safe_next(form.next.data, url_for("account.profile"))
    if form.validate_on_submit():
        try:
            org = identity.switch_organization(db.session, user=g.user, organization_id=form.organization_id.data)
        except identity.IdentityError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(f"You are now working in {org.name}.", "success")
    else:
        flash("Choose an organization to switch to.", "error")
    if target.startswith("/account/instances/"):
        target = url_for("account.instances")  # an instance of the old organization would be a 404 now
    return redirect(target, 303)
