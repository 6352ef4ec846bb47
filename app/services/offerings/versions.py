"""Versions and the three plan tiers of an offering, and which version each instance runs.

Versions are semantic (MAJOR.MINOR.PATCH). Adding a version publishes it: its runtime reference is
checked first (the built-in agent exists; the Langflow flow exists and has a Chat Input and a Chat
Output, and the version's output component and tweaks name what the flow has). An instance runs the
latest version of its major line (a patch or minor release reaches it on its next run) unless its
buyer pinned one; a new major is offered to it as an upgrade, which its buyer accepts explicitly.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.adapters.runtime import RuntimeDescription, RuntimeReference, RuntimeUnavailable, get_runtime
from app.models import PLAN_TIERS, Instance, Offering, OfferingStatus, OfferingVersion, Plan, User
from app.models.catalog import DEFAULT_CONCURRENT_RUNS, DEFAULT_CONCURRENT_RUNS_PER_WALLET
from app.services import audit, organizations
from app.services.text_rules import refuse_spoofing_characters
from app.services.offerings.rules import (
    CHANGELOG_MAX, CONTROL_RE, CREDITS_MAX, FEATURES_MAX, ISO_4217, MARKUP_RE, PLAN_NAME_MAX, PRICE_MAX,
    RUNTIME_KINDS, RUNTIME_REF_RE, SEMVER_RE, OfferingError, _clean_multiline, _int_in_range, _mark_sync_pending,
    _require_member, _require_status,
)


TWEAKS_MAX_CHARS = 20_000
FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
# fields Langflow keeps the flow author's value for (it refuses a run that tweaks them): code, and the
# switches and sources that widen what a component may execute or reach
PROTECTED_TWEAK_FIELDS = frozenset({
    "code", "allow_dangerous_code", "function_code", "python_code", "tool_code", "filter_instruction",
    "global_imports",
})
PROTECTED_TWEAK_FIELDS_BY_TYPE = {"SQLComponent": frozenset({"database_url", "query"})}


def add_version(
    session: Session,
    *,
    offering: Offering,
    actor: User,
    version: str,
    changelog: str,
    runtime_kind: str,
    runtime_ref: str,
    output_component: str | None = None,
    tweaks: str | dict | None = None,
) -> OfferingVersion:
    """Publish a new version after checking its runtime reference.

    Its number must be new and greater than the latest version of its major line; a new major line
    must start above every version so far. `tweaks` is a JSON object (or its text) of
    {component id: {field: value}}; it and `output_component` are for Langflow flows only.
    Raises OfferingError naming the field; 503 when the runtime could not be asked.
    """
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "An archived offering cannot get new versions.")
    version = (version or "").strip()
    if not SEMVER_RE.match(version):
        raise OfferingError("Use a semantic version: MAJOR.MINOR.PATCH, for example 1.2.0.", field="version")
    _check_version_order(offering, parse_semver(version))
    changelog = _clean_multiline(changelog, CHANGELOG_MAX, "changelog")
    if runtime_kind not in RUNTIME_KINDS:
        raise OfferingError("Choose the built-in runtime or Langflow.", field="runtime_kind")
    runtime_ref = (runtime_ref or "").strip()
    if not RUNTIME_REF_RE.match(runtime_ref):
        raise OfferingError("Choose a built-in agent or a Langflow flow from the list.", field="runtime_ref")
    output_component = (output_component or "").strip() or None
    cleaned_tweaks = clean_tweaks(tweaks)
    check_runtime_reference(runtime_kind=runtime_kind, runtime_ref=runtime_ref,
                            output_component=output_component, tweaks=cleaned_tweaks)
    row = OfferingVersion(
        offering_id=offering.id, version=version, changelog=changelog,
        runtime_kind=runtime_kind, runtime_ref=runtime_ref, output_component=output_component,
        tweaks_json=json.dumps(cleaned_tweaks, sort_keys=True) if cleaned_tweaks else None,
    )
    session.add(row)
    session.flush()
    session.refresh(offering, ["versions"])
    audit.record(
        session, action="offering.version_added", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
        data={"version": version, "runtime_kind": runtime_kind, "runtime_ref": runtime_ref,
              "output_component": output_component, "tweaked_components": sorted(cleaned_tweaks)},
    )
    return row


def _check_version_order(offering: Offering, wanted: tuple[int, int, int]) -> None:
    """Above the latest version of its major line (so a fix can still reach buyers of an older major), or,
    for a new major line, above every version so far."""
    numbers = [v.semver for v in offering.versions if SEMVER_RE.match(v.version)]
    same_line = [n for n in numbers if n[0] == wanted[0]]
    floor = max(same_line) if same_line else max(numbers, default=None)
    if floor is not None and wanted <= floor:
        raise OfferingError(f"The new version must be greater than {_text(floor)}.", field="version")


def _text(number: tuple[int, int, int]) -> str:
    return ".".join(str(n) for n in number)


# --- the runtime reference: what a seller may choose, and the check before publishing --------------

@dataclass(frozen=True)
class RuntimeChoices:
    """What the version form offers: the built-in agents, the configured Langflow's flows, and why the
    flows are missing when Langflow could not be asked (None when it answered)."""

    agents: list[RuntimeReference]
    flows: list[RuntimeReference]
    flows_unavailable: str | None = None


def runtime_choices() -> RuntimeChoices:
    agents = get_runtime("builtin").list_references()
    try:
        flows = get_runtime("langflow").list_references()
    except RuntimeUnavailable as exc:
        return RuntimeChoices(agents, [], str(exc))
    return RuntimeChoices(agents, flows)


def clean_tweaks(raw: str | dict | None) -> dict[str, dict[str, Any]]:
    """A JSON object {component id: {field: value}} (or its text); OfferingError (field "tweaks") when
    it is not one, or sets a field Langflow protects."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        if len(raw) > TWEAKS_MAX_CHARS:
            raise OfferingError(f"Keep the tweaks under {TWEAKS_MAX_CHARS:,} characters.", field="tweaks")
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise OfferingError(f"The tweaks are not valid JSON ({exc.msg} at line {exc.lineno}, column "
                                f"{exc.colno}).", field="tweaks") from None
    if not isinstance(raw, dict):
        raise OfferingError('Write the tweaks as a JSON object: {"component id": {"field": value}}.', field="tweaks")
    for component_id, fields in raw.items():
        if not RUNTIME_REF_RE.match(component_id):
            raise OfferingError(f"“{component_id[:80]}” is not a component id.", field="tweaks")
        if not isinstance(fields, dict) or not fields:
            raise OfferingError(f'Give the fields to set for {component_id} as an object: {{"field": value}}.',
                                field="tweaks")
        for name in fields:
            if not FIELD_NAME_RE.match(name):
                raise OfferingError(f"“{name[:80]}” in {component_id} is not a field name.", field="tweaks")
            if name in PROTECTED_TWEAK_FIELDS:
                raise OfferingError(f"{component_id}: “{name}” cannot be tweaked; Langflow keeps the flow's own "
                                    "value for it.", field="tweaks")
    return raw


