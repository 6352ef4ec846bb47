"""Who may call a control-plane endpoint.

Each view declares the kinds of caller it accepts::

    @bp.get("/wallets/me")
    @api_auth("session", "bearer", "pat")
    def wallet_me(): ...

Kinds:
- ``session``: the browser's signed session cookie, same origin; unsafe methods must carry the CSRF
  token in ``X-CSRFToken`` (the cp blueprint is exempt from the global CSRFProtect, so this is
  the only CSRF check its views get, and it applies only to cookie callers).
- ``bearer``: ``Authorization: Bearer <JWT>`` access tokens of the OIDC provider (AUTH_BACKEND=oidc),
  verified through the identity port.
- ``pat``: ``Authorization: Bearer dmp_...`` personal access tokens.
- ``api_key``: ``X-API-Key: dmk_...`` instance keys; the view must only let a key act on its own
  instance (``g.api_key.instance_id``).
- ``service``: ``Authorization: Bearer <GATEWAY_SERVICE_TOKEN>``, the run gateway, compared in
  constant time.

On success the decorator sets ``g.api_kind``, ``g.api_user`` (None for keys and the service),
``g.api_org`` (the current organization: for people the one named by ``X-Organization-Id`` when
they are a member of it, else their current one; for a key its instance's organization; None for
the service) and ``g.api_key``. A missing or invalid credential gets 401; a valid credential of a
kind the endpoint does not accept, or a missing CSRF token, gets 403. Both are problem+json.
"""
from __future__ import annotations

import hmac
from functools import wraps
from urllib.parse import urlsplit

from flask import current_app, g, request
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy import select
from wtforms import ValidationError

from app.adapters import identity as identity_port
from app.extensions import db
from app.models import Organization, User
from app.routing import MAX_ID
from app.services import identity, keys, tokens
from app.web import problem

KINDS = ("session", "bearer", "pat", "api_key", "service")
USER_KINDS = ("session", "bearer", "pat")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ORG_HEADER = "X-Organization-Id"
API_KEY_HEADER = "X-API-Key"
CSRF_HEADERS = ("X-CSRFToken", "X-CSRF-Token")

_LABELS = {
    "session": "a signed-in browser session",
    "bearer": "an OIDC access token",
    "pat": "a personal access token",
    "api_key": "an instance API key (X-API-Key)",
    "service": "the gateway service token",
}


