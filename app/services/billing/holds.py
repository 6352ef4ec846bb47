"""Holds: authorize reserves credits, settle captures what was used and gives back the rest, release
gives it all back. Each is idempotent by key; a hold is closed once (see the package's notes).

On PostgreSQL authorize and settle are one statement each (`pg_statements`); on SQLite the same
steps run here one by one.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import case, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.models import AuditEvent, Hold, HoldStatus, LedgerKind, User, Wallet, utcnow
from app.services.billing import pg_statements
from app.services.billing.common import (
    _ACTIVE, _H, _L, _NO_SYNC, _W, AUDIT_HOLD_AUTHORIZED, AUDIT_HOLD_RELEASED, AUDIT_HOLD_SETTLED,
    DEFAULT_TTL_SECONDS, MAX_INT, MAX_TTL_SECONDS, BillingError, HoldNotFound, InsufficientCredits, _adopt,
    _dialect, _idempotency_key, _int_in_range, _lock_wallet, _notify_if_crossed, _positive_int, _sync_wallet,
)
from app.services.billing.grants import _draw_from_grants
from app.services.billing.sweeps import _release_expired_holds
from app.services.billing.wallets import _expired_credits, wallet_balances


def authorize(
    session: Session,
    *,
    wallet: Wallet,
    amount: int,
    idempotency_key: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    instance_id: int | None = None,
    now: datetime | None = None,
    actor_label: str | None = None,
    actor: User | None = None,
) -> Hold:
    """Reserve `amount` credits for `ttl_seconds`: an active hold, or InsufficientCredits (402).

    Keys are the wallet's own: the same key in this wallet returns the same hold, whatever has
    happened to it since, and a key this wallet already used with another amount or instance is a
    conflict (409); the same key in another wallet is simply another key. Keys starting with
    RUN_KEY_PREFIX are the run gateway's (see `run_key`). A refusal leaves nothing behind.
    The caller has already checked that the wallet (and instance) belong to the caller. With an
    actor (a label, or a user), opening the hold is written to the audit log; a replay writes nothing.
    """
    amount = _positive_int(amount, "amount")
    key = _idempotency_key(idempotency_key)
    ttl_seconds = _int_in_range(ttl_seconds, "ttl_seconds", 1, MAX_TTL_SECONDS)
    now = now or utcnow()
    opening = {"wallet_id": wallet.id, "instance_id": instance_id, "amount": amount, "key": key,
               "expires_at": now + timedelta(seconds=ttl_seconds), "now": now,
               "auditor": _auditor(actor_label, actor)}
    result = _open_hold(session, **opening)
    if result is _SHORT:
        existing = _hold_by_key(session, wallet_id=wallet.id, key=key)
        if existing is not None:
            return _replayed(existing, wallet_id=wallet.id, amount=amount, instance_id=instance_id)
        # too few credits counting every active hold: release this wallet's expired ones and try once
        # more, holding the wallet (which another request may have changed while we waited for it)
        _lock_wallet(session, wallet.id)
        _release_expired_holds(session, wallet_id=wallet.id, now=now)
        result = _open_hold(session, **opening)
        if result is _SHORT:
            raise InsufficientCredits(available=wallet_balances(session, wallet=wallet, now=now).available,
                                      requested=amount)
    if wallet in session:
        set_committed_value(result, "wallet", wallet)
    return result


def authorize_for_instance(
    session: Session,
    *,
    instance_id: int,
    amount: int,
    idempotency_key: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    organization_id: int | None = None,
    now: datetime | None = None,
    actor_label: str | None = None,
    actor: User | None = None,
) -> Hold | None:
    """`authorize` on the wallet of the instance's organization, with the instance looked up in the
    same statement: the hot path of a runtime's hold (PostgreSQL only). With `organization_id`, an
    instance of another organization is not looked at.

    Returns the hold (new or replayed), or None when that one statement cannot tell what to answer:
    not PostgreSQL, no such instance, no wallet yet, or too few credits. Nothing is written then;
    the caller looks the instance up and calls `authorize`, which knows every rule for those cases.
    """
    if _dialect(session) != "postgresql":
        return None
    amount = _positive_int(amount, "amount")
    key = _idempotency_key(idempotency_key)
    ttl_seconds = _int_in_range(ttl_seconds, "ttl_seconds", 1, MAX_TTL_SECONDS)
    instance_id = _positive_int(instance_id, "instance_id")
    now = now or utcnow()
    result = _open_hold(session, wallet_id=None, instance_id=instance_id, organization_id=organization_id,
                        amount=amount, key=key, expires_at=now + timedelta(seconds=ttl_seconds), now=now,
                        auditor=_auditor(actor_label, actor))
    return None if result is _SHORT else result


_SHORT = "too few credits"


def _auditor(actor_label: str | None, actor: User | None) -> tuple[int | None, str] | None:
    """(user id, label) for the audit events of a state change, or None for no event (as audit.record)."""
    if actor_label is None and actor is None:
        return None
    return (actor.id if actor else None), (actor_label or actor.email)


def _open_hold(session: Session, *, wallet_id: int | None, instance_id: int | None, amount: int, key: str,
               expires_at: datetime, now: datetime, auditor: tuple[int | None, str] | None,
               organization_id: int | None = None):
    """Reserve on the wallet, insert the hold, append its entry (and its audit event): the new Hold, the
    replayed one when the key already has a hold (the reservation is given back), or _SHORT (nothing
    written). Without `wallet_id` (PostgreSQL only) the wallet is the instance's organization's.

    On PostgreSQL it is one statement (data-modifying CTEs), on SQLite three. The wallet goes
    first, so a concurrent request with the same key waits for the wallet and then finds the key.
    """
    reference = f"hold {key}"[:200]
    if _dialect(session) == "postgresql":
        statement = pg_statements.OPEN_HOLD[wallet_id is None, auditor is not None]
        row = session.execute(statement, {
            "wallet_id": wallet_id, "instance_id": instance_id, "organization_id": organization_id,
            "amount": amount, "key": key, "expires_at": expires_at, "now": now, "reference": reference,
            "actor_user_id": auditor[0] if auditor else None, "actor_label": auditor[1] if auditor else None,
        }).first()
        if row is None:
            return _SHORT
        wallet_id, balance, held = row.wallet__id, row.wallet__balance, row.wallet__held
        opened = row if row.id is not None else None
    else:
        # held += amount only if the wallet's unexpired credits not yet held cover it
        reserved = session.execute(
            update(_W)
            .where(_W.c.id == wallet_id, _W.c.balance - _W.c.held - _expired_credits(wallet_id, now) >= amount)
            .values(held=_W.c.held + amount)
            .returning(_W.c.balance, _W.c.held, _W.c.organization_id)
        ).first()
        if reserved is None:
            return _SHORT
        balance, held, organization_id = reserved
        opened = session.execute(
            sqlite.insert(_H).values(
                wallet_id=wallet_id, instance_id=instance_id, amount=amount, captured=0, status=_ACTIVE,
                idempotency_key=key, expires_at=expires_at, created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key", "wallet_id"]).returning(*_H.c)
        ).first()
        if opened is not None:
            session.execute(insert(_L).values(
                wallet_id=wallet_id, kind=LedgerKind.HOLD.value, amount=0, held_delta=amount, balance_after=balance,
                hold_id=opened.id, instance_id=instance_id, reference=reference, idempotency_key=f"hold:{opened.id}",
            ))
            if auditor is not None:
                _audit_hold(session, auditor, AUDIT_HOLD_AUTHORIZED, opened, organization_id)
    if opened is None:
        # a concurrent request with this key committed while we waited for the wallet: give ours back
        balance, held = session.execute(
            update(_W).where(_W.c.id == wallet_id).values(held=_W.c.held - amount).returning(_W.c.balance, _W.c.held)
        ).one()
        _sync_wallet(session, wallet_id, balance, held)
        return _replayed(_hold_by_key(session, wallet_id=wallet_id, key=key), wallet_id=wallet_id, amount=amount,
                         instance_id=instance_id)
    _sync_wallet(session, wallet_id, balance, held)
    return _adopt(session, Hold, opened)


def _audit_hold(session: Session, auditor: tuple[int | None, str], action: str, hold, organization_id: int) -> None:
    """The audit event of a hold's change, as the PostgreSQL statements write it in SQL."""
    session.execute(insert(AuditEvent.__table__).values(
        actor_user_id=auditor[0], actor_label=auditor[1], action=action, target_type="hold",
        target_id=str(hold.id), organization_id=organization_id,
        data_json=json.dumps({"instance_id": hold.instance_id, "amount": hold.amount, "captured": hold.captured},
                             sort_keys=True),
    ))


