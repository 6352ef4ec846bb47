"""Cart and checkout routes of the storefront blueprint.

The cart works with and without JavaScript: every form posts normally and redirects; with htmx
the same forms swap the `cart_lines` block in place and fire `cart-changed`, which makes the
header count reload itself from `storefront.cart_count`.
"""
from __future__ import annotations

from datetime import date

from flask import (
    abort, current_app, flash, g, make_response, redirect, render_template, request, session, url_for,
)
from flask_wtf import FlaskForm
from jinja2_fragments.flask import render_block
from wtforms import BooleanField, EmailField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional

from app.adapters.commerce.checkout import BillingDetails, CheckoutError, CheckoutLine, get_checkout
from app.adapters.commerce import CommerceUnavailable
from app.auth.session_user import login_required, safe_next
from app.extensions import db
from app.models import OrderStatus
from app.services import cart as carts
from app.services import invoices, orders, payments
from app.storefront import checkout_billing
from app.storefront.views import bp

CART_TOKEN_KEY = "cart_token"
SALEOR_CHECKOUT_KEY = "saleor_checkout_id"
BILLING_COUNTRIES = [
    ("US", "United States"), ("CA", "Canada"), ("GB", "United Kingdom"), ("IE", "Ireland"), ("DE", "Germany"),
    ("FR", "France"), ("NL", "Netherlands"), ("ES", "Spain"), ("IT", "Italy"), ("PL", "Poland"),
    ("SE", "Sweden"), ("AU", "Australia"), ("NZ", "New Zealand"), ("IN", "India"), ("JP", "Japan"),
]


# --- forms -------------------------------------------------------------------------------

class AddToCartForm(FlaskForm):
    sku = HiddenField("Product", validators=[DataRequired("Choose a plan or a credit pack."), Length(max=64)])
    quantity = IntegerField("Quantity", default=1, validators=[InputRequired("Enter a quantity.")])
    next = HiddenField()


class LineQuantityForm(FlaskForm):
    quantity = IntegerField("Quantity", validators=[InputRequired("Enter a quantity.")])


class RemoveLineForm(FlaskForm):
    pass


class CheckoutForm(FlaskForm):
    email = EmailField("Email for the receipt", validators=[
        DataRequired("Enter an email address."), Email("Enter a valid email address."), Length(max=254)])
    organization_id = SelectField("Provision into", coerce=int,
                                  description="Instances and credits go to this organization.")
    country = SelectField("Billing country", choices=[SelectChoice(code, name) for code, name in BILLING_COUNTRIES],
                          default="US")
    billing_name = StringField("Name on the invoice", validators=[Optional(), Length(max=120)])
    billing_company = StringField("Company (optional)", validators=[Optional(), Length(max=200)])
    billing_address = TextAreaField("Billing address", validators=[Optional(), Length(max=500)],
                                    description="Street, postal code and city, one per line.")
    billing_vat_id = StringField("VAT ID (optional)", validators=[Optional(), Length(max=30)],
                                 description="With its country prefix, e.g. DE123456789.")


class PaymentForm(FlaskForm):
    card_number = StringField("Card number", validators=[DataRequired("Enter the card number."), Length(max=32)],
                              render_kw={"inputmode": "numeric", "autocomplete": "cc-number",
                                         "placeholder": "4242 4242 4242 4242"})
    expiry = StringField("Expiry (MM/YY)", validators=[DataRequired("Enter the expiry date."), Length(max=7)],
                         render_kw={"autocomplete": "cc-exp", "placeholder": "12/30", "inputmode": "numeric"})
    cvc = StringField("Security code (CVC)", validators=[DataRequired("Enter the security code."), Length(max=4)],
                      render_kw={"autocomplete": "cc-csc", "inputmode": "numeric", "placeholder": "123"})
    save_card = BooleanField("Save this card for renewals", default=True,
                             description="Your subscription renews with this card at the end of each period. We keep "
                                         "only the card's brand, last four digits and expiry.")


# --- helpers -----------------------------------------------------------------------------

def wants_fragment() -> bool:
    """An htmx request for a part of the page (boosted and history requests need the whole page)."""
    return (request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")
            and not request.headers.get("HX-History-Restore-Request"))


def _token() -> str | None:
    return session.get(CART_TOKEN_KEY)


