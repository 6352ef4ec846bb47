"""Billing details at checkout: the chosen organization's details are shown to confirm or change, and
what the buyer enters is saved for that organization before the order's invoice is issued."""
from __future__ import annotations

from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.models import Organization, User
from app.services import invoices

# the service names its fields as the settings form does; checkout prefixes them
FIELD_NAMES = {"name": "billing_name", "company": "billing_company", "address": "billing_address",
               "country": "country", "vat_id": "billing_vat_id"}


def _value(choice) -> str:
    return choice[0] if isinstance(choice, tuple) else choice.value


def widen_countries(form) -> None:
    """After the named countries, every other country code an invoice may carry (by its code), so a
    buyer from anywhere can be billed and a saved country is always a valid choice."""
    named = {_value(choice) for choice in form.country.choices}
    form.country.choices = [*form.country.choices,
                            *(SelectChoice(code, code) for code in sorted(invoices.COUNTRY_CODES - named))]


def prefill(form, *, organization_id: int) -> None:
    """Fill the billing fields of a fresh checkout form with the organization's saved details."""
    details = invoices.get_billing_details(db.session, organization_id=organization_id)
    if details is None:
        return
    form.billing_name.data = details.name
    form.billing_company.data = details.company or ""
    form.billing_address.data = details.address
    form.billing_vat_id.data = details.vat_id or ""
    form.country.data = details.country


def entered(form) -> bool:
    return any((getattr(form, name).data or "").strip()
               for name in ("billing_name", "billing_company", "billing_address", "billing_vat_id"))


def save(form, *, organization: Organization, user: User) -> None:
    """Save what the buyer entered as the organization's billing details (flushes); nothing entered keeps
    the saved ones. A bad field raises InvoiceError naming the checkout form's field."""
    if not entered(form):
        return
    data = invoices.BillingInput(
        name=form.billing_name.data or "", company=form.billing_company.data or "",
        address=form.billing_address.data or "", country=form.country.data or "", vat_id=form.billing_vat_id.data or "",
    )
    try:
        invoices.save_billing_details(db.session, organization=organization, data=data, actor=user)
    except invoices.InvoiceError as exc:
        raise invoices.InvoiceError(str(exc), field=FIELD_NAMES.get(exc.field or "", exc.field)) from None
