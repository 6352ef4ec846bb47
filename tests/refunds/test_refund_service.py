"""Refunding order lines: amounts, credits taken back, cancellation, earnings, ledger, mail and audit."""
import pytest
from sqlalchemy import func, select

from app.models import (
    AuditEvent, CreditGrant, EarningEntry, Instance, LedgerEntry, MailMessage, Refund, Wallet,
)
from app.services import billing, payouts, refunds
from tests.refunds.conftest import PACK, PLAN, paid_order


def _wallet(session, order):
    session.expire_all()
    return session.scalar(select(Wallet).where(Wallet.organization_id == order.organization_id))


def _refund(session, order, line, amount, operator, gateway, reason="Customer asked"):
    refund = refunds.refund_order_line(session, order_id=order.id, line_id=line.id, amount_minor=amount,
                                       reason=reason, actor=operator, gateway=gateway)
    session.commit()
    return refund


def test_a_partial_refund_takes_back_its_share_of_the_included_credits(session, buyer, operator, local_gateway):
    # given: a paid Pro plan ($86.00, 1,200 included credits)
    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]
    before = _wallet(session, order).balance

    # when: half of it is refunded
    refund = _refund(session, order, line, 4300, operator, local_gateway)

    # then: 600 credits go back, the plan keeps running, the ledger says why
    assert (refund.amount_minor, refund.credits_taken_back, refund.instance_cancelled) == (4300, 600, False)
    assert _wallet(session, order).balance == before - 600
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "refund"))
    assert entry.amount == -600 and entry.idempotency_key == f"refund:{refund.id}:credits"
    assert entry.reference == f"Refund of order {order.number}: 600 credits of {line.name} taken back"
    assert session.scalar(select(Instance.status).where(Instance.source_order_line_id == line.id)) == "active"
    assert refunds.refundable_minor(session, line=line) == 8600 - 4300
    assert billing.verify_ledger(session) == []


def test_a_full_refund_in_two_steps_cancels_the_subscription_and_takes_back_every_unspent_credit(
        session, buyer, operator, local_gateway):
    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]
    before = _wallet(session, order).balance

    _refund(session, order, line, 5000, operator, local_gateway)
    last = _refund(session, order, line, 3600, operator, local_gateway)

    assert last.instance_cancelled is True
    assert session.scalar(select(Instance.status).where(Instance.source_order_line_id == line.id)) == "cancelled"
    assert session.scalar(select(func.sum(Refund.credits_taken_back))) == 1200
    assert _wallet(session, order).balance == before - 1200
    assert refunds.refundable_minor(session, line=line) == 0
    assert billing.verify_ledger(session) == []


def test_credits_already_spent_are_not_taken_back_and_the_balance_never_goes_below_zero(
        session, buyer, operator, local_gateway):
    # given: a plan whose included credits were mostly spent
    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]
    wallet = _wallet(session, order)
    grant = session.scalar(select(CreditGrant).where(CreditGrant.origin == "plan"))
    hold = billing.authorize(session, wallet=wallet, amount=1100,
                             idempotency_key="spend-most")
    billing.settle(session, hold_id=hold.id, amount=hold.amount, idempotency_key="spend-most-settle")
    session.commit()
    session.refresh(grant)
    assert grant.remaining == 100

    # when: it is refunded in full
    refund = _refund(session, order, line, 8600, operator, local_gateway)

    # then: only the 100 unspent credits come back, never more
    assert refund.credits_taken_back == 100
    wallet = _wallet(session, order)
    assert wallet.balance >= 0 and session.get(CreditGrant, grant.id).remaining == 0
    assert billing.verify_ledger(session) == []


def test_more_than_is_left_on_the_line_is_refused_and_nothing_changes(session, buyer, operator, local_gateway):
    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]
    _refund(session, order, line, 8000, operator, local_gateway)
    counts = (session.scalar(select(func.count()).select_from(Refund)),
              session.scalar(select(func.count()).select_from(LedgerEntry)))

    with pytest.raises(refunds.RefundError) as refused:
        refunds.refund_order_line(session, order_id=order.id, line_id=line.id, amount_minor=601, reason="More",
                                  actor=operator, gateway=local_gateway)
    session.rollback()

    assert refused.value.field == "amount" and refused.value.message == "At most $6.00 is left to refund on this line."
    assert (session.scalar(select(func.count()).select_from(Refund)),
            session.scalar(select(func.count()).select_from(LedgerEntry))) == counts


@pytest.mark.parametrize("amount, reason, field", [(0, "x", "amount"), (-5, "x", "amount"), (None, "x", "amount"),
                                                  (100, "   ", "reason")])
def test_an_empty_or_negative_amount_or_no_reason_is_refused(session, buyer, operator, local_gateway, amount, reason,
                                                             field):
    order = paid_order(session, buyer, (PLAN, 1))

    with pytest.raises(refunds.RefundError) as refused:
        refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[0].id, amount_minor=amount,
                                  reason=reason, actor=operator, gateway=local_gateway)

    assert refused.value.field == field
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_refund_mails_the_buyer_audits_and_moves_the_sellers_earnings(session, buyer, operator, local_gateway):
    order = paid_order(session, buyer, (PLAN, 1), (PACK, 1))
    plan_line, pack_line = order.lines

    refund = _refund(session, order, plan_line, 4300, operator, local_gateway, reason="Did not fit")
    pack_refund = _refund(session, order, pack_line, 4500, operator, local_gateway)

    mail = session.scalar(select(MailMessage).where(MailMessage.dedupe_key == f"refund:{refund.id}"))
    assert mail.to_address == buyer.email
    assert mail.subject == f"Your refund of $43.00 for order {order.number}"
    assert "Reason: Did not fit" in mail.text_body and "600 unused credits" in mail.text_body
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "order.refunded").order_by(AuditEvent.id))
    assert event.actor_user_id == operator.id and event.target_id == str(order.id)
    # the credit pack is the platform's own: its 500 credits come back, no seller's earnings change
    assert pack_refund.credits_taken_back == 500
    entries = session.scalars(select(EarningEntry).order_by(EarningEntry.id)).all()
    assert [(e.kind, e.gross_minor, e.refunds_minor, e.fee_minor, e.net_minor) for e in entries] == [
        ("sale", 8600, 0, 1290, 7310),  # 15% of $86.00
        ("refund", 0, 4300, -645, -3655),  # half of the fee given back
    ]
    assert payouts.verify_payouts(session) == []


def test_each_refund_gets_a_credit_note_against_the_orders_invoice(session, buyer, operator, local_gateway):
    from app.models import Invoice

    order = paid_order(session, buyer, (PLAN, 1))
    line = order.lines[0]

    first = _refund(session, order, line, 1000, operator, local_gateway)
    second = _refund(session, order, line, 2500, operator, local_gateway)

    notes = session.scalars(select(Invoice).where(Invoice.order_id == order.id, Invoice.credited_invoice_id.is_not(None))
                            .order_by(Invoice.id)).all()
    assert [(n.number[:3], n.total_minor) for n in notes] == [("CN-", 1000), ("CN-", 2500)]
    assert notes[0].sequence + 1 == notes[1].sequence
    assert all(n.credited_invoice_id == notes[0].credited_invoice_id for n in notes)
    assert (first.amount_minor, second.amount_minor) == (1000, 2500)
