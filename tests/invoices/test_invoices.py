"""Invoices and credit notes: issued once when an order becomes paid, gapless numbers, snapshots, credits."""
from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.adapters.commerce.local_checkout import LocalCheckout
from app.models import DocumentSequence, Invoice, InvoiceLine, Order, OrderStatus
from app.services import identity, invoices, orders, payments
from tests.conftest import ON_POSTGRES
from tests.factories import make_org, make_user
from tests.invoices.helpers import pending_order, paid_order

YEAR = datetime.now(timezone.utc).year
DETAILS = invoices.BillingInput(name="Ada Lovelace", company="Analytical Engines Ltd",
                                address="1 Babbage Street\n10115 Berlin", country="de", vat_id="de 123 456 789")


def _count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_marking_an_order_paid_issues_one_invoice_with_lines_sellers_and_totals(session, demo, buyer):
    # given
    org = identity.ensure_personal_organization(session, user=buyer)
    order = pending_order(session, user=buyer, organization=org, packs=2)

    # when
    assert orders.mark_order_paid(session, order=order, actor_label="test") is True
    session.commit()

    # then
    [invoice] = session.scalars(select(Invoice)).all()
    assert (invoice.number, invoice.kind, invoice.order_id, invoice.organization_id) == (
        f"INV-{YEAR}-000001", "invoice", order.id, org.id)
    assert (invoice.currency, invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == ("USD", 17600, 0, 17600)
    assert invoice.issued_at == order.paid_at
    plan_line, pack_line = order.lines
    publisher = plan_line.plan.offering.publisher.name
    assert [(l.order_line_id, l.seller_name, l.platform_name, l.quantity, l.unit_price_minor, l.total_minor)
            for l in invoice.lines] == [
        (plan_line.id, publisher, "Digitlify Marketplace", 1, 8600, 8600),
        (pack_line.id, "Digitlify Marketplace", "Digitlify Marketplace", 2, 4500, 9000),
    ]
    # no billing details yet: addressed to the buyer, by name and email
    assert (invoice.buyer_name, invoice.buyer_email, invoice.buyer_address, invoice.buyer_vat_id) == (
        buyer.name, buyer.email, None, None)


def test_paying_twice_gives_one_invoice(session, demo, buyer):
    # given: a paid order
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    session.commit()
    first = invoices.invoice_for_order(session, order_id=order.id)

    # when: it is reported paid again, and its invoice asked for again
    assert orders.mark_order_paid(session, order=order, actor_label="test") is False
    again = invoices.issue_invoice_for_order(session, order=order)
    session.commit()

    # then
    assert again.id == first.id
    assert _count(session, Invoice) == 1
    assert session.get(DocumentSequence, ("INV", YEAR)).last_number == 1


def test_paying_with_the_test_card_issues_the_invoice(buyer_client, session, buyer):
    # given: a placed order
    org = identity.ensure_personal_organization(session, user=buyer)
    buyer_client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})
    location = buyer_client.post("/checkout", data={"email": buyer.email, "organization_id": str(org.id)}
                                 ).headers["Location"]

    # when
    response = buyer_client.post(location, data={"card_number": "4242 4242 4242 4242", "expiry": "12/39",
                                                 "cvc": "123"})

    # then
    assert response.status_code == 303
    order = session.scalar(select(Order))
    [invoice] = session.scalars(select(Invoice)).all()
    assert (invoice.order_id, invoice.number, invoice.total_minor) == (order.id, f"INV-{YEAR}-000001", 4500)


def test_a_declined_payment_issues_no_invoice(buyer_client, session, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    buyer_client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})
    location = buyer_client.post("/checkout", data={"email": buyer.email, "organization_id": str(org.id)}
                                 ).headers["Location"]

    buyer_client.post(location, data={"card_number": "4000 0000 0000 0002", "expiry": "12/39", "cvc": "123"})

    assert _count(session, Invoice) == 0
    assert session.get(DocumentSequence, ("INV", YEAR)) is None


