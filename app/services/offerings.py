"""Publishing rules: sellers create and edit offerings, versions and plans; operators review them.

Every function takes the caller's session, flushes and never commits. Every state change is
written to the audit log. Errors are `OfferingError`s whose message is safe to show the seller
and whose `field` names the input that was wrong.
"""
from __future__ import annotations

import re
from typing import Any

import markdown as markdown_lib
import nh3
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    CATEGORIES, FACET_GROUPS, PLAN_TIERS, FacetValue, Membership, Offering, OfferingFacet, OfferingStatus,
    OfferingVersion, Organization, Plan, Role, User, utcnow,
)
from app.services import audit, catalog
from app.services.errors import ServiceError
from app.services.identity import slugify

# Groups the seller picks from; category and publisher follow from the offering itself, and
# "free-trial" pricing follows from the trial terms, so the catalog can never contradict them.
SELLER_FACET_GROUPS = ("outcome", "role", "capability", "pricing")
DERIVED_PRICING = "free-trial"
RUNTIME_KINDS = ("builtin", "langflow")
EDITABLE_FIELDS = frozenset(
    {"name", "summary", "description_md", "category", "facets", "trial_days", "trial_credits", "slug"}
)

NAME_MAX, SUMMARY_MAX, DESCRIPTION_MAX, SLUG_MAX = 120, 280, 20_000, 140
CHANGELOG_MAX, REASON_MAX, FEATURES_MAX, PLAN_NAME_MAX = 5_000, 2_000, 2_000, 60
TRIAL_DAYS_MAX, TRIAL_CREDITS_MAX = 90, 100_000
PRICE_MAX = 100_000_000  # one million in a two-decimal currency: a typo guard, not a business limit
CREDITS_MAX = 10_000_000

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SEMVER_RE = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
RUNTIME_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
MARKUP_RE = re.compile(r"[<>]|&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# ISO 4217 active currency codes (funds and precious-metal codes left out: nobody prices a plan in them).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())


class OfferingError(ServiceError):
    """A publishing rule was broken; the message is safe to show the seller."""


class OfferingNotFound(OfferingError):
    """No such offering, or not one of the user's publishers (the same answer, so nothing leaks)."""

    def __init__(self, message: str = "Offering not found.") -> None:
        super().__init__(message)


# --- reading ---------------------------------------------------------------------------------

def publisher_organizations(session: Session, *, user: User) -> list[Organization]:
    """The organizations the user may publish for: every organization they belong to, teams first."""
    return list(session.scalars(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.is_personal, Organization.name, Organization.id)
    ))


def get_publisher_for_seller(session: Session, *, user: User, organization_id: int) -> Organization:
    """One of the user's publisher organizations; another organization is "not found"."""
    org = session.scalar(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Organization.id == organization_id)
    )
    if org is None:
        raise OfferingNotFound("Organization not found.")
    return org


def get_offering_for_seller(session: Session, *, user: User, offering_id: int) -> Offering:
    """The offering if the user belongs to its publisher; otherwise OfferingNotFound."""
    offering = session.scalar(
        select(Offering)
        .join(Membership, Membership.organization_id == Offering.publisher_id)
        .where(Offering.id == offering_id, Membership.user_id == user.id)
    )
    if offering is None:
        raise OfferingNotFound()
    return offering


def offerings_of_publisher(session: Session, *, publisher: Organization) -> list[Offering]:
    return list(session.scalars(
        select(Offering).where(Offering.publisher_id == publisher.id).order_by(Offering.name, Offering.id)
    ))


def review_queue(session: Session) -> list[Offering]:
    """Offerings waiting for an operator, oldest submission first."""
    return list(session.scalars(
        select(Offering).where(Offering.status == OfferingStatus.IN_REVIEW.value)
        .order_by(Offering.updated_at, Offering.id)
    ))


def facet_vocabulary(session: Session) -> dict[str, list[FacetValue]]:
    """The controlled vocabularies, group -> values ordered by label."""
    vocabulary: dict[str, list[FacetValue]] = {group: [] for group in FACET_GROUPS}
    for value in session.scalars(select(FacetValue).order_by(FacetValue.group, FacetValue.label)):
        vocabulary.setdefault(value.group, []).append(value)
    return vocabulary