def _hold_by_key(session: Session, *, wallet_id: int, key: str) -> Hold | None:
    """The wallet's hold with this key (keys are unique per wallet, not across wallets)."""
    return session.scalars(
        select(Hold).where(Hold.idempotency_key == key, Hold.wallet_id == wallet_id),
        execution_options={"populate_existing": True},
    ).first()


def _replayed(hold: Hold, *, wallet_id: int, amount: int, instance_id: int | None) -> Hold:
    if hold.wallet_id != wallet_id or hold.amount != amount or hold.instance_id != instance_id:
        raise BillingError(
            "This idempotency key was already used for a different authorization.",
            field="idempotency_key", status=409,
        )
    return hold


def settle(
    session: Session,
    *,
    hold_id: int,
    amount: int,
    idempotency_key: str,
    organization_id: int | None = None,
    now: datetime | None = None,
    actor_label: str | None = None,
    actor: User | None = None,
) -> Hold:
    """Capture the credits used and release the rest of the hold, in one ledger entry.

    Captures min(amount, hold): usage above the hold is capped at what was authorized (the entry's
    reference records the usage asked for), because credits that were never reserved may already
    be spent elsewhere. Settling again with the same key returns the settled hold and captures
    nothing more; another key on a settled hold, or a settle of a released or expired hold, is a
    conflict (409), as is a key that settled another hold of this wallet (settle keys, too, are
    the wallet's own). With `organization_id`, a hold of another organization is not found (404).
    With an actor (a label, or a user), the settle is written to the audit log; a replay writes nothing.
    """
    hold_id = _positive_int(hold_id, "hold_id")
    amount = _int_in_range(amount, "amount", 0, MAX_INT)
    key = _idempotency_key(idempotency_key)
    now = now or utcnow()
    try:
        closed = _close_settled(session, hold_id=hold_id, amount=amount, key=key, organization_id=organization_id,
                                now=now, auditor=_auditor(actor_label, actor))
    except IntegrityError as exc:
        # two holds of one wallet settled at the same moment with one key: the second one loses. Its
        # transaction is spoiled; the caller rolls back on this error, as on any refusal.
        if "settle_key" not in str(exc.orig):
            raise
        raise BillingError("This idempotency key already settled another hold.", field="idempotency_key",
                           status=409) from None
    if closed is None:
        return _settle_refused(session, hold_id=hold_id, amount=amount, key=key,
                               organization_id=organization_id, now=now)
    hold, wallet = closed
    if hold.captured and not wallet.get("drawn"):  # SQLite, or the statement could not draw (see pg_statements)
        _draw_from_grants(session, wallet_id=hold.wallet_id, credits=hold.captured, hold_made_at=hold.created_at)
    if _notify_if_crossed(session, wallet["organization_id"], wallet["low_balance_threshold"],
                          before=wallet["balance"] + hold.captured, after=wallet["balance"]):
        session.flush()
    return hold


