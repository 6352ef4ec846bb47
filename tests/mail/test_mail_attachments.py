"""The receipt mail carries the order's invoice as a PDF, through the outbox and through SMTP."""
from __future__ import annotations

import base64
import io
from email import message_from_bytes, policy

from pypdf import PdfReader
from sqlalchemy import select

from app.adapters.mail import Attachment, OutgoingMail, build_message
from app.models import Invoice, MailMessage, OutboxDelivery
from app.services import identity, mail, provisioning
from tests.conftest import login
from tests.factories import make_user
from tests.invoices.helpers import paid_order
from tests.mail.delivery import run_jobs
from tests.mail.test_smtp import smtp_server  # noqa: F401  (the fixture)


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_build_message_puts_attachments_beside_the_text_and_html_parts():
    outgoing = OutgoingMail(to="a@example.test", subject="S", text="Plain", html="<p>Html</p>", message_id="<m@x>",
                            attachments=(Attachment("INV-2026-000001.pdf", "application/pdf", b"%PDF-1.4 x"),))

    message = build_message(outgoing, sender="Market <m@example.test>")

    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(("plain",)).get_content() == "Plain\n"
    assert "Html" in message.get_body(("html",)).get_content()
    [attached] = list(message.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type(), attached.get_content()) == (
        "INV-2026-000001.pdf", "application/pdf", b"%PDF-1.4 x")


def test_paying_mails_the_receipt_with_the_invoice_pdf_to_the_outbox(app, client, session, buyer):
    # given: a placed order
    org = identity.ensure_personal_organization(session, user=buyer)
    login(client, buyer)
    client.post("/cart/add", data={"sku": "CREDITS-500", "quantity": "1"})
    location = client.post("/checkout", data={"email": buyer.email, "organization_id": str(org.id)}
                           ).headers["Location"]

    # when: it is paid, and the mail goes out
    client.post(location, data={"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"})
    run_jobs(app)

    # then
    session.expire_all()
    invoice = session.scalar(select(Invoice))
    [message] = session.scalars(select(MailMessage).where(MailMessage.template == "order_receipt")).all()
    assert message.status == "sent"
    assert f"Your invoice {invoice.number} is attached as a PDF." in message.text_body
    assert f"/account/invoices/{invoice.id}" in message.text_body
    [delivery] = session.scalars(select(OutboxDelivery)).all()
    [attached] = delivery.attachments
    assert (attached["filename"], attached["content_type"]) == (f"{invoice.number}.pdf", "application/pdf")
    data = base64.b64decode(attached["data"])
    assert attached["size"] == len(data) and data.startswith(b"%PDF-")
    text = _pdf_text(data)
    assert invoice.number in text and "$45.00" in text


def test_the_receipt_goes_out_by_smtp_with_the_invoice_attached(make_app, smtp_server):  # noqa: F811
    handler, port = smtp_server()
    app = make_app(MAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=false")
    from app.extensions import db
    from app.services import seed

    with app.app_context():
        seed.seed_demo(db.session, password=app.config["DEMO_PASSWORD"])
        user = make_user(db.session, email="ada@example.test")
        org = identity.ensure_personal_organization(db.session, user=user)
        order = paid_order(db.session, user=user, organization=org)
        provisioning.handle_order_paid(db.session, order=order, actor_label="test")
        number = db.session.scalar(select(Invoice.number))
        db.session.commit()
        run_jobs(app)

    [envelope] = handler.accepted
    parsed = message_from_bytes(envelope.content, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    assert "attached as a PDF" in parsed.get_body(("plain",)).get_content()
    [attached] = list(parsed.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type()) == (f"{number}.pdf", "application/pdf")
    text = _pdf_text(attached.get_content())
    assert number in text and "$131.00" in text


def test_a_receipt_without_an_invoice_has_no_attachment(session, demo, buyer):
    # an order paid before invoices existed: the receipt still goes out, without a file
    from datetime import datetime, timezone

    from app.models import OrderStatus
    from tests.invoices.helpers import pending_order

    org = identity.ensure_personal_organization(session, user=buyer)
    order = pending_order(session, user=buyer, organization=org)
    order.status, order.paid_at = OrderStatus.PAID.value, datetime(2026, 1, 2, tzinfo=timezone.utc)
    session.flush()

    message = mail.order_receipt(session, order=order)

    assert message.attachments == [] and "attached" not in message.text_body