def current_cart(*, create: bool = False):
    user = g.get("user")
    if not create:
        return carts.find_cart(db.session, user=user, token=_token())
    cart = carts.get_or_create_cart(db.session, user=user, token=_token())
    if user is None and session.get(CART_TOKEN_KEY) != cart.token:
        session[CART_TOKEN_KEY] = cart.token
    return cart


def _cart_context(**extra) -> dict:
    priced = carts.price_cart(db.session, current_cart())
    return {"priced": priced, "max_packs": carts.MAX_CREDIT_PACK_QUANTITY,
            "packs": carts.credit_packs_for_sale(db.session), **extra}


def _cart_response(*, message: str | None = None, error: str | None = None, status: int = 200, changed: bool = False):
    """The cart's lines block for htmx, or the whole cart page."""
    context = _cart_context(notice=message, error=error)
    if wants_fragment():
        response = make_response(render_block("storefront/cart.html", "cart_lines", **context))
    else:
        response = make_response(render_template("storefront/cart.html", **context), status)
    if changed:
        response.headers["HX-Trigger"] = "cart-changed"
    response.headers["Vary"] = "HX-Request"
    return response


def _count() -> int:
    return carts.count_items(db.session, user=g.get("user"), token=_token())


def _merge_at_sign_in(user) -> None:
    carts.merge_carts(db.session, user=user, token=session.pop(CART_TOKEN_KEY, None))


@bp.record_once
def _register_hooks(state) -> None:
    state.app.extensions["cart_count"] = _count
    state.app.extensions.setdefault("after_sign_in", []).append(_merge_at_sign_in)


# --- cart --------------------------------------------------------------------------------

@bp.get("/cart")
def cart():
    return _cart_response()


@bp.get("/cart/count")
def cart_count():
    """The header's cart count block (htmx reloads it on `cart-changed`)."""
    html = render_block("base.html", "cart_count", cart_count=_count())
    return html, {"Vary": "HX-Request", "Cache-Control": "no-store"}


@bp.post("/cart/add")
def cart_add():
    form = AddToCartForm()
    back = safe_next(form.next.data, url_for("storefront.cart"))
    if not form.validate_on_submit():
        errors = [e for errs in form.errors.values() for e in errs]
        return _add_failed(errors[0] if errors else "Choose a plan or a credit pack.", 400)
    try:
        change = carts.add_to_cart(db.session, cart=current_cart(create=True), sku=form.sku.data,
                                   quantity=form.quantity.data)
    except carts.CartError as exc:
        db.session.rollback()
        return _add_failed(str(exc), exc.status)
    db.session.commit()
    if wants_fragment():
        html = render_block("storefront/cart.html", "cart_notice", notice=change.message, error=None, show_link=True)
        return html, {"HX-Trigger": "cart-changed", "Vary": "HX-Request"}
    flash(change.message, "success")
    return redirect(back, 303)


def _add_failed(message: str, status: int):
    if wants_fragment():  # htmx does not swap a 4xx: answer 200 with the message in place
        html = render_block("storefront/cart.html", "cart_notice", notice=None, error=message, show_link=False)
        return html, {"Vary": "HX-Request"}
    return _cart_response(error=message, status=status)


@bp.post("/cart/lines/<int:line_id>")
def cart_line_update(line_id: int):
    form = LineQuantityForm()
    cart_ = current_cart()
    if cart_ is None:
        return _cart_response(error="That line is not in your cart.", status=404)
    if not form.validate_on_submit():
        return _cart_response(error="Enter a whole number as the quantity.", status=400)
    try:
        change = carts.update_line(db.session, cart=cart_, line_id=line_id, quantity=form.quantity.data)
    except carts.CartError as exc:
        db.session.rollback()
        return _cart_response(error=str(exc), status=exc.status)
    db.session.commit()
    if not wants_fragment():
        flash(change.message, "success")
        return redirect(url_for("storefront.cart"), 303)
    return _cart_response(message=change.message, changed=True)


@bp.post("/cart/lines/<int:line_id>/remove")
def cart_line_remove(line_id: int):
    form = RemoveLineForm()
    cart_ = current_cart()
    if cart_ is None or not form.validate_on_submit():
        return _cart_response(error="That line is not in your cart.", status=404 if cart_ is None else 400)
    try:
        message = carts.remove_line(db.session, cart=cart_, line_id=line_id)
    except carts.CartError as exc:
        db.session.rollback()
        return _cart_response(error=str(exc), status=exc.status)
    db.session.commit()
    if not wants_fragment():
        flash(message, "success")
        return redirect(url_for("storefront.cart"), 303)
    return _cart_response(message=message, changed=True)


