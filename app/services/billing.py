"""Wallets, credit grants, holds and the append-only credit ledger.

The ledger is the truth: a wallet's `balance` is the sum of its entries' `amount` and its `held`
the sum of their `held_delta`; the wallet row caches both folds and `balance` also equals the sum
of its grants' `remaining`. Every movement is written as one entry in the caller's transaction:

    kind     amount             held_delta       when
    grant    +credits           0                credits arrive (a CreditGrant)
    hold     0                  +hold            `authorize` reserves credits
    capture  -captured          -hold            `settle`: captures at most the hold, releases the rest
    release  0                  -hold            `release`, or a hold past its TTL is expired
    expiry   -unused credits    0                a trial or promotional grant passes its date

A hold has exactly one opening and at most one closing entry; the closing entry's idempotency
key is `close:<hold id>`, so the unique index refuses a second one whatever the code does.

Concurrency. No read-modify-write: each wallet change is one conditional
`UPDATE wallet ... WHERE <enough credits> RETURNING balance, held`. On PostgreSQL that UPDATE
takes the row lock and re-checks its condition against the newest row after waiting; on SQLite
the first write of a transaction takes the database write lock, so writers queue (keep the
caller's transaction short so they do not hit the busy timeout). Holds change state with
`UPDATE hold ... WHERE status = 'active' RETURNING`, so a settle and a release of one hold
cannot both win. Locks are taken in one order, hold before wallet; the paths that start from a
wallet (the lazy release inside `authorize`, `expire_holds`) skip holds someone else has locked,
and wallets are locked FOR NO KEY UPDATE, which does not wait for the key-share locks that
inserts referencing the wallet take. The schema CHECKs (balance >= 0, held >= 0,
held <= balance) are the last line of defence.

Round trips. On PostgreSQL, authorize (reserve, insert the hold, append the entry, and the audit
event when the caller names an actor) and settle (close the hold, move the wallet, append the entry,
audit, and usually the draw from the first grant) are each one statement of data-modifying CTEs;
`authorize_for_instance` also finds the wallet from the instance in that statement. SQLite runs the
same steps one by one. Fewer round trips also mean the wallet row is locked for less time.
Authorize reserves on the wallet before it inserts the hold: a concurrent request with the same
key waits for the wallet, then finds the key taken and gives its reservation back.

Expired holds. A hold past its TTL never reduces the credits a caller can use: `wallet_balances`
leaves it out of `held`, and `authorize`, when the fast path finds too few credits, locks the
wallet, releases that wallet's expired holds and tries once more (so the common path pays
nothing for it). `expire_holds` (the `flask --app app expire-holds` command) releases them all.

Expiring grants. Trial and promotional grants carry an expiry; purchased credits never expire.
Settling draws credits from grants earliest expiry first, purchased last. A hold may draw on a
grant that was valid when the hold was made, even if the grant expires before the settle (the
credits were reserved); credits of an expired grant are never available to a new hold. So that
a sweep cannot take credits a hold reserved, `expire_grants` removes only the part of an expired
grant that no earlier hold can still draw on; the rest goes at a later sweep.

Callers: services flush and never commit. After any BillingError the caller rolls back.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, case, column, exists, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.models import (
    AuditEvent, CreditGrant, GrantOrigin, Hold, HoldStatus, LedgerEntry, LedgerKind, Notification, User, Wallet,
    utcnow,
)
from app.services import audit
from app.services.errors import ServiceError

DEFAULT_TTL_SECONDS = 300
MAX_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 128
MAX_PAGE_SIZE = 200
MAX_INT = 2**31 - 1  # credits, ids and balances are 32-bit integer columns
# plan credits may or may not have an end; trial and promotional credits always do; purchased never
EXPIRING_ORIGINS = {GrantOrigin.TRIAL.value, GrantOrigin.PROMO.value}
NON_EXPIRING_ORIGINS = {GrantOrigin.PURCHASE.value}
NOTIFICATION_LOW_BALANCE = "low_balance"
AUDIT_HOLD_AUTHORIZED = "billing.hold_authorized"
AUDIT_HOLD_SETTLED = "billing.hold_settled"
AUDIT_HOLD_RELEASED = "billing.hold_released"

_ACTIVE = HoldStatus.ACTIVE.value
_NO_SYNC = {"synchronize_session": False}
# the hot paths use the tables (Core statements, one round trip each) and adopt the rows they return
_W, _H, _L, _G = Wallet.__table__, Hold.__table__, LedgerEntry.__table__, CreditGrant.__table__


class BillingError(ServiceError):
    """A billing rule was broken; the message is safe to show. `status` is the HTTP status to answer with."""


class InsufficientCredits(BillingError):
    """Fewer credits are available than the authorization asks for (402)."""

    def __init__(self, *, available: int, requested: int) -> None:
        super().__init__(
            f"Not enough credits: {available} available, {requested} requested.", field="amount", status=402,
        )
        self.available = available
        self.requested = requested


class HoldNotFound(BillingError):
    def __init__(self, message: str = "Hold not found.") -> None:
        super().__init__(message, field="hold_id", status=404)


class LedgerOutOfStep(RuntimeError):
    """A wallet's grants no longer add up to its balance: a broken invariant, not a refusal. It is not a
    BillingError on purpose, so no caller mistakes it for a rule and commits around it."""

    def __init__(self, wallet_id: int) -> None:
        super().__init__(f"wallet {wallet_id}: its grants are out of step with its balance; run verify-ledger")


@dataclass(frozen=True)
class WalletBalances:
    """What a wallet can spend now: `held` counts live holds only, `available` is never negative."""

    balance: int
    held: int
    available: int


# --- wallets and grants ------------------------------------------------------------------------


def wallet_for_organization(session: Session, organization_id: int) -> Wallet:
    """The organization's wallet, created empty on first use (safe when two requests race to create it)."""
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == organization_id))
    if wallet is None:
        session.execute(
            _insert(session, Wallet).values(organization_id=organization_id, balance=0, held=0)
            .on_conflict_do_nothing(index_elements=[Wallet.organization_id])
        )
        wallet = session.scalars(
            select(Wallet).where(Wallet.organization_id == organization_id),
            execution_options={"populate_existing": True},
        ).one()
    return wallet


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
    """Add a lot of credits to a wallet; with an idempotency key, a repeat returns the first entry.

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
    existing = session.scalars(
        select(LedgerEntry).where(LedgerEntry.idempotency_key == key),
        execution_options={"populate_existing": True},
    ).first()
    if existing is not None and (existing.wallet_id != wallet_id or existing.kind != LedgerKind.GRANT.value):
        raise BillingError("This idempotency key was already used for something else.",
                           field="idempotency_key", status=409)
    return existing


def wallet_balances(session: Session, *, wallet: Wallet, now: datetime | None = None) -> WalletBalances:
    """Balance, live holds and available credits, read fresh from the database.

    `balance` is the stored fold of the ledger. Holds past their TTL are not in `held` even before
    `expire_holds` runs. Credits of grants past their expiry are not available to new holds.
    """
    now = now or utcnow()
    expired_holds = (
        select(func.coalesce(func.sum(Hold.amount), 0))
        .where(Hold.wallet_id == wallet.id, Hold.status == _ACTIVE, Hold.expires_at <= now)
        .scalar_subquery()
    )
    balance, held, stale_held, expired_credits = session.execute(
        select(Wallet.balance, Wallet.held, expired_holds, _expired_credits(wallet.id, now))
        .where(Wallet.id == wallet.id)
    ).one()
    live_held = held - stale_held
    return WalletBalances(balance=balance, held=live_held, available=max(0, balance - live_held - expired_credits))


def _expired_credits(wallet_id: int, now: datetime):
    """Credits still on grants past their expiry (not yet swept, or reserved by older holds)."""
    return (
        select(func.coalesce(func.sum(CreditGrant.remaining), 0))
        .where(CreditGrant.wallet_id == wallet_id, CreditGrant.expires_at <= now)
        .scalar_subquery()
    )


def set_low_balance_threshold(
    session: Session, *, wallet: Wallet, threshold: int | None, actor: User | None = None,
) -> Wallet:
    """Notify the organization when its balance falls below `threshold` (None switches it off).

    Only a fall from at-or-above to below the threshold notifies, so each crossing notifies once.
    """
    if threshold is not None:
        threshold = _positive_int(threshold, "threshold")
    session.execute(
        update(Wallet).where(Wallet.id == wallet.id).values(low_balance_threshold=threshold),
        execution_options=_NO_SYNC,
    )
    set_committed_value(wallet, "low_balance_threshold", threshold)
    audit.record(
        session, action="wallet.low_balance_threshold_set", target_type="wallet", target_id=wallet.id,
        organization_id=wallet.organization_id, actor=actor, data={"threshold": threshold},
    )
    session.flush()
    return wallet


# --- holds -------------------------------------------------------------------------------------


# PostgreSQL: the two hot statements, written out (prebuilt text is compiled once and cached; the
# dialect's INSERT ... ON CONFLICT construct is not cacheable). They do exactly what the SQLite
# branches below do step by step. With an actor, the audit event goes into the same statement, so a
# hold costs the route one round trip before its COMMIT and the wallet row is held only that long.
_HOLD_AUDIT_DATA = """concat('{{"amount": ', {h}.amount, ', "captured": ', {h}.captured, ', "instance_id": ',
                            coalesce(CAST({h}.instance_id AS varchar), 'null'), '}}')"""  # = json.dumps(sort_keys)
_AUDIT_CTE = """, event AS (
    INSERT INTO audit_event (actor_user_id, actor_label, action, target_type, target_id, organization_id, data_json)
    SELECT CAST(:actor_user_id AS integer), CAST(:actor_label AS varchar), '{action}', 'hold', CAST(h.id AS varchar),
           w.organization_id, {data}
    FROM h JOIN w ON w.id = h.wallet_id
)"""
_OPEN_HOLD_SQL = f"""
WITH w AS (
    UPDATE wallet SET held = held + :amount
    WHERE {{wallet}}
      AND balance - held - (SELECT coalesce(sum(remaining), 0) FROM credit_grant
                            WHERE credit_grant.wallet_id = wallet.id AND expires_at <= :now) >= :amount
    RETURNING id, organization_id, balance, held
), h AS (
    INSERT INTO hold (wallet_id, instance_id, amount, captured, status, idempotency_key, expires_at, created_at)
    SELECT w.id, CAST(:instance_id AS integer), CAST(:amount AS integer), 0,
           '{HoldStatus.ACTIVE.value}', CAST(:key AS varchar), CAST(:expires_at AS timestamptz),
           CAST(:now AS timestamptz)
    FROM w
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING *
), entry AS (
    INSERT INTO ledger_entry (wallet_id, kind, amount, held_delta, balance_after, hold_id, instance_id,
                              reference, idempotency_key)
    SELECT w.id, '{LedgerKind.HOLD.value}', 0, CAST(:amount AS integer), w.balance, h.id,
           CAST(:instance_id AS integer), CAST(:reference AS varchar), 'hold:' || h.id
    FROM w JOIN h ON true
){{audit}}
SELECT w.id AS wallet__id, w.balance AS wallet__balance, w.held AS wallet__held, {{hold_columns}}
FROM w LEFT JOIN h ON true
"""
# the wallet by its id, or the wallet of the instance's organization (the instance lookup rides along)
_BY_WALLET = "id = :wallet_id"
_BY_INSTANCE = """organization_id = (SELECT organization_id FROM instance
                         WHERE id = :instance_id
                           AND (CAST(:organization_id AS integer) IS NULL OR organization_id = :organization_id))"""
# Settle draws the captured credits from the first grant in the same statement when it can prove that
# the grants it reads are the current ones. The statement reads as of its start but may have waited for
# the wallet row meanwhile (a hot wallet: always). `fresh` locks the grants with credits left, after the
# wallet is ours, which yields their newest versions; every grant change holds the wallet row, so the
# wallet's balance before this settle equals the credits left on all its grants, and only if that equals
# the sum over `fresh` is there no grant with credits left that this statement cannot see (one
# committed while it waited). Otherwise `drawn` is empty and `_draw_from_grants` runs as a statement
# of its own, with a newer view.
_CLOSE_SETTLED_SQL = f"""
WITH h AS (
    UPDATE hold SET status = '{HoldStatus.SETTLED.value}', settle_key = :key, closed_at = :now,
                    captured = LEAST(amount, :amount)
    WHERE id = :hold_id AND status = '{HoldStatus.ACTIVE.value}' AND expires_at > :now
      AND NOT EXISTS (SELECT 1 FROM hold AS other WHERE other.settle_key = :key)
      {{organization}}
    RETURNING *
), w AS (
    UPDATE wallet SET balance = wallet.balance - h.captured, held = wallet.held - h.amount
    FROM h WHERE wallet.id = h.wallet_id
    RETURNING wallet.*
), entry AS (
    INSERT INTO ledger_entry (wallet_id, kind, amount, held_delta, balance_after, hold_id, instance_id,
                              reference, idempotency_key)
    SELECT h.wallet_id, '{LedgerKind.CAPTURE.value}', -h.captured, -h.amount, w.balance, h.id, h.instance_id,
           concat('settled ', h.captured, ' of ', h.amount,
                  CASE WHEN h.amount < :amount THEN CAST(:capped AS varchar) ELSE '' END),
           'close:' || h.id
    FROM h JOIN w ON w.id = h.wallet_id
), fresh AS (
    SELECT credit_grant.id, credit_grant.remaining, credit_grant.expires_at
    FROM credit_grant JOIN w ON credit_grant.wallet_id = w.id
    WHERE credit_grant.remaining > 0
    FOR NO KEY UPDATE OF credit_grant
), drawn AS (
    UPDATE credit_grant SET remaining = credit_grant.remaining - h.captured
    FROM h JOIN w ON w.id = h.wallet_id
    WHERE h.captured > 0 AND credit_grant.remaining >= h.captured
      AND credit_grant.id = (SELECT fresh.id FROM fresh
                             WHERE fresh.expires_at IS NULL OR fresh.expires_at > h.created_at
                             ORDER BY fresh.expires_at ASC NULLS LAST, fresh.id LIMIT 1)
      AND w.balance + h.captured = (SELECT sum(fresh.remaining) FROM fresh)
    RETURNING credit_grant.id
){{audit}}
SELECT {{hold_columns}}, {{wallet_columns}}, EXISTS (SELECT 1 FROM drawn) AS drawn FROM h JOIN w ON w.id = h.wallet_id
"""
_WALLET_COLUMNS = ", ".join(f"w.{c.name} AS wallet__{c.name}" for c in Wallet.__table__.c)
_HOLD_COLUMNS = ", ".join(f"h.{c.name}" for c in Hold.__table__.c)


def _returning(sql: str, *names: str):
    """The statement with its result columns named in order, so SQLAlchemy caches how to read its rows
    (for bare text it matches the columns by name on every execution)."""
    return text(sql).columns(*(column(name) for name in names))


def _audit_cte(action: str) -> str:
    return _AUDIT_CTE.format(action=action, data=_HOLD_AUDIT_DATA.format(h="h"))


# (located by instance, audited) -> statement
_OPEN_HOLD_PG = {
    (by_instance, audited): _returning(_OPEN_HOLD_SQL.format(
        wallet=_BY_INSTANCE if by_instance else _BY_WALLET, hold_columns=_HOLD_COLUMNS,
        audit=_audit_cte(AUDIT_HOLD_AUTHORIZED) if audited else "",
    ), "wallet__id", "wallet__balance", "wallet__held", *(c.name for c in Hold.__table__.c))
    for by_instance in (False, True) for audited in (False, True)
}
# (scoped to an organization, audited) -> statement
_CLOSE_SETTLED_PG = {
    (scoped, audited): _returning(_CLOSE_SETTLED_SQL.format(
        organization="AND wallet_id IN (SELECT id FROM wallet WHERE organization_id = :organization_id)"
        if scoped else "",
        hold_columns=_HOLD_COLUMNS, wallet_columns=_WALLET_COLUMNS,
        audit=_audit_cte(AUDIT_HOLD_SETTLED) if audited else "",
    ), *(c.name for c in Hold.__table__.c), *(f"wallet__{c.name}" for c in Wallet.__table__.c), "drawn")
    for scoped in (False, True) for audited in (False, True)
}
_DRAW_FIRST_GRANT = text("""
UPDATE credit_grant SET remaining = remaining - :credits
WHERE id = (SELECT id FROM credit_grant
            WHERE wallet_id = :wallet_id AND remaining > 0 AND (expires_at IS NULL OR expires_at > :made_at)
            ORDER BY expires_at ASC NULLS LAST, id LIMIT 1)
  AND remaining >= :credits
