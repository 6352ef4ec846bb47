"""Mail: render a message from templates, queue it with its cause, deliver it once.

`queue_mail` writes a MailMessage (status queued) in the caller's transaction, so a change that
rolls back never mails and a committed one always has its message. Its `dedupe_key` names the
event (``receipt:order:42``); a second queue of the same key is a no-op, so a handler that runs
twice (webhook and reconciliation) mails once. In the same transaction it defers the job
`deliver-mail` (app/jobs/tasks.py), which sends the message through the mail port with
`deliver_mail` and marks it sent; a sent message is never sent again, and a refused one is retried
by the job engine with backoff. `deliver_pending` (the `send-mail` sweep) sends whatever is still
queued and due.

The mails the marketplace sends are at the end: receipts, trials, low balance, offering reviews.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import formatting
from app.adapters import mail as mail_port
from app.models import (
    Instance, InstanceStatus, MailMessage, MailStatus, MemberRole, Membership, Notification, Offering, Order, User,
    utcnow,
)
from app.services import jobs
from app.services.errors import ServiceError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
MAX_ATTEMPTS = 8  # then the message is marked failed and shown so on the Outbox page
LOW_BALANCE_KIND = "low_balance"  # Notification.kind billing writes when a wallet crosses its threshold
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_env.filters.update(money=formatting.money, credits=formatting.credits, date=formatting.date,
                    datetime=formatting.datetime_filter)


class MailError(ServiceError):
    """A mail cannot be queued (e.g. no usable address); the message is safe to show."""


class MailDeliveryError(ServiceError):
    """The mail server did not take the message. The attempt and the error are recorded on the
    message (flushed): the caller commits them, then lets its job retry."""

    status = 503


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def render_mail(template: str, context: dict) -> RenderedMail:
    """`mail/<template>.txt` (with a `subject` block) and `mail/<template>.html`, both extending the
    mail layout of their kind. Values are escaped in the HTML part."""
    text_template = _env.get_template(f"{template}.txt")
    subject_context = text_template.new_context(dict(context))
    subject = " ".join("".join(text_template.blocks["subject"](subject_context)).split())
    text = text_template.render(context)
    html = _env.get_template(f"{template}.html").render({**context, "subject": subject})
    return RenderedMail(subject=subject[:300], text=text, html=html)


def link(endpoint: str, **values) -> str:
    """An absolute URL of one of our pages, for a mail."""
    return mail_port.absolute_url(endpoint, **values)


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"Mail supports PostgreSQL and SQLite, not {dialect}.")
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(MailMessage)


MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024  # all files of one mail together


def _stored_attachments(attachments: list[mail_port.Attachment] | None) -> list[dict]:
    stored = [{"filename": a.filename, "content_type": a.content_type,
               "data": base64.b64encode(a.data).decode("ascii")} for a in attachments or []]
    if sum(len(a.data) for a in attachments or []) > MAX_ATTACHMENT_BYTES:
        raise MailError("The files of one mail must stay under 5 MB together.", field="attachments")
    return stored


def _outgoing_attachments(message: MailMessage) -> tuple[mail_port.Attachment, ...]:
    return tuple(mail_port.Attachment(filename=a["filename"], content_type=a["content_type"],
                                      data=base64.b64decode(a["data"])) for a in message.attachments or [])


def queue_mail(
    session: Session, *, to: str, template: str, context: dict, dedupe_key: str, user_id: int | None = None,
    attachments: list[mail_port.Attachment] | None = None,
) -> MailMessage | None:
    """Render the mail and record it, queued, with the job that delivers it, in the caller's
    transaction (flushes; the caller commits). Returns the new message, or None when a mail with
    this `dedupe_key` exists already. `attachments` are stored with the message and sent with it."""
    to = (to or "").strip()
    if len(to) > 254 or not _ADDRESS.match(to):
        raise MailError("That is not an email address we can send to.", field="to")
    if not dedupe_key or len(dedupe_key) > 200:
        raise MailError("A mail needs a dedupe key of at most 200 characters.", field="dedupe_key")
    if session.scalar(select(MailMessage.id).where(MailMessage.dedupe_key == dedupe_key)) is not None:
        return None
    stored_attachments = _stored_attachments(attachments)
    rendered = render_mail(template, context)
    # ON CONFLICT DO NOTHING: a concurrent transaction queueing the same mail waits for ours, then
    # inserts nothing; no savepoint needed (pysqlite would commit a leading one)
    message_id = session.scalar(
        _insert(session).values(
            dedupe_key=dedupe_key, template=template, to_address=to, subject=rendered.subject,
            text_body=rendered.text, html_body=rendered.html, headers={"X-Digitlify-Mail": template},
            status=MailStatus.QUEUED.value, attempts=0, user_id=user_id, attachments=stored_attachments,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(MailMessage.id)
    )
    if message_id is None:
        return None
    jobs.defer(session, "deliver-mail", message_id=message_id)
    return session.get(MailMessage, message_id)


def _message_id_header(message: MailMessage) -> str:
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:16]
    return f"<mail-{message.id}.{digest}@digitlify.marketplace>"


def _locked(session: Session, message_id: int) -> MailMessage | None:
    query = select(MailMessage).where(MailMessage.id == message_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # a concurrent delivery of the same message waits, then sees "sent"
    return session.scalar(query)


def deliver_mail(session: Session, *, message_id: int) -> bool:
    """Send one queued message through the mail port and mark it sent (flushes; caller commits).

    True when this call sent it; False when it is already sent, failed for good, or unknown (so a
    repeated job is harmless). On a delivery failure the attempt and error are recorded and
    MailDeliveryError is raised: commit, then retry later.
    """
    message = _locked(session, message_id)
    if message is None or message.status != MailStatus.QUEUED.value:
        return False
    now = utcnow()
    message.attempts += 1
    message.last_attempt_at = now
    outgoing = mail_port.OutgoingMail(
        to=message.to_address, subject=message.subject, text=message.text_body, html=message.html_body,
        message_id=_message_id_header(message), headers=dict(message.headers or {}),
        attachments=_outgoing_attachments(message),
    )
    try:
        mail_port.get_mailer(session).send(outgoing)
    except mail_port.MailError as exc:
        message.last_error = str(exc)[:2000]
        if message.attempts >= MAX_ATTEMPTS:
            message.status = MailStatus.FAILED.value
        session.flush()
        raise MailDeliveryError(f"Mail {message.id} to {message.to_address} was not sent: {exc}") from exc
    message.status = MailStatus.SENT.value
    message.sent_at = now
    message.last_error = None
    session.flush()
    return True


def retry_delay(attempts: int) -> timedelta:
    """How long a failed message waits before the next try: 1, 2, 4 ... minutes, at most 2 hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 120))