def suggest_slug(session: Session, name: str, *, exclude_offering_id: int | None = None) -> str:
    """A free slug derived from the name: "support-bot", then "support-bot-2", ..."""
    base = slugify(name, SLUG_MAX - 4)
    slug, n = base, 2
    while _slug_taken(session, slug, exclude_offering_id):
        slug = f"{base}-{n}"
        n += 1
    return slug


DESCRIPTION_TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre",
    "blockquote", "a", "table", "thead", "tbody", "tr", "th", "td",
}


def render_description(description_md: str) -> str:
    """The seller's Markdown as safe HTML: the one rendering used by the preview and the product page.

    Headings start at h2 (the page owns h1); raw HTML is reduced to the allowed tags; links get
    rel="nofollow noopener noreferrer" and only web or mail schemes.
    """
    html = markdown_lib.markdown(description_md or "", extensions=["sane_lists", "tables", "fenced_code"])
    html = re.sub(r"<(/?)h1\b", r"<\1h2", html)
    return nh3.clean(
        html, tags=DESCRIPTION_TAGS, attributes={"a": {"href", "title"}, "th": {"align"}, "td": {"align"}},
        url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener noreferrer",
    )


# --- writing: offerings ------------------------------------------------------------------------

def create_offering(
    session: Session,
    *,
    publisher: Organization,
    actor: User,
    name: str,
    summary: str,
    description_md: str,
    category: str,
    facets: dict[str, list[str]],
    trial_days: int = 0,
    trial_credits: int = 0,
    slug: str | None = None,
) -> Offering:
    """A new draft offering of `publisher`, with its facet values; drafts never reach the catalog."""
    _require_member(session, actor, publisher.id)
    if not actor.has_role(Role.SELLER):
        raise OfferingError("Only sellers can publish offerings.")
    name = _clean_name(name)
    values = {
        "name": name,
        "summary": _clean_summary(summary),
        "description_md": _clean_description(description_md),
        "category": _clean_category(category),
    }
    trial_days, trial_credits = _clean_trial(trial_days, trial_credits)
    if slug is None or not str(slug).strip():
        slug = suggest_slug(session, name)
    else:
        slug = _clean_slug(session, slug, exclude_offering_id=None)
    chosen = _clean_facets(session, facets)
    offering = Offering(
        slug=slug, publisher_id=publisher.id, status=OfferingStatus.DRAFT.value,
        trial_days=trial_days, trial_credits=trial_credits, **values,
    )
    session.add(offering)
    session.flush()
    _ensure_publisher_facet_value(session, publisher)
    _apply_facets(session, offering, publisher, chosen)
    session.flush()
    audit.record(
        session, action="offering.created", target_type="offering", target_id=offering.id,
        organization_id=publisher.id, actor=actor, data={"slug": offering.slug, "name": offering.name},
    )
    catalog.reindex_offering(session, offering)
    return offering


def update_offering(session: Session, *, offering: Offering, actor: User, **fields: Any) -> Offering:
    """Change the listing fields given; validates all of them before changing any."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise OfferingError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "An archived offering cannot be edited.")
    new: dict[str, Any] = {}
    if "name" in fields:
        new["name"] = _clean_name(fields["name"])
    if "summary" in fields:
        new["summary"] = _clean_summary(fields["summary"])
    if "description_md" in fields:
        new["description_md"] = _clean_description(fields["description_md"])
    if "category" in fields:
        new["category"] = _clean_category(fields["category"])
    if "trial_days" in fields or "trial_credits" in fields:
        new["trial_days"], new["trial_credits"] = _clean_trial(
            fields.get("trial_days", offering.trial_days), fields.get("trial_credits", offering.trial_credits)
        )
    if "slug" in fields and fields["slug"] != offering.slug:
        if offering.published_at is not None:
            raise OfferingError("The address of an offering that has been published cannot change.", field="slug")
        new["slug"] = _clean_slug(session, fields["slug"], exclude_offering_id=offering.id)
    chosen = _clean_facets(session, fields["facets"]) if "facets" in fields else None

    changed = sorted(key for key, value in new.items() if getattr(offering, key) != value)
    for key in changed:
        setattr(offering, key, new[key])
    publisher = session.get(Organization, offering.publisher_id)
    if chosen is None and ("category" in changed or "trial_days" in changed):
        chosen = {g: offering.facet_values(g) for g in SELLER_FACET_GROUPS}
    if chosen is not None and _apply_facets(session, offering, publisher, chosen):
        changed.append("facets")
    if not changed:
        return offering
    offering.updated_at = utcnow()
    _mark_sync_pending(offering)
    session.flush()
    audit.record(
        session, action="offering.updated", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, data={"fields": sorted(changed)},
    )
    catalog.reindex_offering(session, offering)
    return offering


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
) -> Plan:
    """Create or update the plan of one tier. The SKU is generated once and never changes."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "An archived offering's plans cannot change.")
    if tier not in PLAN_TIERS:
        raise OfferingError(f"Choose one of: {', '.join(PLAN_TIERS)}.", field="tier")
    name = (name or "").strip()
    if not name:
        raise OfferingError("Give the plan a name.", field="name")
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
    plan = session.scalar(select(Plan).where(Plan.offering_id == offering.id, Plan.tier == tier))
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


