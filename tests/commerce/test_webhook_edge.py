"""Signed Saleor deliveries with impossible amounts, and two Saleor orders that share a number."""
import json

import pytest
from sqlalchemy import func, select

from app.models import Instance, LedgerEntry, Order, WebhookEvent
from tests.commerce.conftest import deliver, encode, order_event, sign_jws

PACK = "CREDITS-500"
KID = "saleor-key-1"


def _counts(session):
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(WebhookEvent)),
            session.scalar(select(func.count()).select_from(Order)),
            session.scalar(select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.idempotency_key.like("order-line:%"))))


def _with_amount(raw: str, *, where: str) -> bytes:
    """A subscription payload whose total or unit price is the JSON text `raw` (a number or a string)."""
    event = order_event(lines=[(PACK, 1, "45.00")])
    marker = "__AMOUNT__"
    if where == "total":
        event["order"]["total"]["gross"]["amount"] = marker
    else:
        event["order"]["lines"][0]["unitPrice"]["gross"]["amount"] = marker
    return encode(event).replace(json.dumps(marker).encode(), raw.encode())


@pytest.mark.parametrize("where", ["total", "unit"])
@pytest.mark.parametrize("raw", ['"NaN"', "NaN", "1e308", '"Infinity"', "-Infinity", '"-5.00"', '"1e400000000"',
                                 "99999999999", "true"])
def test_a_signed_delivery_with_an_impossible_amount_is_400_and_stores_nothing(webhook_app, demo, session, saleor_key,
                                                                              raw, where):
    body = _with_amount(raw, where=where)

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 400  # a 4xx: Saleor does not retry it
    assert response.mimetype == "application/problem+json"
    assert _counts(session) == (0, 0, 0)


def test_a_line_whose_total_passes_any_order_is_400(webhook_app, demo, session, saleor_key):
    body = encode(order_event(lines=[(PACK, 100000, "30000.00")]))

    response = deliver(webhook_app.test_client(), body, signature=sign_jws(body, saleor_key, KID))

    assert response.status_code == 400
    assert _counts(session) == (0, 0, 0)


def test_two_saleor_orders_with_one_number_are_both_provisioned(webhook_app, demo, session, saleor_key):
    client = webhook_app.test_client()
    first = encode(order_event(order_id="T3JkZXI6Zmlyc3Q=", number="7", lines=[(PACK, 1, "45.00")]))
    second = encode(order_event(order_id="T3JkZXI6c2Vjb25k", number="7", lines=[(PACK, 2, "45.00")]))
    assert deliver(client, first, signature=sign_jws(first, saleor_key, KID)).status_code == 200

    response = deliver(client, second, signature=sign_jws(second, saleor_key, KID))
    again = deliver(client, second, signature=sign_jws(second, saleor_key, KID))

    assert response.status_code == 200 and response.get_json()["status"] == "processed"
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    session.expire_all()
    mirrored = {o.external_id: (o.number, o.status) for o in session.scalars(select(Order))}
    assert mirrored == {"T3JkZXI6Zmlyc3Q=": ("S-7", "paid"), "T3JkZXI6c2Vjb25k": ("S-7-2", "paid")}
    assert _counts(session) == (2, 2, 2)
    assert session.scalar(select(func.count()).select_from(Instance)) == 0


def test_every_503_the_app_sends_says_when_to_retry(make_app):
    from flask import abort

    app = make_app()
    app.add_url_rule("/_down", "down", lambda: abort(503))
    app.add_url_rule("/api/_down", "api_down", lambda: abort(503))
    app.add_url_rule("/_own", "own", lambda: ("later", 503, {"Retry-After": "5"}))
    client = app.test_client()

    assert client.get("/_down").headers["Retry-After"] == "30"
    assert client.get("/api/_down").headers["Retry-After"] == "30"
    assert client.get("/_own").headers["Retry-After"] == "5"  # a view that knows better keeps its value
    assert "Retry-After" not in client.get("/api/health").headers
