"""Credit grants: lots of credits with an origin, added to a wallet and spent by settles.

Trial and promotional grants carry an expiry; purchased credits never expire. Settling draws
credits from grants earliest expiry first, purchased last. A hold may draw on a grant that was
valid when the hold was made, even if the grant expires before the settle (the credits were
reserved); credits of an expired grant are never available to a new hold (see `sweeps` for how an
expired grant's credits leave the wallet).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from app.models import CreditGrant, GrantOrigin, LedgerEntry, LedgerKind, Wallet, utcnow
from app.services.billing.common import (
    EXPIRING_ORIGINS, LEDGER_KEY_PREFIXES, MAX_INT, NON_EXPIRING_ORIGINS, RUN_KEY_PREFIX, _NO_SYNC, BillingError,
    LedgerOutOfStep, _aware, _expire_loaded_grants, _positive_int, _sync_wallet, _take_from_grant,
)

_DRAW_FIRST_GRANT = text("""
UPDATE credit_grant SET remaining = remaining - :credits
WHERE id = (SELECT id FROM credit_grant
            WHERE wallet_id = :wallet_id AND remaining > 0 AND (expires_at IS NULL OR expires_at > :made_at)
            ORDER BY expires_at ASC NULLS LAST, id LIMIT 1)
  AND remaining >= :credits
""").bindparams(bindparam("made_at", type_=CreditGrant.__table__.c.expires_at.type))


def grant_credits(
    session: Session,
    *,
    wallet: Wallet,
    amount: int,
    origin: str,
    reference: str | None = None,
    expires_at: datetime | None = None,
    instance_id: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Add a lot of credits to a wallet; with an idempotency key, a repeat in this wallet returns the first entry.

    Trial and promotional credits need an expiry in the future; purchased credits cannot have one.
    """
    amount = _positive_int(amount, "amount")
    now = now or utcnow()
    origin = str(origin)
    if origin not in {o.value for o in GrantOrigin}:
        raise BillingError("Unknown origin of credits.", field="origin", status=422)
    expires_at = _aware(expires_at)
    if origin in NON_EXPIRING_ORIGINS and expires_at is not None:
        raise BillingError("Purchased credits never expire.", field="expires_at", status=422)
    if origin in EXPIRING_ORIGINS and expires_at is None:
        raise BillingError("Trial and promotional credits need an expiry date.", field="expires_at", status=422)
    if expires_at is not None and expires_at <= now:
        raise BillingError("The expiry must be in the future.", field="expires_at", status=422)
    if idempotency_key:
        if idempotency_key.startswith((RUN_KEY_PREFIX, *LEDGER_KEY_PREFIXES)):
            raise BillingError("That key is kept for holds and runs; choose another key.",
                               field="idempotency_key", status=422)
        existing = _grant_entry_by_key(session, idempotency_key, wallet.id)
        if existing is not None:
            return existing
    added = session.execute(
        update(Wallet).where(Wallet.id == wallet.id, Wallet.balance <= MAX_INT - amount)
        .values(balance=Wallet.balance + amount)
        .returning(Wallet.balance, Wallet.held), execution_options=_NO_SYNC,
    ).first()
    if added is None:
        raise BillingError(f"A wallet holds at most {MAX_INT} credits.", field="amount", status=422)
    balance, held = added
    if idempotency_key:
        # a concurrent grant with this key committed while we waited for the wallet: undo ours
        existing = _grant_entry_by_key(session, idempotency_key, wallet.id)
        if existing is not None:
            balance, held = session.execute(
                update(Wallet).where(Wallet.id == wallet.id).values(balance=Wallet.balance - amount)
                .returning(Wallet.balance, Wallet.held), execution_options=_NO_SYNC,
            ).one()
            _sync_wallet(session, wallet.id, balance, held)
            return existing
    grant = CreditGrant(
        wallet_id=wallet.id, origin=origin, amount=amount, remaining=amount, expires_at=expires_at,
        instance_id=instance_id, reference=reference,
    )
    session.add(grant)
    session.flush()
    entry = LedgerEntry(
        wallet_id=wallet.id, kind=LedgerKind.GRANT.value, amount=amount, held_delta=0,
        balance_after=balance, grant_id=grant.id, instance_id=instance_id,
        reference=reference or origin, idempotency_key=idempotency_key,
    )
    session.add(entry)
    session.flush()
    _sync_wallet(session, wallet.id, balance, held)
    return entry


def _grant_entry_by_key(session: Session, key: str, wallet_id: int) -> LedgerEntry | None:
    """The wallet's entry with this key: another wallet's key of the same name is another key."""
    existing = session.scalars(
        select(LedgerEntry).where(LedgerEntry.idempotency_key == key, LedgerEntry.wallet_id == wallet_id),
        execution_options={"populate_existing": True},
    ).first()
    if existing is not None and existing.kind != LedgerKind.GRANT.value:
        raise BillingError("This idempotency key was already used for something else.",
                           field="idempotency_key", status=409)
    return existing


def _draw_from_grants(session: Session, *, wallet_id: int, credits: int, hold_made_at: datetime) -> None:
    """Take `credits` off the wallet's grants: those valid when the hold was made, earliest expiry first,
    purchased (no expiry) last. Runs while this transaction holds the wallet row."""
    hold_made_at = _aware(hold_made_at)
    # usually the first grant the hold may draw on covers it all: one statement
    drawn = session.execute(_DRAW_FIRST_GRANT, {"credits": credits, "wallet_id": wallet_id, "made_at": hold_made_at})
    if drawn.rowcount == 1:
        _expire_loaded_grants(session, wallet_id)
        return
    grants = session.execute(
        select(CreditGrant.id, CreditGrant.remaining, CreditGrant.expires_at)
        .where(CreditGrant.wallet_id == wallet_id, CreditGrant.remaining > 0)
        .order_by(CreditGrant.expires_at.asc().nulls_last(), CreditGrant.id)
    ).all()
    eligible = [g for g in grants if g.expires_at is None or _aware(g.expires_at) > hold_made_at]
    # grants that expired before the hold come last, only if the ledger were out of step
    ordered = eligible + [g for g in grants if g not in eligible]
    left = credits
    for grant_id, remaining, _ in ordered:
        if left == 0:
            break
        take = min(remaining, left)
        _take_from_grant(session, wallet_id=wallet_id, grant_id=grant_id, credits=take)
        left -= take
    if left:
        raise LedgerOutOfStep(wallet_id)
    _expire_loaded_grants(session, wallet_id)
