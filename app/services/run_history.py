"""What the instance's runs add up to, for pages and the API: its runs newest first (with a cursor),
the credits they were charged in a period, and an organization's usage per day and instance."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Instance, LedgerEntry, LedgerKind, Run, utcnow
from app.services import billing


def list_runs(session: Session, *, instance: Instance, limit: int = 20, before_id: int | None = None) -> list[Run]:
    """The instance's runs, newest first, `limit` at most, older than run `before_id` when given."""
    query = select(Run).where(Run.instance_id == instance.id)
    if before_id is not None:
        query = query.where(Run.id < before_id)
    return list(session.scalars(query.order_by(Run.id.desc()).limit(limit)))


def recent_runs(session: Session, *, instance: Instance, limit: int = 10) -> list[Run]:
    return list(session.scalars(
        select(Run).where(Run.instance_id == instance.id).order_by(Run.id.desc()).limit(limit)
    ))


def credits_used(session: Session, *, instance: Instance, since: datetime) -> int:
    """Credits the instance's runs were charged since `since` (the same runs the plan's limit counts)."""
    return session.scalar(
        select(func.coalesce(func.sum(Run.credits), 0))
        .where(Run.instance_id == instance.id, Run.created_at >= since)
    ) or 0


def usage_by_day(
    session: Session, *, organization_id: int, days: int = 30, now: datetime | None = None,
) -> tuple[list[date], dict[int | None, list[int]]]:
    """Credits captured per UTC day over the last `days` days, per instance of the organization.

    Returns the days (oldest first) and {instance id or None: credits per day}.
    """
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    start = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    wallet = billing.wallet_for_organization(session, organization_id)
    day = func.date(LedgerEntry.created_at)
    rows = session.execute(
        select(day, LedgerEntry.instance_id, -func.sum(LedgerEntry.amount))
        .where(LedgerEntry.wallet_id == wallet.id, LedgerEntry.kind == LedgerKind.CAPTURE.value,
               LedgerEntry.created_at >= start)
        .group_by(day, LedgerEntry.instance_id)
    ).all()
    dates = [first + timedelta(days=i) for i in range(days)]
    index = {d.isoformat(): i for i, d in enumerate(dates)}
    series: dict[int | None, list[int]] = {}
    for when, instance_id, used in rows:
        key = str(when)[:10]
        if key in index:
            series.setdefault(instance_id, [0] * days)[index[key]] += int(used or 0)
    return dates, series
