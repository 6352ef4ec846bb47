"""Account pages: Billing & Credits (balance, ledger and its CSV export, usage chart, low-balance
notifications) and the credits badge in the header."""
from __future__ import annotations

import csv
import io

from flask import Response, abort, flash, g, redirect, render_template, request, stream_with_context, url_for

from app.account.forms import ActionForm, LowBalanceForm
from app.account.views import bp, has_endpoint, refusal_text
from app.auth.session_user import current_org, login_required
from app.extensions import db
from app.services import account, billing, ledger_wording, organizations, run_history

LEDGER_PAGE_SIZE = 25
USAGE_DAYS = 30


@bp.get("/billing", endpoint="billing")  # the function name keeps clear of the billing service
@login_required
def billing_page():
    org = current_org()
    wallet = billing.wallet_for_organization(db.session, org.id)
    cursor = request.args.get("before", type=int)
    try:
        entries, next_cursor = billing.ledger_page(db.session, wallet=wallet, cursor=cursor, limit=LEDGER_PAGE_SIZE)
    except billing.BillingError:
        abort(404)
    labels = account.instance_labels(db.session, organization_id=org.id)
    days, series = run_history.usage_by_day(db.session, organization_id=org.id, days=USAGE_DAYS)
    chart = {
        "labels": [d.strftime("%b %d") for d in days],
        "datasets": [{"label": labels.get(instance_id, "Other"), "data": values}
                     for instance_id, values in sorted(series.items(), key=lambda kv: labels.get(kv[0], "~"))],
    }
    threshold_form = LowBalanceForm(formdata=None, threshold=wallet.low_balance_threshold)
    return render_template(
        "account/billing.html", org=org, wallet=wallet, balances=billing.wallet_balances(db.session, wallet=wallet),
        entries=entries, next_cursor=next_cursor, first_page=cursor is None, labels=labels,
        descriptions=ledger_wording.describe_entries(db.session, entries), kind_label=ledger_wording.kind_label,
        chart=chart, usage_total=sum(sum(v) for v in series.values()),
        packs=account.credit_packs(db.session), can_buy=has_endpoint("storefront.cart_add"),
        notifications=account.unread_notifications(db.session, organization_id=org.id),
        threshold_form=threshold_form, action_form=ActionForm(formdata=None),
    )


@bp.get("/billing/ledger.csv")
@login_required
def billing_ledger_csv():
    """The whole ledger of the current organization's wallet, newest first, streamed page by page."""
    org = current_org()
    wallet = billing.wallet_for_organization(db.session, org.id)
    labels = account.instance_labels(db.session, organization_id=org.id)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "created_at", "kind", "amount", "held_change", "balance_after", "instance", "reference",
                         "description"])
        cursor = None
        while True:
            entries, cursor = billing.ledger_page(db.session, wallet=wallet, cursor=cursor, limit=200)
            descriptions = ledger_wording.describe_entries(db.session, entries)
            for e in entries:
                writer.writerow([e.id, e.created_at.isoformat(), e.kind, e.amount, e.held_delta, e.balance_after,
                                 labels.get(e.instance_id, "") if e.instance_id else "", _csv_safe(e.reference or ""),
                                 _csv_safe(descriptions[e.id])])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if cursor is None:
                break

    filename = f"credits-ledger-{org.slug}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _csv_safe(value: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: prefix them with a quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.post("/billing/threshold")
@login_required
def billing_threshold():
    org = current_org()
    form = LowBalanceForm()
    if form.validate_on_submit():
        wallet = billing.wallet_for_organization(db.session, org.id)
        try:
            organizations.require_role(db.session, user=g.user, organization_id=org.id)
            billing.set_low_balance_threshold(db.session, wallet=wallet, threshold=form.threshold.data, actor=g.user)
        except (billing.BillingError, organizations.OrganizationError) as exc:
            db.session.rollback()
            flash(refusal_text(exc, "change notifications"), "error")
        else:
            db.session.commit()
            flash(f"We will notify you when the balance falls below {form.threshold.data:,} credits."
                  if form.threshold.data else "Low-balance notifications are off.", "success")
    else:
        flash("Enter a whole number of credits, or leave it empty.", "error")
    return redirect(url_for("account.billing", _anchor="notifications"), 303)


@bp.post("/billing/notifications/read")
@login_required
def billing_notifications_read():
    if ActionForm().validate_on_submit():
        account.mark_notifications_read(db.session, organization_id=current_org().id)
        db.session.commit()
    return redirect(url_for("account.billing"), 303)


@bp.get("/credits-badge")
def credits_badge():
    """The header badge's content (htmx loads it, and again on `credits-changed`).

    Signed out (a session that ended in another tab): 204, so htmx leaves the badge as it is
    instead of swapping a sign-in page into the header."""
    if g.get("user") is None:
        return "", 204, {"Cache-Control": "no-store"}
    org = current_org()
    wallet = billing.wallet_for_organization(db.session, org.id)
    balances = billing.wallet_balances(db.session, wallet=wallet)
    low = wallet.low_balance_threshold is not None and balances.available < wallet.low_balance_threshold
    html = render_template("account/_credits_badge.html", balances=balances, low=low)
    return html, 200, {"Cache-Control": "no-store", "Vary": "HX-Request"}