""").bindparams(bindparam("made_at", type_=CreditGrant.__table__.c.expires_at.type))


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

    The same key returns the same hold, whatever has happened to it since; a key already used
    with another wallet, amount or instance is a conflict (409). A refusal leaves nothing behind.
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
        existing = _hold_by_key(session, key)
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
        statement = _OPEN_HOLD_PG[wallet_id is None, auditor is not None]
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
            .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(*_H.c)
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
        return _replayed(_hold_by_key(session, key), wallet_id=wallet_id, amount=amount, instance_id=instance_id)
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


def _hold_by_key(session: Session, key: str) -> Hold | None:
    return session.scalars(
        select(Hold).where(Hold.idempotency_key == key), execution_options={"populate_existing": True},
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
    conflict (409). With `organization_id`, a hold of another organization is not found (404).
    With an actor (a label, or a user), the settle is written to the audit log; a replay writes nothing.
    """
    hold_id = _positive_int(hold_id, "hold_id")
    amount = _int_in_range(amount, "amount", 0, MAX_INT)
    key = _idempotency_key(idempotency_key)
    now = now or utcnow()
    closed = _close_settled(session, hold_id=hold_id, amount=amount, key=key, organization_id=organization_id,
                            now=now, auditor=_auditor(actor_label, actor))
    if closed is None:
        return _settle_refused(session, hold_id=hold_id, amount=amount, key=key,
                               organization_id=organization_id, now=now)
    hold, wallet = closed
    if hold.captured and not wallet.get("drawn"):  # SQLite, or the statement could not draw (see above)
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
        statement = _CLOSE_SETTLED_PG[organization_id is not None, auditor is not None]
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
                ~exists().where(other.c.settle_key == key),
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


