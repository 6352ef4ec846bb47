"""Accounts by mail (local accounts): forgotten password, email confirmation, resending the link.

With AUTH_BACKEND=oidc the identity provider does all of this; these pages send people there.
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from app.auth.session_user import login_required, safe_next, sign_out
from app.auth.views import bp
from app.extensions import db
from app.services import recovery


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), Email()])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=200)],
                             description="At least 10 characters.")
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")])


class ConfirmEmailForm(FlaskForm):
    next = HiddenField()


class ResendForm(FlaskForm):
    next = HiddenField()


def _local_only() -> None:
    if current_app.config["AUTH_BACKEND"] == "oidc":
        abort(404)


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


@bp.route("/password/forgot", methods=["GET", "POST"])
def password_forgot():
    _local_only()
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        recovery.request_password_reset(db.session, email=form.email.data, secret_key=_secret(),
                                        minutes=current_app.config["PASSWORD_RESET_MINUTES"])
        db.session.commit()
        # the same page whether or not the address has an account
        return render_template("auth/check_inbox.html", email=form.email.data.strip(), reason="reset")
    status = 400 if request.method == "POST" else 200
    return render_template("auth/password_forgot.html", form=form), status


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def password_reset(token: str):
    _local_only()
    max_age = current_app.config["PASSWORD_RESET_MINUTES"] * 60
    try:
        recovery.user_for_reset_token(db.session, token=token, secret_key=_secret(), max_age_seconds=max_age)
    except recovery.RecoveryError as exc:
        return render_template("auth/link_refused.html", message=exc.message, reason="reset"), exc.status
    form = ResetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            recovery.reset_password(db.session, token=token, new_password=form.password.data, secret_key=_secret(),
                                    max_age_seconds=max_age)
        except recovery.RecoveryError as exc:
            db.session.rollback()
            (form.password.errors if exc.field == "password" else form.form_errors).append(exc.message)
            status = 400
        else:
            db.session.commit()
            sign_out()  # this browser too: every session of the account ended with the old password
            flash("Your password was changed and you were signed out everywhere. Sign in with the new password.",
                  "success")
            return redirect(url_for("auth.login"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/password_reset.html", form=form, token=token), status


@bp.get("/signup/check-inbox")
def signup_sent():
    _local_only()
    email = session.get("signup_email")
    if not email:
        return redirect(url_for("auth.signup"))
    return render_template("auth/check_inbox.html", email=email, reason="signup")


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str):
    """GET shows a button, POST confirms: mail scanners that open links must not use the link up."""
    _local_only()
    form = ConfirmEmailForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        return render_template("auth/verify_email.html", form=form, token=token)
    if not form.validate_on_submit():
        return render_template("auth/verify_email.html", form=form, token=token), 400
    max_age = current_app.config["EMAIL_VERIFY_HOURS"] * 3600
    try:
        user = recovery.verify_email(db.session, token=token, secret_key=_secret(), max_age_seconds=max_age)
    except recovery.RecoveryError as exc:
        db.session.rollback()
        return render_template("auth/link_refused.html", message=exc.message, reason="verify"), exc.status
    db.session.commit()
    target = safe_next(form.next.data, url_for("storefront.home"))
    if g.get("user") is not None and g.user.id == user.id:
        flash("Your email address is confirmed. You can start free trials and buy.", "success")
        return redirect(target)
    flash("Your email address is confirmed. Sign in to continue.", "success")
    return redirect(url_for("auth.login", next=target if target != url_for("storefront.home") else None))


@bp.post("/verify/resend")
@login_required
def verify_resend():
    _local_only()
    form = ResendForm()
    target = safe_next(form.next.data, url_for("storefront.home"))
    if not form.validate_on_submit():
        abort(400)
    try:
        recovery.send_verification(db.session, user=g.user, secret_key=_secret(),
                                   hours=current_app.config["EMAIL_VERIFY_HOURS"], next_url=target)
    except recovery.RecoveryError as exc:
        db.session.rollback()
        flash(exc.message, "warning")
        return redirect(target)
    db.session.commit()
    flash(f"We sent a new confirmation link to {g.user.email}.", "success")
    return redirect(target)
