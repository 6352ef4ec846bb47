"""Instances: a subscription or trial of an offering inside an organization."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import (
    Hold, Instance, InstanceStatus, Membership, Organization, Plan, Run, RunStatus, User, Wallet, utcnow,
)
from app.services import audit, billing, mail, organizations, plan_credits, seller_webhooks, subscriptions
from app.services.errors import ServiceError


class InstanceError(ServiceError):
    """An instance rule was broken; the message is safe to show."""


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
    seller_webhooks.emit_instance_event(session, instance=instance, event="instance.created")
    return instance


# --- reading, lifecycle and entitlements ---------------------------------------------------------

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({InstanceStatus.ACTIVE.value}), InstanceStatus.SUSPENDED.value),
    "resume": (frozenset({InstanceStatus.SUSPENDED.value}), InstanceStatus.ACTIVE.value),
    "cancel": (frozenset({InstanceStatus.ACTIVE.value, InstanceStatus.SUSPENDED.value,
                          InstanceStatus.PAST_DUE.value}), InstanceStatus.CANCELLED.value),
}
# runs that count against a plan's limit: queued, started or finished well (a failed run is not a use)
COUNTED_RUN_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.SUCCEEDED.value)


def get_instance_for_user(session: Session, *, user: User, instance_id: int) -> Instance:
    """The instance if the user is a member of its organization; otherwise InstanceNotFound (no leak)."""
    instance = session.scalar(
        select(Instance)
        .join(Membership, Membership.organization_id == Instance.organization_id)
        .where(Instance.id == instance_id, Membership.user_id == user.id)
    )
    if instance is None:
        raise InstanceNotFound()
    return instance


def instance_and_wallet(session: Session, *, instance_id: int,
                        organization_id: int | None = None) -> tuple[Instance, Wallet]:
    """An instance and the wallet it spends from, in one query (the hold path is hot). With
    `organization_id`, an instance of another organization is not found."""
    query = (select(Instance, Wallet).outerjoin(Wallet, Wallet.organization_id == Instance.organization_id)
             .where(Instance.id == instance_id))
    if organization_id is not None:
        query = query.where(Instance.organization_id == organization_id)
    row = session.execute(query).first()
    if row is None:
        raise InstanceNotFound()
    instance, wallet = row
    return instance, wallet or billing.wallet_for_organization(session, instance.organization_id)


def authorize_for_instance(session: Session, *, instance_id: int, amount: int, idempotency_key: str,
                           ttl_seconds: int = billing.DEFAULT_TTL_SECONDS, organization_id: int | None = None,
                           now: datetime | None = None, actor_label: str | None = None,
                           actor: User | None = None) -> Hold:
    """Hold credits of the instance's organization for a run (`billing.authorize`, same rules); an unknown
    instance, or with `organization_id` one of another organization, is InstanceNotFound.

    The usual case is one statement (`billing.authorize_for_instance`); when that cannot decide, the
    instance is looked up and `billing.authorize` answers."""
    arguments = {"amount": amount, "idempotency_key": idempotency_key, "ttl_seconds": ttl_seconds, "now": now,
                 "actor_label": actor_label, "actor": actor}
    hold = billing.authorize_for_instance(session, instance_id=instance_id, organization_id=organization_id,
                                          **arguments)
    if hold is None:
        instance, wallet = instance_and_wallet(session, instance_id=instance_id, organization_id=organization_id)
        hold = billing.authorize(session, wallet=wallet, instance_id=instance.id, **arguments)
    return hold


def list_instances(
    session: Session, *, user: User, organization_id: int | None = None, status: str | None = None,
) -> list[Instance]:
    """Instances of every organization the user belongs to (or of one of them), newest first."""
    query = (
        select(Instance)
        .join(Membership, Membership.organization_id == Instance.organization_id)
        .where(Membership.user_id == user.id)
        .order_by(Instance.id.desc())
    )
    if organization_id is not None:
        query = query.where(Instance.organization_id == organization_id)
    if status is not None:
        query = query.where(Instance.status == status)
    return list(session.scalars(query))


def _transition(session: Session, *, instance: Instance, actor: User, action: str) -> Instance:
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               not_found=InstanceNotFound())
    allowed_from, to = TRANSITIONS[action]
    values: dict = {"status": to}
    if to == InstanceStatus.CANCELLED.value:
        values["cancelled_at"] = utcnow()
    # one conditional UPDATE: two concurrent actions cannot both start from the same status
    changed = session.execute(
        update(Instance).where(Instance.id == instance.id, Instance.status.in_(allowed_from)).values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(instance)
    if not changed:
        raise InstanceError(f"A {instance.status} instance cannot be {_PAST[action]}.", status=409)
    audit.record(session, action=f"instance.{_PAST[action]}", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor, data={"status": to})
    if action in _SELLER_EVENTS:
        seller_webhooks.emit_instance_event(session, instance=instance, event=_SELLER_EVENTS[action])
    return instance


_PAST = {"suspend": "suspended", "resume": "resumed", "cancel": "cancelled"}
_SELLER_EVENTS = {"suspend": "instance.suspended", "cancel": "instance.cancelled"}  # told to the publisher


def expire_ended_trials(session: Session, *, now: datetime | None = None) -> list[int]:
    """Trial instances whose trial has ended (active or suspended) become expired; returns their ids.

    Runs are refused from the trial's end whether or not this has run (entitlements say
    `trial_ended`); this makes the instance say so in lists and frees nothing else: the trial's
    credits expire with their grant (`expire-holds`). One conditional UPDATE per instance, so a
    concurrent cancel or resume wins or loses cleanly."""
    now = now or utcnow()
    ended = session.execute(
        select(Instance.id, Instance.organization_id, Instance.status)
        .where(Instance.is_trial.is_(True), Instance.trial_ends_at <= now,
               Instance.status.in_((InstanceStatus.ACTIVE.value, InstanceStatus.SUSPENDED.value)))
        .order_by(Instance.id)
    ).all()
    expired = []
    for instance_id, organization_id, status in ended:
        changed = session.execute(
            update(Instance).where(Instance.id == instance_id, Instance.status == status)
            .values(status=InstanceStatus.EXPIRED.value).execution_options(synchronize_session=False)
        ).rowcount
        if changed:
            audit.record(session, action="instance.trial_expired", target_type="instance", target_id=instance_id,
                         organization_id=organization_id, actor_label="system",
                         data={"from": status, "to": InstanceStatus.EXPIRED.value})
            mail.trial_ended(session, instance_id=instance_id)
            expired.append(instance_id)
    return expired


def suspend_instance(session: Session, *, instance: Instance, actor: User) -> Instance:
    """active -> suspended (owners and admins of its organization)."""
    return _transition(session, instance=instance, actor=actor, action="suspend")


def resume_instance(session: Session, *, instance: Instance, actor: User) -> Instance:
    """suspended -> active; an instance suspended for an unpaid renewal resumes when it is paid."""
    if instance.status == InstanceStatus.SUSPENDED.value and instance.past_due_since is not None:
        raise InstanceError("Pay the open renewal to resume it.", status=409)
    return _transition(session, instance=instance, actor=actor, action="resume")


def cancel_instance(session: Session, *, instance: Instance, actor: User) -> Instance:
    """active or suspended -> cancelled, for good. The plan's included credits end with it (their unused
    credits leave the wallet, explained in the ledger); purchased credits stay."""
    _transition(session, instance=instance, actor=actor, action="cancel")
    plan_credits.end_included_credits(session, instance=instance, actor=actor, now=instance.cancelled_at)
    return instance


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def current_period(instance: Instance, now: datetime) -> tuple[datetime, datetime]:
    """The billing period: a paid subscription's recorded one (renewals move it); otherwise the monthly
    period containing `now`, counted from the instance's period start."""
    if instance.period_end is not None:
        return instance.period_start, instance.period_end
    anchor = instance.period_start or instance.created_at or now
    if now <= anchor:
        return anchor, _add_months(anchor, 1)
    months = (now.year - anchor.year) * 12 + now.month - anchor.month
    start = _add_months(anchor, months)
    if start > now:
        months -= 1
        start = _add_months(anchor, months)
    return start, _add_months(anchor, months + 1)


