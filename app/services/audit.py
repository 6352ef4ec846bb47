"""The audit log."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditEvent, User


def record(
    session: Session,
    *,
    action: str,
    target_type: str,
    target_id: int | str | None = None,
    organization_id: int | None = None,
    actor: User | None = None,
    actor_label: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event in the caller's transaction."""
    event = AuditEvent(
        actor_user_id=actor.id if actor else None,
        actor_label=actor_label or (actor.email if actor else "system"),
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        organization_id=organization_id,
        data_json=json.dumps(data or {}, sort_keys=True, default=str),
    )
    session.add(event)
    return event
