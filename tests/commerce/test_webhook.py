"""POST /api/integrations/saleor/order-paid: signatures, payloads, storing once, provisioning once."""
import hashlib
import hmac
import json
import threading

import pytest
from sqlalchemy import func, select

from app.models import Instance, LedgerEntry, Order, OrderLine, Wallet, WebhookEvent
from app.services import cart as carts
from app.services import identity, orders
from tests.commerce.conftest import (
    WEBHOOK_SECRET, deliver, encode, order_event, public_jwk, sign_jws,
)
from tests.factories import make_user

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # 1,200 credits included
PACK = "CREDITS-500"
KID = "saleor-key-1"
LINES = [(PLAN, 1, "86.00"), (PACK, 3, "45.00")]


def _counts(session):
    session.expire_all()
    return {
        "events": session.scalar(select(func.count()).select_from(WebhookEvent)),
        "orders": session.scalar(select(func.count()).select_from(Order)),
        "instances": session.scalar(select(func.count()).select_from(Instance)),
        "order_credits": session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.idempotency_key.like("order-line:%"))),
    }


NOTHING = {"events": 0, "orders": 0, "instances": 0, "order_credits": 0}


def _wallet_balance(session, email="buyer@example.com"):
    session.expire_all()
    user = identity.get_user_by_email(session, email)
    org = identity.ensure_personal_organization(session, user=user)
    return session.scalar(select(Wallet.balance).where(Wallet.organization_id == org.id))


def test_a_signed_subscription_payload_imports_marks_paid_and_provisions(webhook_app, demo, session, saleor_key):
    # given
    before = _wallet_balance(session)
    body = encode(order_event(lines=LINES))

    # when
    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    # then
    assert response.status_code == 200
    assert response.get_json()["status"] == "processed" and response.get_json()["signature"] == "jws"
    order = session.scalar(select(Order))
    assert (order.backend, order.number, order.status, order.total_minor, order.currency) == (
        "saleor", "S-101", "paid", 8600 + 3 * 4500, "USD")
    assert order.user.email == "buyer@example.com" and order.organization.is_personal
    assert [(l.sku, l.kind, l.quantity, l.unit_price_minor) for l in order.lines] == [
        (PLAN, "plan", 1, 8600), (PACK, "credit_pack", 3, 4500)]
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 1, "order_credits": 2}
    assert _wallet_balance(session) == before + 1200 + 1500
    event = session.scalar(select(WebhookEvent))
    assert (event.source, event.event_type, event.status, event.error) == ("saleor", "OrderFullyPaid", "processed", None)


def test_a_repeated_delivery_is_answered_200_and_adds_nothing(webhook_app, demo, session, saleor_key):
    body = encode(order_event(lines=LINES))
    signature = sign_jws(body, saleor_key, KID)
    client = webhook_app.test_client()
    deliver(client, body, signature=signature)
    balance = _wallet_balance(session)

    again = deliver(client, body, signature=signature)

    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert again.get_json()["order_id"] == session.scalar(select(Order.id)) is not None
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 1, "order_credits": 2}
    assert _wallet_balance(session) == balance


def test_the_legacy_array_payload_with_an_hmac_signature(webhook_app, demo, session):
    legacy = [{
        "type": "Order", "id": "T3JkZXI6bGVnYWN5", "user_email": "buyer@example.com", "status": "unfulfilled",
        "total_gross_amount": "90.00", "channel": {"slug": "default-channel", "currency_code": "USD"},
        "metadata": {}, "lines": [{"id": "T3JkZXJMaW5lOmw=", "type": "OrderLine", "product_sku": PACK,
                                    "product_name": "Credits", "variant_name": "500", "quantity": 2,
                                    "currency": "USD", "unit_price_gross_amount": "45.00"}],
    }]
    body = json.dumps(legacy).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    before = _wallet_balance(session)

    response = deliver(webhook_app.test_client(), body, signature=signature, event="order_fully_paid")

    assert response.status_code == 200 and response.get_json()["signature"] == "hmac"
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 0, "order_credits": 1}
    assert _wallet_balance(session) == before + 1000
    assert session.scalar(select(Order.total_minor)) == 9000


