"""The seller area: dashboard, publishing forms, sales and analytics for the seller's publishers."""
from __future__ import annotations

import csv
import io
import math
import re
from datetime import date, timedelta

from flask import (
    Blueprint, Response, abort, flash, g, redirect, render_template, request, session, stream_with_context, url_for,
)
from jinja2_fragments.flask import render_block

from app.auth.session_user import role_required
from app.extensions import db
from app.formatting import CURRENCY_EXPONENT
from app.models import Organization, Plan, utcnow
from app.seller.forms import (
    ActionForm, OfferingEditForm, as_choices, OfferingForm, PeriodForm, PlansForm, PublisherForm, SalesFilterForm, VersionForm,
)
from app.services import analytics, identity
from app.services import offerings as svc
from app.services.offerings import OfferingError, OfferingNotFound

bp = Blueprint("seller", __name__)

SALES_PAGE_SIZE = 50
PUBLISHER_SESSION_KEY = "seller_publisher_id"


@bp.before_request
@role_required("seller")
def _sellers_only():
    """Every page here needs the seller role (403 for anyone else, sign-in first)."""
    return None


# --- helpers -----------------------------------------------------------------------------------

def wants_fragment() -> bool:
    headers = request.headers
    return bool(headers.get("HX-Request")) and not headers.get("HX-Boosted") and not headers.get(
        "HX-History-Restore-Request"
    )


def _publishers() -> list[Organization]:
    return svc.publisher_organizations(db.session, user=g.user)


def _selected_publisher(publishers: list[Organization]) -> Organization:
    """The publisher the seller is looking at: ?publisher=<id>, else the last one chosen, else the first."""
    requested = request.args.get("publisher", type=int)
    if requested is not None:
        chosen = next((p for p in publishers if p.id == requested), None)
        if chosen is None:
            abort(404)
        session[PUBLISHER_SESSION_KEY] = chosen.id
        return chosen
    remembered = session.get(PUBLISHER_SESSION_KEY)
    return next((p for p in publishers if p.id == remembered), publishers[0])


def _offering_or_404(offering_id: int):
    try:
        return svc.get_offering_for_seller(db.session, user=g.user, offering_id=offering_id)
    except OfferingNotFound:
        abort(404)


