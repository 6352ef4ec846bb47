"""Seller earnings and payouts: the accounting a finance team reconciles against the payment provider.

No money moves through the marketplace. Each paid order line of an offering gives its publisher one
`sale` earning entry, priced in the order's currency, with the platform fee of that moment fixed on
it (PLATFORM_FEE_PERCENT, or the operator's rate for that publisher): a later change of the rate
never rewrites a sale. Each refund of such a line gives one `refund` entry that takes the refund
out of the seller's earnings and gives back the matching share of the sale's fee, so a line refunded
in full leaves no fee and no net. Every entry balances on its own (a CHECK in the database):

    gross = refunds + platform fee + net

Operators record payouts (money paid to a publisher outside the app). Per publisher, currency and
month: net earnings = payouts + the change of the balance owed, and the balance owed at the end of
a month is the sum of net earnings minus payouts so far. `verify_payouts` recomputes all of it from
the paid order lines, refunds and payouts and reports every difference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.formatting import money
from app.models import (
    EarningEntry, EarningKind, Offering, Order, OrderLine, OrderStatus, Organization, Payout, PublisherFee,
    Refund, User, utcnow,
)
from app.services import audit
from app.services.errors import ServiceError

DEFAULT_FEE_PERCENT = "15"
MAX_REFERENCE = 120
AUDIT_PAYOUT_RECORDED = "payout.recorded"
AUDIT_FEE_CHANGED = "payout.fee_changed"


class PayoutError(ServiceError):
    """A payout or fee rule was broken; the message is safe to show."""


# --- the platform fee ----------------------------------------------------------------------------

def percent_to_basis_points(raw: object, *, field: str = "percent") -> int:
    """"15" -> 1500, "12.5" -> 1250; between 0 and 100 with at most two decimals."""
    text = str(raw if raw is not None else "").strip().rstrip("%").strip()
    if not re.fullmatch(r"\d{1,3}(\.\d{1,2})?", text):
        raise PayoutError("Enter a percentage between 0 and 100, with at most two decimals.", field=field)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise PayoutError("Enter a percentage between 0 and 100.", field=field) from None
    if value > 100:
        raise PayoutError("A fee cannot be more than 100%.", field=field)
    return int(value * 100)


def basis_points_label(basis_points: int) -> str:
    """1500 -> "15%", 1250 -> "12.5%"."""
    whole, rest = divmod(basis_points, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"


def default_fee_basis_points() -> int:
    """PLATFORM_FEE_PERCENT from the app's configuration (15% outside an app)."""
    from flask import current_app, has_app_context

    raw = current_app.config.get("PLATFORM_FEE_PERCENT", DEFAULT_FEE_PERCENT) if has_app_context() else DEFAULT_FEE_PERCENT
    try:
        return percent_to_basis_points(raw)
    except PayoutError:
        raise RuntimeError(f"PLATFORM_FEE_PERCENT must be a percentage between 0 and 100, not {raw!r}") from None


def fee_basis_points(session: Session, *, publisher_id: int) -> int:
    """The fee a sale of this publisher pays now: the operator's rate for it, else the configured one."""
    override = session.scalar(select(PublisherFee.basis_points).where(PublisherFee.publisher_id == publisher_id))
    return override if override is not None else default_fee_basis_points()


def set_publisher_fee(
    session: Session, *, publisher: Organization, percent: str | None, actor: User,
) -> PublisherFee | None:
    """Give a publisher its own fee (a percentage), or back to the default when `percent` is empty.
    Only sales from now on pay it (flushes; the caller commits)."""
    existing = session.scalar(select(PublisherFee).where(PublisherFee.publisher_id == publisher.id))
    before = existing.basis_points if existing else None
    if percent is None or not str(percent).strip():
        if existing is not None:
            session.delete(existing)
        after = None
    else:
        after = percent_to_basis_points(percent)
        if existing is None:
            existing = PublisherFee(publisher_id=publisher.id, basis_points=after, updated_by_user_id=actor.id)
            session.add(existing)
        else:
            existing.basis_points = after
            existing.updated_by_user_id = actor.id
    audit.record(session, action=AUDIT_FEE_CHANGED, target_type="organization", target_id=publisher.id,
                 organization_id=publisher.id, actor=actor,
                 data={"basis_points_before": before, "basis_points_after": after})
    session.flush()
    return existing if after is not None else None


