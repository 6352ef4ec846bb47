"""The embedded mailer: "sending" stores the message in the outbox_delivery table.

It writes in the caller's transaction, so a delivery and the message's "sent" mark are kept or
lost together: a message is in the mailbox exactly once.
"""
from __future__ import annotations

import base64

from sqlalchemy.orm import Session

from app.adapters.mail import OutgoingMail, build_message
from app.models import OutboxDelivery


class OutboxMailer:
    def __init__(self, session: Session, *, sender: str) -> None:
        self.session = session
        self.sender = sender

    def send(self, mail: OutgoingMail) -> None:
        message = build_message(mail, sender=self.sender)  # the same headers an SMTP server would get
        self.session.add(OutboxDelivery(
            message_id_header=mail.message_id, from_address=self.sender, to_address=mail.to,
            subject=mail.subject, text_body=mail.text, html_body=mail.html,
            headers={name: str(value) for name, value in message.items()},
            attachments=[{"filename": a.filename, "content_type": a.content_type, "size": len(a.data),
                          "data": base64.b64encode(a.data).decode("ascii")} for a in mail.attachments],
        ))
        self.session.flush()
