"""Sign-in through the OpenID provider (AUTH_BACKEND=oidc), on the auth blueprint.

GET /auth/oidc/login starts the authorization code flow (PKCE, state, nonce) and keeps a safe `next`;
GET /auth/oidc/callback finishes it, creates or updates the user from the provider's claims and
signs them in. Sign-out (app/auth/views.py) sends the browser to `end_session_url(id_token)`.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from sqlalchemy.exc import IntegrityError

from app.adapters.identity import (
    ExternalProfile,
    LoginCancelled,
    LoginError,
    ProviderUnavailable,
    RedirectLogin,
    get_identity,
)
from app.auth.session_user import safe_next, sign_in
from app.auth.views import _after_sign_in, bp
from app.extensions import db
from app.models import User, utcnow
from app.services import identity

log = logging.getLogger(__name__)

ID_TOKEN_KEY = "oidc_id_token"
UNAVAILABLE = "The sign-in service is not reachable right now. Try again in a minute."


@bp.get("/oidc/login")
def oidc_login():
    port = _redirect_login()
    next_url = safe_next(request.args.get("next"), "")
    if g.get("user") is not None:
        return redirect(next_url or url_for("storefront.home"))
    try:
        response = port.begin_login(redirect_uri=public_url("auth.oidc_callback"), next_url=next_url)
    except ProviderUnavailable:
        abort(503, description=UNAVAILABLE)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/oidc/callback")
def oidc_callback():
    port = _redirect_login()
    try:
        result = port.finish_login()
    except LoginCancelled as exc:
        flash(str(exc), "info")
        return redirect(url_for("storefront.home"))
    except ProviderUnavailable:
        abort(503, description=UNAVAILABLE)
    except LoginError as exc:
        abort(400, description=str(exc))
    user = _user_for(result.profile)
    sign_in(user)
    session[ID_TOKEN_KEY] = result.id_token
    _after_sign_in(user)
    flash(f"Welcome, {user.name}.", "success")
    target = safe_next(result.next_url, "")
    # the header's "Sign in" link passes the page it was on; from the home page that is no real
    # preference, so sellers still land on their dashboard
    if target in ("", url_for("storefront.home")):
        target = landing_url(user)
    response = redirect(target)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_app_request
def _let_sign_out_reach_the_provider() -> None:
    """Signing out is a form POST that the app redirects to the provider's end-session endpoint.
    Browsers check that redirect against the page's CSP `form-action`, which is 'self' only, and
    abort the navigation (Chromium: net::ERR_ABORTED), so the provider's origin is allowed there."""
    port = current_app.extensions.get("identity.oidc")
    if port is not None:
        parts = urlsplit(port.issuer)
        g.csp_form_action_extra = f"{parts.scheme}://{parts.netloc}"


def end_session_url(id_token: str) -> str:
    """Where sign-out sends the browser: the provider's end-session endpoint with id_token_hint and
    post_logout_redirect_uri (our home page), or our home page when the provider cannot be asked."""
    port = get_identity()
    if not isinstance(port, RedirectLogin):
        return url_for("storefront.home")
    try:
        return port.end_session_url(id_token=id_token, post_logout_redirect_uri=public_url("storefront.home"))
    except ProviderUnavailable:
        log.warning("signed out locally only: the identity provider could not be asked")
        return url_for("storefront.home")


def landing_url(user: User) -> str:
    """Where a sign-in without `next` lands: sellers on their dashboard (when that area exists)."""
    if user.has_role("seller") and "seller.dashboard" in current_app.view_functions:
        return url_for("seller.dashboard")
    return url_for("storefront.home")


def public_url(endpoint: str) -> str:
    """An absolute URL the provider sends the browser back to (PUBLIC_BASE_URL when set)."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}{url_for(endpoint)}" if base else url_for(endpoint, _external=True)


def _redirect_login() -> RedirectLogin:
    port = get_identity()
    if not isinstance(port, RedirectLogin):
        abort(404)
    return port


def _user_for(profile: ExternalProfile) -> User:
    try:
        return _upsert_user(profile)
    except IntegrityError:
        # two first sign-ins of one person at once both tried to create the user; the loser of
        # that race hit a unique constraint and now finds the winner's row
        db.session.rollback()
        return _upsert_user(profile)


def _upsert_user(profile: ExternalProfile) -> User:
    try:
        user = identity.upsert_oidc_user(
            db.session, subject=profile.subject, email=profile.email, name=profile.name,
            roles=list(profile.roles), email_verified=profile.email_verified,
        )
    except identity.IdentityError as exc:
        db.session.rollback()
        abort(403, description=str(exc))
    # the provider confirms addresses: trust its email_verified on every sign-in
    if not profile.email_verified:
        user.email_verified_at = None
    elif user.email_verified_at is None:
        user.email_verified_at = utcnow()
    db.session.commit()
    return user