def fee_of(gross_minor: int, basis_points: int) -> int:
    """The platform's fee on a sale, rounded half up to the minor unit."""
    return (gross_minor * basis_points + 5000) // 10000


# --- earning entries -----------------------------------------------------------------------------

def month_of(moment: datetime | date) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _publisher_of_line(session: Session, line: OrderLine) -> int | None:
    if line.offering_id is None:
        return None  # credit packs are the platform's own: no seller earns on them
    return session.scalar(select(Offering.publisher_id).where(Offering.id == line.offering_id))


def _sale_entry(session: Session, line_id: int) -> EarningEntry | None:
    return session.scalar(select(EarningEntry).where(EarningEntry.sale_line_id == line_id))


def record_sale_earnings(session: Session, *, order: Order, now: datetime | None = None) -> list[EarningEntry]:
    """One sale entry per paid line of an offering, with today's fee for its publisher; a line that has
    one already keeps it (so a repeat of the order-paid handler changes nothing). Flushes."""
    from app.services.orders import insert_once

    if order.status != OrderStatus.PAID.value:
        return []
    occurred = order.paid_at or now or utcnow()
    made = []
    for line in order.lines:
        publisher_id = _publisher_of_line(session, line)
        if publisher_id is None or line.total_minor <= 0 or _sale_entry(session, line.id) is not None:
            continue
        rate = fee_basis_points(session, publisher_id=publisher_id)
        fee = fee_of(line.total_minor, rate)
        entry = EarningEntry(
            publisher_id=publisher_id, kind=EarningKind.SALE.value, order_line_id=line.id, sale_line_id=line.id,
            month=month_of(occurred), occurred_at=occurred, currency=order.currency, gross_minor=line.total_minor,
            refunds_minor=0, fee_minor=fee, net_minor=line.total_minor - fee, fee_basis_points=rate,
        )
        if insert_once(session, entry):  # a concurrent handler of the same order recorded it: keep theirs
            made.append(entry)
    return made


def record_refund_earning(session: Session, *, refund: Refund) -> EarningEntry | None:
    """The refund's entry for the publisher of its line: the refund out of the earnings, and the share of
    the sale's fee it gives back (cumulative per line, so a line refunded in full gives back all of it)."""
    line = refund.line
    sale = _sale_entry(session, line.id)
    if sale is None:
        record_sale_earnings(session, order=line.order)
        sale = _sale_entry(session, line.id)
        if sale is None:
            return None
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount_minor), 0))
                              .where(Refund.order_line_id == line.id)) or 0
    given_back = -(session.scalar(
        select(func.coalesce(func.sum(EarningEntry.fee_minor), 0))
        .where(EarningEntry.order_line_id == line.id, EarningEntry.kind == EarningKind.REFUND.value)
    ) or 0)
    owed_back = sale.fee_minor * min(refunded, sale.gross_minor) // sale.gross_minor if sale.gross_minor else 0
    fee = -(owed_back - given_back)
    entry = EarningEntry(
        publisher_id=sale.publisher_id, kind=EarningKind.REFUND.value, order_line_id=line.id, refund_id=refund.id,
        month=month_of(refund.created_at or utcnow()), occurred_at=refund.created_at or utcnow(),
        currency=refund.currency, gross_minor=0, refunds_minor=refund.amount_minor, fee_minor=fee,
        net_minor=-refund.amount_minor - fee, fee_basis_points=sale.fee_basis_points,
    )
    session.add(entry)
    session.flush()
    return entry


