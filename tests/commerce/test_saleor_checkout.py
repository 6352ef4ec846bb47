"""Checkout with the Saleor backend against the fake Saleor (Saleor's API as our schema describes it,
over HTTP), then the signed order-paid webhook and reconciliation provisioning the order."""
import base64

from sqlalchemy import func, select

from app.models import CartLine, Instance, LedgerEntry, Order
from app.services import identity
from tests.commerce.conftest import deliver, encode, sign_jws
from tests.conftest import login

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00
PACK = "CREDITS-500"  # $45.00
VARIANTS = {PLAN: "UHJvZHVjdFZhcmlhbnQ6MQ==", PACK: "UHJvZHVjdFZhcmlhbnQ6Mg=="}
PRICES = {PLAN: 86.0, PACK: 45.0}
ORDER_ID = "T3JkZXI6c2FsZW9yLTE="


class FakeStore:
    """Just enough of Saleor's checkout behaviour for the adapter: checkouts by id, priced lines."""

    def __init__(self, variants=None, prices=None):
        self.variants = dict(variants or VARIANTS)  # sku -> Saleor variant id
        self.prices = dict(prices or PRICES)  # sku -> price in the channel
        self.checkouts = {}
        self.completed = []
        self.price_override = None
        self.on_complete = None  # called with the order before checkoutComplete answers (inline webhooks)

    def _view(self, checkout_id):
        c = self.checkouts[checkout_id]
        total = self.price_override if self.price_override is not None else sum(
            self.prices[sku] * q for sku, q in ((self._sku(v), q) for v, q in c["lines"].items()))
        return {
            "id": checkout_id, "email": c["email"], "chargeStatus": "NONE",
            "lines": [{"id": f"line-{v}", "quantity": q, "variant": {"id": v, "sku": self._sku(v)}}
                      for v, q in c["lines"].items()],
            "totalPrice": {"gross": {"amount": total, "currency": "USD"}},
        }

    def _sku(self, variant_id):
        return next(sku for sku, v in self.variants.items() if v == variant_id)

    def resolvers(self):
        def variants(info, channel, where, first=100, **_):
            skus = where["sku"]["oneOf"]
            return {"edges": [{"node": {"id": self.variants[s], "sku": s}} for s in skus if s in self.variants]}

        def create(info, input, **_):
            checkout_id = base64.b64encode(f"Checkout:{len(self.checkouts) + 1}".encode()).decode()
            self.checkouts[checkout_id] = {"email": input["email"], "lines": {l["variantId"]: l["quantity"] for l in input["lines"]},
                                           "metadata": input.get("metadata"), "billing": input.get("billingAddress")}
            return {"checkout": self._view(checkout_id), "errors": []}

        def checkout(info, id, **_):
            return self._view(id) if id in self.checkouts and id not in self.completed else None

        def lines_add(info, id, lines, **_):
            for line in lines:
                self.checkouts[id]["lines"][line["variantId"]] = line["quantity"]
            return {"checkout": self._view(id), "errors": []}

        def lines_update(info, id, lines, **_):
            for line in lines:
                self.checkouts[id]["lines"][line["lineId"].removeprefix("line-")] = line["quantity"]
            return {"checkout": self._view(id), "errors": []}

        def lines_delete(info, id, linesIds, **_):
            for line_id in linesIds:
                self.checkouts[id]["lines"].pop(line_id.removeprefix("line-"))
            return {"checkout": self._view(id), "errors": []}

        def email_update(info, id, email, **_):
            self.checkouts[id]["email"] = email
            return {"checkout": {"id": id, "email": email}, "errors": []}

        def billing_update(info, id, billingAddress, validationRules=None, **_):
            self.checkouts[id]["billing"] = billingAddress
            return {"checkout": {"id": id}, "errors": []}

        def pay(info, id, paymentGateway, amount=None, idempotencyKey=None, **_):
            self.checkouts[id]["paid"] = (amount, paymentGateway["id"], paymentGateway.get("data"))
            return {"transaction": {"id": "VHJhbnNhY3Rpb25JdGVtOjE=", "pspReference": "psp-1"},
                    "transactionEvent": {"type": "CHARGE_SUCCESS", "message": ""}, "errors": []}

        def complete(info, id, metadata=None, **_):
            self.completed.append(id)
            order = self.order(id, metadata)
            if self.on_complete is not None:
                self.on_complete(order)
            return {"order": order, "confirmationNeeded": False, "errors": []}

        return {"productVariants": variants, "checkoutCreate": create, "checkout": checkout,
                "checkoutLinesAdd": lines_add, "checkoutLinesUpdate": lines_update,
                "checkoutLinesDelete": lines_delete, "checkoutEmailUpdate": email_update,
                "checkoutBillingAddressUpdate": billing_update, "transactionInitialize": pay,
                "checkoutComplete": complete}

    def order(self, checkout_id, metadata=None, charge_status="FULL"):
        c = self.checkouts[checkout_id]
        lines = [(self._sku(v), q) for v, q in c["lines"].items()]
        return {
            "id": ORDER_ID if checkout_id == "Q2hlY2tvdXQ6MQ==" else f"T3JkZXI6{checkout_id}", "number": "77", "created": "2026-11-25T10:00:00+00:00", "userEmail": c["email"],
            "chargeStatus": charge_status, "isPaid": charge_status == "FULL",
            "total": {"gross": {"amount": sum(self.prices[s] * q for s, q in lines), "currency": "USD"}},
            "lines": [{"id": f"T3JkZXJMaW5lOj{i}", "productSku": s, "productName": s.title(), "variantName": "",
                       "quantity": q, "unitPrice": {"gross": {"amount": self.prices[s], "currency": "USD"}}}
                      for i, (s, q) in enumerate(lines)],
            "metadata": metadata or [],
        }