def expire_holds(session: Session, *, now: datetime | None = None) -> int:
    """Release every active hold past its TTL (status `expired`); returns how many. Safe to run at any time."""
    now = now or utcnow()
    rows = session.execute(
        select(Hold.id, Hold.wallet_id)
        .where(Hold.status == _ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.wallet_id, Hold.id)
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    by_wallet: dict[int, list[int]] = defaultdict(list)
    for hold_id, wallet_id in rows:
        by_wallet[wallet_id].append(hold_id)
    count = 0
    for wallet_id in sorted(by_wallet):  # one wallet order for every sweep: no deadlock between two sweeps
        count += _expire_hold_ids(session, wallet_id=wallet_id, hold_ids=by_wallet[wallet_id], now=now)
    return count


def _release_expired_holds(session: Session, *, wallet_id: int, now: datetime) -> int:
    hold_ids = session.scalars(
        select(Hold.id)
        .where(Hold.wallet_id == wallet_id, Hold.status == _ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.id)
        .with_for_update(skip_locked=True, key_share=True)  # a hold being settled or released now is theirs
    ).all()
    return _expire_hold_ids(session, wallet_id=wallet_id, hold_ids=list(hold_ids), now=now) if hold_ids else 0


def _expire_hold_ids(session: Session, *, wallet_id: int, hold_ids: list[int], now: datetime) -> int:
    expired = session.execute(
        update(Hold)
        .where(Hold.id.in_(hold_ids), Hold.status == _ACTIVE, Hold.expires_at <= now)
        .values(status=HoldStatus.EXPIRED.value, closed_at=now)
        .returning(Hold.id, Hold.amount, Hold.instance_id),
        execution_options=_NO_SYNC,
    ).all()
    if not expired:
        return 0
    total = sum(amount for _, amount, _ in expired)
    balance, held = session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(held=Wallet.held - total)
        .returning(Wallet.balance, Wallet.held), execution_options=_NO_SYNC,
    ).one()
    for hold_id, amount, instance_id in sorted(expired):
        session.add(LedgerEntry(
            wallet_id=wallet_id, kind=LedgerKind.RELEASE.value, amount=0, held_delta=-amount,
            balance_after=balance, hold_id=hold_id, instance_id=instance_id, reference="hold expired",
            idempotency_key=f"close:{hold_id}",
        ))
    session.flush()
    _expire_loaded_holds(session, [hold_id for hold_id, _, _ in expired])
    _sync_wallet(session, wallet_id, balance, held)
    return len(expired)


