"""Upgrades during a period with the Saleor backend, against the fake Saleor: the prorated difference is
a Saleor order whose plan line carries that price, charged to the card the payment app keeps for the
customer; Saleor's order-paid webhook (also when Saleor sends it inline, while it completes the
checkout) switches the plan. A decline, a store that does not answer and a second click each change
nothing that costs the buyer twice."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.saleor.checkout import SaleorCheckout
from app.adapters.commerce.saleor.client import SaleorUnavailable
from app.extensions import db
from app.models import AuditEvent, Instance, LedgerEntry, Order, Payment, Plan, User
from app.services import subscription_changes, subscriptions
from tests.commerce.conftest import deliver, encode, sign_jws
from tests.commerce.test_saleor_renewals import GATEWAY, PLAN, RenewalStore, _subscribed

BIGGER = "CUSTOMER-SUPPORT-AGENT-ENTERPRISE"


class UpgradeStore(RenewalStore):
    """The renewal store, where a checkout line may carry its own price (an app with HANDLE_CHECKOUTS)."""

    def __init__(self, declines: bool = False, on_complete=None):
        super().__init__(price=0, declines=declines)
        self.on_complete = on_complete

    def resolvers(self):
        resolvers = super().resolvers()
        create, complete = resolvers["checkoutCreate"], resolvers["checkoutComplete"]

        def variants(info, channel, where, first=100, **_):
            return {"edges": [{"node": {"id": f"variant-{s}", "sku": s}} for s in where["sku"]["oneOf"]]}

        def create_priced(info, input, **kwargs):
            [line] = input["lines"]
            self.price = float(Decimal(line["price"]))  # the checkout's total is the line's own price
            return create(info, input, **kwargs)

        def complete_and_notify(info, id, metadata=None, **kwargs):
            answer = complete(info, id, metadata=metadata, **kwargs)
            if self.on_complete is not None:
                self.on_complete(self.order(metadata))
            return answer

        resolvers.update(productVariants=variants, checkoutCreate=create_priced, checkoutComplete=complete_and_notify)
        return resolvers

    def order(self, metadata):
        order = super().order(metadata)
        order["lines"][0]["productSku"] = BIGGER
        return order


def _upgrade(app, instance_id, now):
    with app.app_context():
        instance = db.session.get(Instance, instance_id)
        plan = db.session.scalar(select(Plan).where(Plan.sku == BIGGER))
        owner = db.session.get(User, instance.created_by_id)
        try:
            change = subscription_changes.change_plan(db.session, instance=instance, plan=plan, actor=owner,
                                                      gateway=SaleorCheckout.from_config(app.config), now=now)
            return change.kind, change.charge_minor, change.credits, change.order.id
        finally:
            db.session.commit()


def _setup(make_app, saleor_fake, session, buyer, jwks, store):
    saleor_fake.resolvers.update(store.resolvers())
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="default-channel",
                   SALEOR_APP_TOKEN="app-token", SALEOR_PAYMENT_GATEWAY=GATEWAY, SALEOR_JWKS_URL=jwks.url)
    instance = _subscribed(session, buyer)
    return app, instance, instance.period_start + timedelta(days=10)


def _quote(session, instance, now):
    return subscription_changes.quote_plan_change(session, instance=instance, now=now,
                                                  plan=session.scalar(select(Plan).where(Plan.sku == BIGGER)))


def test_an_upgrade_is_a_saleor_order_at_the_prorated_price_and_the_webhook_switches_the_plan(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    store = UpgradeStore()
    app, instance, now = _setup(make_app, saleor_fake, session, buyer, jwks, store)
    quote = _quote(session, instance, now)

    kind, charge, credits, order_id = _upgrade(app, instance.id, now)

    # then: one checkout whose line carries the prorated price, charged off-session, completed
    assert (kind, charge, credits) == ("upgrade", quote.charge_minor, quote.credits)
    assert 0 < quote.charge_minor < 28900 - 8600 and quote.credits > 0
    assert saleor_fake.operation_names() == ["VariantsBySku", "CheckoutCreate", "TransactionInitialize",
                                             "CheckoutComplete"]
    [checkout_input] = store.checkouts.values()
    [line] = checkout_input["lines"]
    assert (line["variantId"], Decimal(line["price"])) == (f"variant-{BIGGER}", Decimal(quote.charge_minor) / 100)
    assert line["priceOverrideReason"].startswith("Upgrade for the rest of the period")
    session.expire_all()
    order = session.get(Order, order_id)
    assert (order.purpose, order.status, order.backend, order.total_minor) == (
        "upgrade", "pending", "saleor", quote.charge_minor)
    assert checkout_input["metadata"] == [{"key": "digitlify_order", "value": order.number}]
    assert session.get(Instance, instance.id).plan.sku == PLAN  # not before the store confirms it

    def grants():
        session.expire_all()
        return session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "grant").order_by(LedgerEntry.id)).all()

    before = grants()

    # when: the order-paid webhook arrives (twice)
    body = encode({"__typename": "OrderFullyPaid", "order": store.order(checkout_input["metadata"])})
    for _ in range(2):
        assert deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1")).status_code == 200

    # then: the plan is switched and the prorated credits granted once; the period is unchanged
    session.expire_all()
    upgraded = session.get(Instance, instance.id)
    assert (upgraded.plan.sku, upgraded.period_end, session.get(Order, order.id).status) == (
        BIGGER, instance.period_end, "paid")
    assert grants() == [*before, quote.credits]


def test_when_saleor_sends_the_webhook_while_it_completes_the_checkout_the_plan_is_switched_at_once(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    answers = []

    def inline_webhook(order):  # a Saleor without a task queue, as seen on a real Saleor 3.23
        body = encode({"__typename": "OrderFullyPaid", "order": order})
        answers.append(deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1")).status_code)

    app, instance, now = _setup(make_app, saleor_fake, session, buyer, jwks, UpgradeStore(on_complete=inline_webhook))

    *_, order_id = _upgrade(app, instance.id, now)

    assert answers == [200]  # the order was committed before Saleor was called
    session.expire_all()
    assert session.get(Instance, instance.id).plan.sku == BIGGER
    assert session.get(Order, order_id).status == "paid"
    assert [(p.status, p.message) for p in session.scalars(select(Payment))] == [
        ("succeeded", "Confirmed by the store.")]  # by the webhook, before Saleor answered


def test_a_declined_upgrade_charges_nothing_and_leaves_no_order(make_app, saleor_fake, jwks, session, buyer):
    app, instance, now = _setup(make_app, saleor_fake, session, buyer, jwks, UpgradeStore(declines=True))

    with pytest.raises(subscriptions.SubscriptionError) as refused:
        _upgrade(app, instance.id, now)

    assert refused.value.status == 402
    assert str(refused.value) == ("Your saved card was declined. Card declined. Nothing was charged and the plan is "
                                  "unchanged.")
    assert "CheckoutComplete" not in saleor_fake.operation_names()
    session.expire_all()
    assert session.get(Instance, instance.id).plan.sku == PLAN
    assert session.scalar(select(func.count()).select_from(Order).where(Order.purpose == "upgrade")) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "subscription.upgrade_declined")) == 1


def test_a_second_upgrade_while_the_store_confirms_the_first_is_refused_and_charges_nothing(
        make_app, saleor_fake, jwks, session, buyer):
    store = UpgradeStore()
    app, instance, now = _setup(make_app, saleor_fake, session, buyer, jwks, store)
    _upgrade(app, instance.id, now)

    with pytest.raises(subscriptions.SubscriptionError) as refused:
        _upgrade(app, instance.id, now + timedelta(hours=2))  # charged, still not confirmed by the store

    assert refused.value.status == 409 and "waiting for the store" in str(refused.value)
    assert len(store.charges) == 1
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order).where(Order.purpose == "upgrade")) == 1


def test_a_store_that_does_not_answer_keeps_the_order_for_its_confirmation(
        make_app, saleor_fake, jwks, session, buyer, monkeypatch):
    store = UpgradeStore()
    app, instance, now = _setup(make_app, saleor_fake, session, buyer, jwks, store)

    def unreachable(self, **_):
        raise SaleorUnavailable("Saleor did not answer in time.", operation="TransactionInitialize")

    monkeypatch.setattr(SaleorCheckout, "charge_renewal", unreachable)
    with pytest.raises(subscriptions.SubscriptionError) as refused:
        _upgrade(app, instance.id, now)

    assert refused.value.status == 503
    session.expire_all()
    [order] = session.scalars(select(Order).where(Order.purpose == "upgrade")).all()
    assert order.status == "pending"  # it may have been charged: reconciliation finds it if it was
    assert [p.status for p in order.payments] == ["pending"]
    assert session.get(Instance, instance.id).plan.sku == PLAN
    # a second try within the hour is refused: the first may still be confirmed
    with pytest.raises(subscriptions.SubscriptionError) as again:
        _upgrade(app, instance.id, now + timedelta(minutes=20))
    assert again.value.status == 409


def test_the_instance_page_says_the_plan_moves_once_the_store_confirms_and_a_decline_changes_nothing(
        make_app, saleor_fake, jwks, session, buyer):
    from tests.conftest import login

    store = UpgradeStore(declines=True)
    app, instance, _ = _setup(make_app, saleor_fake, session, buyer, jwks, store)
    enterprise = session.scalar(select(Plan.id).where(Plan.sku == BIGGER))
    client = app.test_client()
    login(client, buyer)

    declined = client.post(f"/account/instances/{instance.id}/plan", data={"plan_id": enterprise},
                           follow_redirects=True).get_data(as_text=True)
    store.declines = False
    charged = client.post(f"/account/instances/{instance.id}/plan", data={"plan_id": enterprise},
                          follow_redirects=True).get_data(as_text=True)

    assert "Your saved card was declined. Card declined. Nothing was charged and the plan is unchanged." in declined
    assert "moves to the Enterprise plan as soon as the store confirms the payment" in charged
    assert "/checkout/orders/" not in charged  # no card page: the store charged its saved card
    session.expire_all()
    assert [(o.status, o.backend) for o in session.scalars(select(Order).where(Order.purpose == "upgrade"))] == [
        ("pending", "saleor")]