# --- checkout ----------------------------------------------------------------------------

@bp.route("/checkout", methods=["GET", "POST"])
@login_required
def checkout():
    cart_ = current_cart()
    priced = carts.price_cart(db.session, cart_)
    resumable = None
    if priced.is_empty:
        placed = orders.pending_order_from_cart(db.session, user=g.user, cart=cart_)
        if placed is not None and _resumable(placed):
            resumable = placed  # its payment failed in a way that may be retried: offer that again
        elif placed is not None:  # this cart was just checked out (a repeated submit): go to that order
            return _to_placed_order(placed)
        else:
            flash("Your cart is empty: add a plan or a credit pack first.", "info")
            return redirect(url_for("storefront.cart"), 303)
    organizations = orders.checkout_organizations(db.session, user=g.user)
    backend = current_app.config.get("COMMERCE_BACKEND", "local")
    form = CheckoutForm()
    checkout_billing.widen_countries(form)
    form.organization_id.choices = [
        SelectChoice(org.id, org.name + (" (personal)" if org.is_personal else "")) for org in organizations]
    if request.method == "GET":
        form.email.data = resumable.email if resumable else g.user.email
        form.organization_id.data = resumable.organization_id if resumable else organizations[0].id
        checkout_billing.prefill(form, organization_id=form.organization_id.data)
    status = 200
    if form.validate_on_submit():
        try:
            if resumable is not None:
                return _submit_order(resumable, form, get_checkout(resumable.backend))
            return _place_order(cart_, form, backend)
        except orders.AlreadyPlaced as exc:
            order_id = exc.order.id
            db.session.rollback()
            return _to_placed_order(orders.get_order_for_user(db.session, user=g.user, order_id=order_id))
        except (orders.OrderError, payments.PaymentError, invoices.InvoiceError) as exc:
            db.session.rollback()
            target = getattr(form, exc.field, None) if exc.field else None
            (target.errors if target is not None else form.form_errors).append(str(exc))
            status = exc.status
        except CheckoutError as exc:
            db.session.rollback()
            if exc.checkout_id:
                session[SALEOR_CHECKOUT_KEY] = exc.checkout_id
            else:
                session.pop(SALEOR_CHECKOUT_KEY, None)
            form.form_errors.append(str(exc))
            status = 502 if exc.retryable else 409
        except CommerceUnavailable:
            db.session.rollback()
            current_app.logger.exception("checkout: the commerce backend did not answer")
            form.form_errors.append("The store's payment service did not answer. Nothing was charged; try again in a minute.")
            status = 503
        priced = carts.price_cart(db.session, current_cart())
        resumable = None
        if priced.is_empty:
            placed = orders.pending_order_from_cart(db.session, user=g.user, cart=current_cart())
            resumable = placed if placed is not None and _resumable(placed) else None
    elif request.method == "POST":
        status = 400
    owned = orders.active_plan_ids(db.session, organization_id=form.organization_id.data or organizations[0].id)
    return render_template("storefront/checkout.html", form=form, priced=priced, backend=backend,
                           owned_plan_ids=owned, resumable=resumable), status


def _resumable(order) -> bool:
    """A pending store order whose submission failed after the payment was asked for: the buyer may
    submit it again, which brings the same store checkout up to date and never pays twice (the
    store takes one payment per order and checkout)."""
    return (order.backend != "local" and order.status == OrderStatus.PENDING.value and not order.external_id
            and bool(session.get(SALEOR_CHECKOUT_KEY)))


def _to_placed_order(order):
    """Where a repeated checkout lands: the order its cart became (its payment page while it can be paid here)."""
    if order.status == OrderStatus.PENDING.value and order.backend == "local":
        flash(f"Order {order.number} is placed and waiting for your payment.", "info")
        return redirect(url_for("storefront.checkout_pay", order_id=order.id), 303)
    flash(f"Order {order.number} is placed.", "info")
    return redirect(url_for("account.order_detail", order_id=order.id), 303)


