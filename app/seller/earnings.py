"""The seller's earnings: per month gross sales, refunds, platform fees, net earnings, payouts and the
balance owed; a monthly statement as a page and as CSV; the payouts received."""
from __future__ import annotations

import csv
import io

from flask import Response, abort, render_template

from app.extensions import db
from app.formatting import decimal_amount
from app.seller.sales import _csv_cell
from app.seller.views import bp, publishers, selected_publisher
from app.services import payouts


@bp.get("/earnings")
def earnings():
    choices = publishers()
    publisher = selected_publisher(choices)
    months = list(reversed(payouts.monthly_figures(db.session, publisher_id=publisher.id)))
    return render_template(
        "seller/earnings.html", publishers=choices, publisher=publisher, months=months,
        payouts=payouts.payouts_of(db.session, publisher_id=publisher.id, limit=50),
        fee=payouts.basis_points_label(payouts.fee_basis_points(db.session, publisher_id=publisher.id)),
    )


def _statement(month: str):
    if payouts.valid_month(month) is None:
        abort(404)
    publisher = selected_publisher(publishers())
    return payouts.monthly_statement(db.session, publisher=publisher, month=month)


@bp.get("/earnings/<month>")
def earnings_statement(month: str):
    choices = publishers()
    statement = _statement(month)
    return render_template("seller/earnings_statement.html", publishers=choices, publisher=statement.publisher,
                           statement=statement)


def _amount(minor: int, currency: str) -> str:
    """A signed plain decimal: -645 USD -> "-6.45"."""
    return ("-" if minor < 0 else "") + decimal_amount(abs(minor), currency)


STATEMENT_COLUMNS = ["date", "kind", "order", "description", "currency", "gross_sales", "refunds", "platform_fee",
                     "net_earnings", "payout", "fee_rate"]


@bp.get("/earnings/<month>.csv")
def earnings_statement_csv(month: str):
    statement = _statement(month)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(STATEMENT_COLUMNS)
    for line in statement.lines:
        when = line.occurred_at.date() if hasattr(line.occurred_at, "date") else line.occurred_at
        writer.writerow([
            when.isoformat(), line.kind, line.order_number or "", _csv_cell(line.description), line.currency,
            _amount(line.gross, line.currency), _amount(line.refunds, line.currency),
            _amount(line.fee, line.currency), _amount(line.net, line.currency),
            _amount(line.payout, line.currency), line.fee_rate,
        ])
    for total in statement.totals:
        writer.writerow([
            "", "total", "", f"{statement.label}, balance owed at the start {_amount(statement.opening[total.currency], total.currency)}, "
                             f"at the end {_amount(total.balance, total.currency)}",
            total.currency, _amount(total.gross, total.currency), _amount(total.refunds, total.currency),
            _amount(total.fees, total.currency), _amount(total.net, total.currency),
            _amount(total.payouts, total.currency), "",
        ])
    filename = f"statement-{statement.publisher.slug}-{month}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
