"""Inbound webhooks: the Saleor order-paid event."""
from __future__ import annotations

from typing import Literal

from flask import current_app, jsonify, request
from pydantic import BaseModel

from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import csrf, db
from app.services import refund_webhooks, refunds, webhooks
from app.web import problem


class WebhookReceipt(BaseModel):
    """What happened to a delivery."""

    status: Literal["processed", "duplicate", "ignored", "failed"]
    event_id: int
    signature: Literal["jws", "hmac"]
    order_id: int | None = None
    unknown_skus: list[str] = []
    problem: str | None = None


@bp.post("/integrations/saleor/order-paid")
@csrf.exempt  # Saleor signs the body; there is no browser session to protect
@spec.validate(resp=responses(200, WebhookReceipt, 400, 401, 413, 503), tags=["integrations"])
def saleor_order_paid():
    """Saleor's ORDER_FULLY_PAID / ORDER_PAID webhook: verify, store once, provision once. ORDER_REFUNDED and
    ORDER_FULLY_REFUNDED come here too (same signature check) and record each refund event once.

    Answers 200 for a handled or repeated delivery, 401 for a missing or wrong signature,
    400 for an unreadable body (also: an amount that is not a finite number an order can cost,
    such as "NaN" or 1e308), 413 for a body over WEBHOOK_MAX_BYTES, 503 when Saleor's keys
    cannot be fetched or the order is still being recorded here (Saleor retries).

    Saleor retries a delivery answered with a 5xx or not at all, and never one answered with a
    3xx or 4xx: a body that can never be taken in gets a 4xx, stores nothing, and is logged.
    """
    limit = int(current_app.config["WEBHOOK_MAX_BYTES"])
    if request.content_length is not None and request.content_length > limit:
        return problem(413, "Content Too Large", f"Webhook bodies are limited to {limit} bytes.")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return problem(413, "Content Too Large", f"Webhook bodies are limited to {limit} bytes.")
    config = current_app.config
    try:
        method = webhooks.verify_signature(
            body, request.headers.get("Saleor-Signature"),
            key_set=lambda: webhooks.key_set_for(config), secret=config.get("SALEOR_WEBHOOK_SECRET") or None,
        )
        if refund_webhooks.is_refund_event(body, event_header=request.headers.get("Saleor-Event")):
            return _order_refunded(body, method)
        event = webhooks.parse_order_paid(body, event_header=request.headers.get("Saleor-Event"))
    except webhooks.WebhookError as exc:
        if exc.status in (400, 401):
            current_app.logger.warning("Saleor webhook refused (%s): %s", exc.status, exc)
        return problem(exc.status, exc.title, str(exc))
    try:
        receipt = webhooks.receive_order_paid(db.session, event=event, body=body)
    except webhooks.RetryLater as exc:
        db.session.rollback()  # store nothing: the retry is handled from scratch
        response = problem(exc.status, exc.title, str(exc))
        response.headers["Retry-After"] = "30"
        return response
    db.session.commit()
    return jsonify(
        status="duplicate" if receipt.duplicate else receipt.event.status,
        event_id=receipt.event.id,
        signature=method,
        order_id=receipt.order_id,
        unknown_skus=sorted(set(receipt.unknown_skus)),
        problem=receipt.problem,
    ), 200


def _order_refunded(body: bytes, method: str):
    """Saleor's ORDER_REFUNDED / ORDER_FULLY_REFUNDED on the same endpoint (same signature check): each
    refund event of the order is recorded once, however often or concurrently it is delivered."""
    try:
        event = refund_webhooks.parse_refund_event(body)
        receipt = refund_webhooks.receive_refund_event(db.session, event=event, body=body)
    except refunds.RefundError as exc:
        db.session.rollback()
        if exc.status >= 500:
            return problem(503, "Service Unavailable", exc.message)
        current_app.logger.warning("Saleor refund webhook refused (%s): %s", exc.status, exc.message)
        return problem(400, "Bad Request", exc.message)
    db.session.commit()
    return jsonify(
        status="duplicate" if receipt.duplicate else receipt.event.status, event_id=receipt.event.id,
        signature=method, order_id=receipt.order_id, unknown_skus=[], problem=receipt.problem,
    ), 200