def test_numbers_run_per_year_and_a_rolled_back_invoice_burns_no_number(session, demo, buyer):
    # given: one invoice this year
    org = identity.ensure_personal_organization(session, user=buyer)
    paid_order(session, user=buyer, organization=org)
    session.commit()

    # when: a second one is issued in a transaction that rolls back, then a third commits
    paid_order(session, user=buyer, organization=org)
    session.rollback()
    third = paid_order(session, user=buyer, organization=org)
    # and an order paid in another year starts that year's series at 1
    old = pending_order(session, user=buyer, organization=org)
    old.status, old.paid_at = OrderStatus.PAID.value, datetime(2025, 12, 31, 23, 59, tzinfo=timezone.utc)
    old_invoice = invoices.issue_invoice_for_order(session, order=old)
    session.commit()

    # then
    numbers = sorted(session.scalars(select(Invoice.number)))
    assert numbers == sorted([f"INV-{YEAR}-000001", f"INV-{YEAR}-000002", "INV-2025-000001"])
    assert invoices.invoice_for_order(session, order_id=third.id).number == f"INV-{YEAR}-000002"
    assert old_invoice.year == 2025


def test_an_unpaid_order_has_no_invoice(session, demo, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    order = pending_order(session, user=buyer, organization=org)

    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.issue_invoice_for_order(session, order=order)

    assert caught.value.status == 409
    assert _count(session, Invoice) == 0


def test_the_invoice_keeps_the_billing_details_it_was_issued_with(session, demo, buyer):
    # given: billing details, then a paid order
    org = identity.ensure_personal_organization(session, user=buyer)
    invoices.save_billing_details(session, organization=org, data=DETAILS, actor=buyer)
    order = paid_order(session, user=buyer, organization=org)
    session.commit()

    # when: the details change afterwards
    invoices.save_billing_details(session, organization=org, actor=buyer, data=invoices.BillingInput(
        name="Someone Else", company="", address="Elsewhere 2", country="FR", vat_id=""))
    session.commit()

    # then: the invoice still has the details of the day it was issued
    invoice = invoices.invoice_for_order(session, order_id=order.id)
    session.refresh(invoice)
    assert (invoice.buyer_name, invoice.buyer_company, invoice.buyer_address, invoice.buyer_country,
            invoice.buyer_vat_id) == ("Ada Lovelace", "Analytical Engines Ltd", "1 Babbage Street\n10115 Berlin",
                                      "DE", "DE123456789")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"name": "  "}, "name", "Enter the name invoices are addressed to."),
    ({"name": "x" * 121}, "name", "Keep the name to 120 characters."),
    ({"address": "\n \n"}, "address", "Enter the billing address (street, postal code and city)."),
    ({"address": "x\n" * 9}, "address", "Keep the address to 8 lines and 500 characters."),
    ({"country": "Germany"}, "country", "Enter the country as its two-letter code, e.g. DE, FR or US."),
    ({"country": "ZZ"}, "country", "Enter the country as its two-letter code, e.g. DE, FR or US."),
    ({"vat_id": "123"}, "vat_id", "A VAT ID starts with its two-letter country prefix followed by 2 to 13 letters "
                                  "or digits, e.g. DE123456789."),
    ({"company": "", "vat_id": "DE123456789"}, "company", "Enter the company the VAT ID belongs to."),
])
def test_bad_billing_details_are_refused_by_field_and_change_nothing(session, demo, buyer, changes, field, message):
    org = identity.ensure_personal_organization(session, user=buyer)
    data = invoices.BillingInput(**{**DETAILS.__dict__, **changes})

    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.save_billing_details(session, organization=org, data=data, actor=buyer)

    assert (caught.value.field, str(caught.value)) == (field, message)
    assert invoices.get_billing_details(session, organization_id=org.id) is None


def test_a_plain_member_cannot_change_the_billing_details(session, demo, buyer):
    from app.models import MemberRole, Membership
    from app.services import organizations

    owner = make_user(session)
    team = make_org(session, owner=owner, name="Team Billing")
    session.add(Membership(user_id=buyer.id, organization_id=team.id, role=MemberRole.MEMBER.value))
    session.flush()

    with pytest.raises(organizations.NotAllowed):
        invoices.save_billing_details(session, organization=team, data=DETAILS, actor=buyer)

    assert invoices.get_billing_details(session, organization_id=team.id) is None


# --- credit notes -------------------------------------------------------------------------------------

def test_a_credit_note_for_an_amount_is_spread_over_the_lines_and_numbered_in_its_own_series(session, demo, buyer):
    # given: an invoice of $86.00 + $45.00
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    invoice = invoices.invoice_for_order(session, order_id=order.id)

    # when
    note = invoices.issue_credit_note(session, order=order, amount=1310, reason="Goodwill", reference="refund:1",
                                      now=datetime(2026, 12, 6, 12, tzinfo=timezone.utc))
    session.commit()

    # then: 10% of each line, numbered CN-2026-000001
    assert (note.number, note.kind, note.credited_invoice_id, note.total_minor, note.tax_minor) == (
        "CN-2026-000001", "credit_note", invoice.id, 1310, 0)
    assert [(l.order_line_id, l.total_minor, l.seller_name) for l in note.lines] == [
        (order.lines[0].id, 860, invoice.lines[0].seller_name), (order.lines[1].id, 450, "Digitlify Marketplace")]
    assert (note.reason, note.reference, note.buyer_name) == ("Goodwill", "refund:1", invoice.buyer_name)
    assert session.get(DocumentSequence, ("INV", YEAR)).last_number == 1


