"""Mail delivery outside a request's transaction: after a commit, and in sweeps.

`app.services.mail.queue_mail` records a message in the caller's transaction and names it in
`session.info`. When that transaction commits, the listener here delivers those messages, each
in a fresh session and transaction of its own: a rolled-back cause never mails, a delivery
failure never undoes its cause, and a failed message stays queued for `send_pending` (the
`flask --app app send-mail` sweep), which retries with back-off.
"""
from __future__ import annotations

import logging

from flask import Flask, has_app_context
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.services import mail

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    if not event.contains(Session, "after_commit", _deliver_after_commit):
        event.listen(Session, "after_commit", _deliver_after_commit)
        event.listen(Session, "after_rollback", _forget_after_rollback)


def _forget_after_rollback(session: Session) -> None:
    session.info.pop(mail.AFTER_COMMIT_KEY, None)


def _deliver_after_commit(session: Session) -> None:
    message_ids = session.info.pop(mail.AFTER_COMMIT_KEY, None)
    if not message_ids or not has_app_context():
        return  # without the app's configuration there is no mailer: the sweep sends them
    try:
        bind = session.get_bind()
    except Exception:  # noqa: BLE001 - a commit must never fail because of mail
        log.exception("no database to deliver mail %s after commit", message_ids)
        return
    deliver_each(bind, message_ids)


def deliver_one(bind: Engine, message_id: int) -> bool:
    """Deliver one message in its own transaction and commit; True when it was sent now. A delivery
    failure is committed on the message (attempts, error) and logged; it is retried by the sweep."""
    with Session(bind=bind, expire_on_commit=False) as session:
        try:
            sent = mail.deliver_mail(session, message_id=message_id)
        except mail.MailDeliveryError as exc:
            session.commit()
            log.warning("%s", exc)
            return False
        except Exception:  # noqa: BLE001 - one broken message must not stop the others
            session.rollback()
            log.exception("delivering mail %s failed", message_id)
            return False
        session.commit()
        return sent


def deliver_for_job(bind: Engine, message_id: int) -> bool:
    """The body of a "deliver_mail" job: like deliver_one, but a delivery failure is raised (after
    its attempt and error are committed) so the job engine retries it with its back-off."""
    with Session(bind=bind, expire_on_commit=False) as session:
        try:
            sent = mail.deliver_mail(session, message_id=message_id)
        except mail.MailDeliveryError:
            session.commit()
            raise
        session.commit()
        return sent


def deliver_each(bind: Engine, message_ids: list[int]) -> int:
    return sum(deliver_one(bind, message_id) for message_id in dict.fromkeys(message_ids))


def send_pending(bind: Engine, *, limit: int = 100) -> tuple[int, int]:
    """Send what is queued and due, one transaction per message; (sent, still queued or failed)."""
    with Session(bind=bind) as session:
        message_ids = mail.pending_message_ids(session, limit=limit)
    sent = deliver_each(bind, message_ids)
    return sent, len(message_ids) - sent
