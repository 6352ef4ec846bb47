"""Operators refunding the same line at the same moment (PostgreSQL, real threads): never more than the line."""
import threading

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.local_checkout import LocalCheckout
from app.extensions import db
from app.models import LedgerEntry, Refund
from app.services import billing, identity, payouts, refunds
from tests.refunds.conftest import PLAN, paid_order


@pytest.mark.postgres_only
def test_five_operators_refunding_the_same_line_at_once_never_exceed_its_total(app, session, buyer, operator):
    # given: a paid $86.00 plan; five operators each refund $50.00 of it at the same moment
    order = paid_order(session, buyer, (PLAN, 1))
    order_id, line_id = order.id, order.lines[0].id
    barrier = threading.Barrier(5)
    outcomes = []

    def refund():
        with app.app_context():
            actor = identity.get_user_by_email(db.session, "operator@example.com")
            barrier.wait()
            try:
                refunds.refund_order_line(db.session, order_id=order_id, line_id=line_id, amount_minor=5000,
                                          reason="Duplicate charge", actor=actor, gateway=LocalCheckout())
                db.session.commit()
                outcomes.append("refunded")
            except refunds.RefundError as exc:
                db.session.rollback()
                outcomes.append(exc.message)

    threads = [threading.Thread(target=refund) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then: one refund of $50.00; the others were told what is left
    assert sorted(outcomes) == ["At most $36.00 is left to refund on this line."] * 4 + ["refunded"]
    session.expire_all()
    assert session.scalar(select(func.sum(Refund.amount_minor))) == 5000
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "refund")) == 1
    assert billing.verify_ledger(session) == []
    assert payouts.verify_payouts(session) == []


@pytest.mark.postgres_only
def test_two_operators_paying_out_the_same_balance_at_once_record_one_payout(app, session, buyer):
    from datetime import date

    from app.models import Organization, Payout

    # given: Northwind AI is owed $73.10; two operators record a $50.00 payout at the same moment
    paid_order(session, buyer, (PLAN, 1))
    publisher_id = session.scalar(select(Organization.id).where(Organization.slug == "northwind-ai"))
    barrier = threading.Barrier(2)
    outcomes = []

    def pay():
        with app.app_context():
            actor = identity.get_user_by_email(db.session, "operator@example.com")
            publisher = db.session.get(Organization, publisher_id)
            barrier.wait()
            try:
                payouts.record_payout(db.session, publisher=publisher, amount_minor=5000, currency="USD",
                                      paid_on=date(2026, 12, 1), reference="TR-7", actor=actor,
                                      today=date(2026, 12, 6))
                db.session.commit()
                outcomes.append("recorded")
            except payouts.PayoutError as exc:
                db.session.rollback()
                outcomes.append(exc.message)

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["Northwind AI is owed $23.10; a payout cannot be more than that.", "recorded"]
    session.expire_all()
    assert session.scalar(select(func.sum(Payout.amount_minor))) == 5000
