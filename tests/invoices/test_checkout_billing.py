"""Billing details at checkout: confirmed or entered there, saved for the organization, on the invoice."""
from __future__ import annotations

from sqlalchemy import func, select

from app.models import BillingDetails, Invoice, Order
from app.services import identity, invoices

CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


def _checkout(client, session, user, **billing):
    org = identity.ensure_personal_organization(session, user=user)
    client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})
    return client.post("/checkout", data={"email": user.email, "organization_id": str(org.id), "country": "US",
                                          **billing})


def test_checkout_shows_the_saved_details_to_confirm(buyer_client, session, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    invoices.save_billing_details(session, organization=org, actor=buyer, data=invoices.BillingInput(
        name="Ada Lovelace", company="Engines Ltd", address="1 Babbage Street\n10115 Berlin", country="DE",
        vat_id="DE123456789"))
    session.commit()
    buyer_client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})

    page = buyer_client.get("/checkout").get_data(as_text=True)

    assert "<legend>Billing details for the invoice</legend>" in page
    assert 'value="Ada Lovelace"' in page and 'value="DE123456789"' in page
    assert "1 Babbage Street\n10115 Berlin</textarea>" in page
    assert '<option selected value="DE">Germany</option>' in page


def test_details_entered_at_checkout_are_saved_and_on_the_invoice(buyer_client, session, buyer):
    # when: the buyer enters billing details at checkout, then pays
    response = _checkout(buyer_client, session, buyer, billing_name="Grace Hopper", billing_company="",
                         billing_address="2 Harbour Road\nArlington", billing_vat_id="")
    buyer_client.post(response.headers["Location"], data=CARD)

    # then
    org = identity.ensure_personal_organization(session, user=buyer)
    details = invoices.get_billing_details(session, organization_id=org.id)
    assert (details.name, details.address, details.country) == ("Grace Hopper", "2 Harbour Road\nArlington", "US")
    [invoice] = session.scalars(select(Invoice)).all()
    assert (invoice.buyer_name, invoice.buyer_address, invoice.buyer_country) == (
        "Grace Hopper", "2 Harbour Road\nArlington", "US")


def test_a_bad_vat_id_at_checkout_is_shown_beside_the_field_and_nothing_is_placed(buyer_client, session, buyer):
    response = _checkout(buyer_client, session, buyer, billing_name="Grace Hopper", billing_company="Navy",
                         billing_address="2 Harbour Road", billing_vat_id="12")

    assert response.status_code == 400
    assert ('<ul class="field-error" id="billing_vat_id-error"><li>A VAT ID starts with its two-letter country prefix '
            'followed by 2 to 13 letters or digits, e.g. DE123456789.</li></ul>') in response.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert session.scalar(select(func.count()).select_from(BillingDetails)) == 0


def test_a_name_without_an_address_at_checkout_asks_for_the_address(buyer_client, session, buyer):
    response = _checkout(buyer_client, session, buyer, billing_name="Grace Hopper")

    assert response.status_code == 400
    assert ('<ul class="field-error" id="billing_address-error"><li>Enter the billing address (street, postal code '
            'and city).</li></ul>') in response.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_country_outside_the_named_list_can_be_saved_and_is_shown_again(buyer_client, session, buyer):
    response = _checkout(buyer_client, session, buyer, billing_name="Maria Gruber", billing_address="Ring 1\nWien",
                         country="AT")

    assert response.status_code == 303
    org = identity.ensure_personal_organization(session, user=buyer)
    assert invoices.get_billing_details(session, organization_id=org.id).country == "AT"
    buyer_client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})
    assert '<option selected value="AT">AT</option>' in buyer_client.get("/checkout").get_data(as_text=True)


def test_leaving_the_details_empty_places_the_order_without_saving_any(buyer_client, session, buyer):
    response = _checkout(buyer_client, session, buyer)

    assert response.status_code == 303
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(BillingDetails)) == 0
