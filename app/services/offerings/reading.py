"""Reading offerings as a seller or an operator sees them: publishers, listings, the review queue,
the facet vocabulary and free addresses (slugs)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import FACET_GROUPS, FacetValue, Membership, Offering, OfferingStatus, Organization, User
from app.services.identity import slugify
from app.services.offerings.rules import SLUG_MAX, OfferingNotFound, _slug_taken


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
