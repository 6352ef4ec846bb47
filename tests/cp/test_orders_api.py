"""Orders and invoices through the API: the caller's own orders, their organizations' invoices and
credit notes (also as PDF), and nothing of anyone else's."""
from __future__ import annotations

from datetime import datetime, timezone

from app.adapters.commerce.local_checkout import LocalCheckout
from app.models import Membership
from app.services import refunds
from tests.account.test_invoice_pages import _team_order
from tests.factories import make_user

YEAR = datetime.now(timezone.utc).year


def _paid_then_partly_refunded(session, buyer, operator):
    """A paid order with its invoice, then $10.00 of its second line refunded (a credit note)."""
    _, order, invoice = _team_order(session, buyer)
    refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[1].id, amount_minor=1000,
                              reason="Partly unused", actor=operator, gateway=LocalCheckout())
    session.commit()
    return order, invoice


def test_orders_list_and_detail_with_refunds_and_the_invoice(client, session, buyer, operator, auth_for):
    order, invoice = _paid_then_partly_refunded(session, buyer, operator)
    headers = auth_for(buyer)

    listed = client.get("/api/orders/?per_page=5", headers=headers).get_json()
    assert (listed["total"], listed["per_page"], listed["items"][0]["number"]) == (1, 5, order.number)
    detail = client.get(f"/api/orders/{order.id}", headers=headers).get_json()
    assert (detail["status"], detail["total_minor"], detail["currency"], detail["invoice_id"]) == (
        "paid", order.total_minor, "USD", invoice.id)
    assert [(line["sku"], line["refunded_minor"]) for line in detail["lines"]] == [
        (order.lines[0].sku, 0), (order.lines[1].sku, 1000)]


def test_invoices_and_credit_notes_with_lines_and_pdf(client, session, buyer, operator, auth_for):
    order, invoice = _paid_then_partly_refunded(session, buyer, operator)
    headers = auth_for(buyer)

    listed = client.get("/api/invoices/", headers=headers).get_json()
    assert [(i["kind"], i["total_minor"]) for i in listed["items"]] == [("credit_note", 1000),
                                                                         ("invoice", order.total_minor)]
    one = client.get(f"/api/invoices/{invoice.id}", headers=headers).get_json()
    assert one["number"] == f"INV-{YEAR}-000001" and one["order_id"] == order.id
    assert sum(line["total_minor"] for line in one["lines"]) == one["total_minor"]
    pdf = client.get(one["pdf_url"], headers=headers)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="INV-{YEAR}-000001.pdf"'


def test_a_teammate_sees_the_invoices_but_not_the_orders_and_an_outsider_sees_nothing(client, session, buyer,
                                                                                   auth_for):
    team, order, invoice = _team_order(session, buyer)
    teammate, outsider = make_user(session), make_user(session)
    session.add(Membership(user_id=teammate.id, organization_id=team.id, role="member"))
    session.commit()

    mate = auth_for(teammate)
    assert client.get(f"/api/invoices/{invoice.id}", headers=mate).status_code == 200
    assert client.get(f"/api/orders/{order.id}", headers=mate).status_code == 404  # orders are the buyer's own
    other = auth_for(outsider)
    for path in (f"/api/orders/{order.id}", f"/api/invoices/{invoice.id}", f"/api/invoices/{invoice.id}/pdf"):
        answer = client.get(path, headers=other)
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
    assert client.get("/api/invoices/", headers=other).get_json()["items"] == []
    for bad in ("page=0", "per_page=1000", "page=x"):
        refused = client.get(f"/api/invoices/?{bad}", headers=other)
        assert refused.status_code == 422
