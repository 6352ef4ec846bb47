"""Seller earnings: monthly figures, the statement page and CSV, payouts seen by the seller, and the
verify-payouts check passing and failing on tampered data."""
import csv
import io
from datetime import date

import pytest
from sqlalchemy import select, text, update

from app.adapters.commerce.local_checkout import LocalCheckout
from app.models import EarningEntry, OrderLine, Organization, utcnow
from app.services import payouts, refunds
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user
from tests.refunds.conftest import PLAN, paid_order

MONTH = payouts.month_of(utcnow())


def _northwind(session):
    return session.scalar(select(Organization).where(Organization.slug == "northwind-ai"))


@pytest.fixture
def month_of_activity(session, buyer, operator):
    """A $86.00 sale, half of it refunded, and a $20.00 payout, all this month."""
    order = paid_order(session, buyer, (PLAN, 1))
    refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[0].id, amount_minor=4300,
                              reason="Half", actor=operator, gateway=LocalCheckout())
    payouts.record_payout(session, publisher=_northwind(session), amount_minor=2000, currency="USD",
                          paid_on=utcnow().date(), reference="TR-42", actor=operator, today=utcnow().date())
    session.commit()
    return order


def test_the_month_adds_up_sales_refunds_fees_net_payouts_and_the_balance(session, month_of_activity):
    figures = payouts.monthly_figures(session, publisher_id=_northwind(session).id)

    assert [(f.month, f.gross, f.refunds, f.fees, f.net, f.payouts, f.balance) for f in figures] == [
        (MONTH, 8600, 4300, 645, 3655, 2000, 1655)]
    assert payouts.verify_payouts(session) == []


def test_the_seller_sees_the_month_its_statement_and_its_payouts(client, session, seller, month_of_activity):
    login(client, seller)

    overview = client.get("/seller/earnings").get_data(as_text=True)
    statement = client.get(f"/seller/earnings/{MONTH}").get_data(as_text=True)

    for amount in ("$86.00", "$43.00", "$6.45", "$36.55", "$20.00", "$16.55"):
        assert amount in overview
    assert "TR-42" in overview
    assert f"Refund: {month_of_activity.lines[0].name}" in statement and "Payout TR-42" in statement
    assert "<dt>Balance owed to you at the end</dt><dd><strong>$16.55</strong></dd>" in statement


def test_the_statement_csv_has_every_line_and_the_totals(client, session, seller, month_of_activity):
    login(client, seller)

    response = client.get(f"/seller/earnings/{MONTH}.csv")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == payouts_columns()
    body = [row[1:3] + row[4:11] for row in rows[1:]]
    number = month_of_activity.number
    assert body == [
        ["sale", number, "USD", "86.00", "0.00", "12.90", "73.10", "0.00", "15%"],
        ["refund", number, "USD", "0.00", "43.00", "-6.45", "-36.55", "0.00", "15%"],
        ["payout", "", "USD", "0.00", "0.00", "0.00", "0.00", "20.00", ""],
        ["total", "", "USD", "86.00", "43.00", "6.45", "36.55", "20.00", ""],
    ]


def payouts_columns():
    from app.seller.earnings import STATEMENT_COLUMNS

    return STATEMENT_COLUMNS


def test_a_seller_sees_only_their_own_publisher(client, session, seller, buyer, month_of_activity):
    rival_owner = make_user(session, email="rival@example.test", roles=("buyer", "seller"))
    rival = make_org(session, owner=rival_owner, name="Rival Labs")
    make_offering(session, publisher=rival, name="Rival Bot")
    session.commit()
    login(client, seller)

    assert client.get(f"/seller/earnings?publisher={rival.id}").status_code == 404
    assert client.get(f"/seller/earnings/{MONTH}.csv?publisher={rival.id}").status_code == 404
    login(client, rival_owner)
    theirs = client.get("/seller/earnings").get_data(as_text=True)
    assert "No sales yet" in theirs and "TR-42" not in theirs and "$86.00" not in theirs


@pytest.mark.parametrize("month", ["2026-13", "abcd-ef", "1999-01"])
def test_a_month_that_does_not_exist_is_404(client, session, seller, month):
    login(client, seller)
    assert client.get(f"/seller/earnings/{month}").status_code == 404


def test_verify_payouts_passes_on_good_data(app, session, month_of_activity):
    result = app.test_cli_runner().invoke(args=["verify-payouts"])

    assert result.exit_code == 0, result.output
    assert "Payouts OK: 2 earning entries and 1 payout(s)" in result.output