def _saleor_app(make_app, saleor_fake, store, **extra):
    saleor_fake.resolvers.update(store.resolvers())
    return make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="default-channel",
                    SALEOR_APP_TOKEN="app-token", **extra)


def _checkout(client, session, buyer):
    org = identity.ensure_personal_organization(session, user=buyer)
    return client.post("/checkout", data={"email": buyer.email, "organization_id": str(org.id), "country": "DE"})


def test_checkout_through_saleor_creates_pays_and_completes_then_waits_for_the_webhook(make_app, saleor_fake, session, buyer):
    # given
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})

    # when
    response = _checkout(client, session, buyer)

    # then
    order = session.scalar(select(Order))
    assert response.status_code == 303 and response.headers["Location"] == f"/account/orders/{order.id}"
    assert saleor_fake.operation_names() == ["VariantsBySku", "CheckoutCreate", "TransactionInitialize", "CheckoutComplete"]
    created = store.checkouts["Q2hlY2tvdXQ6MQ=="]
    assert created["metadata"] == [{"key": "digitlify_order", "value": order.number}]
    assert created["billing"] == {"firstName": "Bea", "lastName": "Buyer", "country": "DE", "skipValidation": False}
    assert created["paid"] == ("176.00", "saleor.io.dummy-payment-app",
                               {"event": {"type": "CHARGE_SUCCESS", "includePspReference": True}})
    assert (order.backend, order.external_id, order.status, order.total_minor) == ("saleor", ORDER_ID, "pending", 17600)
    assert [(l.sku, l.quantity, l.external_line_id) for l in order.lines] == [
        (PLAN, 1, "T3JkZXJMaW5lOj0"), (PACK, 2, "T3JkZXJMaW5lOj1")]
    assert session.scalar(select(func.count()).select_from(CartLine)) == 0
    assert session.scalar(select(func.count()).select_from(Instance)) == 0
    detail = client.get(f"/account/orders/{order.id}").get_data(as_text=True)
    assert "Awaiting confirmation" in detail


