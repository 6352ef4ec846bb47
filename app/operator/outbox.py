"""Operator console: the Outbox, every mail the app has queued or sent, and one mail rendered.

A mail's HTML is shown in a sandboxed iframe (no scripts, no same origin) loaded from its own
route, which answers with a CSP that allows nothing but inline styles and images.
"""
from __future__ import annotations

from flask import abort, current_app, render_template, request
from sqlalchemy import func, select

from app.adapters.mail import mail_backend
from app.extensions import db
from app.models import MailMessage, MailStatus
from app.operator.views import bp

PER_PAGE = 50
# mails whose link lets the reader into the account: their bodies are shown only when mail stays
# here (the built-in outbox), never once it went to the person's real mailbox
SECRET_TEMPLATES = {"password_reset", "verify_email"}
MAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")


def _message_or_404(message_id: int) -> MailMessage:
    message = db.session.get(MailMessage, message_id)
    if message is None:
        abort(404)
    return message


def _hidden(message: MailMessage) -> bool:
    return message.template in SECRET_TEMPLATES and mail_backend(current_app.config) != "outbox"


@bp.get("/outbox")
def outbox():
    status = request.args.get("status", "")
    to = request.args.get("to", "").strip()[:254]
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(MailMessage)
    if status in {s.value for s in MailStatus}:
        query = query.where(MailMessage.status == status)
    else:
        status = ""
    if to:
        query = query.where(MailMessage.to_address == to.lower())
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    messages = list(db.session.scalars(
        query.order_by(MailMessage.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ))
    pages = max(1, -(-total // PER_PAGE))
    return render_template("operator/outbox.html", messages=messages, total=total, page=page, pages=pages,
                           status=status, to=to, statuses=[s.value for s in MailStatus])


@bp.get("/outbox/<int:message_id>")
def outbox_message(message_id: int):
    message = _message_or_404(message_id)
    return render_template("operator/outbox_message.html", message=message, hidden=_hidden(message))


@bp.get("/outbox/<int:message_id>/html")
def outbox_message_html(message_id: int):
    message = _message_or_404(message_id)
    if _hidden(message):
        abort(404)
    return message.html_body, 200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": MAIL_CSP,
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
    }