# --- review workflow ---------------------------------------------------------------------------

def submit_for_review(session: Session, *, offering: Offering, actor: User) -> Offering:
    """Draft -> in review. The offering must be complete enough for a buyer to use it."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT}, "Only a draft can be submitted for review.")
    missing = review_blockers(offering)
    if missing:
        raise OfferingError("Before submitting: " + "; ".join(missing) + ".")
    offering.status = OfferingStatus.IN_REVIEW.value
    offering.review_note = None
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.submitted", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
    )
    return offering


def review_blockers(offering: Offering) -> list[str]:
    """What still stops the offering from being submitted (empty when it is ready)."""
    missing = []
    if not offering.description_md.strip():
        missing.append("write a description")
    if not offering.versions:
        missing.append("add a version")
    if not offering.plans:
        missing.append("add at least one plan")
    return missing


def approve(session: Session, *, offering: Offering, actor: User) -> Offering:
    """In review -> published (operators only)."""
    _require_operator(actor)
    _require_status(offering, {OfferingStatus.IN_REVIEW}, "Only an offering in review can be approved.")
    offering.status = OfferingStatus.PUBLISHED.value
    offering.review_note = None
    offering.published_at = offering.published_at or utcnow()
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.approved", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
    )
    return offering


def reject(session: Session, *, offering: Offering, actor: User, reason: str) -> Offering:
    """In review -> draft, with the reason the seller will see (operators only)."""
    _require_operator(actor)
    _require_status(offering, {OfferingStatus.IN_REVIEW}, "Only an offering in review can be rejected.")
    reason = _clean_multiline(reason, REASON_MAX, "reason")
    if not reason:
        raise OfferingError("Tell the seller what to change.", field="reason")
    offering.status = OfferingStatus.DRAFT.value
    offering.review_note = reason
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.rejected", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, data={"reason": reason},
    )
    return offering


def archive(session: Session, *, offering: Offering, actor: User) -> Offering:
    """Take the offering off the catalog for good (its publisher or an operator)."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "This offering is already archived.")
    previous = offering.status
    offering.status = OfferingStatus.ARCHIVED.value
    offering.updated_at = utcnow()
    _mark_sync_pending(offering)
    session.flush()
    audit.record(
        session, action="offering.archived", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, data={"from": previous},
    )
    return offering


# --- sync to the commerce backend ------------------------------------------------------------

SYNC_SYNCED, SYNC_PENDING, SYNC_FAILED = "synced", "pending", "failed"
SYNC_ERROR_MAX = 2_000


def offerings_to_sync(session: Session, *, include_synced: bool = False) -> list[Offering]:
    """Offerings whose product in the commerce backend is missing or out of date.

    Published offerings not yet synced, pending or failed; archived ones that were synced before
    (their product must be taken off sale). With `include_synced`, every published offering.
    """
    published = Offering.status == OfferingStatus.PUBLISHED.value
    archived_known = (Offering.status == OfferingStatus.ARCHIVED.value) & Offering.saleor_product_id.is_not(None)
    query = select(Offering).where(published | archived_known)
    if not include_synced:
        query = query.where((Offering.sync_status.is_(None)) | (Offering.sync_status != SYNC_SYNCED))
    return list(session.scalars(query.order_by(Offering.id)))


