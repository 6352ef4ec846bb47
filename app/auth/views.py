"""Sign-up, sign-in and sign-out with local accounts (the OIDC flow lives beside it)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from app.auth.forms import LoginForm, SignupForm
from app.auth.session_user import safe_next, sign_in, sign_out
from app.extensions import db
from app.services import identity

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_app.config["AUTH_BACKEND"] == "oidc":
        return redirect(url_for("auth.oidc_login", next=request.args.get("next")))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    status = 200
    if form.validate_on_submit():
        try:
            user = identity.authenticate(
                db.session, email=form.email.data, password=form.password.data,
                remote_addr=request.remote_addr or "unknown",
                max_failures=current_app.config["LOGIN_MAX_FAILURES"],
                lock_seconds=current_app.config["LOGIN_LOCK_SECONDS"],
            )
        except identity.ThrottledError as exc:
            db.session.commit()
            form.form_errors.append(str(exc))
            status = 429
        except identity.IdentityError as exc:
            db.session.commit()  # keep the failure count
            form.form_errors.append(str(exc))
            status = 401
        else:
            db.session.commit()
            sign_in(user)
            _after_sign_in(user)
            flash(f"Welcome back, {user.name}.", "success")
            return redirect(safe_next(form.next.data, url_for("storefront.home")))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_app.config["AUTH_BACKEND"] == "oidc":
        return redirect(url_for("auth.oidc_login", next=request.args.get("next")))
    form = SignupForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    status = 200
    if form.validate_on_submit():
        from flask import session
        from app.services import recovery

        try:  # the same answer whether or not the address has an account (its owner is mailed instead)
            recovery.sign_up(db.session, email=form.email.data, name=form.name.data, password=form.password.data,
                             secret_key=current_app.config["SECRET_KEY"],
                             verify_hours=current_app.config["EMAIL_VERIFY_HOURS"],
                             next_url=safe_next(form.next.data, "") or None)
        except identity.IdentityError as exc:
            db.session.rollback()
            field = getattr(form, exc.field, None) if exc.field else None
            (field.errors if field is not None else form.form_errors).append(str(exc))
            status = 400
        else:
            db.session.commit()
            session["signup_email"] = identity.normalize_email(form.email.data)
            return redirect(url_for("auth.signup_sent"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/signup.html", form=form), status


@bp.post("/logout")
def logout():
    id_token = None
    from flask import session
    id_token = session.get("oidc_id_token")
    sign_out()
    if current_app.config["AUTH_BACKEND"] == "oidc" and id_token:
        from app.auth import oidc
        return redirect(oidc.end_session_url(id_token))
    flash("You have signed out.", "info")
    return redirect(url_for("storefront.home"))


def _after_sign_in(user) -> None:
    """Hooks that run after any successful sign-in (cart merge)."""
    for hook in current_app.extensions.get("after_sign_in", []):
        hook(user)
    db.session.commit()
