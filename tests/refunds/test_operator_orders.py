"""Operator console: the Orders view (search, detail, refunding a line) and Payouts; operators only."""
import re

import pytest
from sqlalchemy import func, select

from app.models import LedgerEntry, Organization, Payout, PublisherFee, Refund
from tests.conftest import login
from tests.factories import make_user
from tests.refunds.conftest import PACK, PLAN, paid_order


@pytest.fixture
def operator_client(client, operator):
    login(client, operator)
    return client


def _northwind(session):
    return session.scalar(select(Organization).where(Organization.slug == "northwind-ai"))


@pytest.mark.parametrize("path", ["/operator/orders", "/operator/orders/1", "/operator/payouts"])
def test_orders_and_payouts_are_for_operators_only(client, session, buyer, seller, path):
    paid_order(session, buyer, (PLAN, 1))
    assert client.get(path).status_code == 302  # signed out: to the sign-in page
    login(client, seller)
    assert client.get(path).status_code == 403
    login(client, buyer)
    assert client.get(path).status_code == 403


def test_a_buyer_or_seller_cannot_refund_and_nothing_changes(client, session, buyer, seller):
    order = paid_order(session, buyer, (PLAN, 1))
    login(client, seller)

    response = client.post(f"/operator/orders/{order.id}/lines/{order.lines[0].id}/refund",
                           data={f"line-{order.lines[0].id}-line_id": order.lines[0].id,
                                 f"line-{order.lines[0].id}-amount": "86.00",
                                 f"line-{order.lines[0].id}-reason": "Mine"})

    assert response.status_code == 403
    assert session.scalar(select(func.count()).select_from(Refund)) == 0


def test_orders_are_found_by_number_email_and_organization(operator_client, session, buyer):
    order = paid_order(session, buyer, (PLAN, 1))
    other = make_user(session, email="someone@else.test")
    session.commit()

    by_number = operator_client.get(f"/operator/orders?q={order.number.lower()}").get_data(as_text=True)
    by_email = operator_client.get("/operator/orders?q=buyer@example").get_data(as_text=True)
    by_org = operator_client.get(f"/operator/orders?q={order.organization.name[:5]}").get_data(as_text=True)
    none = operator_client.get(f"/operator/orders?q={other.email}").get_data(as_text=True)

    for html in (by_number, by_email, by_org):
        assert f'href="/operator/orders/{order.id}">{order.number}</a>' in html
    assert "No orders match." in none and "0 orders" in none


def _refund_form(line, amount, reason="Asked for it"):
    return {f"line-{line.id}-line_id": line.id, f"line-{line.id}-amount": amount, f"line-{line.id}-reason": reason}


def test_an_operator_refunds_part_of_a_line_and_then_the_rest(operator_client, session, buyer):
    order = paid_order(session, buyer, (PLAN, 1), (PACK, 1))
    plan_line = order.lines[0]

    partial = operator_client.post(f"/operator/orders/{order.id}/lines/{plan_line.id}/refund",
                                   data=_refund_form(plan_line, "43.00"))
    page = operator_client.get(f"/operator/orders/{order.id}").get_data(as_text=True)

    assert partial.status_code == 302
    assert "left to refund <strong>$43.00</strong>" in page and "Asked for it" in page
    assert "600" in page  # credits taken back

    rest = operator_client.post(f"/operator/orders/{order.id}/lines/{plan_line.id}/refund",
                                data=_refund_form(plan_line, "$43"))
    page = operator_client.get(f"/operator/orders/{order.id}").get_data(as_text=True)

    assert rest.status_code == 302
    assert "Refunded in full." in page and "(subscription cancelled)" in page
    assert session.scalar(select(func.sum(Refund.amount_minor))) == 8600


@pytest.mark.parametrize("amount, message", [
    ("86.01", "At most $86.00 is left to refund on this line."),
    ("abc", "Enter an amount such as 12.50."),
    ("0", "Enter an amount above zero."),
    ("", "Enter the amount to refund."),
])
def test_a_refund_over_the_limit_or_not_money_is_a_form_error_and_changes_nothing(
        operator_client, session, buyer, amount, message):
    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]
    entries = session.scalar(select(func.count()).select_from(LedgerEntry))

    response = operator_client.post(f"/operator/orders/{order.id}/lines/{line.id}/refund",
                                    data=_refund_form(line, amount))

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(rf'id="line-{line.id}-amount-error"><li>{re.escape(message)}</li>', html)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries


def test_an_unknown_order_is_404(operator_client, demo):
    assert operator_client.get("/operator/orders/999999").status_code == 404


def test_the_payouts_page_shows_what_each_publisher_is_owed_and_records_a_payout(
        operator_client, session, buyer, operator):
    paid_order(session, buyer, (PLAN, 1))  # Northwind AI: $86.00, 15% fee -> $73.10 owed
    northwind = _northwind(session)

    page = operator_client.get("/operator/payouts").get_data(as_text=True)
    assert "$73.10" in page

    too_much = operator_client.post("/operator/payouts/record", data={
        "publisher_id": northwind.id, "currency": "USD", "amount": "73.11", "paid_on": "2026-12-01",
        "reference": "TR-1"})
    assert too_much.status_code == 400
    assert "Northwind AI is owed $73.10; a payout cannot be more than that." in too_much.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Payout)) == 0

    future = operator_client.post("/operator/payouts/record", data={
        "publisher_id": northwind.id, "currency": "USD", "amount": "10", "paid_on": "2999-01-01",
        "reference": "TR-1"})
    assert "The payout date cannot be in the future." in future.get_data(as_text=True)

    done = operator_client.post("/operator/payouts/record", data={
        "publisher_id": northwind.id, "currency": "USD", "amount": "50.00", "paid_on": "2026-12-01",
        "reference": "TR-0001"})
    assert done.status_code == 302
    payout = session.scalar(select(Payout))
    assert (payout.amount_minor, payout.reference, payout.recorded_by_user_id) == (5000, "TR-0001", operator.id)
    assert "$23.10" in operator_client.get("/operator/payouts").get_data(as_text=True)


def test_a_publishers_own_fee_applies_to_new_sales_only(operator_client, session, buyer):
    from app.models import EarningEntry

    paid_order(session, buyer, (PLAN, 1))
    northwind = _northwind(session)

    bad = operator_client.post("/operator/payouts/fee", data={"publisher_id": northwind.id, "percent": "101"})
    assert bad.status_code == 400 and "A fee cannot be more than 100%." in bad.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(PublisherFee)) == 0

    assert operator_client.post("/operator/payouts/fee", data={"publisher_id": northwind.id,
                                                                "percent": "10"}).status_code == 302
    other = make_user(session, email="second@buyer.test")
    session.commit()
    paid_order(session, other, (PLAN, 1))

    fees = session.scalars(select(EarningEntry.fee_minor).order_by(EarningEntry.id)).all()
    assert fees == [1290, 860]  # 15% of the first sale stays; the second pays 10%
