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

Idempotency keys (of holds, settles and grants) are unique per wallet, never across wallets: a
reused key answers with what this wallet stored under it, and another wallet's key of the same name
is another key. The run gateway's keys (`run_key`) sit in a namespace no caller may write.

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

Where things are: `wallets` (a wallet, its balances, its alert), `grants` (credits in, and the draw
a settle makes), `holds` (authorize, settle, release), `sweeps` (expiry of holds and grants),
`ledger` (reading and verifying it), `pg_statements` (authorize and settle as one statement each on
PostgreSQL, and why), `common` (limits, errors, helpers).

Callers: services flush and never commit. After any BillingError the caller rolls back.
"""
from __future__ import annotations

from app.services.billing.common import (
    AUDIT_HOLD_AUTHORIZED, AUDIT_HOLD_RELEASED, AUDIT_HOLD_SETTLED, DEFAULT_TTL_SECONDS, EXPIRING_ORIGINS,
    MAX_INT, MAX_KEY_LENGTH, MAX_PAGE_SIZE, MAX_TTL_SECONDS, NON_EXPIRING_ORIGINS, NOTIFICATION_LOW_BALANCE,
    RUN_KEY_PREFIX, BillingError, HoldNotFound, InsufficientCredits, LedgerOutOfStep, RunKey, run_key,
)
from app.services.billing.grants import grant_credits
from app.services.billing.holds import authorize, authorize_for_instance, extend_hold, get_hold, release, settle
from app.services.billing.ledger import ledger_page, verify_ledger
from app.services.billing.sweeps import expire_grants, expire_holds
from app.services.billing.wallets import (
    WalletBalances, set_low_balance_threshold, wallet_balances, wallet_for_organization,
)

__all__ = [
    "AUDIT_HOLD_AUTHORIZED", "AUDIT_HOLD_RELEASED", "AUDIT_HOLD_SETTLED", "DEFAULT_TTL_SECONDS", "EXPIRING_ORIGINS",
    "MAX_INT", "MAX_KEY_LENGTH", "MAX_PAGE_SIZE", "MAX_TTL_SECONDS", "NON_EXPIRING_ORIGINS",
    "NOTIFICATION_LOW_BALANCE", "RUN_KEY_PREFIX", "BillingError", "HoldNotFound", "InsufficientCredits",
    "LedgerOutOfStep", "RunKey", "run_key",
    "WalletBalances", "authorize", "authorize_for_instance", "expire_grants", "expire_holds", "extend_hold", "get_hold",
    "grant_credits", "ledger_page", "release", "set_low_balance_threshold", "settle", "verify_ledger",
    "wallet_balances", "wallet_for_organization",
]
