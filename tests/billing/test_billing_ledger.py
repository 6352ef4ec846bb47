"""Reading the ledger (cursor pages), checking it (verify_ledger), and the two scheduled commands."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import CreditGrant, Hold, LedgerEntry, Wallet
from app.services import billing
from app.services.billing import BillingError
from tests.billing.conftest import T0, at, fund


def test_ledger_pages_go_newest_first_with_a_cursor(session, wallet, other_wallet):
    for amount in range(1, 6):
        fund(session, wallet, amount)
    fund(session, other_wallet, 99)

    first, cursor = billing.ledger_page(session, wallet=wallet, limit=2)
    second, cursor2 = billing.ledger_page(session, wallet=wallet, cursor=cursor, limit=2)
    last, end = billing.ledger_page(session, wallet=wallet, cursor=cursor2, limit=2)

    assert [e.amount for e in first] == [5, 4]
    assert cursor == first[-1].id
    assert [e.amount for e in second] == [3, 2]
    assert ([e.amount for e in last], end) == ([1], None)


def test_a_full_last_page_has_no_cursor(session, wallet):
    fund(session, wallet, 1)
    fund(session, wallet, 2)

    entries, cursor = billing.ledger_page(session, wallet=wallet, limit=2)

    assert ([e.amount for e in entries], cursor) == ([2, 1], None)


@pytest.mark.parametrize("field,kwargs", [
    ("limit", {"limit": 0}), ("limit", {"limit": 201}), ("limit", {"limit": "10"}),
    ("cursor", {"cursor": 0}), ("cursor", {"cursor": "abc"}),
])
def test_ledger_page_rejects_bad_paging(session, wallet, field, kwargs):
    with pytest.raises(BillingError) as refused:
        billing.ledger_page(session, wallet=wallet, **kwargs)

    assert (refused.value.status, refused.value.field) == (422, field)


def _busy_wallet(session, wallet) -> None:
    fund(session, wallet, 100)
    fund(session, wallet, 30, origin="promo", expires_at=at(days=1))
    for n, (amount, used) in enumerate([(20, 5), (10, None), (15, 15)]):
        hold = billing.authorize(session, wallet=wallet, amount=amount, idempotency_key=f"r{n}", now=T0)
        if used is None:
            billing.release(session, hold_id=hold.id, now=at(1))
        else:
            billing.settle(session, hold_id=hold.id, amount=used, idempotency_key=f"s{n}", now=at(1))
    billing.authorize(session, wallet=wallet, amount=7, idempotency_key="open", now=T0)
    session.commit()


def test_verify_ledger_finds_nothing_wrong_with_a_busy_wallet(session, wallet):
    _busy_wallet(session, wallet)
    billing.expire_holds(session, now=at(days=1))
    billing.expire_grants(session, now=at(days=1))
    session.commit()

    assert billing.verify_ledger(session) == []
    assert (wallet.balance, wallet.held) == (100, 0)


def test_verify_ledger_reports_a_wallet_that_disagrees_with_its_ledger(session, wallet):
    _busy_wallet(session, wallet)
    session.execute(update(Wallet).where(Wallet.id == wallet.id).values(balance=Wallet.balance + 3))
    session.commit()

    assert billing.verify_ledger(session) == [
        f"wallet {wallet.id}: stored balance 113 held 7, ledger says balance 110 held 7",
        f"wallet {wallet.id}: balance 113 but its grants have 110 credits remaining",
    ]


def test_verify_ledger_reports_grants_holds_and_entries_out_of_step(session, wallet):
    _busy_wallet(session, wallet)
    open_hold = session.scalar(select(Hold).where(Hold.idempotency_key == "open"))
    last = session.scalar(select(LedgerEntry).order_by(LedgerEntry.id.desc()))
    session.execute(update(CreditGrant).where(CreditGrant.origin == "purchase").values(remaining=99))
    session.execute(update(Hold).where(Hold.id == open_hold.id).values(status="released"))
    session.execute(update(LedgerEntry).where(LedgerEntry.id == last.id).values(balance_after=1))
    session.commit()

    assert billing.verify_ledger(session) == [
        f"wallet {wallet.id}: balance 110 but its grants have 109 credits remaining",
        f"wallet {wallet.id}: held 7 but its active holds total 0",
        f"hold {open_hold.id} (released, 7 held, 0 captured): its 1 ledger entries move balance 0 and held 7",
        f"ledger entry {last.id} of wallet {wallet.id}: balance_after 1, sum so far 110",
    ]


def test_expire_holds_command_releases_expired_holds_and_credits(make_app):
    app = make_app()
    with app.app_context():
        from tests.factories import make_org, make_user

        organization = make_org(db.session, owner=make_user(db.session))
        wallet = billing.wallet_for_organization(db.session, organization.id)
        billing.grant_credits(db.session, wallet=wallet, amount=40, origin="purchase")
        billing.authorize(db.session, wallet=wallet, amount=25, idempotency_key="r1", now=at(-3600 * 24 * 365 * 10))
        billing.authorize(db.session, wallet=wallet, amount=5, idempotency_key="r2")
        db.session.commit()
        wallet_id = wallet.id

    result = app.test_cli_runner().invoke(args=["expire-holds"])

    assert result.exit_code == 0, result.output
    assert result.output == "Released 1 expired hold(s); expired credits of 0 grant(s).\n"
    with app.app_context():
        stored = db.session.get(Wallet, wallet_id)
        assert (stored.balance, stored.held) == (40, 5)


def test_verify_ledger_command_exits_1_and_names_the_problem(make_app):
    app = make_app()
    with app.app_context():
        from tests.factories import make_org, make_user

        organization = make_org(db.session, owner=make_user(db.session))
        wallet = billing.wallet_for_organization(db.session, organization.id)
        billing.grant_credits(db.session, wallet=wallet, amount=40, origin="purchase")
        db.session.commit()
        wallet_id = wallet.id
    runner = app.test_cli_runner()

    healthy = runner.invoke(args=["verify-ledger"])
    with app.app_context():
        db.session.execute(update(Wallet).where(Wallet.id == wallet_id).values(held=1))
        db.session.commit()
    broken = runner.invoke(args=["verify-ledger"])

    assert healthy.exit_code == 0
    assert healthy.output.startswith("Ledger OK: ")
    assert broken.exit_code == 1
    assert f"wallet {wallet_id}: stored balance 40 held 1, ledger says balance 40 held 0" in broken.output