def _close_settled(session: Session, *, hold_id: int, amount: int, key: str, organization_id: int | None,
                   now: datetime, auditor: tuple[int | None, str] | None) -> tuple[Hold, dict] | None:
    """Mark the hold settled (if it is active, live, in the organization, and the key is unused
    elsewhere), move its wallet, append the capture entry (and the audit event): (hold, the wallet's
    new row as a dict), or None if nothing was done. One statement on PostgreSQL, three or four on
    SQLite."""
    capped = f" (usage {amount} capped at the hold)"
    if _dialect(session) == "postgresql":
        statement = pg_statements.CLOSE_SETTLED[organization_id is not None, auditor is not None]
        row = session.execute(statement, {
            "hold_id": hold_id, "amount": amount, "key": key, "now": now, "capped": capped,
            "organization_id": organization_id,
            "actor_user_id": auditor[0] if auditor else None, "actor_label": auditor[1] if auditor else None,
        }).first()
        if row is None:
            return None
        hold_row = row
        wallet_row = {c.name: row._mapping[f"wallet__{c.name}"] for c in _W.c}
        wallet_row["drawn"] = row.drawn
    else:
        other = _H.alias("other")
        hold_row = session.execute(
            update(_H)
            .where(
                _H.c.id == hold_id,
                _H.c.status == _ACTIVE,
                _H.c.expires_at > now,
                ~exists().where(other.c.settle_key == key, other.c.wallet_id == _H.c.wallet_id),
                *_in_organization(organization_id),
            )
            .values(status=HoldStatus.SETTLED.value, settle_key=key, closed_at=now,
                    captured=case((_H.c.amount < amount, _H.c.amount), else_=amount))
            .returning(*_H.c)
        ).first()
        if hold_row is None:
            return None
        wallet_row = session.execute(
            update(_W).where(_W.c.id == hold_row.wallet_id)
            .values(balance=_W.c.balance - hold_row.captured, held=_W.c.held - hold_row.amount)
            .returning(*_W.c)
        ).one()._asdict()
        session.execute(insert(_L).values(
            wallet_id=hold_row.wallet_id, kind=LedgerKind.CAPTURE.value, amount=-hold_row.captured,
            held_delta=-hold_row.amount, balance_after=wallet_row["balance"], hold_id=hold_row.id,
            instance_id=hold_row.instance_id, idempotency_key=f"close:{hold_row.id}",
            reference=f"settled {hold_row.captured} of {hold_row.amount}" + (capped if amount > hold_row.amount else ""),
        ))
        if auditor is not None:
            _audit_hold(session, auditor, AUDIT_HOLD_SETTLED, hold_row, wallet_row["organization_id"])
    hold = _adopt(session, Hold, hold_row)
    _sync_wallet(session, hold.wallet_id, wallet_row["balance"], wallet_row["held"])
    return hold, wallet_row


