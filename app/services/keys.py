"""Instance API keys: the credential a runtime client sends as ``X-API-Key`` for its own instance.

A key looks like ``dmk_<id>_<secret>``; only the ``dmk_<id>`` prefix and a SHA-256 digest are
stored, and the key is shown once, at creation (see app.services.tokens for why a fast digest).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from limits import parse_many
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.models import ApiKey, Instance, InstanceStatus, Run, RunStatus, User, utcnow
from app.services import audit, organizations, tokens
from app.services.run_limits import credits_used_by_key, month_start
from app.services.errors import ServiceError

API_KEY_PREFIX = "dmk_"
MAX_ACTIVE_KEYS = 20
MAX_QUOTA = 1_000_000_000
RATE_HELP = "A rate such as “60 per minute” or “5 per second”; leave it empty for the default."


class ApiKeyError(ServiceError):
    """An API key rule was broken; the message is safe to show."""


class ApiKeyNotFound(ApiKeyError):
    def __init__(self, message: str = "API key not found.") -> None:
        super().__init__(message, status=404)


def clean_rate_limit(value: str | None) -> str | None:
    """A key's own request rate ("60 per minute", "5/second"), or None for the default; ApiKeyError if unreadable."""
    value = " ".join((value or "").split())
    if not value:
        return None
    try:
        items = parse_many(value) if len(value) <= 40 else []
        if not items or any(item.amount < 1 for item in items):
            raise ValueError(value)
    except ValueError:
        raise ApiKeyError(f"“{value[:40]}” is not a rate. {RATE_HELP}", field="rate_limit") from None
    return value


def clean_quota(value: int | None) -> int | None:
    """A monthly credit quota (a whole number of credits, at least 1), or None for no quota."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUOTA:
        raise ApiKeyError(f"A monthly credit quota is a whole number from 1 to {MAX_QUOTA:,}; leave it empty for "
                          "no quota.", field="monthly_credit_quota")
    return value


def create_api_key(
    session: Session, *, instance: Instance, actor: User, name: str, rate_limit: str | None = None,
    monthly_credit_quota: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the instance; returns the row and the key, which is never available again.

    The actor must be an owner or admin of the instance's organization; the instance must be usable.
    `rate_limit` (requests per period) and `monthly_credit_quota` are optional limits of this key.
    """
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               roles=organizations.MANAGER_ROLES, not_found=ApiKeyNotFound("Instance not found."))
    try:
        name = tokens.clean_name(name)
    except tokens.TokenError as exc:
        raise ApiKeyError(str(exc), field="name") from exc
    rate_limit, monthly_credit_quota = clean_rate_limit(rate_limit), clean_quota(monthly_credit_quota)
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
                 created_by_id=actor.id, rate_limit=rate_limit, monthly_credit_quota=monthly_credit_quota)
    session.add(key)
    session.flush()
    audit.record(session, action="api_key.created", target_type="api_key", target_id=key.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"instance_id": instance.id, "name": name, "prefix": lookup, "rate_limit": rate_limit,
                       "monthly_credit_quota": monthly_credit_quota})
    return key, secret


def update_api_key_limits(
    session: Session, *, instance: Instance, key_id: int, actor: User, rate_limit: str | None,
    monthly_credit_quota: int | None,
) -> ApiKey:
    """Set a key's own request rate and monthly credit quota (owner or admin); None clears either.

    A lower quota applies from the key's next run; runs in progress keep their holds.
    """
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               roles=organizations.MANAGER_ROLES, not_found=ApiKeyNotFound("Instance not found."))
    rate_limit, monthly_credit_quota = clean_rate_limit(rate_limit), clean_quota(monthly_credit_quota)
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.instance_id == instance.id))
    if key is None:
        raise ApiKeyNotFound()
    if key.revoked_at is not None:
        raise ApiKeyError("This key is revoked; its limits can no longer change.", status=409)
    before = {"rate_limit": key.rate_limit, "monthly_credit_quota": key.monthly_credit_quota}
    key.rate_limit, key.monthly_credit_quota = rate_limit, monthly_credit_quota
    session.flush()
    audit.record(session, action="api_key.limits_changed", target_type="api_key", target_id=key.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"instance_id": instance.id, "prefix": key.prefix, "before": before,
                       "after": {"rate_limit": rate_limit, "monthly_credit_quota": monthly_credit_quota}})
    return key


@dataclass(frozen=True)
class KeyUsage:
    """One key's runs this calendar month (UTC)."""

    runs: int = 0
    credits: int = 0  # charged for finished runs, plus what runs in progress hold
    errors: int = 0  # failed runs
    p50_ms: int | None = None  # median duration of finished runs; None before the first


def key_usage(session: Session, *, instance: Instance, now: datetime | None = None) -> dict[int, KeyUsage]:
    """{key id: its usage this month} for the instance's keys that ran (others have none)."""
    since = month_start(now or utcnow())
    counts = session.execute(
        select(Run.api_key_id, func.count(), func.count().filter(Run.status == RunStatus.FAILED.value))
        .join(ApiKey, ApiKey.id == Run.api_key_id)
        .where(ApiKey.instance_id == instance.id, Run.created_at >= since)
        .group_by(Run.api_key_id)
    ).all()
    durations: dict[int, list[int]] = {}
    for key_id, duration in session.execute(
        select(Run.api_key_id, Run.duration_ms).join(ApiKey, ApiKey.id == Run.api_key_id)
        .where(ApiKey.instance_id == instance.id, Run.created_at >= since, Run.duration_ms.is_not(None))
    ):
        durations.setdefault(key_id, []).append(duration)
    return {
        key_id: KeyUsage(
            runs=runs, errors=errors, credits=credits_used_by_key(session, api_key_id=key_id, since=since),
            p50_ms=round(statistics.median(durations[key_id])) if key_id in durations else None,
        )
        for key_id, runs, errors in counts
    }


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
    # a key only runs its instance: load what a run reads (instance, plan, version, organization) at once
    instance = joinedload(ApiKey.instance)
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == lookup).options(
        instance.joinedload(Instance.plan), instance.joinedload(Instance.version),
        instance.joinedload(Instance.organization)))
    if key is None or key.revoked_at is not None or not tokens.matches(secret, key.key_hash):
        return None
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= tokens.LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key
