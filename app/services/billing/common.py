"""What every part of billing shares: limits, the error classes, and small helpers on the session."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.models import CreditGrant, GrantOrigin, Hold, HoldStatus, LedgerEntry, Notification, Wallet
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


# Idempotency keys are the wallet's own: unique per wallet, looked up in the wallet only. The run
# gateway keys its holds by run (`run:<run id>`, closed with `run:<run id>:settle` or `:release`); a
# caller who could write such a key in its own wallet could take a run's hold before the gateway
# does, or settle another hold with the run's settle key and leave the run unpaid. So that prefix is
# the gateway's alone: only a RunKey, which `run_key` makes, may start with it.
RUN_KEY_PREFIX = "run:"
# the ledger keys that open and close a hold (`hold:<hold id>`, `close:<hold id>`): never a grant's
LEDGER_KEY_PREFIXES = ("hold:", "close:")


class RunKey(str):
    """An idempotency key of the run gateway, the one kind of key allowed to start with RUN_KEY_PREFIX."""


def run_key(run_id: int, step: str | None = None) -> RunKey:
    """The gateway's key for a run's hold (`step` None), or for closing it (`step` "settle" or "release")."""
    if step not in (None, "settle", "release"):
        raise ValueError(f"unknown step of a run's hold: {step!r}")
    return RunKey(f"{RUN_KEY_PREFIX}{run_id}" + (f":{step}" if step else ""))


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
    if value.startswith(RUN_KEY_PREFIX) and not isinstance(value, RunKey):
        raise BillingError(f"Keys that start with “{RUN_KEY_PREFIX}” are kept for the platform's own runs; "
                           "choose another key.", field="idempotency_key", status=422)
    return str(value)


def _take_from_grant(session: Session, *, wallet_id: int, grant_id: int, credits: int) -> None:
    """Take `credits` from one grant, refusing to take more than it has left: a grant that cannot give
    them means the grants no longer add up to the wallet (LedgerOutOfStep), never a negative grant."""
    taken = session.execute(
        update(CreditGrant).where(CreditGrant.id == grant_id, CreditGrant.remaining >= credits)
        .values(remaining=CreditGrant.remaining - credits), execution_options=_NO_SYNC,
    ).rowcount
    if taken != 1:
        raise LedgerOutOfStep(wallet_id)