def _settle_refused(session, *, hold_id, amount, key, organization_id, now) -> Hold:
    hold = _get_hold(session, hold_id=hold_id, organization_id=organization_id)
    if hold.settle_key == key:
        if hold.captured != min(amount, hold.amount):
            raise BillingError("This idempotency key settled the hold with a different amount.",
                               field="idempotency_key", status=409)
        return hold
    if hold.status == HoldStatus.SETTLED.value:
        raise BillingError("The hold is already settled.", field="hold_id", status=409)
    if hold.status != _ACTIVE:
        raise BillingError(f"The hold was {hold.status}; its credits went back to the wallet.",
                           field="hold_id", status=409)
    if hold.expires_at <= now:
        raise BillingError("The hold expired; its credits went back to the wallet.", field="hold_id", status=409)
    raise BillingError("This idempotency key already settled another hold.", field="idempotency_key", status=409)


def release(
    session: Session,
    *,
    hold_id: int,
    idempotency_key: str | None = None,
    organization_id: int | None = None,
    now: datetime | None = None,
    actor_label: str | None = None,
    actor: User | None = None,
) -> Hold:
    """Give a hold's credits back without capturing anything.

    Releasing a released or expired hold returns it unchanged (releasing is idempotent by hold;
    the optional key is recorded on the entry); releasing a settled hold is a conflict (409).
    With an actor (a label, or a user), the release is written to the audit log; a replay writes nothing.
    """
    hold_id = _positive_int(hold_id, "hold_id")
    key = _idempotency_key(idempotency_key) if idempotency_key is not None else None
    now = now or utcnow()
    hold = session.scalars(
        update(Hold)
        .where(Hold.id == hold_id, Hold.status == _ACTIVE, *_in_organization(organization_id))
        .values(status=HoldStatus.RELEASED.value, closed_at=now)
        .returning(Hold),
        execution_options={**_NO_SYNC, "populate_existing": True},
    ).first()
    if hold is None:
        hold = _get_hold(session, hold_id=hold_id, organization_id=organization_id)
        if hold.status == HoldStatus.SETTLED.value:
            raise BillingError("The hold is already settled.", field="hold_id", status=409)
        return hold
    wallet = _adopt(session, Wallet, session.execute(
        update(_W).where(_W.c.id == hold.wallet_id).values(held=_W.c.held - hold.amount).returning(*_W.c)
    ).one())
    session.execute(insert(_L).values(
        wallet_id=hold.wallet_id, kind=LedgerKind.RELEASE.value, amount=0, held_delta=-hold.amount,
        balance_after=wallet.balance, hold_id=hold.id, instance_id=hold.instance_id,
        reference=f"released ({key})" if key else "released", idempotency_key=f"close:{hold.id}",
    ))
    auditor = _auditor(actor_label, actor)
    if auditor is not None:
        _audit_hold(session, auditor, AUDIT_HOLD_RELEASED, hold, wallet.organization_id)
    set_committed_value(hold, "wallet", wallet)
    return hold


def extend_hold(session: Session, *, hold_id: int, until: datetime, now: datetime | None = None) -> bool:
    """Keep an active hold until at least `until` (a queued run that starts late keeps its credits
    held while it runs). False when the hold has ended or its time ran out: it can no longer be
    settled, so whatever it was for must not go ahead. Flushes nothing else; the caller commits."""
    hold_id = _positive_int(hold_id, "hold_id")
    now = now or utcnow()
    extended = session.execute(
        update(Hold).where(Hold.id == hold_id, Hold.status == _ACTIVE, Hold.expires_at > now)
        .values(expires_at=case((Hold.expires_at < until, until), else_=Hold.expires_at)),
        execution_options=_NO_SYNC,
    ).rowcount
    return extended == 1


def get_hold(session: Session, *, hold_id: int, organization_id: int | None = None) -> Hold:
    """One hold, fresh from the database; with `organization_id`, another organization's hold is not found."""
    return _get_hold(session, hold_id=_positive_int(hold_id, "hold_id"), organization_id=organization_id)


def _get_hold(session: Session, *, hold_id: int, organization_id: int | None) -> Hold:
    hold = session.scalars(
        select(Hold).where(Hold.id == hold_id, *_in_organization(organization_id)),
        execution_options={"populate_existing": True},
    ).first()
    if hold is None:
        raise HoldNotFound()
    return hold


def _in_organization(organization_id: int | None) -> list:
    if organization_id is None:
        return []
    return [Hold.wallet_id.in_(select(Wallet.id).where(Wallet.organization_id == organization_id))]