@pytest.mark.parametrize("signature", [
    None,
    "",
    "not-a-signature",
    "0" * 64,
    "eyJhbGciOiJSUzI1NiJ9..c2lnbmF0dXJl",
])
def test_unsigned_or_garbage_signatures_get_401_and_nothing_is_stored(webhook_app, session, signature):
    body = encode(order_event(lines=LINES))

    response = deliver(webhook_app.test_client(), body, signature=signature)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert _counts(session) == NOTHING


def test_a_valid_signature_over_a_different_body_gets_401(webhook_app, session, saleor_key):
    signed = encode(order_event(lines=[(PACK, 1, "45.00")]))
    tampered = encode(order_event(lines=[(PACK, 100, "45.00")]))

    jws = deliver(webhook_app.test_client(), tampered, signature=sign_jws(signed, saleor_key, KID))
    mac = deliver(webhook_app.test_client(), tampered,
                  signature=hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest())

    assert jws.status_code == 401 and mac.status_code == 401
    assert _counts(session) == NOTHING


def test_a_key_saleor_does_not_publish_gets_401(webhook_app, session, other_key):
    body = encode(order_event(lines=LINES))

    same_kid = deliver(webhook_app.test_client(), body, signature=sign_jws(body, other_key, KID))
    unknown_kid = deliver(webhook_app.test_client(), body, signature=sign_jws(body, other_key, "attacker"))

    assert same_kid.status_code == 401 and unknown_kid.status_code == 401
    assert _counts(session) == NOTHING


def test_hmac_is_refused_when_no_secret_is_configured(make_app, jwks, session):
    app = make_app(SALEOR_JWKS_URL=jwks.url, SALEOR_WEBHOOK_SECRET="")
    body = encode(order_event(lines=LINES))

    response = deliver(app.test_client(), body, signature=hmac.new(b"", body, hashlib.sha256).hexdigest())

    assert response.status_code == 401
    assert _counts(session) == NOTHING


def test_malformed_json_correctly_signed_gets_400_and_nothing_is_stored(webhook_app, session, saleor_key):
    for body in (b'{"__typename": "OrderFullyPaid", "order": ', b"[]", b'{"order": {"id": "x", "lines": [{"quantity": -1}]}}'):
        response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))
        assert response.status_code == 400, body
    assert _counts(session) == NOTHING


def test_a_body_over_the_size_limit_gets_413_and_nothing_is_stored(make_app, jwks, session, saleor_key):
    app = make_app(SALEOR_JWKS_URL=jwks.url, WEBHOOK_MAX_BYTES=2048)
    body = encode(order_event(lines=[(PACK, 1, "45.00")] * 40))
    assert len(body) > 2048

    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 413
    assert _counts(session) == NOTHING
    assert jwks.fetches == 0  # refused before any signature work


def test_an_unknown_sku_is_recorded_on_the_event_and_order_and_the_rest_is_provisioned(webhook_app, demo, session, saleor_key):
    body = encode(order_event(lines=[(PACK, 1, "45.00"), ("MYSTERY-SKU", 2, "5.00")]))

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 200
    assert response.get_json()["unknown_skus"] == ["MYSTERY-SKU"]
    event = session.scalar(select(WebhookEvent))
    assert (event.status, event.error) == ("processed", "Unknown SKUs: MYSTERY-SKU")
    order = session.scalar(select(Order))
    assert [(l.sku, l.kind, l.provisioned_at is not None) for l in order.lines] == [
        (PACK, "credit_pack", True), ("MYSTERY-SKU", "unknown", False)]
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 0, "order_credits": 1}


