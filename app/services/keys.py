"""Instance API keys: the credential a runtime client sends as ``X-API-Key`` for its own instance.

A key looks like ``dmk_<id>_<secret>``; only the ``dmk_<id>`` prefix and a SHA-256 digest are
stored, and the key is shown once, at creation (see app.services.tokens for why a fast digest).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiKey, Instance, InstanceStatus, User, utcnow
from app.services import audit, organizations, tokens
from app.services.errors import ServiceError

API_KEY_PREFIX = "dmk_"
MAX_ACTIVE_KEYS = 20


class ApiKeyError(ServiceError):
    """An API key rule was broken; the message is safe to show."""


class ApiKeyNotFound(ApiKeyError):
    def __init__(self, message: str = "API key not found.") -> None:
        super().__init__(message, status=404)


def create_api_key(session: Session, *, instance: Instance, actor: User, name: str) -> tuple[ApiKey, str]:
    """A new key for the instance; returns the row and the key, which is never available again.

    The actor must be an owner or admin of the instance's organization; the instance must be usable.
    """
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               roles=organizations.MANAGER_ROLES, not_found=ApiKeyNotFound("Instance not found."))
    try:
        name = tokens.clean_name(name)
    except tokens.TokenError as exc:
        raise ApiKeyError(str(exc), field="name") from exc
    if instance.status in (InstanceStatus.CANCELLED.value, InstanceStatus.EXPIRED.value):
        raise ApiKeyError(f"This instance is {instance.status}; it cannot get new keys.", status=409)
    active = session.scalars(
        select(ApiKey.id).where(ApiKey.instance_id == instance.id, ApiKey.revoked_at.is_(None))
    ).all()
    if len(active) >= MAX_ACTIVE_KEYS:
        raise ApiKeyError(f"An instance can have at most {MAX_ACTIVE_KEYS} active keys; revoke one first.",
                          status=409)
    lookup, secret = tokens.new_secret(API_KEY_PREFIX)
    key = ApiKey(instance_id=instance.id, name=name, prefix=lookup, key_hash=tokens.digest(secret),
                 created_by_id=actor.id)
    session.add(key)
    session.flush()
    audit.record(session, action="api_key.created", target_type="api_key", target_id=key.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"instance_id": instance.id, "name": name, "prefix": lookup})
    return key, secret


def list_api_keys(session: Session, *, instance: Instance) -> list[ApiKey]:
    """The instance's keys, newest first, revoked ones included."""
    return list(session.scalars(
        select(ApiKey).where(ApiKey.instance_id == instance.id).order_by(ApiKey.id.desc())
    ))


def revoke_api_key(session: Session, *, instance: Instance, key_id: int, actor: User) -> ApiKey:
    """Revoke a key of this instance (owner or admin); revoking twice is a no-op."""
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               roles=organizations.MANAGER_ROLES, not_found=ApiKeyNotFound("Instance not found."))
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.instance_id == instance.id))
    if key is None:
        raise ApiKeyNotFound()
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
        audit.record(session, action="api_key.revoked", target_type="api_key", target_id=key.id,
                     organization_id=instance.organization_id, actor=actor,
                     data={"instance_id": instance.id, "prefix": key.prefix})
    return key


def authenticate_api_key(session: Session, secret: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key this secret belongs to, or None. Marks it used (at most once a minute)."""
    lookup = tokens.split_secret(secret, API_KEY_PREFIX)
    if lookup is None:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == lookup))
    if key is None or key.revoked_at is not None or not tokens.matches(secret, key.key_hash):
        return None
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= tokens.LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key
