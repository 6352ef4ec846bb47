"""The seller's sales (list, filters, CSV export) and analytics for the selected publisher."""
from __future__ import annotations

import csv
import io
import math
from datetime import date, timedelta

from flask import Response, abort, render_template, request, stream_with_context
from jinja2_fragments.flask import render_block

from app.extensions import db
from app.formatting import CURRENCY_EXPONENT, decimal_amount
from app.models import Organization, utcnow
from app.seller.forms import PeriodForm, SalesFilterForm, as_choices
from app.seller.views import bp, publishers, selected_publisher, wants_fragment
from app.services import analytics
from app.services import offerings as svc

SALES_PAGE_SIZE = 50


# --- sales -------------------------------------------------------------------------------------

def _sales_filters(publisher: Organization):
    form = SalesFilterForm(request.args)
    items = svc.offerings_of_publisher(db.session, publisher=publisher)
    form.offering.choices = as_choices([("", "All offerings")] + [(o.id, o.name) for o in items])
    valid = form.validate()
    offering_id = form.offering.data if valid else None
    if offering_id is not None and offering_id not in {o.id for o in items}:
        abort(404)
    start = form.start.data if valid else None
    end = form.end.data if valid else None
    return form, offering_id, start, end


@bp.get("/sales")
def sales():
    choices = publishers()
    publisher = selected_publisher(choices)
    form, offering_id, start, end = _sales_filters(publisher)
    count, totals = analytics.sales_summary(
        db.session, publisher_id=publisher.id, offering_id=offering_id, start=start, end=end
    )
    pages = max(1, math.ceil(count / SALES_PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=int)), pages)
    lines = analytics.sales_lines(
        db.session, publisher_id=publisher.id, offering_id=offering_id, start=start, end=end,
        limit=SALES_PAGE_SIZE, offset=(page - 1) * SALES_PAGE_SIZE,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    context = dict(
        publishers=choices, publisher=publisher, form=form, lines=lines, count=count, totals=totals,
        page=page, pages=pages, args=args,
    )
    if wants_fragment():
        return render_block("seller/sales.html", "results", **context), {"Vary": "HX-Request"}
    return render_template("seller/sales.html", **context), {"Vary": "HX-Request"}


CSV_COLUMNS = ["date", "order", "buyer_organization", "offering", "plan", "tier", "sku", "quantity",
               "unit_price", "amount", "currency"]


def _csv_cell(value) -> str:
    """Neutralise spreadsheet formulas in text a buyer or seller typed (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/sales.csv")
def sales_export():
    publisher = selected_publisher(publishers())
    _, offering_id, start, end = _sales_filters(publisher)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        lines = analytics.iter_sales_lines(db.session, publisher_id=publisher.id, offering_id=offering_id,
                                           start=start, end=end)
        for line in lines:
            writer.writerow([
                line.paid_at.date().isoformat(), line.order_number, _csv_cell(line.buyer_organization),
                _csv_cell(line.offering_name), _csv_cell(line.plan_name), line.plan_tier, line.sku, line.quantity,
                decimal_amount(line.unit_price_minor, line.currency), decimal_amount(line.total_minor, line.currency),
                line.currency,
            ])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    filename = f"sales-{publisher.slug}-{date.today().isoformat()}.csv"
    return Response(
        stream_with_context(rows()), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- analytics ---------------------------------------------------------------------------------

DEFAULT_PERIOD_DAYS = 30


@bp.get("/analytics")
def analytics_page():
    choices = publishers()
    publisher = selected_publisher(choices)
    form = PeriodForm(request.args)
    today = utcnow().date()
    status = 200
    if form.validate():
        end = form.end.data or today
        start = form.start.data or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if start > end:
            start = end
    else:
        status = 400
        end, start = today, today - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if (end - start).days > 366:
        start = end - timedelta(days=366)
    form.start.data, form.end.data = start, end
    report = analytics.publisher_analytics(db.session, publisher_id=publisher.id, start=start, end=end)
    chart_data = {
        "days": [d.isoformat() for d in report.days],
        "revenue": [
            {"currency": currency, "exponent": CURRENCY_EXPONENT.get(currency, 2),
             "values": [by_day.get(d, 0) for d in report.days]}
            for currency, by_day in report.revenue.items()
        ],
        "newInstances": [report.new_instances.get(d, 0) for d in report.days],
        "trialsStarted": [report.trials_started.get(d, 0) for d in report.days],
        "trialsConverted": [report.trials_converted.get(d, 0) for d in report.days],
        "offerings": [o.offering_name for o in report.per_offering],
        "runs": [o.runs for o in report.per_offering],
        "credits": [o.credits for o in report.per_offering],
    }
    presets = [(7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days")]
    return render_template(
        "seller/analytics.html", publishers=choices, publisher=publisher, form=form, report=report,
        chart_data=chart_data, presets=presets, today=today, timedelta=timedelta,
    ), status