def test_a_credit_note_for_lines_and_the_limits_of_what_can_be_credited(session, demo, buyer):
    # given: the plan line ($86.00) was credited $80.00 already
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    plan_line, pack_line = order.lines
    invoices.issue_credit_note(session, order=order, lines={plan_line.id: 8000}, reason="Partial refund",
                               reference="refund:a")
    session.commit()

    # when / then: more than is left on the line is refused, and nothing is issued
    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.issue_credit_note(session, order=order, lines={plan_line.id: 601}, reason="More",
                                   reference="refund:b")
    assert caught.value.field == "lines"
    session.rollback()
    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.issue_credit_note(session, order=order, amount=5101, reason="Too much", reference="refund:c")
    assert (caught.value.field, str(caught.value)) == ("amount", "At most 5100 can still be credited on this order.")
    session.rollback()

    # and what is left can be credited in full
    last = invoices.issue_credit_note(session, order=order, amount=5100, reason="The rest", reference="refund:d")
    session.commit()
    assert [(l.order_line_id, l.total_minor) for l in last.lines] == [(plan_line.id, 600), (pack_line.id, 4500)]
    assert sorted(session.scalars(select(Invoice.number).where(Invoice.kind == "credit_note"))) == [
        f"CN-{YEAR}-000001", f"CN-{YEAR}-000002"]


def test_a_refund_reason_as_long_as_the_buyer_was_told_fits_the_credit_note(session, demo, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)

    note = invoices.issue_credit_note(session, order=order, amount=100, reason="y" * 1000, reference="refund:long")
    session.commit()

    session.refresh(note)
    assert note.reason == "y" * 1000


def test_a_credit_note_is_idempotent_by_reference(session, demo, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    other = paid_order(session, user=buyer, organization=org)
    first = invoices.issue_credit_note(session, order=order, amount=100, reason="Refund", reference="refund:7")
    session.commit()

    again = invoices.issue_credit_note(session, order=order, amount=100, reason="Refund", reference="refund:7")
    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.issue_credit_note(session, order=other, amount=100, reason="Refund", reference="refund:7")

    assert again.id == first.id
    assert caught.value.status == 409
    assert _count(session, Invoice, Invoice.kind == "credit_note") == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"amount": 0}, "amount"), ({"amount": -5}, "amount"), ({"amount": 1.5}, "amount"), ({}, "amount"),
    ({"amount": 100, "lines": {}}, "amount"), ({"lines": {999999: 100}}, "lines"), ({"lines": {}}, "lines"),
    ({"amount": 100, "reason": ""}, "reason"), ({"amount": 100, "reason": "x" * 1001}, "reason"),
    ({"amount": 100, "reference": ""}, "reference"), ({"amount": 100, "reference": "r" * 121}, "reference"),
])
def test_bad_credit_note_requests_are_refused(session, demo, buyer, kwargs, field):
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    session.commit()
    arguments = {"reason": "Refund", "reference": "refund:x", **kwargs}

    with pytest.raises(invoices.InvoiceError) as caught:
        invoices.issue_credit_note(session, order=order, **arguments)

    assert caught.value.field == field
    session.rollback()
    assert _count(session, Invoice, Invoice.kind == "credit_note") == 0


def test_a_credit_note_for_an_order_paid_before_invoices_issues_its_invoice_first(session, demo, buyer):
    # given: a paid order without an invoice (paid before invoices existed)
    org = identity.ensure_personal_organization(session, user=buyer)
    order = pending_order(session, user=buyer, organization=org, plan_sku=None)
    order.status, order.paid_at = OrderStatus.PAID.value, datetime(2026, 11, 2, tzinfo=timezone.utc)
    session.commit()

    note = invoices.issue_credit_note(session, order=order, amount=4500, reason="Refund", reference="refund:old")
    session.commit()

    invoice = invoices.invoice_for_order(session, order_id=order.id)
    assert (invoice.number, note.credited_invoice_id, note.total_minor) == ("INV-2026-000001", invoice.id, 4500)


# --- concurrency (PostgreSQL, real threads) ------------------------------------------------------------