def test_the_webhook_for_a_saleor_checkout_provisions_it(make_app, saleor_fake, jwks, saleor_key, session, buyer):
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store, SALEOR_JWKS_URL=jwks.url)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    _checkout(client, session, buyer)
    order = session.scalar(select(Order))
    event = {"__typename": "OrderFullyPaid", "order": store.order("Q2hlY2tvdXQ6MQ==", [
        {"key": "digitlify_order", "value": order.number}])}
    body = encode(event)

    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1"))

    assert response.status_code == 200 and response.get_json()["order_id"] == order.id
    session.expire_all()
    assert order.status == "paid" and order.provisioned_at is not None
    assert session.scalar(select(Instance.source_order_line_id)) == order.lines[0].id


def test_a_failure_after_the_payment_keeps_the_order_and_a_retry_completes_that_order(make_app, saleor_fake, session, buyer):
    # given: the order is committed, Saleor took the payment request, then failed while completing the checkout
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    saleor_fake.fail_with_status(500, operation="CheckoutComplete")
    failed = _checkout(client, session, buyer)
    assert failed.status_code == 502
    page = failed.get_data(as_text=True)
    assert "Check your orders before paying again." in page and "Try the payment again" in page
    order = session.scalar(select(Order))
    assert (order.status, order.external_id, order.total_minor) == ("pending", None, 17600)
    assert session.scalar(select(func.count()).select_from(CartLine)) == 0
    assert "Try the payment again" in client.get("/checkout").get_data(as_text=True)
    saleor_fake.recover()
    saleor_fake.clear_log()

    # when: the buyer submits again
    retried = _checkout(client, session, buyer)

    # then: the same order and the same Saleor checkout, paid once
    assert retried.status_code == 303 and retried.headers["Location"] == f"/account/orders/{order.id}"
    assert saleor_fake.operation_names() == [
        "VariantsBySku", "Checkout", "CheckoutBillingAddressUpdate", "TransactionInitialize", "CheckoutComplete"]
    assert list(store.checkouts) == ["Q2hlY2tvdXQ6MQ=="]
    [pay] = saleor_fake.received("TransactionInitialize")
    assert pay.variables["idempotencyKey"] == f"{order.number}:Q2hlY2tvdXQ6MQ=="
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert (order.external_id, [(l.sku, l.quantity) for l in order.lines]) == (ORDER_ID, [(PLAN, 1), (PACK, 2)])
    assert client.get("/checkout").headers["Location"] == f"/account/orders/{order.id}"  # nothing left to pay