def record_missing_sale_earnings(session: Session, *, limit: int = 1000) -> int:
    """Sale entries for paid lines of offerings that have none (orders paid before earnings were kept)."""
    order_ids = list(session.scalars(
        select(OrderLine.order_id).join(Order, Order.id == OrderLine.order_id)
        .outerjoin(EarningEntry, EarningEntry.sale_line_id == OrderLine.id)
        .where(Order.status == OrderStatus.PAID.value, OrderLine.offering_id.is_not(None),
               OrderLine.total_minor > 0, EarningEntry.id.is_(None))
        .distinct().limit(limit)
    ))
    count = 0
    for order in session.scalars(select(Order).where(Order.id.in_(order_ids))):
        count += len(record_sale_earnings(session, order=order))
    return count


# --- statements ----------------------------------------------------------------------------------

@dataclass
class MonthFigures:
    month: str
    currency: str
    gross: int = 0
    refunds: int = 0
    fees: int = 0
    net: int = 0
    payouts: int = 0
    balance: int = 0  # owed to the publisher at the end of the month (negative: the publisher owes)

    @property
    def label(self) -> str:
        return month_label(self.month)


def month_label(month: str) -> str:
    year, number = month.split("-")
    return date(int(year), int(number), 1).strftime("%B %Y")


def valid_month(raw: str | None) -> str | None:
    """"2026-12" when it is a real month, else None."""
    if not raw or not re.fullmatch(r"\d{4}-\d{2}", raw):
        return None
    year, number = int(raw[:4]), int(raw[5:])
    return raw if 2000 <= year <= 9999 and 1 <= number <= 12 else None


def monthly_figures(session: Session, *, publisher_id: int) -> list[MonthFigures]:
    """Per currency and month (oldest first): gross sales, refunds, fees, net, payouts and the balance owed
    at the month's end, from the stored earning entries and payouts."""
    months: dict[tuple[str, str], MonthFigures] = {}
    for month, currency, gross, refunds, fees, net in session.execute(
        select(EarningEntry.month, EarningEntry.currency, func.sum(EarningEntry.gross_minor),
               func.sum(EarningEntry.refunds_minor), func.sum(EarningEntry.fee_minor), func.sum(EarningEntry.net_minor))
        .where(EarningEntry.publisher_id == publisher_id).group_by(EarningEntry.month, EarningEntry.currency)
    ):
        months[(currency, month)] = MonthFigures(month, currency, int(gross), int(refunds), int(fees), int(net))
    for payout in session.scalars(select(Payout).where(Payout.publisher_id == publisher_id)):
        key = (payout.currency, month_of(payout.paid_on))
        months.setdefault(key, MonthFigures(key[1], key[0])).payouts += payout.amount_minor
    balances: dict[str, int] = {}
    ordered = sorted(months.values(), key=lambda f: (f.month, f.currency))
    for figures in ordered:
        balances[figures.currency] = balances.get(figures.currency, 0) + figures.net - figures.payouts
        figures.balance = balances[figures.currency]
    return ordered


@dataclass(frozen=True)
class StatementLine:
    occurred_at: datetime | date
    kind: str  # sale | refund | payout
    order_number: str | None
    description: str
    currency: str
    gross: int = 0
    refunds: int = 0
    fee: int = 0
    net: int = 0
    payout: int = 0
    fee_rate: str = ""


@dataclass
class Statement:
    publisher: Organization
    month: str
    lines: list[StatementLine] = field(default_factory=list)
    totals: list[MonthFigures] = field(default_factory=list)  # one per currency
    opening: dict[str, int] = field(default_factory=dict)  # balance owed at the start of the month

    @property
    def label(self) -> str:
        return month_label(self.month)