def _place_order(cart_, form: CheckoutForm, backend: str):
    """Place the order and commit it, pending, before the backend hears of it: a payment notice the
    backend sends while it completes the order (Saleor without a task queue sends it inline) then
    always finds the order here."""
    port = get_checkout(backend)
    order = orders.place_order(
        db.session, user=g.user, cart=cart_, organization_id=form.organization_id.data, email=form.email.data,
        backend=port.backend,
    )
    checkout_billing.save(form, organization=order.organization, user=g.user)
    db.session.commit()
    return _submit_order(order, form, port, cart_=cart_)


def _submit_order(order, form: CheckoutForm, port, *, cart_=None):
    """Hand the committed, pending order to the backend. A refusal before any payment was asked for
    puts its lines back into the cart and takes the order back; a failure after that keeps it
    (the backend may still report it paid) and lets the buyer submit it again."""
    first, _, last = (g.user.name or "").partition(" ")
    order_id, number, email = order.id, order.number, order.email
    lines = [CheckoutLine(sku=line.sku, quantity=line.quantity) for line in order.lines]
    total_minor, currency = order.total_minor, order.currency
    db.session.commit()  # no transaction stays open while the backend is called
    try:
        submission = port.submit_order(
            reference=number,
            billing=BillingDetails(email=email, first_name=first or g.user.name, last_name=last or first,
                                   country=form.country.data or "US"),
            lines=lines, total_minor=total_minor, currency=currency, checkout_id=session.get(SALEOR_CHECKOUT_KEY),
        )
    except (CheckoutError, CommerceUnavailable) as exc:
        db.session.rollback()
        if not getattr(exc, "may_be_charged", False):
            orders.withdraw_unsubmitted_order(db.session, order_id=order_id, cart=cart_ or current_cart(create=True),
                                              actor=g.user)
            db.session.commit()
        raise
    order = db.session.get(type(order), order_id)
    if submission.needs_local_payment:
        if order.total_minor == 0:
            payments.settle_free_order(db.session, order=order, actor=g.user)
            db.session.commit()
            flash(f"Order {order.number} is complete.", "success")
            return redirect(url_for("account.order_detail", order_id=order.id), 303)
        return redirect(url_for("storefront.checkout_pay", order_id=order.id), 303)
    session.pop(SALEOR_CHECKOUT_KEY, None)
    if submission.order is not None:
        order = orders.record_submission(db.session, order_id=order_id, remote=submission.order)
    db.session.commit()
    if order.status == OrderStatus.PENDING.value:
        flash(f"Order {order.number} is placed. It is provisioned as soon as the payment is confirmed.", "success")
    else:
        flash(f"Order {order.number} is placed and paid.", "success")
    return redirect(url_for("account.order_detail", order_id=order.id), 303)


def _has_plan(order) -> bool:
    return any(line.plan_id is not None for line in order.lines)


@bp.route("/checkout/orders/<int:order_id>/pay", methods=["GET", "POST"])
@login_required
def checkout_pay(order_id: int):
    """The local backend's test-mode card payment."""
    try:
        order = orders.get_order_for_user(db.session, user=g.user, order_id=order_id)
    except orders.OrderNotFound:
        abort(404)
    if order.status != OrderStatus.PENDING.value or order.backend != "local":
        return redirect(url_for("account.order_detail", order_id=order.id), 303)
    form = PaymentForm()
    status, declined = 200, None
    if form.validate_on_submit():
        card = payments.CardDetails(number=form.card_number.data, expiry=form.expiry.data, cvc=form.cvc.data)
        try:
            payment = payments.pay_order(db.session, order=order, card=card, gateway=get_checkout("local"),
                                         actor=g.user, today=date.today(),
                                         save_card=bool(form.save_card.data) and _has_plan(order))
        except payments.OrderAlreadyPaid:  # another click or tab paid it first: show the paid order
            db.session.rollback()
            flash(f"Order {order.number} is already paid.", "info")
            return redirect(url_for("account.order_detail", order_id=order.id), 303)
        except payments.PaymentError as exc:
            db.session.rollback()
            target = getattr(form, exc.field, None) if exc.field else None
            (target.errors if target is not None else form.form_errors).append(str(exc))
            status = exc.status
        else:
            db.session.commit()
            if payment.status == "succeeded":
                flash(f"Payment received: order {order.number} is paid and ready.", "success")
                return redirect(url_for("account.order_detail", order_id=order.id), 303)
            declined, status = payment.message, 402
    elif request.method == "POST":
        status = 400
    return render_template("storefront/pay.html", form=form, order=order, declined=declined), status
