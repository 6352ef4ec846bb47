"""Account invoice pages: the list, one document as HTML and PDF, who may see them, billing details in Settings."""
from __future__ import annotations

import io
from datetime import datetime, timezone

from pypdf import PdfReader
from sqlalchemy import select

from app.models import BillingDetails, MemberRole, Membership
from app.services import identity, invoices
from tests.conftest import login
from tests.factories import make_org, make_user
from tests.invoices.helpers import paid_order

YEAR = datetime.now(timezone.utc).year
GOOD_DETAILS = {"name": "Ada Lovelace", "company": "Analytical Engines Ltd", "address": "1 Babbage Street\r\n10115 Berlin",
                "country": "de", "vat_id": "DE 123456789"}


def _team_order(session, buyer):
    """A paid order of a team the buyer owns, with its invoice."""
    team = make_org(session, owner=buyer, name="Invoice Team")
    order = paid_order(session, user=buyer, organization=team)
    session.commit()
    return team, order, invoices.invoice_for_order(session, order_id=order.id)


def test_the_invoice_page_shows_number_buyer_lines_sellers_and_totals(buyer_client, session, buyer):
    # given
    team, order, invoice = _team_order(session, buyer)
    publisher = order.lines[0].plan.offering.publisher.name

    # when
    page = buyer_client.get(f"/account/invoices/{invoice.id}").get_data(as_text=True)

    # then
    assert f"Invoice <span class=\"mono\">INV-{YEAR}-000001</span>" in page
    assert f'href="/account/orders/{order.id}"' in page
    assert publisher in page and "through Digitlify Marketplace" in page
    assert "$131.00" in page and "No tax charged" in page and "All amounts in USD." in page
    assert f'href="/account/invoices/{invoice.id}.pdf"' in page


def test_the_pdf_is_a_pdf_with_the_number_the_lines_and_the_total(buyer_client, session, buyer):
    _, order, invoice = _team_order(session, buyer)

    response = buyer_client.get(f"/account/invoices/{invoice.id}.pdf")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'inline; filename="INV-{YEAR}-000001.pdf"'
    assert response.data.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert f"INV-{YEAR}-000001" in text and order.number in text
    assert "Total" in text and "$131.00" in text and "No tax charged" in text
    assert "Sold by" in text and "Digitlify Marketplace" in text


def test_a_credit_note_page_and_pdf_name_the_invoice_they_credit(buyer_client, session, buyer):
    _, order, invoice = _team_order(session, buyer)
    note = invoices.issue_credit_note(session, order=order, amount=4500, reason="Pack not needed",
                                      reference="refund:pages")
    session.commit()

    page = buyer_client.get(f"/account/invoices/{note.id}").get_data(as_text=True)
    pdf = buyer_client.get(f"/account/invoices/{note.id}.pdf").data
    invoice_page = buyer_client.get(f"/account/invoices/{invoice.id}").get_data(as_text=True)

    assert f"Credit note <span class=\"mono\">CN-{YEAR}-000001</span>" in page and "Total credited" in page
    assert f"INV-{YEAR}-000001" in page and "Reason: Pack not needed" in page
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert f"CN-{YEAR}-000001" in text and f"Credits invoice INV-{YEAR}-000001" in text and "$45.00" in text
    assert f'href="/account/invoices/{note.id}"' in invoice_page


def test_the_list_shows_the_invoices_of_every_organization_the_user_belongs_to(client, session, buyer):
    # given: an invoice of the buyer's team, and one of a stranger
    _, order, invoice = _team_order(session, buyer)
    stranger = make_user(session)
    stranger_org = identity.ensure_personal_organization(session, user=stranger)
    paid_order(session, user=stranger, organization=stranger_org)
    session.commit()
    login(client, buyer)

    page = client.get("/account/invoices").get_data(as_text=True)

    assert f"INV-{YEAR}-000001" in page and f"INV-{YEAR}-000002" not in page
    assert "1 document for" in page
    assert 'href="/account/invoices" aria-current="page"' in page


