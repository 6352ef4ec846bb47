"""Operator console: Orders (search, one order with its lines, payments and refunds, and refunding a
line) and Payouts (what each publisher is owed, its fee, and recording a payout)."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from app.adapters.commerce.checkout import get_checkout
from app.extensions import db
from app.formatting import decimal_amount, minor_units, money
from app.forms_flow import submit
from app.models import Organization, utcnow
from app.operator.forms import OrderSearchForm, PayoutForm, PublisherFeeForm, RefundForm, as_choices
from app.operator.views import bp
from app.services import payouts, refunds
from app.services.errors import ServiceError


class AmountError(ServiceError):
    """An amount a person typed that is not money."""


def parse_money(raw: str | None, currency: str) -> int:
    """"12.50" in USD -> 1250; a clear error beside the field for anything else."""
    text = (raw or "").strip().replace(",", "")
    for symbol in ("$", "€", "£"):
        text = text.removeprefix(symbol)
    try:
        value = minor_units(text, currency)
    except ValueError:
        raise AmountError("Enter an amount such as 12.50.", field="amount") from None
    if value <= 0:
        raise AmountError("Enter an amount above zero.", field="amount")
    if text.count(".") and len(text.split(".")[1]) > 2:
        raise AmountError("Use at most two decimals.", field="amount")
    return value


# --- orders --------------------------------------------------------------------------------------

@bp.get("/orders")
def orders():
    form = OrderSearchForm(request.args)
    valid = form.validate()
    result = refunds.search_orders(db.session, q=form.q.data if valid else None,
                                   page=request.args.get("page", 1, type=int) or 1)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("operator/orders.html", form=form, result=result, args=args), (200 if valid else 400)


def _order_page(order_id: int, failed: RefundForm | None = None, status: int = 200):
    try:
        order = refunds.get_order(db.session, order_id=order_id)
    except refunds.OrderNotFound:
        abort(404)
    refunded = refunds.refunded_by_line(db.session, order_id=order.id)
    forms = {}
    for line in order.lines:
        if failed is not None and failed.line_id.data == line.id:
            forms[line.id] = failed
        else:
            forms[line.id] = RefundForm(formdata=None, line_id=line.id, prefix=f"line-{line.id}")
    return render_template(
        "operator/order_detail.html", order=order, refunded=refunded, forms=forms,
        refunds=refunds.refunds_of_order(db.session, order_id=order.id),
        unconfirmed=refunds.unconfirmed_refunds_of_order(db.session, order_id=order.id),
        left={line.id: max(line.total_minor - refunded.get(line.id, 0), 0) for line in order.lines},
        decimal_amount=decimal_amount,
    ), status


@bp.get("/orders/<int:order_id>")
def order_detail(order_id: int):
    return _order_page(order_id)


@bp.post("/orders/<int:order_id>/lines/<int:line_id>/refund")
def order_refund(order_id: int, line_id: int):
    form = RefundForm(prefix=f"line-{line_id}")
    try:
        order = refunds.get_order(db.session, order_id=order_id)
    except refunds.OrderNotFound:
        abort(404)
    currency = order.currency

    def refund():
        if form.line_id.data != line_id:
            raise refunds.RefundError("That line is not on this order.")
        return refunds.refund_order_line(
            db.session, order_id=order_id, line_id=line_id, amount_minor=parse_money(form.amount.data, currency),
            reason=form.reason.data, actor=g.user, gateway=get_checkout(order.backend),
        )

    done = submit(form, refund, field_map={"line_id": "-"})  # a wrong line: above the form
    if not done.ok:
        form.line_id.data = line_id
        return _order_page(order_id, form, done.status)
    flash(f"Refunded {money(done.value.amount_minor, done.value.currency)}; the buyer was mailed.", "success")
    return redirect(url_for("operator.order_detail", order_id=order_id))


# --- payouts -------------------------------------------------------------------------------------

def _publisher_or_404(publisher_id: int | None) -> Organization:
    publisher = db.session.get(Organization, publisher_id) if publisher_id else None
    if publisher is None:
        abort(404)
    return publisher


def _payouts_page(*, fee_form: PublisherFeeForm | None = None, payout_form: PayoutForm | None = None,
                  status: int = 200):
    rows = payouts.owed_to_publishers(db.session)
    currencies = sorted({r.currency for r in rows if r.currency}) or ["USD"]
    payout_form = payout_form or PayoutForm(formdata=None, paid_on=utcnow().date())
    payout_form.currency.choices = as_choices([(c, c) for c in currencies])
    publisher_choices = {r.publisher.id: r.publisher.name for r in rows}
    recent = {pid: payouts.payouts_of(db.session, publisher_id=pid, limit=5) for pid in publisher_choices}
    return render_template(
        "operator/payouts.html", rows=rows, fee_form=fee_form, payout_form=payout_form,
        publisher_choices=publisher_choices, recent=recent, default_fee=payouts.default_fee_basis_points(),
        label=payouts.basis_points_label, decimal_amount=decimal_amount,
    ), status


@bp.get("/payouts")
def payouts_overview():
    return _payouts_page()


@bp.post("/payouts/fee")
def publisher_fee():
    form = PublisherFeeForm()
    publisher = _publisher_or_404(form.publisher_id.data)
    done = submit(form, lambda: payouts.set_publisher_fee(db.session, publisher=publisher, percent=form.percent.data,
                                                          actor=g.user))
    if not done.ok:
        return _payouts_page(fee_form=form, status=done.status)
    flash(f"{publisher.name} now pays "
          f"{payouts.basis_points_label(payouts.fee_basis_points(db.session, publisher_id=publisher.id))} "
          "on new sales.", "success")
    return redirect(url_for("operator.payouts_overview"))


@bp.post("/payouts/record")
def payout_record():
    form = PayoutForm()
    form.currency.choices = as_choices([(c, c) for c in sorted({r.currency for r in payouts.owed_to_publishers(
        db.session) if r.currency})])
    publisher = _publisher_or_404(form.publisher_id.data)
    done = submit(form, lambda: payouts.record_payout(
        db.session, publisher=publisher, amount_minor=parse_money(form.amount.data, form.currency.data),
        currency=form.currency.data, paid_on=form.paid_on.data, reference=form.reference.data, actor=g.user,
        today=utcnow().date()))
    if not done.ok:
        return _payouts_page(payout_form=form, status=done.status)
    flash(f"Payout of {money(done.value.amount_minor, done.value.currency)} to {publisher.name} recorded.", "success")
    return redirect(url_for("operator.payouts_overview"))
