"""Sales and usage figures for a publisher, computed in SQL (grouped and summed by the database).

Money stays in integer minor units per currency; days are UTC calendar days, and a period
[start, end] includes both days. Only paid orders count as sales.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, case, distinct, exists, func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    Instance, InstanceStatus, LineKind, Offering, Order, OrderLine, OrderStatus, Organization, Plan, Run,
)
from app.models.instances import CapOutcome


@dataclass
class OfferingFigures:
    """One offering's figures on the seller dashboard."""

    offering_id: int
    sales: dict[str, int] = field(default_factory=dict)  # currency -> minor units
    orders: int = 0
    active_instances: int = 0
    runs: int = 0
    credits: int = 0


@dataclass
class SaleLine:
    order_id: int
    order_number: str
    paid_at: datetime
    buyer_organization: str
    offering_id: int
    offering_name: str
    plan_name: str
    plan_tier: str
    sku: str
    quantity: int
    unit_price_minor: int
    total_minor: int
    currency: str


@dataclass
class OfferingUsage:
    offering_id: int
    offering_name: str
    runs: int = 0
    credits: int = 0
    runs_cut: int = 0  # outputs cut where a run reached its limit (charged what was delivered)
    runs_overrun: int = 0  # runs delivered in full past their limit, charged the limit
    overrun_credits: int = 0  # what those runs' usage cost above their limits, not charged
    trials_started: int = 0
    trials_converted: int = 0


@dataclass
class Analytics:
    start: date
    end: date
    days: list[date]
    revenue: dict[str, dict[date, int]]  # currency -> day -> minor units
    new_instances: dict[date, int]  # paid (non-trial) instances created that day
    trials_started: dict[date, int]
    trials_converted: dict[date, int]  # by the day the trial started
    per_offering: list[OfferingUsage]

    @property
    def revenue_totals(self) -> dict[str, int]:
        return {currency: sum(days.values()) for currency, days in sorted(self.revenue.items())}

    @property
    def totals(self) -> dict[str, int]:
        return {
            "new_instances": sum(self.new_instances.values()),
            "trials_started": sum(self.trials_started.values()),
            "trials_converted": sum(self.trials_converted.values()),
            "runs": sum(o.runs for o in self.per_offering),
            "credits": sum(o.credits for o in self.per_offering),
            "runs_cut": sum(o.runs_cut for o in self.per_offering),
            "runs_overrun": sum(o.runs_overrun for o in self.per_offering),
            "overrun_credits": sum(o.overrun_credits for o in self.per_offering),
        }


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC)."""
    return (datetime.combine(start, time.min, tzinfo=timezone.utc),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc))


def month_to_date(now: datetime) -> tuple[date, date]:
    today = now.astimezone(timezone.utc).date()
    return today.replace(day=1), today


def _paid_at() -> ColumnElement:
    # the payment time; an order imported without one counts from when it was placed
    return func.coalesce(Order.paid_at, Order.created_at)


def _utc_day(session: Session, column: ColumnElement) -> ColumnElement:
    """The UTC calendar day of a timestamp, as 'YYYY-MM-DD' on every database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite stores UTC without an offset


def _paid_lines_of(publisher_id: int):
    return (
        select()
        .select_from(OrderLine)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Offering, Offering.id == OrderLine.offering_id)
        .where(Offering.publisher_id == publisher_id, Order.status == OrderStatus.PAID.value)
    )


# --- dashboard ---------------------------------------------------------------------------------

