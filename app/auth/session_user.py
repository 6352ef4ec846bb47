"""Who is signed in: the session cookie names a server-side session record (see
identity.start_session) that sign-out deletes; guards for sign-in and roles."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.extensions import db
from app.models import Organization, User
from app.services import identity

SESSION_TOKEN_KEY = "sid"
DEVICE_COOKIE = "dm_device"
DEVICE_COOKIE_DAYS = 365


def session_lifetimes() -> tuple[timedelta, timedelta]:
    """(idle timeout, absolute lifetime) of a signed-in session, from the configuration."""
    config = current_app.config
    return timedelta(seconds=config["SESSION_IDLE_TIMEOUT"]), timedelta(seconds=config["SESSION_MAX_LIFETIME"])


def load_current_user() -> None:
    g.user = None
    g.org = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    token = session.get(SESSION_TOKEN_KEY)
    idle, lifetime = session_lifetimes()
    # the session record, its user and what the header needs of them: one query
    signed_in = identity.resume_signed_in(db.session, token=token, idle_timeout=idle, max_lifetime=lifetime) \
        if isinstance(token, str) else None
    if db.session.dirty or db.session.deleted:
        db.session.commit()  # the idle deadline moved on (at most once a minute), or an ended session's record went
    if signed_in is None or signed_in.record.user_id != user_id:
        session.clear()  # signed out, elsewhere too, timed out, or a cookie from before server-side sessions
        return
    user = signed_in.user
    # a password change or deactivation ends other sessions: the stamp must still match
    if not user.is_active or session.get("stamp") != session_stamp(user):
        session.clear()
        return
    g.user = user
    g.membership_count = signed_in.membership_count


def membership_count() -> int:
    """How many organizations the signed-in user belongs to: as loaded with the user for a page (GET or
    HEAD), counted again after a request that may have changed it."""
    if request.method in ("GET", "HEAD") and g.get("membership_count") is not None:
        return g.membership_count
    return identity.count_memberships(db.session, user_id=g.user.id)


def current_org() -> Organization | None:
    """The signed-in user's current organization (loaded on first use)."""
    if g.get("user") is None:
        return None
    if g.get("org") is None:
        g.org = identity.current_organization(db.session, g.user)
    return g.org


def session_stamp(user: User) -> str:
    return (user.password_hash or user.oidc_subject or "")[-16:]


def sign_in(user: User) -> None:
    """Start a new server-side session for `user` (ending the browser's previous one) and commit it."""
    cart_token = session.get("cart_token")
    previous = session.get(SESSION_TOKEN_KEY)
    if isinstance(previous, str):
        identity.end_session(db.session, token=previous)
    idle, lifetime = session_lifetimes()
    token = identity.start_session(db.session, user_id=user.id, idle_timeout=idle, max_lifetime=lifetime)
    db.session.commit()
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["stamp"] = session_stamp(user)
    session[SESSION_TOKEN_KEY] = token
    if cart_token:
        session["cart_token"] = cart_token  # merged into the user's cart by the cart service
    g.user = user
    g.pop("membership_count", None)  # loaded for the browser's previous user, if any


def sign_out() -> None:
    """End this browser's session on the server too: a copy of the cookie no longer signs anyone in."""
    token = session.get(SESSION_TOKEN_KEY)
    if isinstance(token, str):
        identity.end_session(db.session, token=token)
        db.session.commit()
    session.clear()
    g.user = None
    g.pop("membership_count", None)


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="known-device")


def known_device_user_id() -> int | None:
    """The account this browser signed in to before (its known-device cookie), if any."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        value = _device_serializer().loads(raw, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def remember_device(response, user: User):
    """Mark this browser as one that signed in to `user` (spares it the account-wide sign-in limit)."""
    response.set_cookie(
        DEVICE_COOKIE, _device_serializer().dumps(user.id), max_age=DEVICE_COOKIE_DAYS * 86400,
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False), httponly=True, samesite="Lax",
    )
    return response


def is_safe_next(target: str | None) -> bool:
    """Only same-site relative paths: no scheme, no host, no backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str = "/") -> str:
    return target if is_safe_next(target) else default


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("auth.login", next=target))
        return view(*args, **kwargs)

    return wrapped


def role_required(*roles: str):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not any(g.user.has_role(role) for role in roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
