"""Domain objects to response models. Nothing secret is ever copied: keys and tokens give their
prefix, connector bindings say only whether they have a secret."""
from __future__ import annotations

import json

from app.cp import schemas
from app.services import audit_text
from app.models import (
    ApiKey, AuditEvent, ConnectorBinding, Hold, Instance, LedgerEntry, Membership, Offering, Organization,
    PersonalAccessToken, Plan,
)
from app.models import OfferingVersion
from app.extensions import db
from app.services import offerings
from app.services.keys import KeyUsage


def organization_out(org: Organization, role: str | None = None) -> schemas.OrganizationOut:
    return schemas.OrganizationOut(id=org.id, name=org.name, slug=org.slug, is_personal=org.is_personal,
                                   role=role, created_at=org.created_at)


def member_out(membership: Membership) -> schemas.MemberOut:
    return schemas.MemberOut(user_id=membership.user_id, email=membership.user.email, name=membership.user.name,
                             role=membership.role, joined_at=membership.created_at)


def invitation_out(invitation) -> schemas.InvitationOut:
    return schemas.InvitationOut(id=invitation.id, organization_id=invitation.organization_id, email=invitation.email,
                                 role=invitation.role, sent_at=invitation.sent_at, expires_at=invitation.expires_at)


def plan_out(plan: Plan) -> schemas.PlanOut:
    return schemas.PlanOut(
        id=plan.id, tier=plan.tier, name=plan.name, sku=plan.sku, price_minor=plan.price_minor,
        currency=plan.currency, interval=plan.interval, included_credits=plan.included_credits,
        credits_per_run=plan.credits_per_run, credits_per_1k_units=plan.credits_per_1k_units,
        max_runs_per_period=plan.max_runs_per_period, max_concurrent_runs=plan.max_concurrent_runs,
        max_concurrent_runs_per_wallet=plan.max_concurrent_runs_per_wallet, features=plan.feature_list,
    )


def offering_out(offering: Offering, *, private: bool = False) -> schemas.OfferingOut:
    """`private`: the caller publishes it or is an operator, so runtime references and review notes show."""
    facets: dict[str, list[str]] = {}
    for facet in sorted(offering.facets, key=lambda f: (f.group, f.value)):
        facets.setdefault(facet.group, []).append(facet.value)
    return schemas.OfferingOut(
        id=offering.id, slug=offering.slug, name=offering.name, summary=offering.summary,
        description_md=offering.description_md, category=offering.category, status=offering.status,
        featured=offering.featured,
        publisher=schemas.PublisherOut(id=offering.publisher.id, name=offering.publisher.name,
                                       slug=offering.publisher.slug),
        facets=facets, trial_days=offering.trial_days, trial_credits=offering.trial_credits,
        published_at=offering.published_at, review_note=offering.review_note if private else None,
        versions=[version_out(v, private=private) for v in offering.versions],
        plans=[plan_out(p) for p in offering.plans],
    )


def version_out(version: OfferingVersion, *, private: bool = False) -> schemas.VersionOut:
    """`private`: the runtime reference, output component and tweaks are for its publisher and operators."""
    return schemas.VersionOut(
        id=version.id, version=version.version, changelog=version.changelog, runtime_kind=version.runtime_kind,
        runtime_ref=version.runtime_ref if private else None,
        output_component=version.output_component if private else None,
        tweaks=(version.tweaks or None) if private else None, created_at=version.created_at,
    )


def instance_out(instance: Instance) -> schemas.InstanceOut:
    state = offerings.version_state(db.session, instance)
    upgrade = (schemas.VersionNote(version=state.upgrade.version, changelog=state.upgrade.changelog)
               if state.upgrade is not None else None)
    return schemas.InstanceOut(
        id=instance.id, organization_id=instance.organization_id,
        offering=schemas.OfferingRef(id=instance.offering.id, slug=instance.offering.slug,
                                     name=instance.offering.name),
        plan=schemas.PlanRef(id=instance.plan.id, tier=instance.plan.tier, name=instance.plan.name,
                             sku=instance.plan.sku),
        version=state.running.version if state.running else None, pinned=state.pinned, upgrade_available=upgrade,
        status=instance.status,
        is_trial=instance.is_trial, trial_ends_at=instance.trial_ends_at, period_start=instance.period_start,
        created_at=instance.created_at, cancelled_at=instance.cancelled_at,
    )


def api_key_out(key: ApiKey, usage: KeyUsage | None = None) -> schemas.ApiKeyOut:
    out = schemas.ApiKeyOut.model_validate(key)
    if usage is not None:
        out.usage = schemas.ApiKeyUsageOut(runs=usage.runs, credits=usage.credits, errors=usage.errors,
                                           p50_latency_ms=usage.p50_ms)
    return out


def token_out(token: PersonalAccessToken) -> schemas.TokenOut:
    return schemas.TokenOut.model_validate(token)


def ledger_entry_out(entry: LedgerEntry, description: str | None = None) -> schemas.LedgerEntryOut:
    return schemas.LedgerEntryOut.model_validate(entry).model_copy(update={"description": description})


def hold_out(hold: Hold) -> schemas.HoldOut:
    return schemas.HoldOut.model_validate(hold)


def binding_out(binding: ConnectorBinding) -> schemas.BindingOut:
    return schemas.BindingOut(
        id=binding.id, organization_id=binding.organization_id, instance_id=binding.instance_id, kind=binding.kind,
        config=json.loads(binding.config_json or "{}"), has_secret=bool(binding.secret_ref),
        status=binding.status, created_at=binding.created_at, revoked_at=binding.revoked_at,
    )


def audit_event_out(event: AuditEvent) -> schemas.AuditEventOut:
    return schemas.AuditEventOut(
        id=event.id, action=event.action, actor_label=event.actor_label, actor_user_id=event.actor_user_id,
        target_type=event.target_type, target_id=event.target_id, organization_id=event.organization_id,
        data=json.loads(event.data_json or "{}"), description=audit_text.describe(event), created_at=event.created_at,
    )