def publisher_overview(
    session: Session, *, publisher_id: int, start: date, end: date,
) -> dict[int, OfferingFigures]:
    """Per offering of the publisher: sales and runs in the period, instances active now."""
    since, until = period_bounds(start, end)
    figures: dict[int, OfferingFigures] = {
        offering_id: OfferingFigures(offering_id)
        for offering_id in session.scalars(select(Offering.id).where(Offering.publisher_id == publisher_id))
    }
    sales = _paid_lines_of(publisher_id).add_columns(
        OrderLine.offering_id, Order.currency, func.sum(OrderLine.total_minor), func.count(distinct(Order.id)),
    ).where(_paid_at() >= since, _paid_at() < until).group_by(OrderLine.offering_id, Order.currency)
    for offering_id, currency, amount, orders in session.execute(sales):
        figures[offering_id].sales[currency] = int(amount)
        figures[offering_id].orders += int(orders)

    active = (
        select(Instance.offering_id, func.count(Instance.id))
        .join(Offering, Offering.id == Instance.offering_id)
        .where(Offering.publisher_id == publisher_id, Instance.status == InstanceStatus.ACTIVE.value)
        .group_by(Instance.offering_id)
    )
    for offering_id, count in session.execute(active):
        figures[offering_id].active_instances = int(count)

    runs = (
        select(Instance.offering_id, func.count(Run.id), func.coalesce(func.sum(Run.credits), 0))
        .select_from(Run)
        .join(Instance, Instance.id == Run.instance_id)
        .join(Offering, Offering.id == Instance.offering_id)
        .where(Offering.publisher_id == publisher_id, Run.created_at >= since, Run.created_at < until)
        .group_by(Instance.offering_id)
    )
    for offering_id, count, credits_ in session.execute(runs):
        figures[offering_id].runs = int(count)
        figures[offering_id].credits = int(credits_)
    return figures


