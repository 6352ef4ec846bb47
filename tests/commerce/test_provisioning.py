"""The one order-paid handler and reconciliation."""
import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Instance, LedgerEntry, Order
from app.services import cart as carts
from app.services import orders, provisioning

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"
PACK = "CREDITS-500"


def _placed_order(session, user, *lines, backend="local"):
    cart = carts.get_or_create_cart(session, user=user, token=None)
    for sku, quantity in lines:
        carts.add_to_cart(session, cart=cart, sku=sku, quantity=quantity)
    order = orders.place_order(session, user=user, cart=cart, organization_id=None, email=user.email, backend=backend)
    session.commit()
    return order


def _provisioned(session):
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(Instance)),
            session.scalar(select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.idempotency_key.like("order-line:%"))))


def test_handling_the_same_paid_order_twice_provisions_once(session, buyer):
    order = _placed_order(session, buyer, (PLAN, 1), (PACK, 4))
    orders.mark_order_paid(session, order=order, actor_label="test")

    first = provisioning.handle_order_paid(session, order=order, actor_label="test")
    second = provisioning.handle_order_paid(session, order=order, actor_label="test")
    session.commit()

    plan_line, pack_line = order.lines
    assert first.provisioned_line_ids == [plan_line.id, pack_line.id] and first.already_line_ids == []
    assert second.provisioned_line_ids == [] and second.already_line_ids == [plan_line.id, pack_line.id]
    assert _provisioned(session) == (1, 2)
    assert session.scalar(select(LedgerEntry.amount).where(
        LedgerEntry.idempotency_key == f"order-line:{pack_line.id}:credits")) == 2000
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "order.provisioned")) == 1


def test_an_unpaid_order_is_not_provisioned(session, buyer):
    order = _placed_order(session, buyer, (PACK, 1))

    with pytest.raises(provisioning.ProvisioningError):
        provisioning.handle_order_paid(session, order=order, actor_label="test")

    assert _provisioned(session) == (0, 0)


def test_mark_order_paid_changes_a_pending_order_once(session, buyer):
    order = _placed_order(session, buyer, (PACK, 1))

    assert orders.mark_order_paid(session, order=order, actor_label="test") is True
    assert orders.mark_order_paid(session, order=order, actor_label="test") is False
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "order.paid")) == 1


def test_reconcile_orders_provisions_paid_orders_a_failure_left_behind(app, session, buyer):
    # given: an order that was marked paid but whose provisioning never ran (a crash, a lost webhook)
    order = _placed_order(session, buyer, (PLAN, 1), (PACK, 2))
    orders.mark_order_paid(session, order=order, actor_label="test")
    pending = _placed_order(session, buyer, (PACK, 1))
    session.commit()
    runner = app.test_cli_runner()

    # when
    first = runner.invoke(args=["reconcile-orders"])
    second = runner.invoke(args=["reconcile-orders"])

    # then
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "Reconciled: 1 order(s) provisioned, 0 failed."
    assert second.output.strip() == "Reconciled: 0 order(s) provisioned, 0 failed."
    assert _provisioned(session) == (1, 2)
    session.expire_all()
    assert session.get(Order, order.id).provisioned_at is not None
    assert session.get(Order, pending.id).status == "pending"
