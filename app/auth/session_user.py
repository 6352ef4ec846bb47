"""Who is signed in: the session cookie holds the user id; guards for sign-in and roles."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for

from app.extensions import db
from app.models import Organization, User
from app.services import identity


def load_current_user() -> None:
    g.user = None
    g.org = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    user = db.session.get(User, user_id)
    # a password change or deactivation ends other sessions: the stamp must still match
    if user is None or not user.is_active or session.get("stamp") != session_stamp(user):
        session.clear()
        return
    g.user = user


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
    cart_token = session.get("cart_token")
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["stamp"] = session_stamp(user)
    if cart_token:
        session["cart_token"] = cart_token  # merged into the user's cart by the cart service
    g.user = user


def sign_out() -> None:
    session.clear()
    g.user = None


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
