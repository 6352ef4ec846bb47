"""Mail delivery outside a request's transaction: the `send-mail` sweep.

Every queued message has its `deliver-mail` job (deferred with it by
`app.services.mail.queue_mail`), which the job engine retries with backoff when the mail server
refuses it. `send_pending` is the safety net beside those jobs: it sends what is still queued and
due (a job that was lost, e.g. on SQLite when the process stopped before it ran, or a message
whose back-off has passed), one transaction per message. On PostgreSQL `deliver_mail` locks the
message, so a job and the sweep never send it twice.
"""
from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.services import mail

log = logging.getLogger(__name__)


def deliver_one(bind: Engine, message_id: int) -> bool:
    """Deliver one message in its own transaction and commit; True when it was sent now. A delivery
    failure is committed on the message (attempts, error) and logged; it is retried later."""
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


def deliver_each(bind: Engine, message_ids: list[int]) -> int:
    return sum(deliver_one(bind, message_id) for message_id in dict.fromkeys(message_ids))


def send_pending(bind: Engine, *, limit: int = 100) -> tuple[int, int]:
    """Send what is queued and due, one transaction per message; (sent, still queued or failed)."""
    with Session(bind=bind) as session:
        message_ids = mail.pending_message_ids(session, limit=limit)
    sent = deliver_each(bind, message_ids)
    return sent, len(message_ids) - sent