def check_runtime_reference(
    *, runtime_kind: str, runtime_ref: str, output_component: str | None = None, tweaks: dict | None = None,
) -> RuntimeDescription:
    """The reference as its runtime describes it, checked: it exists, a flow has a Chat Input and a Chat
    Output, and the output component and tweaks name components and fields the flow has.

    OfferingError naming the field; status 503 when the runtime could not be asked ("could not check").
    """
    runtime = get_runtime(runtime_kind)
    try:
        described = runtime.describe(runtime_ref)
    except RuntimeUnavailable as exc:
        raise OfferingError(f"We could not check this flow: {exc} Nothing was published; try again in a moment.",
                            field="runtime_ref", status=503) from None
    if runtime_kind == "builtin":
        if described is None:
            raise OfferingError(f"There is no built-in agent “{runtime_ref}”. Choose one from the list.",
                                field="runtime_ref")
        if output_component:
            raise OfferingError("An output component applies to Langflow flows only.", field="output_component")
        if tweaks:
            raise OfferingError("Tweaks apply to Langflow flows only.", field="tweaks")
        return described
    if described is None:
        raise OfferingError(f"Langflow has no flow “{runtime_ref}”. Choose one of its flows from the list.",
                            field="runtime_ref")
    missing = [label for label, found in (("a Chat Input", described.chat_inputs),
                                          ("a Chat Output", described.chat_outputs)) if not found]
    if missing:
        raise OfferingError(f"The flow “{described.name}” has no {' and no '.join(m[2:] for m in missing)}: "
                            "buyers type into a Chat Input and read a Chat Output, so add them in Langflow first.",
                            field="runtime_ref")
    if output_component and output_component not in described.output_components:
        raise OfferingError(f"“{output_component}” is not an output of “{described.name}”; its outputs are "
                            f"{', '.join(described.output_components)}.", field="output_component")
    components = {c.id: c for c in described.components}
    for component_id, fields in (tweaks or {}).items():
        component = components.get(component_id)
        if component is None:
            raise OfferingError(f"The flow “{described.name}” has no component {component_id}.", field="tweaks")
        for name in fields:
            kind = component.fields.get(name)
            if component.fields and kind is None:
                raise OfferingError(f"{component_id} has no field “{name}”.", field="tweaks")
            if kind == "code" or name in PROTECTED_TWEAK_FIELDS_BY_TYPE.get(component.type, ()):
                raise OfferingError(f"{component_id}: “{name}” cannot be tweaked; Langflow keeps the flow's own "
                                    "value for it.", field="tweaks")
    return described