def sync_offering(session: Session, *, offering: Offering, sync: Any, actor: User | None = None,
                  actor_label: str | None = None) -> bool:
    """Push the offering through the product-sync port and record the outcome on it.

    A failure never touches the offering's own data: it sets sync_status "failed" and keeps the
    message in sync_error for the retry (`flask sync-saleor`) and for operators. Returns success.
    """
    from app.adapters.commerce.product_sync import ProductSyncError

    def remember(product_id: str) -> None:
        offering.saleor_product_id = product_id

    try:
        sync.sync_offering(offering, on_product_id=remember)
    except ProductSyncError as exc:
        offering.sync_status = SYNC_FAILED
        offering.sync_error = str(exc)[:SYNC_ERROR_MAX]
        session.flush()
        audit.record(
            session, action="offering.sync_failed", target_type="offering", target_id=offering.id,
            organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
            data={"backend": sync.backend, "error": offering.sync_error},
        )
        return False
    offering.sync_status = SYNC_SYNCED
    offering.sync_error = None
    session.flush()
    audit.record(
        session, action="offering.synced", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
        data={"backend": sync.backend, "product_id": offering.saleor_product_id, "status": offering.status},
    )
    return True


# --- helpers -----------------------------------------------------------------------------------

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


def _require_member(session: Session, user: User, organization_id: int) -> None:
    """Listings are written by members of their publisher, and by operators (who curate them all)."""
    if user.has_role(Role.OPERATOR):
        return
    found = session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.organization_id == organization_id)
    )
    if found is None:
        raise OfferingNotFound()


def _require_operator(user: User) -> None:
    if not user.has_role(Role.OPERATOR):
        raise OfferingError("Only operators review offerings.")


def _require_status(offering: Offering, allowed: set[OfferingStatus], message: str) -> None:
    if offering.status not in {s.value for s in allowed}:
        raise OfferingError(message)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise OfferingError("Give the offering a name.", field="name")
    if len(name) > NAME_MAX:
        raise OfferingError(f"Use at most {NAME_MAX} characters.", field="name")
    if MARKUP_RE.search(name) or CONTROL_RE.search(name):
        raise OfferingError("Use plain text: no HTML or special characters like < and >.", field="name")
    if not re.search(r"\w", name):
        raise OfferingError("Use at least one letter or digit.", field="name")
    return name


def _clean_multiline(text: str | None, limit: int, field: str) -> str:
    """Free text kept as written (line breaks and tabs allowed), without other control characters."""
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise OfferingError(f"Use at most {limit:,} characters.", field=field)
    if CONTROL_RE.search(text.replace("\n", "").replace("\t", "")):
        raise OfferingError("Remove the control characters.", field=field)
    return text


def _clean_summary(summary: str) -> str:
    summary = " ".join((summary or "").split())
    if not summary:
        raise OfferingError("Write a one-line summary for the catalog card.", field="summary")
    if len(summary) > SUMMARY_MAX:
        raise OfferingError(f"Use at most {SUMMARY_MAX} characters.", field="summary")
    if MARKUP_RE.search(summary) or CONTROL_RE.search(summary):
        raise OfferingError("Use plain text: no HTML or special characters like < and >.", field="summary")
    return summary


def _clean_description(description_md: str) -> str:
    text = (description_md or "").replace("\r\n", "\n").strip()
    if len(text) > DESCRIPTION_MAX:
        raise OfferingError(f"Use at most {DESCRIPTION_MAX:,} characters.", field="description_md")
    if CONTROL_RE.search(text.replace("\n", "").replace("\t", "")):
        raise OfferingError("Remove the control characters from the description.", field="description_md")
    return text


def _clean_category(category: str) -> str:
    if category not in CATEGORIES:
        raise OfferingError(f"Choose one of: {', '.join(CATEGORIES)}.", field="category")
    return category


def _clean_trial(trial_days: Any, trial_credits: Any) -> tuple[int, int]:
    days = _int_in_range(trial_days, "trial_days", 0, TRIAL_DAYS_MAX,
                         f"Give between 0 and {TRIAL_DAYS_MAX} days.")
    credits_ = _int_in_range(trial_credits, "trial_credits", 0, TRIAL_CREDITS_MAX,
                             f"Give between 0 and {TRIAL_CREDITS_MAX:,} credits.")
    if days == 0 and credits_:
        raise OfferingError("Trial credits need trial days; set the days or clear the credits.",
                            field="trial_credits")
    return days, credits_


