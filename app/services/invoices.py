"""Invoices and credit notes: a gapless number per series and year, the buyer's billing details, reading
them back for the people allowed to.

Every paid order gets one invoice when it becomes paid (`orders.mark_order_paid` calls
`issue_invoice_for_order` in the same transaction, for first purchases and renewals, local and Saleor
alike). A refund gets a credit note (`issue_credit_note`), numbered in its own series.

Numbers: `INV-2026-000123` and `CN-2026-000001`. The next number of a series and year is taken by
incrementing its `document_sequence` row in the transaction that issues the document. The UPDATE locks
the row until that transaction ends, so concurrent payments take numbers one after the other, and a
transaction that rolls back takes its increment with it: no number is skipped or given twice.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from app.models import (
    BillingDetails, DocumentKind, DocumentSequence, Invoice, InvoiceLine, LineKind, Membership, Order, OrderStatus,
    Organization, User, utcnow,
)
from app.services import audit
from app.services.errors import ServiceError

INVOICE_SERIES = "INV"
CREDIT_NOTE_SERIES = "CN"
DEFAULT_ISSUER_NAME = "Digitlify Marketplace"
OPERATOR_ROLE = "operator"
MAX_REASON = 1000  # a refund's reason, as the buyer was told it, fits

# ISO 3166-1 alpha-2 codes (and XK, in common use for Kosovo)
COUNTRY_CODES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO
JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR
MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV
TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
""".split())
_VAT_ID = re.compile(r"^[A-Z]{2}[A-Z0-9]{2,13}$")


class InvoiceError(ServiceError):
    """An invoice rule was broken; the message is safe to show."""


class InvoiceNotFound(InvoiceError):
    def __init__(self) -> None:
        super().__init__("Invoice not found.", status=404)


@dataclass(frozen=True)
class Issuer:
    """Who issues the documents: the marketplace operator, from configuration."""

    name: str = DEFAULT_ISSUER_NAME
    address: str = ""
    vat_id: str = ""