def monthly_statement(session: Session, *, publisher: Organization, month: str) -> Statement:
    """One month of one publisher: every sale, refund and payout, the totals per currency, and the
    balance owed before and after."""
    statement = Statement(publisher=publisher, month=month)
    rows = session.execute(
        select(EarningEntry, Order.number, OrderLine.name)
        .join(OrderLine, OrderLine.id == EarningEntry.order_line_id).join(Order, Order.id == OrderLine.order_id)
        .where(EarningEntry.publisher_id == publisher.id, EarningEntry.month == month)
        .order_by(EarningEntry.occurred_at, EarningEntry.id)
    ).all()
    for entry, number, name in rows:
        statement.lines.append(StatementLine(
            occurred_at=entry.occurred_at, kind=entry.kind, order_number=number,
            description=name if entry.kind == EarningKind.SALE.value else f"Refund: {name}",
            currency=entry.currency, gross=entry.gross_minor, refunds=entry.refunds_minor, fee=entry.fee_minor,
            net=entry.net_minor, fee_rate=basis_points_label(entry.fee_basis_points),
        ))
    year, number = int(month[:4]), int(month[5:])
    start = date(year, number, 1)
    end = date(year + (number == 12), number % 12 + 1, 1)
    for payout in session.scalars(
        select(Payout).where(Payout.publisher_id == publisher.id, Payout.paid_on >= start, Payout.paid_on < end)
        .order_by(Payout.paid_on, Payout.id)
    ):
        statement.lines.append(StatementLine(
            occurred_at=payout.paid_on, kind="payout", order_number=None, description=f"Payout {payout.reference}",
            currency=payout.currency, payout=payout.amount_minor,
        ))
    figures = monthly_figures(session, publisher_id=publisher.id)
    for f in figures:
        if f.month < month:
            statement.opening[f.currency] = f.balance
    statement.totals = [f for f in figures if f.month == month]
    for f in statement.totals:
        statement.opening.setdefault(f.currency, 0)
    return statement


@dataclass(frozen=True)
class Owed:
    publisher: Organization
    currency: str
    net: int
    payouts: int
    fee_basis_points: int
    fee_is_default: bool

    @property
    def balance(self) -> int:
        return self.net - self.payouts


def _owed_rows(session: Session, publisher_id: int | None = None) -> dict[tuple[int, str], list[int]]:
    totals: dict[tuple[int, str], list[int]] = {}
    earned = select(EarningEntry.publisher_id, EarningEntry.currency, func.sum(EarningEntry.net_minor)) \
        .group_by(EarningEntry.publisher_id, EarningEntry.currency)
    paid = select(Payout.publisher_id, Payout.currency, func.sum(Payout.amount_minor)) \
        .group_by(Payout.publisher_id, Payout.currency)
    if publisher_id is not None:
        earned = earned.where(EarningEntry.publisher_id == publisher_id)
        paid = paid.where(Payout.publisher_id == publisher_id)
    for pid, currency, net in session.execute(earned):
        totals.setdefault((pid, currency), [0, 0])[0] = int(net)
    for pid, currency, amount in session.execute(paid):
        totals.setdefault((pid, currency), [0, 0])[1] = int(amount)
    return totals


def owed_to_publishers(session: Session) -> list[Owed]:
    """What each publisher has earned, been paid and is owed, per currency (largest balance first)."""
    totals = _owed_rows(session)
    overrides = dict(session.execute(select(PublisherFee.publisher_id, PublisherFee.basis_points)).all())
    default = default_fee_basis_points()
    publishers = {o.id: o for o in session.scalars(
        select(Organization).where(Organization.id.in_({pid for pid, _ in totals}
                                                       | set(session.scalars(select(Offering.publisher_id))))))}
    rows = [Owed(publishers[pid], currency, net, paid, overrides.get(pid, default), pid not in overrides)
            for (pid, currency), (net, paid) in totals.items()]
    seen = {pid for pid, _ in totals}
    rows += [Owed(org, "", 0, 0, overrides.get(pid, default), pid not in overrides)
             for pid, org in publishers.items() if pid not in seen]
    return sorted(rows, key=lambda r: (-r.balance, r.publisher.name.lower(), r.currency))


