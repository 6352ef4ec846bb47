"""An invoice or credit note as a PDF (fpdf2), from its stored snapshot only.

The PDF uses the built-in Helvetica, which covers Latin-1; the few other characters our texts use
(dashes, curly quotes, the euro sign) are spelled in Latin-1, anything else becomes "?".
"""
from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from app import formatting
from app.models import DocumentKind, Invoice

_LATIN1 = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "€": "EUR ",
                         "→": "->", "\u00a0": " "})
_COLUMNS = (("Item", 78), ("Qty", 14), ("Unit price", 30), ("Tax", 24), ("Amount", 34))


def _text(value: object) -> str:
    return str(value or "").translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _money(minor: int, currency: str) -> str:
    return _text(formatting.money(minor, currency))


def document_title(invoice: Invoice) -> str:
    return "Credit note" if invoice.kind == DocumentKind.CREDIT_NOTE.value else "Invoice"


def pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The document as PDF bytes; the same invoice always gives the same text."""
    pdf = FPDF(format="A4")
    pdf.set_title(_text(f"{document_title(invoice)} {invoice.number}"))
    pdf.set_author(_text(invoice.issuer_name))
    pdf.set_creation_date(invoice.issued_at)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width / 2, 10, _text(document_title(invoice)))
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(width / 2, 5, _text(f"Number: {invoice.number}\nIssued: {formatting.date(invoice.issued_at)}\n"
                                       f"Order: {invoice.order.number if invoice.order else ''}"),
                   align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if invoice.credited_invoice is not None:
        pdf.cell(width, 5, _text(f"Credits invoice {invoice.credited_invoice.number}"),
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width / 2, 5, "From", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    issuer = [invoice.issuer_name, invoice.issuer_address or "",
              f"VAT ID: {invoice.issuer_vat_id}" if invoice.issuer_vat_id else ""]
    pdf.multi_cell(width / 2 - 4, 5, _text("\n".join(part for part in issuer if part)),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width / 2, 5, "Bill to", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    buyer = [invoice.buyer_name, invoice.buyer_company or "", invoice.buyer_address or "",
             invoice.buyer_country or "", f"VAT ID: {invoice.buyer_vat_id}" if invoice.buyer_vat_id else "",
             invoice.buyer_email]
    pdf.multi_cell(width / 2, 5, _text("\n".join(part for part in buyer if part)),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(bottom, pdf.get_y()) + 6)

    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(235, 235, 235)
    for label, w in _COLUMNS:
        pdf.cell(w, 7, label, border="B", fill=True, align="L" if label == "Item" else "R")
    pdf.ln()
    for line in invoice.lines:
        pdf.set_font("Helvetica", "", 9)
        y = pdf.get_y()
        pdf.multi_cell(_COLUMNS[0][1], 5, _text(f"{line.description}\nSold by {line.seller_name} through "
                                                f"{line.platform_name}"), new_x=XPos.RIGHT, new_y=YPos.TOP)
        height = max(pdf.get_y(), y + 10) - y
        for value, (_, w) in zip((str(line.quantity), _money(line.unit_price_minor, invoice.currency),
                                  _money(line.tax_minor, invoice.currency),
                                  _money(line.total_minor, invoice.currency)), _COLUMNS[1:]):
            pdf.cell(w, 5, value, align="R")
        pdf.set_xy(pdf.l_margin, y + height + 1)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1)

    pdf.ln(2)
    label_w, value_w = width - 40, 40
    totals = [("Subtotal", _money(invoice.subtotal_minor, invoice.currency)),
              ("Tax", _money(invoice.tax_minor, invoice.currency) if invoice.tax_minor else "No tax charged"),
              ("Total credited" if invoice.kind == DocumentKind.CREDIT_NOTE.value else "Total",
               _money(invoice.total_minor, invoice.currency))]
    for index, (label, value) in enumerate(totals):
        pdf.set_font("Helvetica", "B" if index == len(totals) - 1 else "", 10)
        pdf.cell(label_w, 6, label, align="R")
        pdf.cell(value_w, 6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.ln(4)
    pdf.multi_cell(width, 5, _text(f"All amounts in {invoice.currency}."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if invoice.reason:
        pdf.multi_cell(width, 5, _text(f"Reason: {invoice.reason}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