def describe_runtime_reference(*, runtime_kind: str, runtime_ref: str) -> RuntimeDescription:
    """What the version form shows about a chosen flow (its outputs, components and their fields), checked as
    for publishing; OfferingError as `check_runtime_reference`."""
    if runtime_kind not in RUNTIME_KINDS or not RUNTIME_REF_RE.match(runtime_ref or ""):
        raise OfferingError("Choose a built-in agent or a Langflow flow from the list.", field="runtime_ref")
    return check_runtime_reference(runtime_kind=runtime_kind, runtime_ref=runtime_ref)


def check_published_versions(offering: Offering) -> None:
    """Before an offering is submitted or approved: the version new buyers would get must still run
    (its flow may have been deleted since it was added). OfferingError as `check_runtime_reference`."""
    latest = latest_version(offering)
    if latest is None:
        return
    try:
        check_runtime_reference(runtime_kind=latest.runtime_kind, runtime_ref=latest.runtime_ref,
                                output_component=latest.output_component, tweaks=latest.tweaks)
    except OfferingError as exc:
        raise OfferingError(f"Version {latest.version}: {exc.message}", field=exc.field, status=exc.status) from None


# --- which version an instance runs ----------------------------------------------------------------

def version_for_instance(session: Session, instance: Instance) -> OfferingVersion | None:
    """The version a run of `instance` uses: the pinned one, or the latest of its major line."""
    current = instance.version
    if current is None:
        return latest_version(instance.offering)
    if instance.version_pinned:
        return current
    # the line's versions by the offering's id: one query, without loading the offering itself
    line = session.scalars(select(OfferingVersion).where(OfferingVersion.offering_id == instance.offering_id,
                                                         OfferingVersion.version.like(f"{current.major}.%")))
    return max((v for v in line if SEMVER_RE.match(v.version) and v.major == current.major),
               key=lambda v: v.semver, default=None) or current


def latest_in_line(offering: Offering, major: int) -> OfferingVersion | None:
    line = [v for v in offering.versions if SEMVER_RE.match(v.version) and v.major == major]
    return max(line, key=lambda v: v.semver, default=None)


def upgrade_for_instance(session: Session, instance: Instance) -> OfferingVersion | None:
    """The latest version of a newer major line than the instance's, offered for its buyer to accept."""
    running = version_for_instance(session, instance)
    latest = latest_version(instance.offering)
    if running is None or latest is None or latest.major <= running.major:
        return None
    return latest


@dataclass(frozen=True)
class VersionState:
    """What the instance page and the API show: the version runs use, whether it is pinned, a newer
    release of the same line a pinned instance is not getting, and a new major on offer."""

    running: OfferingVersion | None
    pinned: bool
    newer_in_line: OfferingVersion | None
    upgrade: OfferingVersion | None