def test_an_unknown_key_id_refetches_the_jwks_once(webhook_app, demo, session, saleor_key, other_key, jwks):
    client = webhook_app.test_client()
    first = encode(order_event(order_id="T3JkZXI6YQ==", number="1", lines=[(PACK, 1, "45.00")]))
    deliver(client, first, signature=sign_jws(first, saleor_key, KID))
    assert jwks.fetches == 1
    # Saleor rotates: the new key is published under a new kid
    jwks.keys = [public_jwk(saleor_key, KID), public_jwk(other_key, "saleor-key-2")]
    from app.services import webhooks
    webhooks.key_set_for(webhook_app.config).min_refetch_seconds = 0  # the refetch floor is not under test here

    second = encode(order_event(order_id="T3JkZXI6Yg==", number="2", lines=[(PACK, 1, "45.00")]))
    response = deliver(client, second, signature=sign_jws(second, other_key, "saleor-key-2"))
    cached = encode(order_event(order_id="T3JkZXI6Yw==", number="3", lines=[(PACK, 1, "45.00")]))
    third = deliver(client, cached, signature=sign_jws(cached, saleor_key, KID))

    assert response.status_code == 200 and third.status_code == 200
    assert jwks.fetches == 2
    assert _counts(session)["orders"] == 3


def test_unreachable_jwks_gets_503_so_saleor_retries(make_app, jwks, session, saleor_key):
    jwks.failing = True
    app = make_app(SALEOR_JWKS_URL=jwks.url)
    body = encode(order_event(lines=LINES))

    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert _counts(session) == NOTHING


def test_jwks_address_defaults_to_the_origin_of_the_api_url(make_app, jwks, demo, session, saleor_key):
    app = make_app(SALEOR_JWKS_URL="", SALEOR_API_URL=f"{jwks.origin}/graphql/")
    body = encode(order_event(lines=[(PACK, 1, "45.00")]))

    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 200 and jwks.fetches == 1


def test_a_partly_paid_order_is_stored_but_not_provisioned(webhook_app, demo, session, saleor_key):
    body = encode(order_event(typename="OrderPaid", charge_status="PARTIAL", lines=LINES))

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID), event="order_paid")

    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert _counts(session) == {"events": 1, "orders": 0, "instances": 0, "order_credits": 0}


def test_an_order_for_an_unknown_email_fails_visibly_and_succeeds_when_retried_later(webhook_app, demo, session, saleor_key):
    body = encode(order_event(email="stranger@example.com", lines=[(PACK, 1, "45.00")]))
    signature = sign_jws(body, saleor_key, KID)
    client = webhook_app.test_client()

    first = deliver(client, body, signature=signature)
    event = session.scalar(select(WebhookEvent))
    assert first.status_code == 200 and first.get_json()["status"] == "failed"
    assert event.error == "No account has the order's email address (stranger@example.com)."
    assert _counts(session) == {"events": 1, "orders": 0, "instances": 0, "order_credits": 0}

    make_user(session, email="stranger@example.com")
    session.commit()
    retry = deliver(client, body, signature=signature)

    assert retry.status_code == 200 and retry.get_json()["status"] == "processed"
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 0, "order_credits": 1}


def test_an_order_placed_here_is_found_by_its_reference_and_paid(webhook_app, session, saleor_key, buyer):
    # given: the buyer placed the order through our checkout with the Saleor backend
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="saleor")
    session.commit()
    body = encode(order_event(order_id="T3JkZXI6cGxhY2VkLWhlcmU=", lines=[(PLAN, 1, "86.00")],
                              metadata={"digitlify_order": order.number}))

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 200 and response.get_json()["order_id"] == order.id
    session.expire_all()
    assert (order.status, order.external_id) == ("paid", "T3JkZXI6cGxhY2VkLWhlcmU=")
    [line] = order.lines
    assert line.external_line_id == "T3JkZXJMaW5lOj0"
    assert session.scalar(select(Instance.source_order_line_id)) == line.id
    assert _counts(session)["orders"] == 1


def test_lines_missing_from_the_paid_saleor_order_are_not_provisioned(webhook_app, session, saleor_key, buyer):
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    carts.add_to_cart(session, cart=cart, sku=PACK, quantity=2)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="saleor")
    session.commit()
    body = encode(order_event(lines=[(PACK, 2, "45.00")], metadata={"digitlify_order": order.number}))

    deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    session.expire_all()
    assert [(l.sku, l.quantity) for l in order.lines] == [(PACK, 2)]
    assert (order.total_minor, order.status) == (9000, "paid")
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 0, "order_credits": 1}


