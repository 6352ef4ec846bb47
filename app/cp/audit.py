"""The audit log: /api/audit/ (operators: every organization; owners and admins: their own)."""
from __future__ import annotations

from flask import g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import listings


@bp.get("/audit/")
@api_auth(*USER_KINDS)
@spec.validate(query=schemas.AuditQuery, resp=responses(200, schemas.AuditPage, 400, 403), tags=["audit"])
def audit_log(query: schemas.AuditQuery):
    """Audit events newest first; pass `next_cursor` as `cursor` for older ones."""
    cursor = None
    if query.cursor is not None:
        if not query.cursor.isdigit() or len(query.cursor) > 12 or int(query.cursor) < 1:
            raise listings.ListingError("Use the next_cursor of the previous page.", field="cursor", status=422)
        cursor = int(query.cursor)
    events, next_cursor = listings.audit_page(
        db.session, user=g.api_user, organization_id=query.organization_id,
        default_organization_id=g.api_org.id if g.api_org else None, action=query.action, cursor=cursor,
        limit=query.limit,
    )
    return schemas.AuditPage(items=[serializers.audit_event_out(e) for e in events],
                             next_cursor=str(next_cursor) if next_cursor is not None else None)
