"""What operators look at: every offering, every organization, the audit log. Read-only queries;
callers must have checked the operator role (these cross tenant boundaries on purpose)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.models import AuditEvent, Membership, Offering, OfferingStatus, Organization

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int


def paginate(session: Session, query: Select, *, page: int, per_page: int) -> Page:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    items = list(session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, page=page, pages=pages, total=total)


def _clean(text: str | None) -> str:
    """Filter text without control characters (PostgreSQL refuses NUL in text parameters)."""
    return re.sub(r"[\x00-\x1f\x7f]", "", text or "").strip()


def _like(text: str) -> str:
    text = _clean(text)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def status_counts(session: Session) -> dict[str, int]:
    counts = {s.value: 0 for s in OfferingStatus}
    for status, count in session.execute(select(Offering.status, func.count()).group_by(Offering.status)):
        counts[status] = int(count)
    return counts


def sync_failures(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Offering).where(Offering.sync_status == "failed")) or 0


def list_offerings(
    session: Session, *, status: str | None = None, q: str | None = None, sync: str | None = None,
    page: int = 1, per_page: int = 25,
) -> Page[Offering]:
    query = select(Offering).options(selectinload(Offering.publisher)).join(
        Organization, Organization.id == Offering.publisher_id
    )
    if status:
        query = query.where(Offering.status == _clean(status))
    if sync:
        query = query.where(Offering.sync_status == _clean(sync))
    if q:
        pattern = _like(q.strip().lower())
        query = query.where(or_(
            func.lower(Offering.name).like(pattern, escape="\\"), Offering.slug.like(pattern, escape="\\"),
            func.lower(Organization.name).like(pattern, escape="\\"),
        ))
    return paginate(session, query.order_by(Offering.updated_at.desc(), Offering.id.desc()), page=page,
                    per_page=per_page)


@dataclass
class OrganizationRow:
    organization: Organization
    members: int
    offerings: int


def list_organizations(session: Session, *, q: str | None = None, page: int = 1, per_page: int = 25
                       ) -> Page[OrganizationRow]:
    members = (select(func.count(Membership.id)).where(Membership.organization_id == Organization.id)
               .correlate(Organization).scalar_subquery())
    offerings = (select(func.count(Offering.id)).where(Offering.publisher_id == Organization.id)
                 .correlate(Organization).scalar_subquery())
    query = select(Organization)
    if q:
        pattern = _like(q.strip().lower())
        query = query.where(or_(func.lower(Organization.name).like(pattern, escape="\\"),
                                Organization.slug.like(pattern, escape="\\")))
    result = paginate(session, query.order_by(Organization.name, Organization.id), page=page, per_page=per_page)
    ids = [org.id for org in result.items]
    counts = {
        org_id: (int(m), int(o)) for org_id, m, o in session.execute(
            select(Organization.id, members, offerings).where(Organization.id.in_(ids))
        )
    } if ids else {}
    result.items = [OrganizationRow(org, *counts.get(org.id, (0, 0))) for org in result.items]
    return result


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def search_audit(
    session: Session, *, action: str | None = None, actor: str | None = None, organization_id: int | None = None,
    target_type: str | None = None, target_id: str | None = None, start: date | None = None,
    end: date | None = None, page: int = 1, per_page: int = 50,
) -> Page[AuditEvent]:
    query = select(AuditEvent)
    action, target_type, target_id = _clean(action), _clean(target_type), _clean(target_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(func.lower(AuditEvent.actor_label).like(_like(actor.strip().lower()), escape="\\"))
    if organization_id is not None:
        query = query.where(AuditEvent.organization_id == organization_id)
    if target_type:
        query = query.where(AuditEvent.target_type == target_type)
    if target_id:
        query = query.where(AuditEvent.target_id == target_id)
    if start:
        query = query.where(AuditEvent.created_at >= datetime.combine(start, time.min, tzinfo=timezone.utc))
    if end:
        query = query.where(
            AuditEvent.created_at < datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc)
        )
    return paginate(session, query.order_by(AuditEvent.id.desc()), page=page, per_page=per_page)


def organization_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids))).all())