def test_a_member_of_the_buying_organization_sees_it_and_others_get_404(client, session, buyer):
    # given: a plain member of the team, and a user outside it
    _, _, invoice = _team_order(session, buyer)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=invoice.organization_id, role=MemberRole.MEMBER.value))
    outsider = make_user(session)
    session.commit()

    login(client, member)
    assert client.get(f"/account/invoices/{invoice.id}").status_code == 200
    assert client.get(f"/account/invoices/{invoice.id}.pdf").status_code == 200
    login(client, outsider)
    assert client.get(f"/account/invoices/{invoice.id}").status_code == 404
    assert client.get(f"/account/invoices/{invoice.id}.pdf").status_code == 404
    assert client.get("/account/invoices/999999").status_code == 404
    assert f"INV-{YEAR}" not in client.get("/account/invoices").get_data(as_text=True)


def test_an_operator_can_open_any_invoice(client, session, buyer, operator):
    _, _, invoice = _team_order(session, buyer)
    login(client, operator)

    assert client.get(f"/account/invoices/{invoice.id}").status_code == 200
    assert client.get(f"/account/invoices/{invoice.id}.pdf").data.startswith(b"%PDF-")


def test_signed_out_visitors_are_sent_to_sign_in(client, session, buyer):
    _, _, invoice = _team_order(session, buyer)

    response = client.get(f"/account/invoices/{invoice.id}.pdf")

    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")


def test_the_order_page_links_its_invoice(buyer_client, session, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org)
    session.commit()
    invoice = invoices.invoice_for_order(session, order_id=order.id)

    page = buyer_client.get(f"/account/orders/{order.id}").get_data(as_text=True)

    assert f'<a class="mono" href="/account/invoices/{invoice.id}">{invoice.number}</a>' in page
    assert f'href="/account/invoices/{invoice.id}.pdf"' in page


def test_settings_saves_billing_details_for_the_current_organization(buyer_client, session, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    assert 'id="billing-details"' in buyer_client.get("/account/settings").get_data(as_text=True)

    response = buyer_client.post("/account/settings/billing-details", data=GOOD_DETAILS)

    assert response.status_code == 303 and response.headers["Location"] == "/account/settings#billing-details"
    details = invoices.get_billing_details(session, organization_id=org.id)
    assert (details.name, details.company, details.address, details.country, details.vat_id) == (
        "Ada Lovelace", "Analytical Engines Ltd", "1 Babbage Street\n10115 Berlin", "DE", "DE123456789")
    page = buyer_client.get("/account/settings").get_data(as_text=True)
    assert 'value="Ada Lovelace"' in page and 'value="DE123456789"' in page


def test_bad_billing_details_show_the_error_beside_the_field_and_save_nothing(buyer_client, session, buyer):
    response = buyer_client.post("/account/settings/billing-details", data={**GOOD_DETAILS, "country": "XX"})

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert ('<ul class="field-error" id="country-error"><li>Enter the country as its two-letter code, e.g. DE, FR or '
            'US.</li></ul>') in page
    assert 'aria-invalid="true"' in page
    session.expire_all()
    assert session.scalars(select(BillingDetails)).all() == []


def test_an_empty_name_is_a_form_error(buyer_client, session, buyer):
    response = buyer_client.post("/account/settings/billing-details", data={**GOOD_DETAILS, "name": ""})

    assert response.status_code == 400
    assert '<ul class="field-error" id="name-error"><li>Enter the name invoices are addressed to.</li></ul>' in (
        response.get_data(as_text=True))
    assert session.scalars(select(BillingDetails)).all() == []


def test_a_plain_member_cannot_change_the_team_billing_details(client, session, buyer):
    # given: the buyer is a plain member of a team and works in it
    owner = make_user(session)
    team = make_org(session, owner=owner, name="Members Only")
    session.add(Membership(user_id=buyer.id, organization_id=team.id, role=MemberRole.MEMBER.value))
    session.commit()
    login(client, buyer)
    client.post("/account/organization", data={"organization_id": str(team.id)})

    response = client.post("/account/settings/billing-details", data=GOOD_DETAILS)

    assert response.status_code == 400
    assert "Only an owner or admin of the organization can change the billing details." in response.get_data(as_text=True)
    assert invoices.get_billing_details(session, organization_id=team.id) is None
