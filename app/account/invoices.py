"""Invoices and credit notes of the account: the list, one document as a page and as a PDF, and the
billing details they are addressed to (a section of Settings).

A document is visible to the members of the organization that bought (and to operators); anyone
else gets 404, never a hint that it exists.
"""
from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for

from app.account.forms import BillingDetailsForm
from app.account.settings import _settings_page
from app.account.views import bp, refusal_text
from app.auth.session_user import current_org, login_required
from app.extensions import db
from app.services import invoice_pdf, invoices, organizations

PER_PAGE = 20


@bp.get("/invoices", endpoint="invoices")
@login_required
def invoices_list():
    page = request.args.get("page", 1, type=int) or 1
    items, total = invoices.list_invoices_for_user(db.session, user=g.user, page=page, per_page=PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("account/invoices.html", invoices=items, total=total, page=max(1, page), pages=pages,
                           url_for_page=lambda n: url_for("account.invoices", page=n))


def _document(invoice_id: int):
    try:
        return invoices.get_invoice_for_user(db.session, user=g.user, invoice_id=invoice_id)
    except invoices.InvoiceNotFound:
        abort(404)


@bp.get("/invoices/<int:invoice_id>")
@login_required
def invoice_detail(invoice_id: int):
    invoice = _document(invoice_id)
    return render_template(
        "account/invoice_detail.html", invoice=invoice, title=invoice_pdf.document_title(invoice),
        credit_notes=invoices.credit_notes_of(db.session, invoice=invoice),
        own_order=invoice.order is not None and invoice.order.user_id == g.user.id,
    ), {"Cache-Control": "private, no-store"}


@bp.get("/invoices/<int:invoice_id>.pdf")
@login_required
def invoice_pdf_download(invoice_id: int):
    invoice = _document(invoice_id)
    return Response(invoice_pdf.render_invoice_pdf(invoice), mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{invoice_pdf.pdf_filename(invoice)}"',
        "Cache-Control": "private, no-store"})


@bp.post("/settings/billing-details")
@login_required
def settings_billing_details():
    org = current_org()
    form = BillingDetailsForm()
    if form.validate_on_submit():
        data = invoices.BillingInput(name=form.name.data, company=form.company.data or "", address=form.address.data,
                                     country=form.country.data, vat_id=form.vat_id.data or "")
        try:
            invoices.save_billing_details(db.session, organization=org, data=data, actor=g.user)
        except organizations.OrganizationError as exc:
            db.session.rollback()
            form.form_errors.append(refusal_text(exc, "change the billing details"))
        except invoices.InvoiceError as exc:
            db.session.rollback()
            target = getattr(form, exc.field, None) if exc.field else None
            (target.errors if target is not None else form.form_errors).append(str(exc))
        else:
            db.session.commit()
            flash(f"Billing details of {org.name} saved. New invoices are addressed to them.", "success")
            return redirect(url_for("account.settings", _anchor="billing-details"), 303)
    return _settings_page(400, billing_form=form)
