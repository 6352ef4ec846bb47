"""Creating and editing an offering's listing: name, summary, description, category, trial terms,
address and facets (the seller's choices plus the ones that follow from the offering)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    FACET_GROUPS, FacetValue, Offering, OfferingFacet, OfferingStatus, Organization, Role, User, utcnow,
)
from app.services import audit, catalog, publishers
from app.services.offerings.reading import suggest_slug
from app.services.offerings.rules import (
    DERIVED_PRICING, EDITABLE_FIELDS, SELLER_FACET_GROUPS, SLUG_RE, OfferingError, _clean_category,
    _clean_description, _clean_name, _clean_slug, _clean_summary, _clean_trial, _mark_sync_pending, _require_member,
    _require_status,
)


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
    if not actor.has_role(Role.SELLER) and not publishers.may_prepare_drafts(
            session, organization_id=publisher.id):  # an applicant drafts while an operator looks at them
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
