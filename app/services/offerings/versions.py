"""Versions (semantic, only ever increasing) and the three plan tiers of an offering."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import PLAN_TIERS, Offering, OfferingStatus, OfferingVersion, Plan, User
from app.models.catalog import DEFAULT_CONCURRENT_RUNS, DEFAULT_CONCURRENT_RUNS_PER_WALLET
from app.services import audit
from app.services.text_rules import refuse_spoofing_characters
from app.services.offerings.rules import (
    CHANGELOG_MAX, CONTROL_RE, CREDITS_MAX, FEATURES_MAX, ISO_4217, MARKUP_RE, PLAN_NAME_MAX, PRICE_MAX,
    RUNTIME_KINDS, RUNTIME_REF_RE, SEMVER_RE, OfferingError, _clean_multiline, _int_in_range, _mark_sync_pending,
    _require_member, _require_status,
)


def add_version(
    session: Session,
    *,
    offering: Offering,
    actor: User,
    version: str,
    changelog: str,
    runtime_kind: str,
    runtime_ref: str,
) -> OfferingVersion:
    """A new version; its semantic version must be greater than every earlier one."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "An archived offering cannot get new versions.")
    version = (version or "").strip()
    if not SEMVER_RE.match(version):
        raise OfferingError("Use a semantic version: MAJOR.MINOR.PATCH, for example 1.2.0.", field="version")
    latest = latest_version(offering)
    if latest is not None and parse_semver(version) <= parse_semver(latest.version):
        raise OfferingError(f"The new version must be greater than {latest.version}.", field="version")
    changelog = _clean_multiline(changelog, CHANGELOG_MAX, "changelog")
    if runtime_kind not in RUNTIME_KINDS:
        raise OfferingError("Choose the built-in runtime or Langflow.", field="runtime_kind")
    runtime_ref = (runtime_ref or "").strip()
    if not RUNTIME_REF_RE.match(runtime_ref):
        raise OfferingError(
            "Give the agent or flow id: letters, digits, '-', '_', '.' or ':', up to 200 characters.",
            field="runtime_ref",
        )
    row = OfferingVersion(
        offering_id=offering.id, version=version, changelog=changelog,
        runtime_kind=runtime_kind, runtime_ref=runtime_ref,
    )
    session.add(row)
    session.flush()
    session.refresh(offering, ["versions"])
    audit.record(
        session, action="offering.version_added", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
        data={"version": version, "runtime_kind": runtime_kind, "runtime_ref": runtime_ref},
    )
    return row


CONCURRENT_RUNS_MAX = 10_000


