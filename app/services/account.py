"""What the account pages show: subscriptions with their period usage, credit packs, notifications.

Reads only, scoped to organizations the user belongs to; the rules of each noun stay in its service.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app.models import (
    ApiKey, CreditPack, Instance, Notification, Offering, OfferingStatus, TrialClaim, User, utcnow,
)
from app.services import instances as instance_service
from app.services import run_history


@dataclass(frozen=True)
class Subscription:
    instance: Instance
    entitlements: instance_service.Entitlements
    credits_used: int  # this billing period
    trial_days_left: int | None  # None: not a trial
    active_keys: int


def trial_days_left(instance: Instance, now: datetime) -> int | None:
    """Whole days left in a trial, rounded up (0 once it has ended); None for a paid instance."""
    if not instance.is_trial or instance.trial_ends_at is None:
        return None
    seconds = (instance.trial_ends_at - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def subscriptions(session: Session, *, user: User, organization_id: int, now: datetime | None = None) -> list[Subscription]:
    """The organization's instances (the user must be a member), newest first, with this period's usage."""
    now = now or utcnow()
    found = instance_service.list_instances(session, user=user, organization_id=organization_id)
    key_counts = dict(session.execute(
        select(ApiKey.instance_id, func.count()).where(
            ApiKey.instance_id.in_([i.id for i in found] or [0]), ApiKey.revoked_at.is_(None)
        ).group_by(ApiKey.instance_id)
    ).all())
    out = []
    for instance in found:
        entitled = instance_service.entitlements(session, instance=instance, now=now)
        out.append(Subscription(
            instance=instance, entitlements=entitled,
            credits_used=run_history.credits_used(session, instance=instance, since=entitled.period_start),
            trial_days_left=trial_days_left(instance, now), active_keys=key_counts.get(instance.id, 0),
        ))
    return out


def subscription(session: Session, *, user: User, instance: Instance, now: datetime | None = None) -> Subscription:
    now = now or utcnow()
    entitled = instance_service.entitlements(session, instance=instance, now=now)
    active = session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.instance_id == instance.id, ApiKey.revoked_at.is_(None)))
    return Subscription(instance, entitled, run_history.credits_used(session, instance=instance, since=entitled.period_start),
                        trial_days_left(instance, now), active)


def instance_labels(session: Session, *, organization_id: int) -> dict[int, str]:
    """{instance id: "Offering name #id"} for the organization's instances (for charts and the ledger)."""
    rows = session.execute(
        select(Instance.id, Offering.name).join(Offering, Offering.id == Instance.offering_id)
        .where(Instance.organization_id == organization_id)
    )
    return {instance_id: f"{name} #{instance_id}" for instance_id, name in rows}


def published_offering(session: Session, slug: str) -> Offering | None:
    return session.scalar(
        select(Offering).where(Offering.slug == slug, Offering.status == OfferingStatus.PUBLISHED.value)
        .options(selectinload(Offering.plans))
    )


def trial_instance(session: Session, *, user: User, offering: Offering) -> Instance | None:
    """The instance of the user's earlier trial of `offering`, if it is in an organization they still belong to."""
    instance_id = session.scalar(
        select(TrialClaim.instance_id).where(TrialClaim.user_id == user.id, TrialClaim.offering_id == offering.id)
    )
    if instance_id is None:
        return None
    try:
        return instance_service.get_instance_for_user(session, user=user, instance_id=instance_id)
    except instance_service.InstanceNotFound:
        return None


def credit_packs(session: Session) -> list[CreditPack]:
    return list(session.scalars(select(CreditPack).where(CreditPack.active.is_(True)).order_by(CreditPack.credits)))


def unread_notifications(session: Session, *, organization_id: int, limit: int = 10) -> list[Notification]:
    return list(session.scalars(
        select(Notification).where(Notification.organization_id == organization_id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc()).limit(limit)
    ))


def mark_notifications_read(session: Session, *, organization_id: int) -> int:
    """Mark every unread notification of the organization read; returns how many."""
    return session.execute(
        update(Notification).where(Notification.organization_id == organization_id, Notification.read_at.is_(None))
        .values(read_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount
