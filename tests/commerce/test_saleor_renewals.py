"""Renewals with the Saleor backend against the fake Saleor: the payment app charges the card it keeps
for the customer (off-session) for a new Saleor order for the next period; the signed order-paid webhook then provisions the period; a
declined charge goes through dunning."""
import base64
from datetime import timedelta

from sqlalchemy import func, select

from app.adapters.commerce.saleor.renewals import SaleorRenewals
from app.extensions import db
from app.models import Instance, LedgerEntry, Order, Payment, Plan
from app.services import cart as carts
from app.services import orders, provisioning, subscriptions
from tests.commerce.conftest import deliver, encode, sign_jws

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"
GATEWAY = "app.example.payments"
VARIANT = "UHJvZHVjdFZhcmlhbnQ6MQ=="
STORED = "U3RvcmVkUGF5bWVudE1ldGhvZDox"
SALEOR_ORDER = "T3JkZXI6cmVuZXdhbC0x"


class RenewalStore:
    """A customer with one stored card at our payment app, and checkouts that the app charges (or declines)."""

    def __init__(self, price: float, declines: bool = False):
        self.price = price
        self.declines = declines
        self.checkouts = {}
        self.charges = []

    def resolvers(self):
        def user(info, email=None, **_):
            return {"id": "VXNlcjox", "email": email,
                    "defaultBillingAddress": {"firstName": "Bea", "lastName": "Buyer", "country": {"code": "DE"}},
                    "storedPaymentMethods": [
                        {"id": "U3RvcmVkOm90aGVy", "paymentMethodId": "other", "gateway": {"id": "another.app"},
                         "type": "card", "name": "1111", "creditCardInfo": None},
                        {"id": STORED, "paymentMethodId": "pm_4242", "gateway": {"id": GATEWAY}, "type": "card",
                         "name": "Visa 4242",
                         "creditCardInfo": {"brand": "visa", "lastDigits": "4242", "expMonth": 12, "expYear": 2030}},
                    ]}

        def variants(info, channel, where, first=100, **_):
            return {"edges": [{"node": {"id": VARIANT, "sku": s}} for s in where["sku"]["oneOf"] if s == PLAN]}

        def create(info, input, **_):
            checkout_id = base64.b64encode(f"Checkout:{len(self.checkouts) + 1}".encode()).decode()
            self.checkouts[checkout_id] = input
            return {"checkout": {"id": checkout_id, "email": input["email"], "chargeStatus": "NONE", "lines": [],
                                 "totalPrice": {"gross": {"amount": self.price, "currency": "USD"}}}, "errors": []}

        def pay(info, id, paymentGateway, amount=None, idempotencyKey=None, **_):
            self.charges.append((id, amount, paymentGateway["id"], paymentGateway.get("data")))
            event = "CHARGE_FAILURE" if self.declines else "CHARGE_SUCCESS"
            return {"transaction": {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "pspReference": "psp-1"},
                    "transactionEvent": {"type": event, "message": "Card declined." if self.declines else ""},
                    "errors": []}

        def complete(info, id, metadata=None, **_):
            return {"order": self.order(metadata), "confirmationNeeded": False, "errors": []}

        return {"user": user, "productVariants": variants, "checkoutCreate": create, "transactionInitialize": pay,
                "checkoutComplete": complete}

    def order(self, metadata):
        return {"id": SALEOR_ORDER, "number": "78", "created": "2027-02-15T10:00:00+00:00",
                "userEmail": "buyer@example.com", "chargeStatus": "FULL", "isPaid": True,
                "total": {"gross": {"amount": self.price, "currency": "USD"}},
                "lines": [{"id": "T3JkZXJMaW5lOjE=", "productSku": PLAN, "productName": "Pro", "variantName": "",
                           "quantity": 1, "unitPrice": {"gross": {"amount": self.price, "currency": "USD"}}}],
                "metadata": metadata or []}


def _subscribed(session, buyer):
    """A Pro subscription bought earlier (paid and provisioned as any order)."""
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="saleor")
    orders.mark_order_paid(session, order=order, actor_label="test")
    provisioning.handle_order_paid(session, order=order, actor_label="test")
    session.commit()
    return session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))


def _app(make_app, saleor_fake, store, **extra):
    saleor_fake.resolvers.update(store.resolvers())
    return make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="default-channel",
                    SALEOR_APP_TOKEN="app-token", SALEOR_PAYMENT_GATEWAY=GATEWAY, **extra)


def _renew(app, now):
    with app.app_context():
        report = subscriptions.renew_due_subscriptions(db.session, now=now, config={},
                                                       gateway=SaleorRenewals.from_config(app.config))
        db.session.commit()
        return report


def test_a_renewal_pays_a_new_saleor_order_with_the_stored_method_and_the_webhook_provisions_it(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100)
    app = _app(make_app, saleor_fake, store, SALEOR_JWKS_URL=jwks.url)
    instance = _subscribed(session, buyer)
    end = instance.period_end

    first = _renew(app, end)
    again = _renew(app, end)

    # then: one Saleor checkout, charged once with the stored method of our payment app, completed
    assert first.submitted == [instance.id] and again.count == 0
    assert saleor_fake.operation_names() == ["VariantsBySku", "CheckoutCreate", "TransactionInitialize",
                                             "CheckoutComplete"]
    session.expire_all()
    [renewal] = session.scalars(select(Order).where(Order.renews_instance_id == instance.id)).all()
    [checkout_input] = store.checkouts.values()
    assert checkout_input["metadata"] == [{"key": "digitlify_order", "value": renewal.number}]
    assert checkout_input["billingAddress"] == {"country": "US", "skipValidation": False}  # no billing details saved
    assert [charge[1:] for charge in store.charges] == [
        (f"{price / 100:.2f}", GATEWAY, {"offSession": True, "customerEmail": buyer.email,
                                         "reference": renewal.number})]
    assert (renewal.backend, renewal.status, renewal.external_id, renewal.total_minor) == (
        "saleor", "pending", SALEOR_ORDER, price)
    assert [(p.status, p.card_last4) for p in session.scalars(select(Payment))] == [("succeeded", None)]
    assert session.get(Instance, instance.id).period_end == end  # not before Saleor confirms the payment

    # when: Saleor's order-paid webhook arrives (twice)
    body = encode({"__typename": "OrderFullyPaid",
                   "order": store.order([{"key": "digitlify_order", "value": renewal.number}])})
    for _ in range(2):
        response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1"))
        assert response.status_code == 200

    # then: the next period started where the last ended, with its included credits, once
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (session.get(Order, renewal.id).status, instance.status, instance.period_start) == ("paid", "active", end)
    assert instance.period_end == subscriptions.add_interval(end, "month")
    line_id = renewal.lines[0].id
    assert session.scalar(select(func.count()).select_from(LedgerEntry)
                          .where(LedgerEntry.idempotency_key == f"order-line:{line_id}:plan-credits")) == 1


def test_a_declined_stored_method_makes_the_subscription_past_due(make_app, saleor_fake, session, buyer):
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100, declines=True)
    app = _app(make_app, saleor_fake, store)
    instance = _subscribed(session, buyer)

    report = _renew(app, instance.period_end)

    assert report.failed == [instance.id]
    assert "CheckoutComplete" not in saleor_fake.operation_names()
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.renewal_failures) == ("past_due", 1)
    assert [(p.status, p.message) for p in session.scalars(select(Payment))] == [
        ("declined", "Your saved card was declined. Card declined.")]


def test_a_charged_renewal_that_saleor_did_not_complete_is_never_charged_again(make_app, saleor_fake, session, buyer):
    """Seen on a real Saleor: the payment went through, then checkoutComplete refused ("Billing address is
    not set"). The card was charged, so this is no decline: the renewal waits for Saleor to complete the
    paid checkout (and its webhook), and the next run charges nothing."""
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100)
    resolvers = store.resolvers()
    resolvers["checkoutComplete"] = lambda info, id, metadata=None, **_: {
        "order": None, "confirmationNeeded": False,
        "errors": [{"field": "billingAddress", "message": "Billing address is not set", "code": "BILLING_ADDRESS_NOT_SET"}]}
    saleor_fake.resolvers.update(resolvers)
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="default-channel",
                   SALEOR_APP_TOKEN="app-token", SALEOR_PAYMENT_GATEWAY=GATEWAY)
    instance = _subscribed(session, buyer)

    first = _renew(app, instance.period_end)
    later = _renew(app, instance.period_end + timedelta(days=2))

    assert (first.submitted, first.failed, later.count) == ([instance.id], [], 0)
    assert len(store.charges) == 1
    session.expire_all()
    assert session.get(Instance, instance.id).status == "active"
    assert [p.status for p in session.scalars(select(Payment))] == ["succeeded"]