def set_plan(
    session: Session,
    *,
    offering: Offering,
    actor: User,
    tier: str,
    name: str,
    price_minor: int,
    currency: str,
    included_credits: int,
    credits_per_run: int,
    max_runs_per_period: int | None,
    features: str = "",
    max_concurrent_runs: int | None = None,
    max_concurrent_runs_per_wallet: int | None = None,
) -> Plan:
    """Create or update the plan of one tier. The SKU is generated once and never changes.

    The concurrency limits (runs in progress at once per instance, and per buyer's wallet) keep their
    current value, or the defaults for a new plan, when None."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "An archived offering's plans cannot change.")
    if tier not in PLAN_TIERS:
        raise OfferingError(f"Choose one of: {', '.join(PLAN_TIERS)}.", field="tier")
    name = (name or "").strip()
    if not name:
        raise OfferingError("Give the plan a name.", field="name")
    refuse_spoofing_characters(name, field="name", error=OfferingError)
    if len(name) > PLAN_NAME_MAX:
        raise OfferingError(f"Use at most {PLAN_NAME_MAX} characters.", field="name")
    if MARKUP_RE.search(name) or CONTROL_RE.search(name):
        raise OfferingError("Use plain text: no HTML or special characters like < and >.", field="name")
    price_minor = _int_in_range(price_minor, "price_minor", 0, PRICE_MAX, "The price cannot be negative.")
    currency = (currency or "").strip().upper()
    if currency not in ISO_4217:
        raise OfferingError("Use a three-letter ISO 4217 currency code, for example USD or EUR.", field="currency")
    included_credits = _int_in_range(included_credits, "included_credits", 0, CREDITS_MAX,
                                     "Included credits cannot be negative.")
    credits_per_run = _int_in_range(credits_per_run, "credits_per_run", 0, CREDITS_MAX,
                                    "Credits per run cannot be negative.")
    if max_runs_per_period is not None:
        max_runs_per_period = _int_in_range(max_runs_per_period, "max_runs_per_period", 1, CREDITS_MAX,
                                            "Give at least one run, or leave it empty for no limit.")
    features = "\n".join(
        line.strip() for line in _clean_multiline(features, FEATURES_MAX, "features").splitlines() if line.strip()
    )

    values = {
        "name": name, "price_minor": price_minor, "currency": currency, "included_credits": included_credits,
        "credits_per_run": credits_per_run, "max_runs_per_period": max_runs_per_period, "features": features,
    }
    for field, value in (("max_concurrent_runs", max_concurrent_runs),
                         ("max_concurrent_runs_per_wallet", max_concurrent_runs_per_wallet)):
        if value is not None:
            values[field] = _int_in_range(value, field, 1, CONCURRENT_RUNS_MAX,
                                          f"Allow from 1 to {CONCURRENT_RUNS_MAX:,} runs at once.")
    plan = session.scalar(select(Plan).where(Plan.offering_id == offering.id, Plan.tier == tier))
    per_instance = values.get("max_concurrent_runs", plan.max_concurrent_runs if plan else DEFAULT_CONCURRENT_RUNS)
    per_wallet = values.get("max_concurrent_runs_per_wallet",
                            plan.max_concurrent_runs_per_wallet if plan else DEFAULT_CONCURRENT_RUNS_PER_WALLET)
    if per_instance > per_wallet:
        raise OfferingError("Allow at least as many runs at once per organization as per instance.",
                            field="max_concurrent_runs_per_wallet")
    if plan is None:
        plan = Plan(offering_id=offering.id, tier=tier, sku=_new_sku(session, offering.slug, tier), **values)
        session.add(plan)
        action, changed = "offering.plan_created", sorted(values)
    else:
        changed = sorted(key for key, value in values.items() if getattr(plan, key) != value)
        if not changed:
            return plan
        for key in changed:
            setattr(plan, key, values[key])
        action = "offering.plan_updated"
    _mark_sync_pending(offering)
    session.flush()
    session.refresh(offering, ["plans"])
    audit.record(
        session, action=action, target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
        data={"tier": tier, "sku": plan.sku, "fields": changed, "price_minor": price_minor, "currency": currency},
    )
    return plan


def parse_semver(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


def latest_version(offering: Offering) -> OfferingVersion | None:
    """The highest version by semantic order (not by insertion)."""
    valid = [v for v in offering.versions if SEMVER_RE.match(v.version)]
    return max(valid, key=lambda v: parse_semver(v.version)) if valid else None


def next_version(offering: Offering) -> str:
    """A sensible default for the versions form: the next minor version."""
    latest = latest_version(offering)
    if latest is None:
        return "1.0.0"
    major, minor, _ = parse_semver(latest.version)
    return f"{major}.{minor + 1}.0"


def _new_sku(session: Session, slug: str, tier: str) -> str:
    """Upper-case slug + tier, unique across plans; Saleor variants are matched by it."""
    suffix = f"-{tier.upper()}"
    base = slug.upper()[: 64 - len(suffix) - 4].strip("-") + suffix
    sku, n = base, 2
    while session.scalar(select(func.count()).select_from(Plan).where(Plan.sku == sku)):
        sku = f"{base[:60 - len(str(n))]}-{n}"
        n += 1
    return sku