@pytest.mark.postgres_only
def test_fifty_concurrent_payments_get_numbers_one_to_fifty_without_gaps(app, session, demo, buyer, db_url):
    # given: 55 pending orders in 55 organizations; five of the payments will roll back after their invoice
    assert ON_POSTGRES
    order_ids = []
    for n in range(55):
        org = make_org(session, owner=buyer, name=f"Concurrent Team {n}")
        order_ids.append(pending_order(session, user=buyer, organization=org, plan_sku=None).id)
    session.commit()
    failing = set(order_ids[::11])  # 5 orders
    engine = create_engine(db_url, pool_size=56, max_overflow=0)
    barrier = threading.Barrier(len(order_ids))
    errors: list[BaseException] = []

    def pay(order_id: int) -> None:
        with app.app_context(), Session(engine) as thread_session:
            order = thread_session.get(Order, order_id)
            user = thread_session.get(type(buyer), buyer.id)
            card = payments.CardDetails(number="4242424242424242", expiry="12/39", cvc="123")
            barrier.wait()
            try:
                payments.pay_order(thread_session, order=order, card=card, gateway=LocalCheckout(), actor=user,
                                   today=date.today())
                if order_id in failing:
                    raise RuntimeError("the request failed after the invoice was issued")
                thread_session.commit()
            except RuntimeError:
                thread_session.rollback()
            except BaseException as exc:  # reported below
                thread_session.rollback()
                errors.append(exc)

    # when
    threads = [threading.Thread(target=pay, args=(order_id,)) for order_id in order_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()

    # then: 50 invoices, numbered 1..50, unique, no gaps; the failed payments have none
    assert errors == []
    session.expire_all()
    rows = session.execute(select(Invoice.order_id, Invoice.sequence, Invoice.number)).all()
    assert sorted(seq for _, seq, _ in rows) == list(range(1, 51))
    assert len({number for _, _, number in rows}) == 50
    assert {order_id for order_id, _, _ in rows} == set(order_ids) - failing
    assert session.get(DocumentSequence, ("INV", YEAR)).last_number == 50
    assert _count(session, Order, Order.status == OrderStatus.PAID.value) == 50
    assert _count(session, InvoiceLine) == 50


def test_an_order_the_store_reports_paid_gets_its_invoice_once(session, demo, buyer):
    # given: Saleor reports a paid order of one plan, with its lines, twice (webhook, then reconciliation)
    from app.adapters.commerce.checkout import RemoteOrder, RemoteOrderLine

    remote = RemoteOrder(
        external_id="T3JkZXI6MQ==", number="1042", email=buyer.email, currency="USD", total_minor=8600,
        fully_paid=True, lines=(RemoteOrderLine(external_id="line-1", sku="CUSTOMER-SUPPORT-AGENT-PRO",
                                                name="Customer Support Agent Pro", quantity=1, unit_price_minor=8600),),
    )

    # when
    first = orders.apply_remote_payment(session, remote=remote, actor_label="saleor-webhook")
    session.commit()
    again = orders.apply_remote_payment(session, remote=remote, actor_label="reconcile-orders")
    session.commit()

    # then: one invoice, from Saleor's lines, with the plan's publisher as seller
    assert (first.newly_paid, again.newly_paid) == (True, False)
    [invoice] = session.scalars(select(Invoice)).all()
    order = first.order
    assert (invoice.order_id, invoice.number, invoice.total_minor, invoice.tax_minor) == (
        order.id, f"INV-{YEAR}-000001", 8600, 0)
    [line] = invoice.lines
    assert (line.description, line.seller_name, line.total_minor) == (
        "Customer Support Agent Pro", order.lines[0].plan.offering.publisher.name, 8600)


def test_tax_the_store_charged_on_top_of_the_lines_is_the_invoices_tax(session, demo, buyer):
    from app.adapters.commerce.checkout import RemoteOrder, RemoteOrderLine

    remote = RemoteOrder(
        external_id="T3JkZXI6Mg==", number="1043", email=buyer.email, currency="EUR", total_minor=10234,
        fully_paid=True, lines=(RemoteOrderLine(external_id="line-1", sku="CUSTOMER-SUPPORT-AGENT-PRO",
                                                name="Customer Support Agent Pro", quantity=1, unit_price_minor=8600),),
    )

    orders.apply_remote_payment(session, remote=remote, actor_label="saleor-webhook")
    session.commit()

    invoice = session.scalar(select(Invoice))
    assert (invoice.currency, invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == ("EUR", 8600, 1634, 10234)