def test_when_saleor_sends_the_webhook_while_it_completes_the_renewal_the_period_starts_at_once(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    """A Saleor without its task queue (seen on a real Saleor 3.23): the order-paid webhook arrives
    inside checkoutComplete. The renewal order is committed before Saleor is asked, so it is found."""
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100)
    resolvers = store.resolvers()
    complete, answers = resolvers["checkoutComplete"], []

    def complete_and_notify(info, id, metadata=None, **kwargs):
        body = encode({"__typename": "OrderFullyPaid", "order": store.order(metadata)})
        answers.append(deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1")).status_code)
        return complete(info, id, metadata=metadata, **kwargs)

    resolvers["checkoutComplete"] = complete_and_notify
    app = _app(make_app, saleor_fake, store, SALEOR_JWKS_URL=jwks.url)
    saleor_fake.resolvers.update(resolvers)
    instance = _subscribed(session, buyer)
    end = instance.period_end

    _renew(app, end)

    assert answers == [200]
    session.expire_all()
    assert session.get(Instance, instance.id).period_start == end
    assert [(p.status, p.message) for p in session.scalars(select(Payment))] == [
        ("succeeded", "Confirmed by the store.")]  # by the webhook, before Saleor answered


def test_a_renewal_whose_answer_was_lost_is_never_charged_again_while_the_store_may_confirm_it(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    """The card was charged, then Saleor did not answer (a timeout, a 5xx). Before, the whole renewal
    rolled back, order included, and the next sweep charged the card again for a new order."""
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100)
    app = _app(make_app, saleor_fake, store, SALEOR_JWKS_URL=jwks.url)
    instance = _subscribed(session, buyer)
    end = instance.period_end

    saleor_fake.fail_with_status(502, operation="CheckoutComplete")
    first = _renew(app, end)
    saleor_fake.recover()
    later = _renew(app, end + timedelta(minutes=30))

    assert (first.submitted, later.count, len(store.charges)) == ([instance.id], 0, 1)
    session.expire_all()
    [renewal] = session.scalars(select(Order).where(Order.renews_instance_id == instance.id)).all()
    assert renewal.status == "pending" and [p.status for p in renewal.payments] == ["pending"]

    # when: reconciliation (or the webhook) reports the order paid
    body = encode({"__typename": "OrderFullyPaid",
                   "order": store.order([{"key": "digitlify_order", "value": renewal.number}])})
    assert deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1")).status_code == 200

    session.expire_all()
    assert session.get(Instance, instance.id).period_start == end
    assert [(p.status, p.message) for p in session.get(Order, renewal.id).payments] == [
        ("succeeded", "Confirmed by the store.")]


def test_a_renewal_the_store_never_confirms_goes_through_dunning_without_a_second_charge_at_once(
        make_app, saleor_fake, session, buyer):
    price = session.scalar(select(Plan.price_minor).where(Plan.sku == PLAN))
    store = RenewalStore(price / 100)
    app = _app(make_app, saleor_fake, store)
    instance = _subscribed(session, buyer)
    end = instance.period_end

    saleor_fake.fail_with_status(502, operation="TransactionInitialize")  # not charged, but nobody knows
    _renew(app, end)
    saleor_fake.recover()
    report = _renew(app, end + subscriptions.STORE_CONFIRMATION_WAIT + timedelta(minutes=1))

    assert report.failed == [instance.id] and store.charges == []
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.renewal_failures) == ("past_due", 1)
    assert [(p.status, p.message) for p in session.scalars(select(Payment))] == [
        ("declined", "The store did not confirm this charge.")]