def version_state(session: Session, instance: Instance) -> VersionState:
    running = version_for_instance(session, instance)
    newer = None
    if running is not None and instance.version_pinned:
        candidate = latest_in_line(instance.offering, running.major)
        newer = candidate if candidate is not None and candidate.semver > running.semver else None
    return VersionState(running, bool(instance.version_pinned), newer, upgrade_for_instance(session, instance))


def pin_version(session: Session, *, instance: Instance, actor: User, version: str | None = None) -> Instance:
    """Keep the instance on one version (owners and admins): the one it runs now, or `version` of the
    same major line (to go back to an earlier release)."""
    organizations.require_role(session, user=actor, organization_id=instance.organization_id)
    running = version_for_instance(session, instance)
    if running is None:
        raise OfferingError("This agent has no released version to pin.", status=409)
    target = running
    if version is not None and version != running.version:
        target = _version_of(instance.offering, version)
        if target.major != running.major:
            raise OfferingError(f"Pin a {running.major}.x version; moving to {target.major}.x is an upgrade.",
                                field="version", status=409)
    previous = (instance.version.version if instance.version else None, instance.version_pinned)
    instance.version_id, instance.version_pinned = target.id, True
    session.flush()
    session.refresh(instance, ["version"])
    audit.record(session, action="instance.version_pinned", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"version": target.version, "from": previous[0], "was_pinned": previous[1]})
    return instance


def follow_updates(session: Session, *, instance: Instance, actor: User) -> Instance:
    """Unpin (owners and admins): from the next run the instance uses the latest version of its line."""
    organizations.require_role(session, user=actor, organization_id=instance.organization_id)
    if not instance.version_pinned:
        return instance
    instance.version_pinned = False
    session.flush()
    audit.record(session, action="instance.version_followed", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"line": f"{instance.version.major}.x" if instance.version else None})
    return instance


def upgrade_instance(session: Session, *, instance: Instance, actor: User, version: str) -> Instance:
    """Move the instance to the new major version its buyer was offered (owners and admins). `version`
    is the one the buyer saw: if a newer one has been released since, nothing changes (409)."""
    organizations.require_role(session, user=actor, organization_id=instance.organization_id)
    offered = upgrade_for_instance(session, instance)
    if offered is None:
        raise OfferingError("There is no upgrade for this agent.", field="version", status=409)
    if (version or "").strip() != offered.version:
        raise OfferingError(f"The upgrade on offer is {offered.version}; review its notes and accept that one.",
                            field="version", status=409)
    before = version_for_instance(session, instance)
    instance.version_id = offered.id
    session.flush()
    session.refresh(instance, ["version"])
    audit.record(session, action="instance.version_upgraded", target_type="instance", target_id=instance.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"from": before.version if before else None, "to": offered.version,
                       "pinned": instance.version_pinned})
    return instance


def _version_of(offering: Offering, number: str) -> OfferingVersion:
    for candidate in offering.versions:
        if candidate.version == (number or "").strip():
            return candidate
    raise OfferingError(f"This agent has no version {number[:32]}.", field="version", status=404)


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
    interval: str = "month",
    rollover_credits: bool = False,
    max_concurrent_runs: int | None = None,
    max_concurrent_runs_per_wallet: int | None = None,
) -> Plan:
    """Create or update the plan of one tier. The SKU is generated once and never changes. `interval`
    (month or year) is the billing period its price pays for; `rollover_credits` carries unused
    included credits into the next period.

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

    if interval not in ("month", "year"):
        raise OfferingError("Choose monthly or yearly billing.", field="interval")
    values = {
        "name": name, "price_minor": price_minor, "currency": currency, "included_credits": included_credits,
        "credits_per_run": credits_per_run, "max_runs_per_period": max_runs_per_period, "features": features,
        "interval": interval, "rollover_credits": bool(rollover_credits),
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
    return max(valid, key=lambda v: v.semver) if valid else None


def run_options(version: OfferingVersion | None) -> dict[str, Any]:
    """What a run of `version` sends its runtime besides the input: `tweaks` and `output_component`
    (for `RunContext`; empty values for a built-in agent)."""
    if version is None:
        return {"tweaks": None, "output_component": None}
    return {"tweaks": version.tweaks or None, "output_component": version.output_component}


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
