"""Read-side questions of the control-plane API that neither the publishing nor the catalog service
answers: which offering a caller may see, offerings for a page of catalog results, and pages of
the audit log. Reads only; the visibility rules (no existence leaks) live here."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.models import AuditEvent, MemberRole, Offering, OfferingStatus, Role, User
from app.services import organizations
from app.services.errors import ServiceError

_OFFERING_LOAD = (selectinload(Offering.plans), selectinload(Offering.versions), selectinload(Offering.facets),
                  selectinload(Offering.publisher))


class ListingError(ServiceError):
    """A listing cannot be shown or changed; the message is safe to show."""


def can_see_private(session: Session, *, user: User | None, offering: Offering) -> bool:
    """Publisher members and operators see drafts, review notes and runtime references."""
    if user is None:
        return False
    if user.has_role(Role.OPERATOR):
        return True
    return organizations.membership(session, user=user, organization_id=offering.publisher_id) is not None


def visible_offering(session: Session, *, user: User | None, offering_id: int) -> tuple[Offering, bool]:
    """The offering and whether the caller sees its private side. Published offerings are public;
    the rest only for their publisher's members and operators; anyone else gets 404."""
    offering = session.scalar(select(Offering).where(Offering.id == offering_id).options(*_OFFERING_LOAD))
    if offering is None:
        raise ListingError("Offering not found.", status=404)
    private = can_see_private(session, user=user, offering=offering)
    if offering.status != OfferingStatus.PUBLISHED.value and not private:
        raise ListingError("Offering not found.", status=404)
    return offering, private


def offering_for_operator_or_publisher(session: Session, *, user: User, offering_id: int) -> Offering:
    """For writes: operators reach every offering, sellers those of their publishers; else 404."""
    offering = session.get(Offering, offering_id)
    if offering is None or not can_see_private(session, user=user, offering=offering):
        raise ListingError("Offering not found.", status=404)
    return offering


def offerings_by_slugs(session: Session, slugs: list[str]) -> list[Offering]:
    """Published offerings with these slugs, in the order given (a page of catalog results)."""
    if not slugs:
        return []
    rows = session.scalars(
        select(Offering).where(Offering.slug.in_(slugs), Offering.status == OfferingStatus.PUBLISHED.value)
        .options(*_OFFERING_LOAD)
    ).all()
    by_slug = {o.slug: o for o in rows}
    return [by_slug[s] for s in slugs if s in by_slug]


def offerings_with_status(
    session: Session, *, user: User, status: str, offset: int, limit: int,
) -> tuple[list[Offering], int]:
    """Operators only: offerings in any status (the review queue is `in_review`), oldest change first."""
    if not user.has_role(Role.OPERATOR):
        raise ListingError("Only operators can list offerings that are not published.", field="status", status=403)
    total = session.scalar(select(func.count()).select_from(Offering).where(Offering.status == status)) or 0
    rows = session.scalars(
        select(Offering).where(Offering.status == status).order_by(Offering.updated_at, Offering.id)
        .offset(offset).limit(limit).options(*_OFFERING_LOAD)
    ).all()
    return list(rows), total


def publisher_offerings(session: Session, *, user: User, organization_id: int) -> list[Offering]:
    """Every offering of a publisher organization, for its members (others get 404)."""
    organizations.require_member(session, user=user, organization_id=organization_id)
    return list(session.scalars(
        select(Offering).where(Offering.publisher_id == organization_id).order_by(Offering.id)
        .options(*_OFFERING_LOAD)
    ))


def audit_page(
    session: Session, *, user: User, organization_id: int | None, default_organization_id: int | None,
    action: str | None = None, cursor: int | None = None, limit: int = 50,
) -> tuple[list[AuditEvent], int | None]:
    """Audit events newest first. Operators see every organization's (all, or the one asked for);
    anyone else only an organization they own or administer (the one asked for, else their
    current one). A member without that role gets 403; a non-member 404."""
    query = select(AuditEvent)
    if user.has_role(Role.OPERATOR):
        if organization_id is not None:
            query = query.where(AuditEvent.organization_id == organization_id)
    else:
        scope = organization_id if organization_id is not None else default_organization_id
        if scope is None:
            raise ListingError("Name the organization.", field="organization_id")
        organizations.require_role(session, user=user, organization_id=scope,
                                   roles=(MemberRole.OWNER.value, MemberRole.ADMIN.value))
        query = query.where(AuditEvent.organization_id == scope)
    if action:
        query = query.where(AuditEvent.action == action)
    if cursor is not None:
        query = query.where(AuditEvent.id < cursor)
    events = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    if len(events) > limit:
        return events[:limit], events[limit - 1].id
    return events, None

