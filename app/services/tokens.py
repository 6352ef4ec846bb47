"""Personal access tokens: a user's credential for scripts and the API.

A token looks like ``dmp_<id>_<secret>``. Only the ``dmp_<id>`` prefix (to find the row) and a
SHA-256 digest of the whole token are stored; the token itself is shown once, at creation.
The secret part carries 256 bits of randomness, so a fast digest is enough (there is nothing
to brute-force), and the comparison is constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import PersonalAccessToken, User, utcnow
from app.services import audit
from app.services.errors import ServiceError

PAT_PREFIX = "dmp_"
MAX_NAME_LENGTH = 80
MAX_LIFETIME_DAYS = 366
# last_used_at is written at most this often, so a busy script does not write on every request
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenError(ServiceError):
    """A token rule was broken; the message is safe to show."""


class TokenNotFound(TokenError):
    def __init__(self, message: str = "Token not found.") -> None:
        super().__init__(message, status=404)


LOOKUP_HEX_CHARS = 10


def new_secret(kind_prefix: str) -> tuple[str, str]:
    """A fresh credential and its lookup prefix: ("dmx_<id>", "dmx_<id>_<secret>")."""
    lookup = kind_prefix + secrets.token_hex(LOOKUP_HEX_CHARS // 2)
    return lookup, f"{lookup}_{secrets.token_urlsafe(32)}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_secret(secret: str, kind_prefix: str) -> str | None:
    """The lookup prefix of a presented credential, or None when it is not of this kind."""
    end = len(kind_prefix) + LOOKUP_HEX_CHARS
    if not secret.startswith(kind_prefix) or len(secret) > 200 or secret[end:end + 1] != "_":
        return None
    lookup = secret[:end]
    if any(c not in "0123456789abcdef" for c in lookup[len(kind_prefix):]):
        return None
    return lookup


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise TokenError("Give the token a name.", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise TokenError(f"Use at most {MAX_NAME_LENGTH} characters.", field="name")
    return name


def create_token(
    session: Session, *, user: User, name: str, expires_in_days: int | None = None, now: datetime | None = None,
) -> tuple[PersonalAccessToken, str]:
    """A new token for `user`; returns the row and the token, which is never available again."""
    name = clean_name(name)
    now = now or utcnow()
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
            raise TokenError(f"Choose between 1 and {MAX_LIFETIME_DAYS} days.", field="expires_in_days")
        expires_at = now + timedelta(days=expires_in_days)
    lookup, secret = new_secret(PAT_PREFIX)
    token = PersonalAccessToken(
        user_id=user.id, name=name, prefix=lookup, token_hash=digest(secret), expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(session, action="token.created", target_type="personal_access_token", target_id=token.id,
                 actor=user, data={"name": name, "prefix": lookup})
    return token, secret


def list_tokens(session: Session, *, user: User) -> list[PersonalAccessToken]:
    """The user's tokens, newest first, revoked ones included (they show as revoked)."""
    return list(session.scalars(
        select(PersonalAccessToken).where(PersonalAccessToken.user_id == user.id)
        .order_by(PersonalAccessToken.id.desc())
    ))


def revoke_token(session: Session, *, user: User, token_id: int) -> PersonalAccessToken:
    """Revoke one of the user's tokens; revoking twice is a no-op. Another user's token is not found."""
    token = session.scalar(
        select(PersonalAccessToken).where(PersonalAccessToken.id == token_id, PersonalAccessToken.user_id == user.id)
    )
    if token is None:
        raise TokenNotFound()
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        audit.record(session, action="token.revoked", target_type="personal_access_token", target_id=token.id,
                     actor=user, data={"prefix": token.prefix})
    return token


def authenticate_token(session: Session, secret: str, *, now: datetime | None = None) -> PersonalAccessToken | None:
    """The live token this secret belongs to (its user active), or None. Marks it used."""
    lookup = split_secret(secret, PAT_PREFIX)
    if lookup is None:
        return None
    token = session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.prefix == lookup))
    if token is None or not matches(secret, token.token_hash):
        return None
    now = now or utcnow()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token