def _attach_error(form, exc: OfferingError, field_map: dict[str, str] | None = None) -> None:
    """Show a service error beside the field it names, or above the form."""
    name = (field_map or {}).get(exc.field or "", exc.field)
    target = getattr(form, name, None) if name else None
    if target is not None and hasattr(target, "errors"):
        target.errors = [*target.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def _html(template: str, status: int = 200, **context):
    return render_template(template, **context), status


# --- dashboard ---------------------------------------------------------------------------------

@bp.get("/")
def dashboard():
    publishers = _publishers()
    publisher = _selected_publisher(publishers)
    start, end = analytics.month_to_date(utcnow())
    figures = analytics.publisher_overview(db.session, publisher_id=publisher.id, start=start, end=end)
    items = svc.offerings_of_publisher(db.session, publisher=publisher)
    totals = {
        "sales": analytics.sum_by_currency(figures),
        "orders": sum(f.orders for f in figures.values()),
        "active_instances": sum(f.active_instances for f in figures.values()),
        "runs": sum(f.runs for f in figures.values()),
        "credits": sum(f.credits for f in figures.values()),
    }
    return render_template(
        "seller/dashboard.html", publishers=publishers, publisher=publisher, offerings=items, figures=figures,
        totals=totals, month_start=start, month_end=end,
    )


# --- offerings: create and edit ----------------------------------------------------------------

def _prepare(form, offering=None) -> None:
    form.set_vocabulary(svc.facet_vocabulary(db.session))
    if hasattr(form, "publisher_id") and form.publisher_id is not None:
        form.publisher_id.choices = as_choices((p.id, p.name) for p in _publishers())


@bp.route("/offerings/create", methods=["GET", "POST"])
def offering_create():
    form = OfferingForm()
    _prepare(form)
    if request.method == "GET":
        form.publisher_id.data = _selected_publisher(_publishers()).id
    preview = None
    status = 200
    if request.method == "POST" and request.form.get("action") == "preview":
        preview = svc.render_description(form.description_md.data or "")
    elif form.validate_on_submit():
        try:
            publisher = svc.get_publisher_for_seller(db.session, user=g.user, organization_id=form.publisher_id.data)
            offering = svc.create_offering(
                db.session, publisher=publisher, actor=g.user, name=form.name.data, summary=form.summary.data,
                description_md=form.description_md.data or "", category=form.category.data,
                facets=form.facets(), trial_days=form.trial_days.data, trial_credits=form.trial_credits.data,
                slug=form.slug.data or None,
            )
            svc.add_version(
                db.session, offering=offering, actor=g.user, version=form.version.data or "1.0.0",
                changelog="First version.", runtime_kind=form.runtime_kind.data, runtime_ref=form.runtime_ref.data,
            )
        except OfferingError as exc:
            db.session.rollback()
            _attach_error(form, exc, {"publisher": "publisher_id"} if exc.field is None else None)
            status = 400
        else:
            db.session.commit()
            session[PUBLISHER_SESSION_KEY] = offering.publisher_id
            flash(f"Draft “{offering.name}” saved. Add its plans, then submit it for review.", "success")
            return redirect(url_for("seller.offering_plans", offering_id=offering.id))
    elif request.method == "POST":
        status = 400
    return _html("seller/offering_form.html", status, form=form, offering=None, preview=preview)


@bp.route("/offerings/<int:offering_id>/update", methods=["GET", "POST"])
def offering_update(offering_id: int):
    offering = _offering_or_404(offering_id)
    form = OfferingEditForm(obj=offering if request.method == "GET" else None)
    _prepare(form, offering)
    if request.method == "GET":
        for group in svc.SELLER_FACET_GROUPS:
            getattr(form, group).data = [v for v in offering.facet_values(group) if v != svc.DERIVED_PRICING]
    preview = None
    status = 200
    if request.method == "POST" and request.form.get("action") == "preview":
        preview = svc.render_description(form.description_md.data or "")
    elif form.validate_on_submit():
        fields = {
            "name": form.name.data, "summary": form.summary.data, "description_md": form.description_md.data or "",
            "category": form.category.data, "facets": form.facets(), "trial_days": form.trial_days.data,
            "trial_credits": form.trial_credits.data,
        }
        if offering.published_at is None:
            fields["slug"] = form.slug.data or svc.suggest_slug(
                db.session, form.name.data, exclude_offering_id=offering.id
            )
        try:
            svc.update_offering(db.session, offering=offering, actor=g.user, **fields)
        except OfferingError as exc:
            db.session.rollback()
            _attach_error(form, exc)
            status = 400
        else:
            db.session.commit()
            flash("Listing saved.", "success")
            return redirect(url_for("seller.offering_detail", offering_id=offering.id))
    elif request.method == "POST":
        status = 400
    return _html("seller/offering_form.html", status, form=form, offering=offering, preview=preview)


@bp.post("/preview")
def description_preview():
    """The Markdown preview beside the description (htmx); the forms' Preview button does the same without JS."""
    html = svc.render_description(request.form.get("description_md", "")[: svc.DESCRIPTION_MAX])
    return render_block("seller/offering_form.html", "preview", preview=html), {"Vary": "HX-Request"}


# --- one offering ------------------------------------------------------------------------------

@bp.get("/offerings/<int:offering_id>")
def offering_detail(offering_id: int):
    offering = _offering_or_404(offering_id)
    return render_template(
        "seller/offering_detail.html", offering=offering, action_form=ActionForm(),
        blockers=svc.review_blockers(offering), latest=svc.latest_version(offering),
        description_html=svc.render_description(offering.description_md),
    )


@bp.post("/offerings/<int:offering_id>/submit")
def offering_submit(offering_id: int):
    offering = _offering_or_404(offering_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        svc.submit_for_review(db.session, offering=offering, actor=g.user)
    except OfferingError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash("Submitted for review. An operator will approve it or tell you what to change.", "success")
    return redirect(url_for("seller.offering_detail", offering_id=offering.id))


@bp.post("/offerings/<int:offering_id>/archive")
def offering_archive(offering_id: int):
    offering = _offering_or_404(offering_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        svc.archive(db.session, offering=offering, actor=g.user)
    except OfferingError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"“{offering.name}” is archived and no longer in the catalog.", "success")
    return redirect(url_for("seller.offering_detail", offering_id=offering.id))


@bp.route("/offerings/<int:offering_id>/versions", methods=["GET", "POST"])
def offering_versions(offering_id: int):
    offering = _offering_or_404(offering_id)
    latest = svc.latest_version(offering)
    form = VersionForm()
    if request.method == "GET":
        form.version.data = svc.next_version(offering)
        if latest is not None:
            form.runtime_kind.data, form.runtime_ref.data = latest.runtime_kind, latest.runtime_ref
    status = 200
    if form.validate_on_submit():
        try:
            version = svc.add_version(
                db.session, offering=offering, actor=g.user, version=form.version.data,
                changelog=form.changelog.data or "", runtime_kind=form.runtime_kind.data,
                runtime_ref=form.runtime_ref.data,
            )
        except OfferingError as exc:
            db.session.rollback()
            _attach_error(form, exc)
            status = 400
        else:
            db.session.commit()
            flash(f"Version {version.version} added.", "success")
            return redirect(url_for("seller.offering_versions", offering_id=offering.id))
    elif request.method == "POST":
        status = 400
    versions = sorted(offering.versions, key=lambda v: svc.parse_semver(v.version), reverse=True)
    return _html("seller/offering_versions.html", status, offering=offering, form=form, versions=versions)


PRICE_RE = re.compile(r"^(-?)([0-9]{0,9})(?:\.([0-9]*))?$")


def price_to_minor(text: str | None, currency: str | None) -> int:
    """'29.00' in USD -> 2900, with integer arithmetic; raises OfferingError naming the price field."""
    raw = (text or "").strip().replace(",", "")
    match = PRICE_RE.match(raw)
    if not match or not (match.group(2) or match.group(3)):
        raise OfferingError("Enter a price like 29.00.", field="price_minor")
    sign, whole, fraction = match.group(1), match.group(2) or "0", match.group(3) or ""
    exponent = CURRENCY_EXPONENT.get((currency or "").strip().upper(), 2)
    if len(fraction) > exponent:
        raise OfferingError(f"Use at most {exponent} decimal places.", field="price_minor")
    minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return -minor if sign else minor


def minor_to_price(minor: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    if exponent == 0:
        return str(minor)
    major, rest = divmod(minor, 10**exponent)
    return f"{major}.{rest:0{exponent}d}"


@bp.route("/offerings/<int:offering_id>/plans", methods=["GET", "POST"])
def offering_plans(offering_id: int):
    offering = _offering_or_404(offering_id)
    existing: dict[str, Plan] = {p.tier: p for p in offering.plans}
    form = PlansForm()
    if request.method == "GET":
        for tier in PlansForm.TIERS:
            sub = getattr(form, tier).form
            plan = existing.get(tier)
            if plan is None:
                sub.name.data = tier.title()
                sub.offered.data = not existing  # a new offering starts with all three tiers
                continue
            sub.name.data, sub.currency.data = plan.name, plan.currency
            sub.price.data = minor_to_price(plan.price_minor, plan.currency)
            sub.included_credits.data, sub.credits_per_run.data = plan.included_credits, plan.credits_per_run
            sub.max_runs_per_period.data, sub.features.data = plan.max_runs_per_period, plan.features
    status = 200
    if form.validate_on_submit():
        failed = False
        for tier in PlansForm.TIERS:
            sub = getattr(form, tier).form
            if tier not in existing and not sub.offered.data:
                continue
            try:
                svc.set_plan(
                    db.session, offering=offering, actor=g.user, tier=tier, name=sub.name.data or "",
                    price_minor=price_to_minor(sub.price.data, sub.currency.data), currency=sub.currency.data or "",
                    included_credits=sub.included_credits.data if sub.included_credits.data is not None else 0,
                    credits_per_run=sub.credits_per_run.data if sub.credits_per_run.data is not None else 0,
                    max_runs_per_period=sub.max_runs_per_period.data, features=sub.features.data or "",
                )
            except OfferingError as exc:
                failed = True
                _attach_error(sub, exc, {"price_minor": "price"})
        if failed:
            db.session.rollback()
            form.form_errors.append("Nothing was saved: fix the fields marked below.")
            status = 400
        else:
            db.session.commit()
            flash("Plans saved.", "success")
            return redirect(url_for("seller.offering_detail", offering_id=offering.id))
    elif request.method == "POST":
        status = 400
    offering = _offering_or_404(offering_id)  # reloaded after a rollback
    return _html("seller/offering_plans.html", status, offering=offering, form=form,
                 existing={p.tier: p for p in offering.plans})


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
    publishers = _publishers()
    publisher = _selected_publisher(publishers)
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
        publishers=publishers, publisher=publisher, form=form, lines=lines, count=count, totals=totals,
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
    publisher = _selected_publisher(_publishers())
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
                minor_to_price(line.unit_price_minor, line.currency), minor_to_price(line.total_minor, line.currency),
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
    publishers = _publishers()
    publisher = _selected_publisher(publishers)
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
        "seller/analytics.html", publishers=publishers, publisher=publisher, form=form, report=report,
        chart_data=chart_data, presets=presets, today=today, timedelta=timedelta,
    ), status


@bp.post("/publishers/create")
def publisher_create():
    """A seller may publish under a team organization of their own."""
    form = PublisherForm()
    if form.validate_on_submit():
        try:
            org = identity.create_organization(db.session, name=form.name.data, owner=g.user)
        except identity.IdentityError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            session[PUBLISHER_SESSION_KEY] = org.id
            flash(f"Publisher organization “{org.name}” created.", "success")
    else:
        flash("Give the organization a name (up to 120 characters).", "error")
    return redirect(url_for("seller.dashboard"))