@dataclass(frozen=True)
class Entitlements:
    """What an instance may do right now: what a gateway asks before a run."""

    instance_id: int
    status: str
    plan_tier: str
    included_credits: int
    credits_per_run: int
    credits_per_1k_units: int
    max_credits_per_run: int
    max_runs_per_period: int | None
    credits_available: int
    runs_this_period: int
    period_start: datetime
    period_end: datetime
    is_trial: bool
    trial_ends_at: datetime | None
    may_run: bool
    reason: str | None  # why not, as a stable code; None when may_run
    cancel_at_period_end: bool = False
    next_charge_at: datetime | None = None  # None: it will not renew
    next_charge_minor: int | None = None
    currency: str = "USD"
    next_plan_tier: str | None = None


def _runs_since(session: Session, instance: Instance, period_start: datetime) -> int:
    # "> start - 1 µs" rather than ">= start": SQLite compares timestamps as text, and a server-default
    # "…:02" sorts before a bound "…:02.000000" of the same second
    return session.scalar(
        select(func.count()).select_from(Run)
        .where(Run.instance_id == instance.id, Run.created_at > period_start - timedelta(microseconds=1),
               Run.status.in_(COUNTED_RUN_STATUSES))
    ) or 0


def run_refusal(session: Session, *, instance: Instance, now: datetime, runs: int | None = None) -> str | None:
    """Why the instance may not start a run now, as an entitlement reason (status, trial end, run limit),
    or None. Credits are not looked at: the run gateway's hold decides those. `runs`: this period's runs,
    when the caller has counted them already (else they are counted only if the plan limits them)."""
    plan = instance.plan
    if instance.status == InstanceStatus.PAST_DUE.value and subscriptions.in_grace(instance, now=now):
        pass  # a failed renewal is being retried: it keeps running through the grace period
    elif instance.status != InstanceStatus.ACTIVE.value:
        return f"instance_{instance.status}"
    if instance.is_trial and instance.trial_ends_at is not None and instance.trial_ends_at <= now:
        return "trial_ended"
    if plan.max_runs_per_period is not None:
        if runs is None:
            runs = _runs_since(session, instance, current_period(instance, now)[0])
        if runs >= plan.max_runs_per_period:
            return "run_limit_reached"
    return None