def configured_issuer() -> Issuer:
    """The issuer from the app's configuration (INVOICE_ISSUER_*), or the defaults outside an app."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return Issuer()
    config = current_app.config
    return Issuer(
        name=(config.get("INVOICE_ISSUER_NAME") or DEFAULT_ISSUER_NAME).strip()[:200],
        address=(config.get("INVOICE_ISSUER_ADDRESS") or "").replace("\\n", "\n").strip(),
        vat_id=(config.get("INVOICE_ISSUER_VAT_ID") or "").strip()[:40],
    )


# --- billing details ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BillingInput:
    name: str
    company: str
    address: str
    country: str
    vat_id: str


def normalize_vat_id(raw: str) -> str:
    return re.sub(r"[\s.\-]", "", raw or "").upper()


def validate_billing_details(data: BillingInput) -> BillingInput:
    """The details cleaned up (trimmed, upper-case codes), or InvoiceError naming the first bad field."""
    name = " ".join((data.name or "").split())
    company = " ".join((data.company or "").split())
    address_lines = [" ".join(line.split()) for line in (data.address or "").splitlines()]
    address = "\n".join(line for line in address_lines if line)
    country = (data.country or "").strip().upper()
    vat_id = normalize_vat_id(data.vat_id)
    if not name:
        raise InvoiceError("Enter the name invoices are addressed to.", field="name")
    if len(name) > 120:
        raise InvoiceError("Keep the name to 120 characters.", field="name")
    if len(company) > 200:
        raise InvoiceError("Keep the company name to 200 characters.", field="company")
    if not address:
        raise InvoiceError("Enter the billing address (street, postal code and city).", field="address")
    if len(address) > 500 or len(address_lines) > 8:
        raise InvoiceError("Keep the address to 8 lines and 500 characters.", field="address")
    if country not in COUNTRY_CODES:
        raise InvoiceError("Enter the country as its two-letter code, e.g. DE, FR or US.", field="country")
    if vat_id and not _VAT_ID.match(vat_id):
        raise InvoiceError("A VAT ID starts with its two-letter country prefix followed by 2 to 13 letters or "
                           "digits, e.g. DE123456789.", field="vat_id")
    if vat_id and not company:
        raise InvoiceError("Enter the company the VAT ID belongs to.", field="company")
    return BillingInput(name=name, company=company, address=address, country=country, vat_id=vat_id)


def get_billing_details(session: Session, *, organization_id: int) -> BillingDetails | None:
    return session.scalar(select(BillingDetails).where(BillingDetails.organization_id == organization_id))


def save_billing_details(
    session: Session, *, organization: Organization, data: BillingInput, actor: User,
) -> BillingDetails:
    """Set the organization's billing details (flushes). Only an owner or admin may; invoices issued
    before keep the details they were issued with."""
    from app.services import organizations

    organizations.require_role(session, user=actor, organization_id=organization.id)
    clean = validate_billing_details(data)
    details = get_billing_details(session, organization_id=organization.id)
    if details is None:
        details = BillingDetails(organization_id=organization.id)
        session.add(details)
    details.name = clean.name
    details.company = clean.company or None
    details.address = clean.address
    details.country = clean.country
    details.vat_id = clean.vat_id or None
    session.flush()
    audit.record(session, action="billing_details.saved", target_type="organization", target_id=organization.id,
                 organization_id=organization.id, actor=actor, data={"country": clean.country,
                                                                      "has_vat_id": bool(clean.vat_id)})
    return details


# --- numbers ----------------------------------------------------------------------------------------

def _upsert_sequence(session: Session, *, series: str, year: int) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # a concurrent first document of the year waits here for the other's insert, then inserts nothing
    session.execute(insert(DocumentSequence).values(series=series, year=year, last_number=0)
                    .on_conflict_do_nothing(index_elements=["series", "year"]))


def next_document_number(session: Session, *, series: str, year: int) -> int:
    """The next number of the series and year, held by this transaction until it ends (flushes).

    The UPDATE locks the counter row (as SELECT ... FOR UPDATE would) until commit or rollback; a
    concurrent caller waits, then reads the committed value. A rollback undoes the increment."""
    _upsert_sequence(session, series=series, year=year)
    return session.scalar(
        update(DocumentSequence)
        .where(DocumentSequence.series == series, DocumentSequence.year == year)
        .values(last_number=DocumentSequence.last_number + 1)
        .returning(DocumentSequence.last_number)
        .execution_options(synchronize_session=False)
    )


def format_number(series: str, year: int, sequence: int) -> str:
    return f"{series}-{year}-{sequence:06d}"


# --- issuing ----------------------------------------------------------------------------------------

def _buyer_snapshot(session: Session, order: Order) -> dict:
    details = get_billing_details(session, organization_id=order.organization_id)
    if details is not None:
        return {"buyer_name": details.name, "buyer_company": details.company, "buyer_address": details.address,
                "buyer_country": details.country, "buyer_vat_id": details.vat_id}
    org = order.organization
    name = order.user.name if org.is_personal and order.user is not None else org.name
    return {"buyer_name": (name or order.email)[:200], "buyer_company": None if org.is_personal else org.name[:200],
            "buyer_address": None, "buyer_country": None, "buyer_vat_id": None}


def _seller_name(line, issuer: Issuer) -> str:
    if line.kind == LineKind.PLAN.value and line.plan is not None:
        return line.plan.offering.publisher.name[:200]
    return issuer.name  # credit packs (and anything unmatched) are sold by the marketplace itself


def invoice_for_order(session: Session, *, order_id: int) -> Invoice | None:
    return session.scalar(select(Invoice).where(Invoice.dedupe_key == f"order:{order_id}"))


def issue_invoice_for_order(
    session: Session, *, order: Order, now: datetime | None = None, issuer: Issuer | None = None,
) -> Invoice:
    """The order's invoice, issued now if it has none yet (flushes). Only a paid order has one.

    Called where an order becomes paid, once; calling it again returns the same invoice."""
    existing = invoice_for_order(session, order_id=order.id)
    if existing is not None:
        return existing
    if order.status != OrderStatus.PAID.value:
        raise InvoiceError(f"Order {order.number} is not paid, so it has no invoice.", status=409)
    issuer = issuer or configured_issuer()
    issued_at = order.paid_at or now or utcnow()
    subtotal = sum(line.total_minor for line in order.lines)
    # the store's total is what was paid: more than the lines is tax the store charged, less a discount
    tax = max(0, order.total_minor - subtotal)
    year = issued_at.year
    sequence = next_document_number(session, series=INVOICE_SERIES, year=year)
    invoice = Invoice(
        number=format_number(INVOICE_SERIES, year, sequence), kind=DocumentKind.INVOICE.value,
        series=INVOICE_SERIES, year=year, sequence=sequence, dedupe_key=f"order:{order.id}",
        order_id=order.id, organization_id=order.organization_id, issued_at=issued_at,
        currency=order.currency, subtotal_minor=min(subtotal, order.total_minor), tax_minor=tax,
        total_minor=order.total_minor, buyer_email=order.email, issuer_name=issuer.name,
        issuer_address=issuer.address or None, issuer_vat_id=issuer.vat_id or None,
        **_buyer_snapshot(session, order),
    )
    remaining_discount = max(0, subtotal - order.total_minor)
    for line in order.lines:
        total = line.total_minor
        if remaining_discount:  # a store discount comes off the lines in order, never below zero
            off = min(total, remaining_discount)
            total -= off
            remaining_discount -= off
        invoice.lines.append(InvoiceLine(
            order_line_id=line.id, description=line.name[:300], seller_name=_seller_name(line, issuer),
            platform_name=issuer.name, quantity=line.quantity,
            unit_price_minor=line.unit_price_minor if total == line.total_minor else total // line.quantity,
            total_minor=total,
        ))
    session.add(invoice)
    session.flush()
    audit.record(session, action="invoice.issued", target_type="invoice", target_id=invoice.id,
                 organization_id=order.organization_id, actor_label="billing",
                 data={"number": invoice.number, "order": order.number, "total_minor": invoice.total_minor,
                       "currency": invoice.currency})
    return invoice


def credited_by_line(session: Session, *, invoice: Invoice) -> dict[int, int]:
    """How much of each invoice line (by order line id) credit notes have credited so far."""
    rows = session.execute(
        select(InvoiceLine.order_line_id, func.coalesce(func.sum(InvoiceLine.total_minor), 0))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.credited_invoice_id == invoice.id).group_by(InvoiceLine.order_line_id)
    ).all()
    return {line_id: int(total) for line_id, total in rows}


def _lock_order(session: Session, order: Order) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.refresh(order, ["status"], with_for_update=True)  # credit notes of one order one at a time


def issue_credit_note(
    session: Session, *, order: Order, lines: Mapping[int, int] | None = None, amount: int | None = None,
    reason: str, reference: str, now: datetime | None = None, issuer: Issuer | None = None,
) -> Invoice:
    """A credit note against the order's invoice (flushes; the caller commits with its refund).

    Give either `lines` (order line id -> amount in minor units) or `amount` (minor units, spread over
    the lines by what is left to credit on each). Never more than was invoiced and not credited yet.
    `reference` names the refund and makes the call idempotent: the same reference returns the first
    credit note. The invoice is issued first if the order was paid before invoices existed."""
    reference = (reference or "").strip()
    reason = " ".join((reason or "").split())
    if not reference or len(reference) > 120:
        raise InvoiceError("A credit note needs a reference of at most 120 characters.", field="reference")
    if not reason or len(reason) > MAX_REASON:
        raise InvoiceError(f"Say why the amount is credited, in at most {MAX_REASON:,} characters.", field="reason")
    if (lines is None) == (amount is None):
        raise InvoiceError("Give either the lines to credit or an amount.", field="amount")
    _lock_order(session, order)
    dedupe_key = f"credit:{reference}"
    existing = session.scalar(select(Invoice).where(Invoice.dedupe_key == dedupe_key))
    if existing is not None:
        if existing.order_id != order.id:
            raise InvoiceError("That reference belongs to a credit note of another order.", field="reference",
                               status=409)
        return existing
    invoice = issue_invoice_for_order(session, order=order, now=now, issuer=issuer)
    credited = credited_by_line(session, invoice=invoice)
    left = {line.order_line_id: line.total_minor - credited.get(line.order_line_id, 0) for line in invoice.lines}
    by_line = {line.order_line_id: line for line in invoice.lines}
    if lines is not None:
        wanted: dict[int, int] = {}
        for line_id, value in lines.items():
            if line_id not in by_line:
                raise InvoiceError(f"Line {line_id} is not on order {order.number}.", field="lines")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvoiceError("Each credited amount must be a positive whole number of minor units.",
                                   field="lines")
            if value > left[line_id]:
                raise InvoiceError(f"At most {left[line_id]} can still be credited on “{by_line[line_id].description}”.",
                                   field="lines")
            wanted[line_id] = value
        if not wanted:
            raise InvoiceError("Choose at least one line to credit.", field="lines")
    else:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvoiceError("The amount must be a positive whole number of minor units.", field="amount")
        creditable = sum(left.values())
        if amount > creditable:
            raise InvoiceError(f"At most {creditable} can still be credited on this order.", field="amount")
        wanted = _spread(amount, left)
    issuer = issuer or configured_issuer()
    issued_at = now or utcnow()
    year = issued_at.year
    sequence = next_document_number(session, series=CREDIT_NOTE_SERIES, year=year)
    total = sum(wanted.values())
    note = Invoice(
        number=format_number(CREDIT_NOTE_SERIES, year, sequence), kind=DocumentKind.CREDIT_NOTE.value,
        series=CREDIT_NOTE_SERIES, year=year, sequence=sequence, dedupe_key=dedupe_key, order_id=order.id,
        organization_id=order.organization_id, credited_invoice_id=invoice.id, issued_at=issued_at,
        currency=invoice.currency, subtotal_minor=total, tax_minor=0, total_minor=total,
        buyer_name=invoice.buyer_name, buyer_company=invoice.buyer_company, buyer_address=invoice.buyer_address,
        buyer_country=invoice.buyer_country, buyer_vat_id=invoice.buyer_vat_id, buyer_email=invoice.buyer_email,
        issuer_name=issuer.name, issuer_address=issuer.address or None, issuer_vat_id=issuer.vat_id or None,
        reason=reason, reference=reference,
    )
    for line_id, value in wanted.items():
        source = by_line[line_id]
        note.lines.append(InvoiceLine(
            order_line_id=line_id, description=f"Refund: {source.description}"[:300], seller_name=source.seller_name,
            platform_name=source.platform_name, quantity=1, unit_price_minor=value, total_minor=value,
        ))
    session.add(note)
    session.flush()
    audit.record(session, action="credit_note.issued", target_type="invoice", target_id=note.id,
                 organization_id=order.organization_id, actor_label="billing",
                 data={"number": note.number, "invoice": invoice.number, "order": order.number,
                       "total_minor": total, "reference": reference})
    return note


def _spread(amount: int, left: dict[int, int]) -> dict[int, int]:
    """`amount` over the lines in proportion to what is left on each, whole units, never past a line."""
    creditable = sum(left.values())
    shares = {line_id: amount * value // creditable for line_id, value in left.items()}
    rest = amount - sum(shares.values())
    for line_id, value in left.items():
        if rest == 0:
            break
        extra = min(rest, value - shares[line_id])
        shares[line_id] += extra
        rest -= extra
    return {line_id: value for line_id, value in shares.items() if value > 0}


# --- reading ------------------------------------------------------------------------------------

def _member_org_ids(user: User):
    return select(Membership.organization_id).where(Membership.user_id == user.id)


def list_invoices_for_user(
    session: Session, *, user: User, page: int = 1, per_page: int = 20,
) -> tuple[list[Invoice], int]:
    """Invoices and credit notes of every organization the user belongs to, newest first."""
    scope = Invoice.organization_id.in_(_member_org_ids(user))
    total = session.scalar(select(func.count()).select_from(Invoice).where(scope)) or 0
    page = max(1, page)
    items = list(session.scalars(
        select(Invoice).where(scope).options(selectinload(Invoice.order))
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ))
    return items, total


def can_read(session: Session, *, user: User, invoice: Invoice) -> bool:
    if user.has_role(OPERATOR_ROLE):
        return True
    return session.scalar(select(Membership.id).where(
        Membership.user_id == user.id, Membership.organization_id == invoice.organization_id)) is not None


def get_invoice_for_user(session: Session, *, user: User, invoice_id: int) -> Invoice:
    """An invoice or credit note of one of the user's organizations (any, for an operator); else not found."""
    invoice = session.scalar(
        select(Invoice).where(Invoice.id == invoice_id)
        .options(selectinload(Invoice.lines), selectinload(Invoice.order), selectinload(Invoice.credited_invoice))
    )
    if invoice is None or not can_read(session, user=user, invoice=invoice):
        raise InvoiceNotFound()
    return invoice


def documents_for_order(session: Session, *, order: Order) -> list[Invoice]:
    """The order's invoice and credit notes, in the order they were issued."""
    return list(session.scalars(select(Invoice).where(Invoice.order_id == order.id).order_by(Invoice.id)))


def credit_notes_of(session: Session, *, invoice: Invoice) -> list[Invoice]:
    return list(session.scalars(select(Invoice).where(Invoice.credited_invoice_id == invoice.id).order_by(Invoice.id)))