# --- grants: spending and expiry ---------------------------------------------------------------


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
        taken = session.execute(
            update(CreditGrant).where(CreditGrant.id == grant_id, CreditGrant.remaining >= take)
            .values(remaining=CreditGrant.remaining - take), execution_options=_NO_SYNC,
        ).rowcount
        if taken != 1:
            raise LedgerOutOfStep(wallet_id)
        left -= take
    if left:
        raise LedgerOutOfStep(wallet_id)
    _expire_loaded_grants(session, wallet_id)


def expire_grants(session: Session, *, now: datetime | None = None) -> int:
    """Remove the unused credits of trial and promotional grants past their expiry with `expiry`
    entries; returns the number of entries written. Safe to run at any time."""
    now = now or utcnow()
    wallet_ids = session.scalars(
        select(CreditGrant.wallet_id)
        .where(CreditGrant.expires_at <= now, CreditGrant.remaining > 0)
        .distinct().order_by(CreditGrant.wallet_id)
    ).all()
    return sum(_expire_wallet_grants(session, wallet_id=wallet_id, now=now) for wallet_id in wallet_ids)


def _expire_wallet_grants(session: Session, *, wallet_id: int, now: datetime) -> int:
    balance, held = _lock_wallet(session, wallet_id)
    expired = session.execute(
        select(CreditGrant.id, CreditGrant.remaining, CreditGrant.expires_at, CreditGrant.origin,
               CreditGrant.instance_id)
        .where(CreditGrant.wallet_id == wallet_id, CreditGrant.expires_at <= now, CreditGrant.remaining > 0)
        .order_by(CreditGrant.expires_at, CreditGrant.id)
    ).all()
    holds = session.execute(
        select(Hold.amount, Hold.created_at).where(Hold.wallet_id == wallet_id, Hold.status == _ACTIVE)
    ).all()
    removable = balance - held  # never take credits that back a hold: held <= balance stays true
    reserved = 0
    plan: list[tuple] = []
    for grant_id, remaining, expires_at, origin, instance_id in expired:
        expires_at = _aware(expires_at)
        # what holds made before this grant expired may still draw from it, after earlier grants
        may_draw = sum(amount for amount, made_at in holds if _aware(made_at) < expires_at)
        kept = min(remaining, max(0, may_draw - reserved))
        reserved += kept
        take = min(remaining - kept, removable)
        if take > 0:
            removable -= take
            plan.append((grant_id, take, origin, instance_id))
    if not plan:
        return 0
    total = sum(take for _, take, _, _ in plan)
    new_balance, new_held, threshold, org_id = session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(balance=Wallet.balance - total)
        .returning(Wallet.balance, Wallet.held, Wallet.low_balance_threshold, Wallet.organization_id),
        execution_options=_NO_SYNC,
    ).one()
    running = new_balance + total
    for grant_id, take, origin, instance_id in plan:
        taken = session.execute(
            update(CreditGrant).where(CreditGrant.id == grant_id, CreditGrant.remaining >= take)
            .values(remaining=CreditGrant.remaining - take), execution_options=_NO_SYNC,
        ).rowcount
        if taken != 1:
            raise LedgerOutOfStep(wallet_id)
        running -= take
        session.add(LedgerEntry(
            wallet_id=wallet_id, kind=LedgerKind.EXPIRY.value, amount=-take, held_delta=0, balance_after=running,
            grant_id=grant_id, instance_id=instance_id, reference=f"{origin} credits expired",
        ))
    _notify_if_crossed(session, org_id, threshold, before=new_balance + total, after=new_balance)
    session.flush()
    _expire_loaded_grants(session, wallet_id)
    _sync_wallet(session, wallet_id, new_balance, new_held)
    return len(plan)