class AuthFailure(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def _unauthorized(detail: str) -> AuthFailure:
    return AuthFailure(401, "Unauthorized", detail)


def _forbidden(detail: str) -> AuthFailure:
    return AuthFailure(403, "Forbidden", detail)


def api_auth(*kinds: str, optional: bool = False):
    """Accept only callers of these kinds (see the module docstring). With `optional`, a request that
    carries no credential at all is let through anonymously (g.api_kind is None); one that carries a
    credential is still checked."""
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown caller kinds: {sorted(unknown)}")

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            try:
                authenticate_request(kinds, optional=optional)
            except AuthFailure as failure:
                response = problem(failure.status, failure.title, failure.detail, **failure.extra)
                if failure.status == 401:
                    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            return view(*args, **kwargs)

        wrapped.api_auth_kinds = tuple(kinds)
        wrapped.api_auth_optional = optional
        return wrapped

    return decorator


def authenticate_request(kinds: tuple[str, ...], *, optional: bool = False) -> None:
    """Identify the caller, check it is one of `kinds`, and fill in g.api_*; raise AuthFailure if not."""
    g.api_kind = g.api_user = g.api_org = g.api_key = None
    authorization = request.headers.get("Authorization")
    api_key_header = request.headers.get(API_KEY_HEADER)
    if authorization is not None:
        kind, user, key = _from_authorization(authorization)
    elif api_key_header is not None:
        kind, user, key = "api_key", None, _from_api_key(api_key_header)
    elif g.get("user") is not None:
        kind, user, key = "session", g.user, None
    elif optional:
        return
    else:
        raise _unauthorized("Sign in, or send one of: " + ", ".join(_LABELS[k] for k in kinds) + ".")

    if kind not in kinds:
        raise _forbidden(f"This endpoint does not accept {_LABELS[kind]}; it accepts "
                         + ", ".join(_LABELS[k] for k in kinds) + ".")
    if kind == "session":
        _check_csrf()
    g.api_kind, g.api_user, g.api_key = kind, user, key
    if user is not None:
        g.api_org = _organization_for(user)
    elif key is not None:
        g.api_org = key.instance.organization
    if db.session.new or db.session.dirty:  # last-used stamps, a first sign-in, a first current organization
        db.session.commit()


def _from_authorization(header: str):
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise _unauthorized("Send the credential as 'Authorization: Bearer <token>'.")
    if credential.startswith(tokens.PAT_PREFIX):
        token = tokens.authenticate_token(db.session, credential)
        if token is None:
            raise _unauthorized("The personal access token is not valid (wrong, expired or revoked).")
        return "pat", token.user, None
    service_token = current_app.config.get("GATEWAY_SERVICE_TOKEN") or ""
    if service_token and hmac.compare_digest(credential.encode("utf-8"), service_token.encode("utf-8")):
        return "service", None, None
    return "bearer", _from_access_token(credential), None


def _from_access_token(credential: str):
    """The person an identity-provider access token belongs to (created on their first call, as on a
    first sign-in); the provider owns their roles, so a change there is copied here."""
    if current_app.config.get("AUTH_BACKEND") != "oidc":
        raise _unauthorized("Bearer access tokens are accepted only with single sign-on; "
                            "use a personal access token.")
    try:
        claims = identity_port.verify_access_token(credential)
        profile = identity_port.get_identity().profile_from_claims(claims)
    except identity_port.TokenError as exc:  # ProviderUnavailable included, with status 503
        raise AuthFailure(exc.status, "Unauthorized" if exc.status == 401 else "Service Unavailable",
                          str(exc)) from None
    user = db.session.scalar(select(User).where(User.oidc_subject == profile.subject))
    if user is None or user.roles != " ".join(sorted(set(profile.roles))):
        try:
            user = identity.upsert_oidc_user(
                db.session, subject=profile.subject, email=profile.email, name=profile.name,
                roles=list(profile.roles), email_verified=profile.email_verified,
            )
        except identity.IdentityError as exc:
            db.session.rollback()
            raise _unauthorized(str(exc)) from None
        db.session.commit()  # the account exists from the first call, whatever the endpoint does next
    if not user.is_active:
        raise _unauthorized("This account is disabled.")
    return user


def _from_api_key(secret: str):
    key = keys.authenticate_api_key(db.session, secret.strip())
    if key is None:
        raise _unauthorized("The API key is not valid (wrong or revoked).")
    return key


def _check_csrf() -> None:
    if request.method in SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if f"{parts.scheme}://{parts.netloc}" != request.host_url.rstrip("/"):
            raise _forbidden("Cross-origin requests with a session cookie are refused.")
    token = next((request.headers[h] for h in CSRF_HEADERS if request.headers.get(h)), None)
    try:
        validate_csrf(token)
    except (ValidationError, CSRFError):
        raise _forbidden("Send the page's CSRF token in the X-CSRFToken header.") from None


def _organization_for(user) -> Organization:
    raw = request.headers.get(ORG_HEADER)
    if raw is None:
        return identity.current_organization(db.session, user)
    raw = raw.strip()  # sent but empty is a mistake too, not a request for the default
    # ASCII digits only: str.isdigit() also accepts "²" and other digits int() cannot read
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise AuthFailure(422, "Unprocessable Content", f"{ORG_HEADER} must be an organization id.",
                          errors=[{"field": ORG_HEADER, "message": "Send an organization id (a whole number)."}])
    organization_id = int(raw)
    # a number no organization can have (the ids are 32-bit) never reaches the database
    if not 1 <= organization_id <= MAX_ID or identity.membership(
            db.session, user=user, organization_id=organization_id) is None:
        raise AuthFailure(404, "Not Found", "Organization not found.")
    return db.session.get(Organization, organization_id)


def actor_label() -> str:
    """How the current caller appears in the audit log."""
    if g.get("api_user") is not None:
        return g.api_user.email
    if g.get("api_key") is not None:
        return f"api-key:{g.api_key.prefix}"
    if g.get("api_kind") == "service":
        return "gateway"
    return "anonymous"


def is_operator() -> bool:
    user = g.get("api_user")
    return user is not None and user.has_role("operator")
