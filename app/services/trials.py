"""Free trials: one per person per offering, on the offering's cheapest plan, with its trial credits.

The TrialClaim row's unique (user, offering) constraint is what makes "one per person" hold even
when two requests race: the loser's insert does nothing and becomes a TrialError.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import GrantOrigin, Instance, Offering, OfferingStatus, Organization, Plan, TrialClaim, User, utcnow
from app.services import billing, mail, organizations, recovery
from app.services.errors import ServiceError
from app.services.instances import create_instance


class TrialError(ServiceError):
    """A trial rule was broken; the message is safe to show."""


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"Trials support PostgreSQL and SQLite, not {dialect}.")
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TrialClaim)


def cheapest_plan(offering: Offering) -> Plan | None:
    return min(offering.plans, key=lambda plan: (plan.price_minor, plan.id), default=None)


def has_claimed(session: Session, *, user: User, offering: Offering) -> bool:
    return session.scalar(
        select(TrialClaim.id).where(TrialClaim.user_id == user.id, TrialClaim.offering_id == offering.id)
    ) is not None


def start_trial(
    session: Session, *, user: User, organization: Organization, offering: Offering, now: datetime | None = None,
) -> Instance:
    """A trial instance of `offering` in `organization` for `user`, with the trial credits granted
    (origin "trial", expiring when the trial ends). Flushes; the caller commits.

    Raises TrialError: 404 when the organization or a published offering is not found for this
    user, 409 when the offering has no trial or the user already had one.
    """
    organizations.require_member(session, user=user, organization_id=organization.id,
                                 not_found=TrialError("Organization not found.", status=404))
    if offering.status != OfferingStatus.PUBLISHED.value:
        raise TrialError("Offering not found.", field="offering_id", status=404)
    if not user.email_verified:
        raise TrialError(recovery.UNVERIFIED_MESSAGE.format(action="start a free trial"), status=403)
    if not offering.has_trial:
        raise TrialError("This offering has no free trial.", field="offering_id", status=409)
    plan = cheapest_plan(offering)
    if plan is None:
        raise TrialError("This offering has no plan to try yet.", field="offering_id", status=409)
    if has_claimed(session, user=user, offering=offering):
        raise TrialError("You have already used the free trial of this offering.", field="offering_id", status=409)
    # INSERT ... ON CONFLICT DO NOTHING: on PostgreSQL a racing request waits for the first one's
    # transaction and then inserts nothing; no savepoint (pysqlite would commit a leading one)
    claim_id = session.scalar(
        _insert(session).values(user_id=user.id, offering_id=offering.id)
        .on_conflict_do_nothing(index_elements=["user_id", "offering_id"]).returning(TrialClaim.id)
    )
    if claim_id is None:
        raise TrialError("You have already used the free trial of this offering.", field="offering_id", status=409)
    claim = session.get(TrialClaim, claim_id)
    now = now or utcnow()
    ends_at = now + timedelta(days=offering.trial_days)
    instance = create_instance(session, organization=organization, plan=plan, created_by=user,
                               is_trial=True, trial_ends_at=ends_at)
    claim.instance_id = instance.id
    if offering.trial_credits > 0:
        billing.grant_credits(
            session, wallet=billing.wallet_for_organization(session, organization.id),
            amount=offering.trial_credits, origin=GrantOrigin.TRIAL.value, reference=f"Trial: {offering.name}"[:120],
            expires_at=ends_at, instance_id=instance.id, idempotency_key=f"trial:{claim.id}",
        )
    session.flush()
    mail.trial_started(session, instance=instance, user=user)
    return instance