# --- reading the ledger ------------------------------------------------------------------------


def ledger_page(
    session: Session, *, wallet: Wallet, cursor: int | None = None, limit: int = 50,
) -> tuple[list[LedgerEntry], int | None]:
    """Entries newest first, `limit` at a time; pass the returned cursor for the next (older) page."""
    limit = _int_in_range(limit, "limit", 1, MAX_PAGE_SIZE)
    query = select(LedgerEntry).where(LedgerEntry.wallet_id == wallet.id)
    if cursor is not None:
        query = query.where(LedgerEntry.id < _positive_int(cursor, "cursor"))
    entries = list(session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit + 1)))
    if len(entries) > limit:
        return entries[:limit], entries[limit - 1].id
    return entries, None


def verify_ledger(session: Session, *, max_per_check: int = 20) -> list[str]:
    """Every way the stored wallets disagree with their ledgers, grants and holds; empty means all agree."""
    problems: list[str] = []

    def report(rows, describe) -> None:
        rows = list(rows)
        problems.extend(describe(*row) for row in rows[:max_per_check])
        if len(rows) > max_per_check:
            problems.append(f"... and {len(rows) - max_per_check} more like the last one")

    folds = (
        select(LedgerEntry.wallet_id.label("wallet_id"), func.sum(LedgerEntry.amount).label("balance"),
               func.sum(LedgerEntry.held_delta).label("held"))
        .group_by(LedgerEntry.wallet_id).subquery()
    )
    report(session.execute(
        select(Wallet.id, Wallet.balance, Wallet.held, func.coalesce(folds.c.balance, 0),
               func.coalesce(folds.c.held, 0))
        .outerjoin(folds, folds.c.wallet_id == Wallet.id)
        .where((Wallet.balance != func.coalesce(folds.c.balance, 0)) | (Wallet.held != func.coalesce(folds.c.held, 0)))
        .order_by(Wallet.id)
    ), lambda w, b, h, lb, lh: f"wallet {w}: stored balance {b} held {h}, ledger says balance {lb} held {lh}")

    report(session.execute(
        select(Wallet.id, Wallet.balance, Wallet.held)
        .where((Wallet.balance < 0) | (Wallet.held < 0) | (Wallet.held > Wallet.balance)).order_by(Wallet.id)
    ), lambda w, b, h: f"wallet {w}: balance {b} and held {h} break 0 <= held <= balance")

    grants = (
        select(CreditGrant.wallet_id.label("wallet_id"), func.sum(CreditGrant.remaining).label("remaining"))
        .group_by(CreditGrant.wallet_id).subquery()
    )
    report(session.execute(
        select(Wallet.id, Wallet.balance, func.coalesce(grants.c.remaining, 0))
        .outerjoin(grants, grants.c.wallet_id == Wallet.id)
        .where(Wallet.balance != func.coalesce(grants.c.remaining, 0)).order_by(Wallet.id)
    ), lambda w, b, r: f"wallet {w}: balance {b} but its grants have {r} credits remaining")

    report(session.execute(
        select(CreditGrant.id, CreditGrant.remaining, CreditGrant.amount)
        .where((CreditGrant.remaining < 0) | (CreditGrant.remaining > CreditGrant.amount)).order_by(CreditGrant.id)
    ), lambda g, r, a: f"grant {g}: remaining {r} outside 0..{a}")

    active = (
        select(Hold.wallet_id.label("wallet_id"), func.sum(Hold.amount).label("held"))
        .where(Hold.status == _ACTIVE).group_by(Hold.wallet_id).subquery()
    )
    report(session.execute(
        select(Wallet.id, Wallet.held, func.coalesce(active.c.held, 0))
        .outerjoin(active, active.c.wallet_id == Wallet.id)
        .where(Wallet.held != func.coalesce(active.c.held, 0)).order_by(Wallet.id)
    ), lambda w, h, a: f"wallet {w}: held {h} but its active holds total {a}")

    per_hold = (
        select(LedgerEntry.hold_id.label("hold_id"), func.sum(LedgerEntry.amount).label("amount"),
               func.sum(LedgerEntry.held_delta).label("held"), func.count().label("entries"))
        .where(LedgerEntry.hold_id.is_not(None)).group_by(LedgerEntry.hold_id).subquery()
    )
    expected_held = case((Hold.status == _ACTIVE, Hold.amount), else_=0)
    expected_entries = case((Hold.status == _ACTIVE, 1), else_=2)
    report(session.execute(
        select(Hold.id, Hold.status, Hold.amount, Hold.captured, func.coalesce(per_hold.c.amount, 0),
               func.coalesce(per_hold.c.held, 0), func.coalesce(per_hold.c.entries, 0))
        .outerjoin(per_hold, per_hold.c.hold_id == Hold.id)
        .where(
            (func.coalesce(per_hold.c.amount, 0) != -Hold.captured)
            | (func.coalesce(per_hold.c.held, 0) != expected_held)
            | (func.coalesce(per_hold.c.entries, 0) != expected_entries)
        ).order_by(Hold.id)
    ), lambda h, s, a, c, la, lh, n: (
        f"hold {h} ({s}, {a} held, {c} captured): its {n} ledger entries move balance {la} and held {lh}"
    ))

    running = (
        select(LedgerEntry.id.label("id"), LedgerEntry.wallet_id.label("wallet_id"),
               LedgerEntry.balance_after.label("balance_after"),
               func.sum(LedgerEntry.amount).over(partition_by=LedgerEntry.wallet_id, order_by=LedgerEntry.id)
               .label("running"))
        .subquery()
    )
    report(session.execute(
        select(running.c.id, running.c.wallet_id, running.c.balance_after, running.c.running)
        .where((running.c.balance_after != running.c.running) | (running.c.balance_after < 0))
        .order_by(running.c.id)
    ), lambda e, w, after, total: f"ledger entry {e} of wallet {w}: balance_after {after}, sum so far {total}")
    return problems