def test_a_refusal_before_the_payment_takes_the_order_back_and_the_next_try_updates_the_same_checkout(
        make_app, saleor_fake, session, buyer):
    # given: Saleor's price differs, so the first try stops before any payment and leaves its checkout behind
    store = FakeStore()
    store.price_override = 1.0
    app = _saleor_app(make_app, saleor_fake, store)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    assert _checkout(client, session, buyer).status_code == 409
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert sorted((l.sku, l.quantity) for l in session.scalars(select(CartLine))) == [(PACK, 2), (PLAN, 1)]
    # the buyer changes the cart: drops the plan, takes 5 packs
    store.price_override = None
    saleor_fake.clear_log()
    plan_line = session.scalar(select(CartLine).where(CartLine.sku == PLAN))
    pack_line = session.scalar(select(CartLine).where(CartLine.sku == PACK))
    client.post(f"/cart/lines/{plan_line.id}/remove")
    client.post(f"/cart/lines/{pack_line.id}", data={"quantity": "5"})

    # when
    retried = _checkout(client, session, buyer)

    # then
    assert retried.status_code == 303
    assert saleor_fake.operation_names() == [
        "VariantsBySku", "Checkout", "CheckoutLinesUpdate", "CheckoutLinesDelete", "CheckoutBillingAddressUpdate",
        "TransactionInitialize", "CheckoutComplete"]
    assert list(store.checkouts) == ["Q2hlY2tvdXQ6MQ=="]
    order = session.scalar(select(Order))
    assert [(l.sku, l.quantity) for l in order.lines] == [(PACK, 5)] and order.total_minor == 22500
    assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_the_order_paid_webhook_sent_inline_by_checkout_complete_finds_the_order(
        make_app, saleor_fake, jwks, saleor_key, session, buyer):
    """A Saleor without a task broker sends ORDER_PAID and ORDER_FULLY_PAID from inside checkoutComplete,
    before answering it: the order is already committed here, so both deliveries are taken in."""
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store, SALEOR_JWKS_URL=jwks.url)
    deliveries = []

    def send_webhooks(order_node):
        for typename, event in (("OrderPaid", "order_paid"), ("OrderFullyPaid", "order_fully_paid")):
            body = encode({"__typename": typename, "order": order_node})
            deliveries.append(deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, "saleor-key-1"),
                                      event=event))

    store.on_complete = send_webhooks
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})

    response = _checkout(client, session, buyer)

    order = session.scalar(select(Order))
    assert response.status_code == 303 and response.headers["Location"] == f"/account/orders/{order.id}"
    assert [(r.status_code, r.get_json()["order_id"]) for r in deliveries] == [(200, order.id), (200, order.id)]
    assert "Retry-After" not in deliveries[0].headers
    session.expire_all()
    assert (order.status, order.external_id) == ("paid", ORDER_ID) and order.provisioned_at is not None
    assert [(l.sku, l.quantity, l.external_line_id) for l in order.lines] == [
        (PLAN, 1, "T3JkZXJMaW5lOj0"), (PACK, 2, "T3JkZXJMaW5lOj1")]
    assert session.scalar(select(func.count()).select_from(Instance)) == 1
    assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert "Awaiting confirmation" not in client.get(f"/account/orders/{order.id}").get_data(as_text=True)


def test_a_price_that_differs_in_saleor_charges_nothing(make_app, saleor_fake, session, buyer):
    store = FakeStore()
    store.price_override = 1.0
    app = _saleor_app(make_app, saleor_fake, store)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = _checkout(client, session, buyer)

    assert response.status_code == 409
    assert "differs from the price shown here" in response.get_data(as_text=True)
    assert "TransactionInitialize" not in saleor_fake.operation_names()
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert session.scalar(select(func.count()).select_from(CartLine)) == 1


def test_saleor_down_keeps_the_cart_and_places_nothing(make_app, saleor_fake, session, buyer):
    app = _saleor_app(make_app, saleor_fake, FakeStore())
    saleor_fake.fail_with_status(500)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = _checkout(client, session, buyer)

    assert response.status_code == 503
    assert "Nothing was charged" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert session.scalar(select(func.count()).select_from(CartLine)) == 1


def test_reconcile_provisions_a_saleor_order_whose_webhook_was_lost(make_app, saleor_fake, session, buyer):
    # given: a Saleor order placed here, paid in Saleor, but its webhook never arrived
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store)
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PACK, "quantity": "3"})
    _checkout(client, session, buyer)
    order = session.scalar(select(Order))
    foreign = {**store.order("Q2hlY2tvdXQ6MQ=="), "id": "T3JkZXI6anVpY2U=", "number": "12", "userEmail": "x@shop.test"}
    saleor_fake.resolvers["channel"] = lambda info, slug=None, **_: {
        "id": "Q2hhbm5lbDox", "slug": slug, "currencyCode": "USD", "warehouses": []} if slug == "default-channel" else None
    # a store that ignored the filter would also send its own orders: they are skipped without a word
    saleor_fake.resolvers["orders"] = lambda info, where, first=50, after=None, **_: {
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [{"node": foreign},
                  {"node": store.order("Q2hlY2tvdXQ6MQ==", [{"key": "digitlify_order", "value": order.number}])}],
    }

    # when
    with app.app_context():  # this test's Saleor-backed app, not the default one of the session fixture
        result = app.test_cli_runner().invoke(args=["reconcile-orders", "--hours", "6"])
        again = app.test_cli_runner().invoke(args=["reconcile-orders", "--hours", "6"])

    # then
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Reconciled: 1 order(s) provisioned, 0 failed, 1 paid Saleor order(s) checked."
    assert again.output.strip() == "Reconciled: 0 order(s) provisioned, 0 failed, 1 paid Saleor order(s) checked."
    [received] = saleor_fake.received("PaidOrders")[:1]
    assert received.headers["Authorization"] == "Bearer app-token"
    assert received.variables["channelId"] == "Q2hhbm5lbDox"
    assert "channelId: { eq: $channelId }" in received.query
    assert 'metadata: { key: "digitlify_order" }' in received.query
    assert "No account" not in result.output
    session.expire_all()
    assert order.status == "paid"
    assert session.scalar(select(LedgerEntry.amount).where(
        LedgerEntry.idempotency_key == f"order-line:{order.lines[0].id}:credits")) == 1500