def test_verify_payouts_fails_with_the_differences_when_a_line_was_changed_after_the_sale(
        app, session, month_of_activity):
    line = month_of_activity.lines[0]
    session.execute(update(OrderLine).where(OrderLine.id == line.id).values(total_minor=9900))
    session.commit()

    result = app.test_cli_runner().invoke(args=["verify-payouts"])

    assert result.exit_code == 1
    assert (f"order {month_of_activity.number} line {line.id}: sale recorded as publisher "
            f"{_northwind(session).id}, gross 8600 USD") in result.output
    assert "the order says" in result.output and "gross 9900 USD" in result.output


def test_verify_payouts_fails_when_a_refund_was_left_out_of_the_earnings(app, session, month_of_activity):
    session.execute(text("DELETE FROM earning_entry WHERE kind = 'refund'"))
    session.commit()

    result = app.test_cli_runner().invoke(args=["verify-payouts"])

    assert result.exit_code == 1
    assert "43.00" not in result.output  # raw figures, in minor units
    assert "4300 USD refunded, but not taken out of the publisher's earnings" in result.output


def test_verify_payouts_fails_when_a_fee_was_rewritten(app, session, month_of_activity):
    session.execute(update(EarningEntry).where(EarningEntry.kind == "sale")
                    .values(fee_minor=0, net_minor=8600))
    session.commit()

    result = app.test_cli_runner().invoke(args=["verify-payouts"])

    assert result.exit_code == 1 and "fee 0" in result.output and "fee 1290" in result.output


def test_record_earnings_fills_in_sales_paid_before_earnings_were_kept(app, session, buyer):
    order = paid_order(session, buyer, (PLAN, 1))
    session.execute(text("DELETE FROM earning_entry"))
    session.commit()
    assert app.test_cli_runner().invoke(args=["verify-payouts"]).exit_code == 1

    first = app.test_cli_runner().invoke(args=["record-earnings"])
    again = app.test_cli_runner().invoke(args=["record-earnings"])

    assert "Recorded the earnings of 1 paid order line(s)." in first.output
    assert "Recorded the earnings of 0 paid order line(s)." in again.output
    assert app.test_cli_runner().invoke(args=["verify-payouts"]).exit_code == 0
    session.expire_all()
    assert session.scalar(select(EarningEntry.gross_minor).where(EarningEntry.sale_line_id == order.lines[0].id)) == 8600


def _token_headers(session, user) -> dict[str, str]:
    from app.services import tokens

    _, secret = tokens.create_token(session, user=user, name="accounting")
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_gives_the_months_a_statement_and_the_payouts_to_members_only(client, session, seller, buyer,
                                                                            month_of_activity):
    org = _northwind(session)
    headers = _token_headers(session, seller)

    earnings = client.get(f"/api/organizations/{org.id}/earnings", headers=headers).get_json()
    assert earnings["fee_rate"] == "15%"
    assert earnings["months"] == [{"month": MONTH, "currency": "USD", "gross_minor": 8600, "refunds_minor": 4300,
                                   "fees_minor": 645, "net_minor": 3655, "payouts_minor": 2000,
                                   "balance_minor": 1655}]
    statement = client.get(f"/api/organizations/{org.id}/earnings/{MONTH}", headers=headers).get_json()
    assert [(line["kind"], line["net_minor"], line["payout_minor"]) for line in statement["lines"]] == [
        ("sale", 7310, 0), ("refund", -3655, 0), ("payout", 0, 2000)]
    assert statement["lines"][0]["order_number"] == month_of_activity.number
    assert statement["opening"] == [{"currency": "USD", "balance_minor": 0}]
    assert statement["totals"][0]["balance_minor"] == 1655
    paid = client.get(f"/api/organizations/{org.id}/payouts", headers=headers).get_json()["items"]
    assert [(p["amount_minor"], p["currency"], p["reference"]) for p in paid] == [(2000, "USD", "TR-42")]

    for month in ("2026-13", "last-month", "2026-1"):
        refused = client.get(f"/api/organizations/{org.id}/earnings/{month}", headers=headers)
        assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "month"
    outsider = _token_headers(session, buyer)  # a buyer of this publisher, not one of its members
    for path in ("earnings", f"earnings/{MONTH}", "payouts"):
        assert client.get(f"/api/organizations/{org.id}/{path}", headers=outsider).status_code == 404
