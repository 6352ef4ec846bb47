"""The PostgreSQL statements of the two hot paths, authorize and settle, each written as one statement.

Why they exist: every run of an agent authorizes a hold before it starts and settles it after, so
these two paths carry the platform's load, and on a busy wallet every one of them queues for the
same wallet row. Written as data-modifying CTEs, each costs the request one round trip to
PostgreSQL before its COMMIT: authorize reserves on the wallet, inserts the hold, appends the ledger
entry and (when the caller names an actor) the audit event; `authorize_for_instance` also finds the
wallet from the instance in the same statement; settle closes the hold, moves the wallet, appends
the entry, the audit event, and usually draws the captured credits from the first grant. Fewer
round trips also mean the wallet row is locked for less time, which is what bounds the throughput
of one wallet. SQLite has no such statements to win from (one writer at a time, no network): the
ORM and Core steps in `holds` do exactly the same things there one by one, and are the reference
for what these statements must do.

Authorize reserves on the wallet before it inserts the hold: a concurrent request with the same key
waits for the wallet, then finds the key taken and gives its reservation back.

The text is prebuilt once and cached by SQLAlchemy (the dialect's INSERT ... ON CONFLICT construct
is not cacheable), and each variant's result columns are named so reading its rows is cached too.
"""
from __future__ import annotations

from sqlalchemy import column, text

from app.models import Hold, HoldStatus, LedgerKind, Wallet
from app.services.billing.common import AUDIT_HOLD_AUTHORIZED, AUDIT_HOLD_SETTLED

# With an actor, the audit event goes into the same statement as the change it records.
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
    ON CONFLICT (idempotency_key, wallet_id) DO NOTHING
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
      AND NOT EXISTS (SELECT 1 FROM hold AS other WHERE other.settle_key = :key AND other.wallet_id = hold.wallet_id)
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
OPEN_HOLD = {
    (by_instance, audited): _returning(_OPEN_HOLD_SQL.format(
        wallet=_BY_INSTANCE if by_instance else _BY_WALLET, hold_columns=_HOLD_COLUMNS,
        audit=_audit_cte(AUDIT_HOLD_AUTHORIZED) if audited else "",
    ), "wallet__id", "wallet__balance", "wallet__held", *(c.name for c in Hold.__table__.c))
    for by_instance in (False, True) for audited in (False, True)
}
# (scoped to an organization, audited) -> statement
CLOSE_SETTLED = {
    (scoped, audited): _returning(_CLOSE_SETTLED_SQL.format(
        organization="AND wallet_id IN (SELECT id FROM wallet WHERE organization_id = :organization_id)"
        if scoped else "",
        hold_columns=_HOLD_COLUMNS, wallet_columns=_WALLET_COLUMNS,
        audit=_audit_cte(AUDIT_HOLD_SETTLED) if audited else "",
    ), *(c.name for c in Hold.__table__.c), *(f"wallet__{c.name}" for c in Wallet.__table__.c), "drawn")
    for scoped in (False, True) for audited in (False, True)
}