# --- helpers -----------------------------------------------------------------------------------


def _notify_if_crossed(session: Session, organization_id: int, threshold: int | None, *, before: int,
                       after: int) -> bool:
    if threshold is not None and before >= threshold > after:
        session.add(Notification(
            organization_id=organization_id, kind=NOTIFICATION_LOW_BALANCE,
            message=f"Your credit balance fell below {threshold}: {after} credits left.",
        ))
        return True
    return False


def _lock_wallet(session: Session, wallet_id: int) -> tuple[int, int]:
    """Hold the wallet row until the transaction ends; (balance, held) as of now."""
    if session.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE, the lock an UPDATE of the row takes: FOR UPDATE would also wait for the
        # key-share locks that inserts of holds and entries (foreign keys) take, and deadlock with them
        return tuple(session.execute(
            select(Wallet.balance, Wallet.held).where(Wallet.id == wallet_id).with_for_update(key_share=True)
        ).one())
    # SQLite has no row locks: a write takes the database write lock for the rest of the transaction
    return tuple(session.execute(
        update(Wallet).where(Wallet.id == wallet_id).values(balance=Wallet.balance)
        .returning(Wallet.balance, Wallet.held), execution_options=_NO_SYNC,
    ).one())


def _sync_wallet(session: Session, wallet_id: int, balance: int, held: int) -> None:
    """Put the values the UPDATE returned on a loaded Wallet, so callers see them without a reload."""
    wallet = session.identity_map.get(identity_key(Wallet, wallet_id))
    if wallet is not None:
        set_committed_value(wallet, "balance", balance)
        set_committed_value(wallet, "held", held)


