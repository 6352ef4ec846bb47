"""Wallets and credit holds: /api/wallets/me, /api/wallets/me/ledger, /api/billing/...

People read their current organization's wallet. Holds are for runtimes: the gateway (service token)
may hold credits for any instance; an instance API key only for its own instance and only holds of
its own organization. Each hold that is opened or closed here is also written to the audit log with
the caller; a retried idempotency key changes nothing and writes nothing.
"""
from __future__ import annotations

from flask import g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, actor_label, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import billing, instances, ledger_wording, organizations

RUNTIME_KINDS = ("service", "api_key")


@bp.get("/wallets/me")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.WalletOut), tags=["wallets"])
def wallet_me():
    """Balance, credits held by live holds, and credits available, of your current organization."""
    wallet = billing.wallet_for_organization(db.session, g.api_org.id)
    balances = billing.wallet_balances(db.session, wallet=wallet)
    db.session.commit()  # the wallet may just have been created
    return schemas.WalletOut(organization_id=g.api_org.id, balance=balances.balance, held=balances.held,
                             available=balances.available, low_balance_threshold=wallet.low_balance_threshold)


@bp.patch("/wallets/me")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.WalletOut, 400, 403), tags=["wallets"])
def update_wallet_me(json: schemas.WalletSettingsIn):
    """Set the low-balance threshold of your current organization's wallet (owners and admins), or
    switch it off with null. When the balance falls below it, a notification is recorded, which the
    account pages show."""
    organizations.require_role(db.session, user=g.api_user, organization_id=g.api_org.id)
    wallet = billing.wallet_for_organization(db.session, g.api_org.id)
    billing.set_low_balance_threshold(db.session, wallet=wallet, threshold=json.low_balance_threshold,
                                      actor=g.api_user)
    balances = billing.wallet_balances(db.session, wallet=wallet)
    db.session.commit()
    return schemas.WalletOut(organization_id=g.api_org.id, balance=balances.balance, held=balances.held,
                             available=balances.available, low_balance_threshold=json.low_balance_threshold)


@bp.get("/wallets/me/ledger")
@api_auth(*USER_KINDS)
@spec.validate(query=schemas.CursorQuery, resp=responses(200, schemas.LedgerPage, 422), tags=["wallets"])
def wallet_ledger(query: schemas.CursorQuery):
    """The ledger of your current organization's wallet, newest first; pass `next_cursor` as `cursor`."""
    cursor = None
    if query.cursor is not None:
        if not query.cursor.isdigit() or len(query.cursor) > 12 or int(query.cursor) < 1:
            raise billing.BillingError("Use the next_cursor of the previous page.", field="cursor", status=422)
        cursor = int(query.cursor)
    wallet = billing.wallet_for_organization(db.session, g.api_org.id)
    entries, next_cursor = billing.ledger_page(db.session, wallet=wallet, cursor=cursor, limit=query.limit)
    descriptions = ledger_wording.describe_entries(db.session, entries)
    items = [serializers.ledger_entry_out(e, descriptions[e.id]) for e in entries]
    db.session.commit()
    return schemas.LedgerPage(items=items,
                              next_cursor=str(next_cursor) if next_cursor is not None else None)


def _caller_organization_id() -> int | None:
    """Holds an API key may touch: its own organization's. The gateway: all (None)."""
    return g.api_key.instance.organization_id if g.api_key is not None else None


@bp.post("/billing/authorize")
@api_auth(*RUNTIME_KINDS)
@spec.validate(resp=responses(201, schemas.HoldOut, 400, 402, 404, 409), tags=["billing"])
def authorize(json: schemas.AuthorizeIn):
    """Hold `amount` credits of the instance's organization for `ttl_seconds`; 402 when too few are
    available. The same idempotency key returns the same hold. Keys are the organization's own (another
    organization's key of the same name is another key); keys starting with `run:` are kept for the
    platform's runs (422)."""
    if g.api_key is not None and g.api_key.instance_id != json.instance_id:
        raise instances.InstanceNotFound()  # a key holds credits for its own instance only
    hold = instances.authorize_for_instance(db.session, instance_id=json.instance_id, amount=json.amount,
                                            idempotency_key=json.idempotency_key, ttl_seconds=json.ttl_seconds,
                                            actor_label=actor_label())
    answer = serializers.hold_out(hold)  # before the commit, which would expire it and cost a reload
    db.session.commit()
    return answer, 201


@bp.post("/billing/settle")
@api_auth(*RUNTIME_KINDS)
@spec.validate(resp=responses(200, schemas.HoldOut, 400, 404, 409), tags=["billing"])
def settle(json: schemas.SettleIn):
    """Capture the credits used (at most the hold) and release the rest. Settling again with the same
    key returns the settled hold and captures nothing more."""
    hold = billing.settle(db.session, hold_id=json.hold_id, amount=json.amount, idempotency_key=json.idempotency_key,
                          organization_id=_caller_organization_id(), actor_label=actor_label())
    answer = serializers.hold_out(hold)
    db.session.commit()
    return answer


@bp.post("/billing/release")
@api_auth(*RUNTIME_KINDS)
@spec.validate(resp=responses(200, schemas.HoldOut, 400, 404, 409), tags=["billing"])
def release(json: schemas.ReleaseIn):
    """Give a hold's credits back without capturing anything (idempotent by hold)."""
    hold = billing.release(db.session, hold_id=json.hold_id, idempotency_key=json.idempotency_key,
                           organization_id=_caller_organization_id(), actor_label=actor_label())
    answer = serializers.hold_out(hold)
    db.session.commit()
    return answer