def payouts_of(session: Session, *, publisher_id: int, limit: int = 100) -> list[Payout]:
    return list(session.scalars(select(Payout).where(Payout.publisher_id == publisher_id)
                                .order_by(Payout.paid_on.desc(), Payout.id.desc()).limit(limit)))


# --- payouts -------------------------------------------------------------------------------------

def _lock_publisher(session: Session, publisher_id: int) -> None:
    """Payouts of one publisher are recorded one at a time (a no-op UPDATE takes the row lock on
    PostgreSQL, the write lock on SQLite), so two operators never both pay out the same balance."""
    session.execute(update(Organization).where(Organization.id == publisher_id)
                    .values(id=Organization.id).execution_options(synchronize_session=False))


def record_payout(
    session: Session, *, publisher: Organization, amount_minor: int | None, currency: str, paid_on: date | None,
    reference: str, actor: User, today: date,
) -> Payout:
    """Record money paid to a publisher: at most what it is owed in that currency, on a day not in the
    future, with the bank's or the finance team's reference (flushes; the caller commits)."""
    reference = " ".join((reference or "").split())
    if not reference:
        raise PayoutError("Enter the transfer's reference.", field="reference")
    if len(reference) > MAX_REFERENCE:
        raise PayoutError(f"Use at most {MAX_REFERENCE} characters.", field="reference")
    if paid_on is None:
        raise PayoutError("Enter the date the money was sent.", field="paid_on")
    if paid_on > today:
        raise PayoutError("The payout date cannot be in the future.", field="paid_on")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise PayoutError("Enter an amount above zero.", field="amount")
    _lock_publisher(session, publisher.id)
    owed = _owed_rows(session, publisher.id)
    if (publisher.id, currency) not in owed:
        raise PayoutError(f"{publisher.name} has no earnings in {currency}.", field="currency")
    net, paid = owed[(publisher.id, currency)]
    if amount_minor > net - paid:
        raise PayoutError(f"{publisher.name} is owed {money(max(net - paid, 0), currency)}; a payout cannot be "
                          "more than that.", field="amount")
    payout = Payout(publisher_id=publisher.id, amount_minor=amount_minor, currency=currency, paid_on=paid_on,
                    reference=reference, recorded_by_user_id=actor.id)
    session.add(payout)
    session.flush()
    audit.record(session, action=AUDIT_PAYOUT_RECORDED, target_type="payout", target_id=payout.id,
                 organization_id=publisher.id, actor=actor,
                 data={"amount_minor": amount_minor, "currency": currency, "paid_on": paid_on.isoformat(),
                       "reference": reference})
    return payout


# --- verification --------------------------------------------------------------------------------