def _expire_loaded_grants(session: Session, wallet_id: int) -> None:
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CreditGrant) and obj.wallet_id == wallet_id:
            session.expire(obj, ["remaining"])


def _expire_loaded_holds(session: Session, hold_ids: list[int]) -> None:
    for hold_id in hold_ids:
        hold = session.identity_map.get(identity_key(Hold, hold_id))
        if hold is not None:
            session.expire(hold)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _adopt(session: Session, model, row):
    """The persistent object for a row a statement returned: the loaded one brought up to date, or a new
    one put in the session as if loaded (no SQL), so that relationships and callers find it."""
    values = row if isinstance(row, dict) else row._mapping
    values = {column.key: values[column.key] for column in model.__table__.c}
    loaded = session.identity_map.get(identity_key(model, values["id"]))
    if loaded is not None:
        for name, value in values.items():
            set_committed_value(loaded, name, value)
        return loaded
    obj = model(**values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def _insert(session: Session, model):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"Billing supports PostgreSQL and SQLite, not {dialect}.")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _positive_int(value, field: str) -> int:
    return _int_in_range(value, field, 1, MAX_INT)


def _int_in_range(value, field: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BillingError("Give a whole number.", field=field, status=422)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BillingError(f"Give a number {bounds}.", field=field, status=422)
    return value


def _idempotency_key(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BillingError("Give an idempotency key.", field="idempotency_key", status=422)
    if len(value) > MAX_KEY_LENGTH:
        raise BillingError(f"Use at most {MAX_KEY_LENGTH} characters.", field="idempotency_key", status=422)
    return value