def test_credit_packs_synced_to_saleor_sell_on_their_own_and_with_a_plan(saleor_app, saleor_fake, store, session,
                                                                         buyer):
    # given: the sync pushed the offerings and the credit packs to the store
    with saleor_app.app_context():
        synced = saleor_app.test_cli_runner().invoke(args=["sync-saleor"])
    assert synced.exit_code == 0, synced.output
    listed = [v for v in store.variants.values() if store.channel_id in v["prices"]]
    checkout_store = FakeStore(variants={v["sku"]: v["id"] for v in listed},
                               prices={v["sku"]: float(v["prices"][store.channel_id]) for v in listed})
    saleor_fake.resolvers.update(checkout_store.resolvers())
    client = saleor_app.test_client()
    login(client, buyer)

    # when: a plan with a pack, then a pack on its own
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    together = _checkout(client, session, buyer)
    client.post("/cart/add", data={"sku": "CREDITS-100", "quantity": "3"})
    alone = _checkout(client, session, buyer)

    # then
    assert (together.status_code, alone.status_code) == (303, 303)
    first, second = session.scalars(select(Order).order_by(Order.id)).all()
    assert [(l.sku, l.quantity) for l in first.lines] == [(PLAN, 1), (PACK, 2)]
    assert (first.total_minor, second.total_minor) == (8600 + 2 * 4500, 3 * 1000)
    assert [(l.sku, l.kind) for l in second.lines] == [("CREDITS-100", "credit_pack")]
    pack_product = store.product_by_slug("digitlify-credits")
    assert {checkout_store._sku(v) for c in checkout_store.checkouts.values() for v in c["lines"]} == {
        PLAN, PACK, "CREDITS-100"}
    assert store.variant_by_sku(PACK)["product"] == store.variant_by_sku("CREDITS-100")["product"] == pack_product["id"]


def test_paying_may_take_longer_than_a_page_read(make_app, saleor_fake, session, buyer):
    """Completing a checkout waits for the payment app (and, without a broker, for Saleor's inline
    webhooks): it has SALEOR_PAYMENT_TIMEOUT, not the short timeout that keeps pages fast."""
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store, SALEOR_TIMEOUT=0.3, SALEOR_PAYMENT_TIMEOUT=5)
    saleor_fake.fail_with_delay(0.8, operation="CheckoutComplete")
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = _checkout(client, session, buyer)

    order = session.scalar(select(Order))
    assert response.status_code == 303 and response.headers["Location"] == f"/account/orders/{order.id}"
    assert order.external_id == ORDER_ID


def test_a_catalog_call_keeps_the_short_timeout(make_app, saleor_fake, session, buyer):
    store = FakeStore()
    app = _saleor_app(make_app, saleor_fake, store, SALEOR_TIMEOUT=0.3, SALEOR_PAYMENT_TIMEOUT=5)
    saleor_fake.fail_with_delay(0.8, operation="VariantsBySku")
    client = app.test_client()
    login(client, buyer)
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = _checkout(client, session, buyer)

    assert response.status_code == 503  # the store did not answer a quick read in time: nothing placed
    assert session.scalar(select(func.count()).select_from(Order)) == 0
