"""The application as the benchmark serves it with gunicorn (`bench.billing_wsgi:app`), plus bench-only routes.

GET /bench/pk/<wallet id> reads one wallet row by primary key and returns it: the same app, hooks,
session handling and gunicorn configuration as the billing routes, with one SELECT behind it. Its
rate is the most any route of this app can do on the machine at hand.

POST /bench/billing/authorize and /bench/billing/settle (used by `bench/billing.py --diagnose`) call the same billing
services as /api/billing/..., behind the same gateway token, with no request/response schema
validation, no audit event, and the answer built before the commit. They show how much of a billing
request is the service and how much is the route around it.
"""
from __future__ import annotations

import hmac

from flask import current_app, jsonify, request
from sqlalchemy import select

from app import create_app
from app.extensions import csrf, db
from app.models import Instance, Wallet
from app.services import billing
from app.web import problem

app = create_app()


@app.get("/bench/pk/<int:wallet_id>")
def bare_primary_key_select(wallet_id: int):
    balance = db.session.execute(select(Wallet.balance).where(Wallet.id == wallet_id)).scalar_one()
    return jsonify(id=wallet_id, balance=balance)


def _gateway() -> bool:
    token = current_app.config.get("GATEWAY_SERVICE_TOKEN") or ""
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(presented.encode(), token.encode())


def _hold_answer(hold) -> dict:
    return {"id": hold.id, "instance_id": hold.instance_id, "amount": hold.amount, "captured": hold.captured,
            "status": hold.status}


@csrf.exempt
@app.post("/bench/billing/authorize")
def minimal_authorize():
    if not _gateway():
        return problem(401, "Unauthorized")
    body = request.get_json()
    instance = db.session.get(Instance, body["instance_id"])
    if instance is None:
        return problem(404, "Not Found")
    wallet = billing.wallet_for_organization(db.session, instance.organization_id)
    try:
        hold = billing.authorize(db.session, wallet=wallet, amount=body["amount"],
                                 idempotency_key=body["idempotency_key"],
                                 ttl_seconds=body.get("ttl_seconds", 300), instance_id=instance.id)
    except billing.BillingError as exc:
        db.session.rollback()
        return problem(exc.status, "Refused", str(exc))
    answer = _hold_answer(hold)
    db.session.commit()
    return jsonify(answer), 201


@csrf.exempt
@app.post("/bench/billing/settle")
def minimal_settle():
    if not _gateway():
        return problem(401, "Unauthorized")
    body = request.get_json()
    try:
        hold = billing.settle(db.session, hold_id=body["hold_id"], amount=body["amount"],
                              idempotency_key=body["idempotency_key"])
    except billing.BillingError as exc:
        db.session.rollback()
        return problem(exc.status, "Refused", str(exc))
    answer = _hold_answer(hold)
    db.session.commit()
    return jsonify(answer)