def _deliver_concurrently(app, bodies_and_signatures):
    barrier = threading.Barrier(len(bodies_and_signatures))
    results = [None] * len(bodies_and_signatures)

    def worker(i, body, signature):
        client = app.test_client()
        barrier.wait()
        results[i] = deliver(client, body, signature=signature).status_code

    threads = [threading.Thread(target=worker, args=(i, b, s)) for i, (b, s) in enumerate(bodies_and_signatures)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.postgres_only
def test_twenty_threads_delivering_the_same_webhook_provision_exactly_once(webhook_app, demo, session, saleor_key):
    # given: one signed delivery, sent by 20 threads at the same moment
    before = _wallet_balance(session)
    body = encode(order_event(lines=LINES))
    signature = sign_jws(body, saleor_key, KID)

    # when
    statuses = _deliver_concurrently(webhook_app, [(body, signature)] * 20)

    # then
    assert statuses == [200] * 20
    assert _counts(session) == {"events": 1, "orders": 1, "instances": 1, "order_credits": 2}
    order = session.scalar(select(Order))
    plan_line, pack_line = order.lines
    assert session.scalar(select(func.count()).select_from(Instance).where(
        Instance.source_order_line_id == plan_line.id)) == 1
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.idempotency_key == f"order-line:{pack_line.id}:credits")) == 1
    assert _wallet_balance(session) == before + 1200 + 1500


@pytest.mark.postgres_only
def test_two_event_kinds_for_one_order_racing_provision_once(webhook_app, session, saleor_key, buyer):
    # given: an order placed here; Saleor sends ORDER_PAID and ORDER_FULLY_PAID, each delivered 10 times at once
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    carts.add_to_cart(session, cart=cart, sku=PACK, quantity=3)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="saleor")
    session.commit()
    before = _wallet_balance(session)
    deliveries = []
    for typename in ("OrderPaid", "OrderFullyPaid"):
        body = encode(order_event(typename=typename, lines=LINES, metadata={"digitlify_order": order.number}))
        deliveries += [(body, sign_jws(body, saleor_key, KID))] * 10

    statuses = _deliver_concurrently(webhook_app, deliveries)

    assert statuses == [200] * 20
    assert _counts(session) == {"events": 2, "orders": 1, "instances": 1, "order_credits": 2}
    assert _wallet_balance(session) == before + 1200 + 1500
    assert session.scalar(select(func.count()).select_from(OrderLine)) == 2


def test_an_event_naming_an_order_not_committed_here_yet_asks_saleor_to_retry(webhook_app, demo, session, saleor_key):
    # given: the buyer's checkout request has not committed our order when Saleor's event arrives
    body = encode(order_event(lines=LINES, metadata={"digitlify_order": "DM-NOTYET0000"}))

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert _counts(session) == NOTHING


def test_the_readme_subscription_query_is_valid_against_saleors_schema():
    from pathlib import Path
    import re

    from graphql import parse, validate
    from graphql.validation import NoDeprecatedCustomRule

    from tests.saleor_fake import saleor_schema

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    query = re.search(r"```graphql\n(subscription OrderPaidForMarketplace.*?)```", readme, re.S).group(1)

    assert [e.message for e in validate(saleor_schema(), parse(query))] == []
    assert [e.message for e in validate(saleor_schema(), parse(query), rules=[NoDeprecatedCustomRule])] == []


def test_the_endpoint_needs_no_csrf_token_and_is_in_the_api_document(make_app, jwks, demo, session, saleor_key):
    app = make_app(SALEOR_JWKS_URL=jwks.url, WTF_CSRF_ENABLED=True)
    body = encode(order_event(lines=[(PACK, 1, "45.00")]))

    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID))
    document = app.test_client().get("/api/openapi.json").get_json()

    assert response.status_code == 200 and response.get_json()["status"] == "processed"
    operation = document["paths"]["/api/integrations/saleor/order-paid"]["post"]
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
    assert "security" not in operation


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-1", "1e308", True])
def test_the_saleor_adapter_refuses_an_amount_no_order_can_have(amount):
    from app.adapters.commerce.saleor.checkout import to_minor

    with pytest.raises(ValueError):
        to_minor(amount, "USD")
    assert to_minor("49.995", "USD") == 5000 and to_minor(1200, "JPY") == 1200
