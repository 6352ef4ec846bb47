"""Seller webhook jobs: one try of one delivery, and the sweep that defers the deliveries that are due.

A try claims the delivery and commits the claim before the endpoint is called, so the database holds
no lock while we wait on someone else's server; the outcome is committed when the task returns.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.jobs import Swept, register_sweep, task


@task("deliver-seller-webhook")  # no engine retries: the delivery keeps its own backoff (next_attempt_at)
def deliver_seller_webhook(session: Session, *, delivery_id: int, now: str | None = None) -> str:
    """Send one seller webhook delivery that is due, once; record the answer and schedule any retry."""
    from flask import current_app

    from app.adapters.webhooks import get_webhook_sender
    from app.services import seller_webhooks

    moment = datetime.fromisoformat(now) if now else None
    timeout = float(current_app.config.get("SELLER_WEBHOOK_TIMEOUT") or 10.0)
    prepared = seller_webhooks.claim_delivery(session, delivery_id=delivery_id, now=moment,
                                              lease=timedelta(seconds=2 * timeout + 60))
    if prepared is None:
        return f"Webhook delivery {delivery_id} is not due (sent, failed, or being sent)."
    session.commit()  # the claim is seen by every other worker before the endpoint is called
    result = get_webhook_sender().send(prepared.url, body=prepared.body, headers=prepared.headers)
    delivery = seller_webhooks.record_attempt(session, delivery_id=delivery_id, attempt=prepared.attempt,
                                              result=result, now=moment)
    if result.ok:
        return f"Webhook delivery {delivery_id} answered {result.status_code} on try {prepared.attempt}."
    return (f"Webhook delivery {delivery_id} failed on try {prepared.attempt} ({result.error}); "
            + ("gave up." if delivery.status == "failed" else "will try again."))


def queue_due_webhooks(session: Session) -> Swept:
    """Queue a try of every seller webhook delivery that is due (retries after backoff, lost jobs)."""
    from app.services import jobs, seller_webhooks

    due = seller_webhooks.due_delivery_ids(session)
    for delivery_id in due:
        jobs.defer(session, "deliver-seller-webhook", queueing_lock=f"seller-webhook:{delivery_id}",
                   delivery_id=delivery_id)
    return Swept(len(due), f"Queued {len(due)} seller webhook delivery tries.")


register_sweep("deliver-seller-webhooks", queue_due_webhooks, every=60, command=False)