def pending_message_ids(session: Session, *, limit: int = 100, now: datetime | None = None) -> list[int]:
    """Queued messages due for a try (never tried, or their back-off after a failure has passed)."""
    now = now or utcnow()
    rows = session.execute(
        select(MailMessage.id, MailMessage.attempts, MailMessage.last_attempt_at)
        .where(MailMessage.status == MailStatus.QUEUED.value).order_by(MailMessage.id).limit(limit * 4)
    ).all()
    due = [id_ for id_, attempts, last in rows if last is None or last + retry_delay(attempts) <= now]
    return due[:limit]


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0


def deliver_pending(session: Session, *, limit: int = 100, now: datetime | None = None) -> DeliveryReport:
    """Send every queued message that is due, in this transaction (flushes; the caller commits the
    sent marks and the recorded failures together)."""
    report = DeliveryReport()
    for message_id in pending_message_ids(session, limit=limit, now=now):
        try:
            report.sent += deliver_mail(session, message_id=message_id)
        except MailDeliveryError:
            report.failed += 1
    return report


# --- the mails --------------------------------------------------------------------------------


def _member_addresses(session: Session, organization_id: int, roles: tuple[str, ...] | None = None) -> list[User]:
    query = (select(User).join(Membership, Membership.user_id == User.id)
             .where(Membership.organization_id == organization_id, User.is_active.is_(True)).order_by(User.id))
    if roles:
        query = query.where(Membership.role.in_(roles))
    return list(session.scalars(query))


def order_receipt(session: Session, *, order: Order) -> MailMessage | None:
    """The receipt of a paid order, to the address given at checkout, with its invoice as a PDF; once per order."""
    from app.services import invoice_pdf, invoices

    if session.scalar(select(MailMessage.id).where(MailMessage.dedupe_key == f"receipt:order:{order.id}")):
        return None  # sent before: do not render the invoice again for nothing
    lines = [
        {"name": line.name, "quantity": line.quantity, "unit_price": line.unit_price_minor, "total": line.total_minor}
        for line in order.lines
    ]
    invoice = invoices.invoice_for_order(session, order_id=order.id)
    attachments = [mail_port.Attachment(filename=invoice_pdf.pdf_filename(invoice), content_type="application/pdf",
                                        data=invoice_pdf.render_invoice_pdf(invoice))] if invoice else []
    return queue_mail(
        session, to=order.email, template="order_receipt", dedupe_key=f"receipt:order:{order.id}",
        user_id=order.user_id, attachments=attachments,
        context={"number": order.number, "lines": lines, "total": order.total_minor, "currency": order.currency,
                 "paid_at": order.paid_at, "organization": order.organization.name,
                 "order_url": link("account.order_detail", order_id=order.id),
                 "invoice_number": invoice.number if invoice else None,
                 "invoice_url": link("account.invoice_detail", invoice_id=invoice.id) if invoice else None},
    )