def entitlements(session: Session, *, instance: Instance, now: datetime | None = None) -> Entitlements:
    """Plan limits, credits available to the instance's organization, runs this period, trial end,
    and whether a run may start now (with the reason when not).

    Reasons: instance_suspended, instance_cancelled, instance_expired, instance_past_due (a renewal is
    unpaid and its grace period is over), trial_ended, run_limit_reached, insufficient_credits.
    """
    now = now or utcnow()
    plan = instance.plan
    period_start, period_end = current_period(instance, now)
    runs = _runs_since(session, instance, period_start)
    wallet = billing.wallet_for_organization(session, instance.organization_id)
    available = billing.wallet_balances(session, wallet=wallet).available

    reason = run_refusal(session, instance=instance, now=now, runs=runs)
    if reason is None and available < plan.credits_per_run:
        reason = "insufficient_credits"
    upcoming = subscriptions.next_charge(instance)
    return Entitlements(
        instance_id=instance.id, status=instance.status, plan_tier=plan.tier,
        included_credits=plan.included_credits, credits_per_run=plan.credits_per_run,
        credits_per_1k_units=plan.credits_per_1k_units, max_credits_per_run=plan.max_credits_per_run,
        max_runs_per_period=plan.max_runs_per_period, credits_available=available, runs_this_period=runs,
        period_start=period_start, period_end=period_end, is_trial=instance.is_trial,
        trial_ends_at=instance.trial_ends_at, may_run=reason is None, reason=reason,
        cancel_at_period_end=instance.cancel_at_period_end, next_charge_at=upcoming.at if upcoming else None,
        next_charge_minor=upcoming.amount_minor if upcoming else None, currency=plan.currency,
        next_plan_tier=upcoming.plan.tier if upcoming else None,
    )