def _clean_slug(session: Session, slug: Any, *, exclude_offering_id: int | None) -> str:
    slug = str(slug or "").strip().lower()
    if not slug or len(slug) > SLUG_MAX or not SLUG_RE.match(slug):
        raise OfferingError(
            f"Use lowercase letters, digits and single hyphens, up to {SLUG_MAX} characters.", field="slug"
        )
    if _slug_taken(session, slug, exclude_offering_id):
        raise OfferingError("Another offering already uses this address.", field="slug")
    return slug


def _slug_taken(session: Session, slug: str, exclude_offering_id: int | None) -> bool:
    query = select(Offering.id).where(Offering.slug == slug)
    if exclude_offering_id is not None:
        query = query.where(Offering.id != exclude_offering_id)
    return session.scalar(query) is not None


def _int_in_range(value: Any, field: str, low: int, high: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except (TypeError, ValueError):
            raise OfferingError("Enter a whole number.", field=field) from None
    if value < low or value > high:
        raise OfferingError(message if value < low else f"Use at most {high:,}.", field=field)
    return value


def _clean_facets(session: Session, facets: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Seller-chosen facet values, checked against the controlled vocabularies."""
    facets = facets or {}
    unknown_groups = set(facets) - set(FACET_GROUPS)
    if unknown_groups:
        raise OfferingError(f"Unknown facet group: {', '.join(sorted(unknown_groups))}.", field="facets")
    chosen: dict[str, list[str]] = {}
    for group in SELLER_FACET_GROUPS:
        values = sorted({str(v) for v in facets.get(group) or []} - ({DERIVED_PRICING} if group == "pricing" else set()))
        if any(len(v) > 64 or not SLUG_RE.match(v) for v in values):
            raise OfferingError(f"Choose {group} values from the list.", field=group)
        if values:
            known = set(session.scalars(
                select(FacetValue.slug).where(FacetValue.group == group, FacetValue.slug.in_(values))
            ))
            if set(values) - known:
                raise OfferingError(f"Choose {group} values from the list.", field=group)
        chosen[group] = values
    return chosen


def _apply_facets(session: Session, offering: Offering, publisher: Organization,
                  chosen: dict[str, list[str]]) -> bool:
    """Make the offering's facet rows exactly the chosen ones plus the derived ones; True if changed."""
    wanted = {(group, value) for group, values in chosen.items() for value in values}
    wanted |= {("category", offering.category), ("publisher", publisher.slug)}
    if offering.trial_days > 0:
        wanted.add(("pricing", DERIVED_PRICING))
    current = {(f.group, f.value): f for f in offering.facets}
    changed = False
    for key, row in current.items():
        if key not in wanted:
            offering.facets.remove(row)
            changed = True
    session.flush()  # deletes first: a re-added value must not meet its old row in the unique index
    for group, value in sorted(wanted - set(current)):
        offering.facets.append(OfferingFacet(group=group, value=value))
        changed = True
    return changed


def _ensure_publisher_facet_value(session: Session, publisher: Organization) -> None:
    exists = session.scalar(
        select(FacetValue.id).where(FacetValue.group == "publisher", FacetValue.slug == publisher.slug)
    )
    if exists is None:
        session.add(FacetValue(group="publisher", slug=publisher.slug, label=publisher.name[:80]))


def _new_sku(session: Session, slug: str, tier: str) -> str:
    """Upper-case slug + tier, unique across plans; Saleor variants are matched by it."""
    suffix = f"-{tier.upper()}"
    base = slug.upper()[: 64 - len(suffix) - 4].strip("-") + suffix
    sku, n = base, 2
    while session.scalar(select(func.count()).select_from(Plan).where(Plan.sku == sku)):
        sku = f"{base[:60 - len(str(n))]}-{n}"
        n += 1
    return sku


def _mark_sync_pending(offering: Offering) -> None:
    # Only offerings that have been sent to the commerce backend before have something to refresh.
    if offering.sync_status is not None:
        offering.sync_status = "pending"
        offering.sync_error = None