def _trial_context(instance: Instance) -> dict:
    offering = instance.offering
    return {"offering": offering.name, "trial_ends_at": instance.trial_ends_at, "credits": offering.trial_credits,
            "instance_url": link("account.instance_detail", instance_id=instance.id),
            "product_url": link("storefront.product", slug=offering.slug)}


def trial_started(session: Session, *, instance: Instance, user: User) -> MailMessage | None:
    return queue_mail(session, to=user.email, template="trial_started", user_id=user.id,
                      dedupe_key=f"trial-started:instance:{instance.id}",
                      context={"name": user.name, **_trial_context(instance)})


def _trial_user(session: Session, instance: Instance) -> User | None:
    user = session.get(User, instance.created_by_id) if instance.created_by_id else None
    return user if user is not None and user.is_active else None


def send_trial_reminders(session: Session, *, now: datetime | None = None, days: int = 2) -> int:
    """Mail "your trial ends in two days" for active trials ending within `days`; once per trial."""
    now = now or utcnow()
    trials = session.scalars(
        select(Instance).where(Instance.is_trial.is_(True), Instance.status == InstanceStatus.ACTIVE.value,
                               Instance.trial_ends_at > now, Instance.trial_ends_at <= now + timedelta(days=days))
        .order_by(Instance.id)
    )
    queued = 0
    for instance in trials:
        user = _trial_user(session, instance)
        if user is None:
            continue
        queued += queue_mail(session, to=user.email, template="trial_ending", user_id=user.id,
                             dedupe_key=f"trial-ending:instance:{instance.id}",
                             context={"name": user.name, **_trial_context(instance)}) is not None
    return queued


def trial_ended(session: Session, *, instance_id: int) -> MailMessage | None:
    instance = session.get(Instance, instance_id)
    user = _trial_user(session, instance) if instance is not None else None
    if user is None:
        return None
    return queue_mail(session, to=user.email, template="trial_ended", user_id=user.id,
                      dedupe_key=f"trial-ended:instance:{instance.id}",
                      context={"name": user.name, **_trial_context(instance)})


def mail_low_balance_notices(session: Session, *, now: datetime | None = None, within_days: int = 2) -> int:
    """Mail the owners and admins of each organization whose wallet crossed its low-balance threshold
    (billing records a notification then); once per notification and person. Notifications older
    than `within_days` are left alone, so switching mail on never mails old news."""
    now = now or utcnow()
    notices = session.scalars(
        select(Notification).where(Notification.kind == LOW_BALANCE_KIND,
                                   Notification.created_at >= now - timedelta(days=within_days))
        .order_by(Notification.id)
    )
    queued = 0
    for notice in notices:
        for user in _member_addresses(session, notice.organization_id, (MemberRole.OWNER.value, MemberRole.ADMIN.value)):
            queued += queue_mail(
                session, to=user.email, template="low_balance", user_id=user.id,
                dedupe_key=f"low-balance:notification:{notice.id}:user:{user.id}",
                context={"name": user.name, "message": notice.message, "billing_url": link("account.billing")},
            ) is not None
    return queued


def offering_reviewed(session: Session, offering: Offering, approved: bool, note: str | None) -> int:
    """Tell the publisher's members that an operator approved their offering or sent it back with a
    note; once per decision. Returns how many mails were queued."""
    decision = "approved" if approved else "sent-back"
    stamp = (offering.updated_at or utcnow()).strftime("%Y%m%dT%H%M%S%f")
    queued = 0
    for user in _member_addresses(session, offering.publisher_id):
        queued += queue_mail(
            session, to=user.email, template="offering_approved" if approved else "offering_sent_back",
            user_id=user.id, dedupe_key=f"offering-reviewed:{offering.id}:{decision}:{stamp}:user:{user.id}",
            context={"name": user.name, "offering": offering.name, "note": note or "",
                     "offering_url": link("seller.offering_detail", offering_id=offering.id),
                     "product_url": link("storefront.product", slug=offering.slug)},
        ) is not None
    return queued


def renewal_failed(session: Session, *, instance: Instance, order: Order, failures: int,
                   grace_ends_at: datetime) -> MailMessage | None:
    """Tell the buyer a renewal payment failed, with a link to pay it with another card; once per attempt."""
    suspended = instance.status == "suspended"
    return queue_mail(
        session, to=order.email, template="renewal_failed", user_id=order.user_id,
        dedupe_key=f"renewal-failed:order:{order.id}:{failures}",
        context={"offering": instance.offering.name, "plan": instance.plan.name, "number": order.number,
                 "total": order.total_minor, "currency": order.currency, "suspended": suspended,
                 "next_attempt": instance.next_renewal_attempt_at, "grace_ends_at": grace_ends_at,
                 "pay_url": link("account.instance_renewal_pay", instance_id=instance.id)},
    )
