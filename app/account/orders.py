"""Order history pages of the account blueprint: a buyer sees only their own orders."""
from __future__ import annotations

from flask import abort, g, render_template, request, url_for
from jinja2_fragments.flask import render_block

from app.account.views import bp, wants_fragment
from app.auth.session_user import login_required
from app.extensions import db
from app.services import invoices, orders

PER_PAGE = 20


@bp.get("/orders", endpoint="orders")
@login_required
def orders_list():
    page = request.args.get("page", 1, type=int) or 1
    items, total = orders.list_orders_for_user(db.session, user=g.user, page=page, per_page=PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("account/orders.html", orders=items, total=total, page=max(1, page), pages=pages,
                           url_for_page=lambda n: url_for("account.orders", page=n))


@bp.get("/orders/<int:order_id>")
@login_required
def order_detail(order_id: int):
    try:
        order = orders.get_order_for_user(db.session, user=g.user, order_id=order_id)
    except orders.OrderNotFound:
        abort(404)
    context = {"order": order, "provisioned": orders.provisioned_items(db.session, order=order),
               "unknown_kind": orders.UNKNOWN_KIND, "documents": invoices.documents_for_order(db.session, order=order)}
    if wants_fragment():  # the page polling while it waits for the payment or the delivery
        return render_block("account/order_detail.html", "order", **context), {"Vary": "HX-Request"}
    return render_template("account/order_detail.html", **context), {"Vary": "HX-Request"}
