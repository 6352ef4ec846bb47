"""A publisher's earnings and payouts: /api/organizations/<id>/earnings... (its members only).

The figures of the seller console's Earnings page (app.services.payouts), per month and currency:
gross sales, refunds, the marketplace's fees, net earnings, payouts received and the balance owed at
the month's end (negative: the publisher owes). Amounts are in the currency's minor unit.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import g
from pydantic import Field

from app.cp import schemas
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Organization
from app.services import organizations, payouts

ID = "int(min=1, max=2147483647)"
TAGS = ["earnings"]


class MonthOut(schemas.Out):
    month: str = Field(description="YYYY-MM")
    currency: str
    gross_minor: int
    refunds_minor: int
    fees_minor: int
    net_minor: int
    payouts_minor: int
    balance_minor: int = Field(description="Owed to the publisher at the month's end; negative: the publisher owes.")


class EarningsOut(schemas.Out):
    organization_id: int
    fee_rate: str = Field(description="The marketplace's fee on this publisher's sales now, e.g. \"15%\".")
    months: list[MonthOut] = Field(description="Newest first.")


class StatementLineOut(schemas.Out):
    occurred_at: datetime | date
    kind: Literal["sale", "refund", "payout"]
    order_number: str | None
    description: str
    currency: str
    gross_minor: int
    refunds_minor: int
    fee_minor: int
    net_minor: int
    payout_minor: int
    fee_rate: str


class BalanceOut(schemas.Out):
    currency: str
    balance_minor: int


class StatementOut(schemas.Out):
    organization_id: int
    month: str
    opening: list[BalanceOut] = Field(description="The balance owed at the start of the month, per currency.")
    totals: list[MonthOut]
    lines: list[StatementLineOut] = Field(description="Every sale, refund and payout of the month, in order.")


class PayoutOut(schemas.Out):
    id: int
    amount_minor: int
    currency: str
    paid_on: date
    reference: str


class PayoutList(schemas.Out):
    items: list[PayoutOut] = Field(description="Newest first, at most 100.")


def _publisher(organization_id: int) -> Organization:
    return organizations.get_organization(db.session, user=g.api_user, organization_id=organization_id)


def _month_out(f: payouts.MonthFigures) -> MonthOut:
    return MonthOut(month=f.month, currency=f.currency, gross_minor=f.gross, refunds_minor=f.refunds,
                    fees_minor=f.fees, net_minor=f.net, payouts_minor=f.payouts, balance_minor=f.balance)


@bp.get(f"/organizations/<{ID}:organization_id>/earnings")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, EarningsOut, 404), tags=TAGS)
def get_earnings(organization_id: int):
    """The organization's earnings as a publisher, per month and currency, newest first."""
    org = _publisher(organization_id)
    months = payouts.monthly_figures(db.session, publisher_id=org.id)
    return EarningsOut(organization_id=org.id,
                       fee_rate=payouts.basis_points_label(payouts.fee_basis_points(db.session, publisher_id=org.id)),
                       months=[_month_out(f) for f in reversed(months)])


@bp.get(f"/organizations/<{ID}:organization_id>/earnings/<month>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, StatementOut, 404, 422), tags=TAGS)
def get_statement(organization_id: int, month: str):
    """One month's statement (`month` as YYYY-MM): every sale, refund and payout, the totals per currency,
    and the balance owed before it."""
    org = _publisher(organization_id)
    if payouts.valid_month(month) is None:
        raise payouts.PayoutError("Give the month as YYYY-MM, for example 2026-12.", field="month", status=422)
    statement = payouts.monthly_statement(db.session, publisher=org, month=month)
    return StatementOut(
        organization_id=org.id, month=month,
        opening=[BalanceOut(currency=c, balance_minor=b) for c, b in sorted(statement.opening.items())],
        totals=[_month_out(f) for f in statement.totals],
        lines=[StatementLineOut(occurred_at=line.occurred_at, kind=line.kind, order_number=line.order_number,
                                description=line.description, currency=line.currency, gross_minor=line.gross,
                                refunds_minor=line.refunds, fee_minor=line.fee, net_minor=line.net,
                                payout_minor=line.payout, fee_rate=line.fee_rate) for line in statement.lines],
    )


@bp.get(f"/organizations/<{ID}:organization_id>/payouts")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, PayoutList, 404), tags=TAGS)
def list_payouts(organization_id: int):
    """The payouts the marketplace made to the organization, newest first."""
    org = _publisher(organization_id)
    return PayoutList(items=[PayoutOut.model_validate(p) for p in payouts.payouts_of(db.session, publisher_id=org.id)])
