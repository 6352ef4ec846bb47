"""Instances: a subscription or trial of an offering inside an organization."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.models import Instance, InstanceStatus, Organization, Plan, User
from app.services import audit


class InstanceError(Exception):
    """An instance rule was broken; the message is safe to show."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class InstanceNotFound(InstanceError):
    def __init__(self, message: str = "Instance not found.") -> None:
        super().__init__(message, status=404)


def create_instance(
    session: Session,
    *,
    organization: Organization,
    plan: Plan,
    created_by: User | None = None,
    source_order_line_id: int | None = None,
    is_trial: bool = False,
    trial_ends_at: datetime | None = None,
    actor_label: str | None = None,
) -> Instance:
    """A new active instance of the plan's offering at its current version (flushes; caller commits)."""
    offering = plan.offering
    instance = Instance(
        organization_id=organization.id,
        offering_id=offering.id,
        plan_id=plan.id,
        version_id=offering.current_version.id if offering.current_version else None,
        status=InstanceStatus.ACTIVE.value,
        is_trial=is_trial,
        trial_ends_at=trial_ends_at,
        source_order_line_id=source_order_line_id,
        created_by_id=created_by.id if created_by else None,
    )
    session.add(instance)
    session.flush()
    audit.record(
        session, action="instance.trial_started" if is_trial else "instance.created", target_type="instance",
        target_id=instance.id, organization_id=organization.id, actor=created_by, actor_label=actor_label,
        data={"offering": offering.slug, "plan": plan.sku},
    )
    return instance