def sum_by_currency(figures: dict[int, OfferingFigures]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for item in figures.values():
        for currency, amount in item.sales.items():
            totals[currency] += amount
    return dict(sorted(totals.items()))


# --- sales -------------------------------------------------------------------------------------

def _sales_query(publisher_id: int, offering_id: int | None, start: date | None, end: date | None):
    buyer = aliased(Organization)
    query = _paid_lines_of(publisher_id).join(buyer, buyer.id == Order.organization_id).outerjoin(
        Plan, Plan.id == OrderLine.plan_id
    )
    if offering_id is not None:
        query = query.where(OrderLine.offering_id == offering_id)
    if start is not None:
        query = query.where(_paid_at() >= period_bounds(start, start)[0])
    if end is not None:
        query = query.where(_paid_at() < period_bounds(end, end)[1])
    return query, buyer


def sales_lines(
    session: Session, *, publisher_id: int, offering_id: int | None = None, start: date | None = None,
    end: date | None = None, limit: int | None = None, offset: int = 0,
) -> list[SaleLine]:
    """Paid order lines of the publisher's offerings, newest first."""
    query = _sales_lines_query(publisher_id, offering_id, start, end)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [SaleLine(*row) for row in session.execute(query)]


def iter_sales_lines(
    session: Session, *, publisher_id: int, offering_id: int | None = None, start: date | None = None,
    end: date | None = None, batch: int = 500,
) -> Iterator[SaleLine]:
    """The same lines as `sales_lines`, fetched in batches (for exports of any size)."""
    query = _sales_lines_query(publisher_id, offering_id, start, end).execution_options(yield_per=batch)
    for row in session.execute(query):
        yield SaleLine(*row)


def _sales_lines_query(publisher_id: int, offering_id: int | None, start: date | None, end: date | None):
    query, buyer = _sales_query(publisher_id, offering_id, start, end)
    return query.add_columns(
        Order.id, Order.number, _paid_at(), buyer.name, Offering.id, Offering.name,
        func.coalesce(Plan.name, OrderLine.name), func.coalesce(Plan.tier, ""), OrderLine.sku,
        OrderLine.quantity, OrderLine.unit_price_minor, OrderLine.total_minor, Order.currency,
    ).order_by(_paid_at().desc(), Order.id.desc(), OrderLine.id)


def sales_summary(
    session: Session, *, publisher_id: int, offering_id: int | None = None, start: date | None = None,
    end: date | None = None,
) -> tuple[int, dict[str, int]]:
    """(number of lines, total per currency) for the same filter as `sales_lines`."""
    query, _ = _sales_query(publisher_id, offering_id, start, end)
    rows = session.execute(
        query.add_columns(Order.currency, func.count(OrderLine.id), func.sum(OrderLine.total_minor))
        .group_by(Order.currency).order_by(Order.currency)
    ).all()
    return sum(int(r[1]) for r in rows), {r[0]: int(r[2]) for r in rows}


# --- analytics ---------------------------------------------------------------------------------

def publisher_analytics(session: Session, *, publisher_id: int, start: date, end: date) -> Analytics:
    since, until = period_bounds(start, end)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]

    revenue: dict[str, dict[date, int]] = defaultdict(dict)
    day = _utc_day(session, _paid_at())
    rows = session.execute(
        _paid_lines_of(publisher_id).add_columns(day, Order.currency, func.sum(OrderLine.total_minor))
        .where(_paid_at() >= since, _paid_at() < until).group_by(day, Order.currency)
    )
    for day_text, currency, amount in rows:
        revenue[currency][date.fromisoformat(day_text)] = int(amount)

    instance_day = _utc_day(session, Instance.created_at)
    of_publisher = and_(
        Offering.id == Instance.offering_id, Offering.publisher_id == publisher_id,
        Instance.created_at >= since, Instance.created_at < until,
    )
    converted = _converted_expression()
    new_instances: dict[date, int] = {}
    trials_started: dict[date, int] = {}
    trials_converted: dict[date, int] = {}
    rows = session.execute(
        select(
            instance_day,
            func.sum(case((Instance.is_trial.is_(False), 1), else_=0)),
            func.sum(case((Instance.is_trial.is_(True), 1), else_=0)),
            func.sum(case((and_(Instance.is_trial.is_(True), converted), 1), else_=0)),
        ).select_from(Instance).join(Offering, of_publisher).group_by(instance_day)
    )
    for day_text, paid, trials, conversions in rows:
        key = date.fromisoformat(day_text)
        new_instances[key], trials_started[key], trials_converted[key] = int(paid), int(trials), int(conversions)

    usage: dict[int, OfferingUsage] = {
        offering_id: OfferingUsage(offering_id, name)
        for offering_id, name in session.execute(
            select(Offering.id, Offering.name).where(Offering.publisher_id == publisher_id)
            .order_by(Offering.name, Offering.id)
        )
    }
    rows = session.execute(
        select(Instance.offering_id, func.count(Run.id), func.coalesce(func.sum(Run.credits), 0),
               func.sum(case((Run.cap_outcome == CapOutcome.CUT.value, 1), else_=0)),
               func.sum(case((Run.cap_outcome == CapOutcome.OVERRUN.value, 1), else_=0)),
               func.coalesce(func.sum(Run.overrun_credits), 0))
        .select_from(Run).join(Instance, Instance.id == Run.instance_id)
        .join(Offering, Offering.id == Instance.offering_id)
        .where(Offering.publisher_id == publisher_id, Run.created_at >= since, Run.created_at < until)
        .group_by(Instance.offering_id)
    )
    for offering_id, count, credits_, cut, overrun, overrun_credits in rows:
        figures = usage[offering_id]
        figures.runs, figures.credits = int(count), int(credits_)
        figures.runs_cut, figures.runs_overrun = int(cut or 0), int(overrun or 0)
        figures.overrun_credits = int(overrun_credits)
    rows = session.execute(
        select(
            Instance.offering_id, func.count(Instance.id), func.sum(case((converted, 1), else_=0)),
        ).select_from(Instance).join(Offering, of_publisher).where(Instance.is_trial.is_(True))
        .group_by(Instance.offering_id)
    )
    for offering_id, trials, conversions in rows:
        usage[offering_id].trials_started, usage[offering_id].trials_converted = int(trials), int(conversions or 0)

    return Analytics(
        start=start, end=end, days=days, revenue=dict(sorted(revenue.items())), new_instances=new_instances,
        trials_started=trials_started, trials_converted=trials_converted, per_offering=list(usage.values()),
    )


def _converted_expression() -> ColumnElement:
    """True for a trial whose organization later paid for a plan (price above zero) of the same offering."""
    return exists().where(
        Order.id == OrderLine.order_id,
        Order.organization_id == Instance.organization_id,
        Order.status == OrderStatus.PAID.value,
        OrderLine.offering_id == Instance.offering_id,
        OrderLine.kind == LineKind.PLAN.value,
        OrderLine.unit_price_minor > 0,
        _paid_at() > Instance.created_at,
    )
