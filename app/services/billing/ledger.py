"""Reading the ledger: a wallet's entries page by page, and the check that every stored fold agrees."""
from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.models import CreditGrant, Hold, LedgerEntry, Wallet
from app.services.billing.common import _ACTIVE, MAX_PAGE_SIZE, _int_in_range, _positive_int


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
