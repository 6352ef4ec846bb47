"""Sign-up, sign-in and sign-out with local accounts (the OIDC flow lives beside it)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from app.auth.forms import LoginForm, SignupForm
from app.auth.session_user import (
    known_device_user_id,
    login_required,
    remember_device,
    safe_next,
    sign_in,
    sign_out,
)
from app.extensions import db
from app.services import audit, identity

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_app.config["AUTH_BACKEND"] == "oidc":
        return redirect(url_for("auth.oidc_login", next=request.args.get("next")))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    status, headers = 200, {}
    if form.validate_on_submit():
        policy = identity.ThrottlePolicy(
            max_failures=current_app.config["LOGIN_MAX_FAILURES"],
            lock_seconds=current_app.config["LOGIN_LOCK_SECONDS"],
            slowdown_seconds=current_app.config["LOGIN_SLOWDOWN_SECONDS"],
        )
        try:
            attempt = identity.begin_sign_in(
                db.session, email=form.email.data, remote_addr=request.remote_addr or "unknown",
                known_user_id=known_device_user_id(), policy=policy,
            )
            db.session.commit()  # counted before the password is checked: parallel attempts see each other
            user = identity.finish_sign_in(db.session, attempt=attempt, password=form.password.data, policy=policy)
        except identity.ThrottledError as exc:
            db.session.commit()
            form.form_errors.append(str(exc))
            status, headers = 429, {"Retry-After": str(exc.retry_after)}
        except identity.IdentityError as exc:
            db.session.commit()  # keep the failure count
            form.form_errors.append(str(exc))
            status = 401
        else:
            db.session.commit()
            sign_in(user)
            _after_sign_in(user)
            flash(f"Welcome back, {user.name}.", "success")
            return remember_device(redirect(safe_next(form.next.data, url_for("storefront.home"))), user)
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status, headers


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
    id_token = session.get("oidc_id_token")
    sign_out()
    if current_app.config["AUTH_BACKEND"] == "oidc" and id_token:
        from app.auth import oidc
        return redirect(oidc.end_session_url(id_token))
    flash("You have signed out.", "info")
    return redirect(url_for("storefront.home"))


@bp.post("/sessions/end-all")
@login_required
def sign_out_everywhere():
    """End every signed-in session of this account, this browser's included (account settings)."""
    user = g.user
    ended = identity.end_user_sessions(db.session, user=user)
    audit.record(db.session, action="user.signed_out_everywhere", target_type="user", target_id=user.id,
                 actor=user, data={"sessions": ended})
    db.session.commit()
    sign_out()
    flash("You were signed out everywhere. Sign in again to continue.", "info")
    # with single sign-on the sign-in page would sign this browser straight back in
    oidc = current_app.config["AUTH_BACKEND"] == "oidc"
    return redirect(url_for("storefront.home" if oidc else "auth.login"), 303)


@bp.app_template_global()
def signed_in_session_count() -> int:
    """How many browsers the signed-in user is signed in on (for the account settings page)."""
    if g.get("user") is None:
        return 0
    return identity.count_sessions(db.session, user=g.user)


def _after_sign_in(user) -> None:
    """Hooks that run after any successful sign-in (cart merge)."""
    for hook in current_app.extensions.get("after_sign_in", []):
        hook(user)
    db.session.commit()
