"""The mail port: hand a rendered message to whatever delivers mail.

Two adapters: ``smtp`` (any SMTP server: ``SMTP_URL``, STARTTLS or TLS, ``SMTP_TIMEOUT``) and
``outbox`` (the embedded twin: each message is stored in the database, in the caller's
transaction, where the operator console's Outbox page shows it). ``MAIL_BACKEND`` chooses; empty
means smtp when ``SMTP_URL`` is set, else the outbox. Adapters take plain data and never import
services; services ask ``get_mailer(session)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Protocol

from flask import current_app
from sqlalchemy.orm import Session

from app.models import utcnow


class MailError(Exception):
    """The message could not be handed over; the message text is safe to show an operator."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. application/pdf
    data: bytes


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str
    html: str
    message_id: str  # the Message-ID header, stable across retries so receivers can drop a repeat
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


class Mailer(Protocol):
    def send(self, mail: OutgoingMail) -> None:
        """Deliver `mail`, or raise MailError."""


def build_message(mail: OutgoingMail, *, sender: str) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part preferred by readers; with
    attachments, that alternative and the attachments in a multipart/mixed."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    for name, value in mail.headers.items():
        if name.lower() in {"from", "to", "subject", "date", "message-id"}:
            continue
        message[name] = value
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:  # the alternative part goes inside a multipart/mixed
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return message


def sender_address(config) -> str:
    name, address = parseaddr(config.get("MAIL_FROM") or "")
    if not address or "@" not in address:
        address = "no-reply@localhost"
    return formataddr((name or "Digitlify Marketplace", address))


def mail_backend(config) -> str:
    backend = (config.get("MAIL_BACKEND") or "").strip().lower()
    if not backend:
        return "smtp" if config.get("SMTP_URL") else "outbox"
    return backend


def get_mailer(session: Session) -> Mailer:
    """The configured mailer. The outbox one writes in `session`'s transaction."""
    config = current_app.config
    backend = mail_backend(config)
    if backend == "outbox":
        from app.adapters.mail.outbox import OutboxMailer

        return OutboxMailer(session, sender=sender_address(config))
    if backend == "smtp":
        from app.adapters.mail.smtp import SmtpMailer

        return SmtpMailer(config.get("SMTP_URL") or "", sender=sender_address(config),
                          timeout=float(config.get("SMTP_TIMEOUT", 10.0)))
    raise MailError(f"Unknown MAIL_BACKEND {backend!r}: use outbox or smtp.")


def absolute_url(endpoint: str, **values) -> str:
    """An absolute link for a mail: on PUBLIC_BASE_URL when set, else on the request's origin, else
    on the development server (a sweep run from a scheduler should set PUBLIC_BASE_URL)."""
    from urllib.parse import urlsplit

    from flask import has_request_context, request

    config = current_app.config
    base = (config.get("PUBLIC_BASE_URL") or "").strip()
    if not base:
        base = request.host_url if has_request_context() else f"http://127.0.0.1:{config.get('PORT', 5000)}/"
    parts = urlsplit(base)
    adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path.rstrip("/") or "/",
                                       url_scheme=parts.scheme or "https")
    return adapter.build(endpoint, values, force_external=True)