def verify_payouts(session: Session, *, max_problems: int = 50) -> list[str]:
    """Every way the stored earnings disagree with the paid order lines, refunds and payouts; empty when
    all agree. For every publisher, currency and month: gross = refunds + fees + net, and
    net = payouts + the change of the balance owed."""
    problems: list[str] = []

    def say(text: str) -> None:
        if len(problems) < max_problems:
            problems.append(text)

    sales = {e.sale_line_id: e for e in session.scalars(
        select(EarningEntry).where(EarningEntry.kind == EarningKind.SALE.value))}
    paid_lines = session.execute(
        select(OrderLine, Order, Offering.publisher_id).join(Order, Order.id == OrderLine.order_id)
        .join(Offering, Offering.id == OrderLine.offering_id)
        .where(Order.status == OrderStatus.PAID.value, OrderLine.total_minor > 0)
    ).all()
    lines_by_id = {}
    for line, order, publisher_id in paid_lines:
        lines_by_id[line.id] = (line, order, publisher_id)
        sale = sales.get(line.id)
        if sale is None:
            say(f"order {order.number} line {line.id}: paid, but no sale is recorded for its publisher")
            continue
        paid_month = month_of(order.paid_at) if order.paid_at else sale.month
        expected = (publisher_id, line.total_minor, order.currency, fee_of(line.total_minor, sale.fee_basis_points),
                    paid_month)
        stored = (sale.publisher_id, sale.gross_minor, sale.currency, sale.fee_minor, sale.month)
        if stored != expected:
            say(f"order {order.number} line {line.id}: sale recorded as publisher {stored[0]}, gross {stored[1]} "
                f"{stored[2]}, fee {stored[3]}, month {stored[4]}; the order says publisher {expected[0]}, gross "
                f"{expected[1]} {expected[2]}, fee {expected[3]}, month {expected[4]}")
    for line_id, sale in sales.items():
        if line_id not in lines_by_id:
            say(f"sale entry {sale.id}: its order line {line_id} is not a paid line of an offering")

    refund_entries = {e.refund_id: e for e in session.scalars(
        select(EarningEntry).where(EarningEntry.kind == EarningKind.REFUND.value))}
    refunded_per_line: dict[int, int] = {}
    for refund in session.scalars(select(Refund).order_by(Refund.id)):
        refunded_per_line[refund.order_line_id] = refunded_per_line.get(refund.order_line_id, 0) + refund.amount_minor
        entry = refund_entries.pop(refund.id, None)
        if refund.order_line_id not in sales:
            if entry is not None:
                say(f"refund {refund.id}: recorded for a publisher, but its line has no sale")
            continue
        if entry is None:
            say(f"refund {refund.id}: {refund.amount_minor} {refund.currency} refunded, but not taken out of the "
                "publisher's earnings")
        elif (entry.refunds_minor, entry.currency) != (refund.amount_minor, refund.currency):
            say(f"refund {refund.id}: {refund.amount_minor} {refund.currency} refunded, but earnings record "
                f"{entry.refunds_minor} {entry.currency}")
    for entry in refund_entries.values():
        say(f"refund entry {entry.id}: no such refund")
    for line_id, refunded in refunded_per_line.items():
        total = lines_by_id[line_id][0].total_minor if line_id in lines_by_id else None
        if total is not None and refunded > total:
            say(f"order line {line_id}: {refunded} refunded of a total of {total}")
        sale = sales.get(line_id)
        if sale is not None:
            given_back = -(session.scalar(
                select(func.coalesce(func.sum(EarningEntry.fee_minor), 0))
                .where(EarningEntry.order_line_id == line_id, EarningEntry.kind == EarningKind.REFUND.value)) or 0)
            expected = sale.fee_minor * min(refunded, sale.gross_minor) // sale.gross_minor
            if given_back != expected:
                say(f"order line {line_id}: {given_back} of the fee given back for {refunded} refunded; "
                    f"expected {expected}")

    for entry in session.scalars(select(EarningEntry).where(
            EarningEntry.gross_minor != EarningEntry.refunds_minor + EarningEntry.fee_minor + EarningEntry.net_minor)):
        say(f"earning entry {entry.id}: gross {entry.gross_minor} is not refunds {entry.refunds_minor} + fee "
            f"{entry.fee_minor} + net {entry.net_minor}")

    publishers = set(session.scalars(select(EarningEntry.publisher_id).distinct())) | set(
        session.scalars(select(Payout.publisher_id).distinct()))
    for publisher_id in sorted(publishers):
        previous: dict[str, int] = {}
        for f in monthly_figures(session, publisher_id=publisher_id):
            if f.gross != f.refunds + f.fees + f.net:
                say(f"publisher {publisher_id} {f.month} {f.currency}: gross {f.gross} is not refunds {f.refunds} "
                    f"+ fees {f.fees} + net {f.net}")
            if f.net != f.payouts + (f.balance - previous.get(f.currency, 0)):
                say(f"publisher {publisher_id} {f.month} {f.currency}: net {f.net} is not payouts {f.payouts} + "
                    f"the change of the balance owed {f.balance - previous.get(f.currency, 0)}")
            previous[f.currency] = f.balance
    return problems
