"""Refunds with Saleor: the operator's refund through `transactionRequestAction` (against the fake Saleor),
and ORDER_REFUNDED / ORDER_FULLY_REFUNDED on the webhook endpoint: signed, recorded once per refund event,
also when a delivery races the operator's own refund."""
import threading
import time

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.saleor.checkout import SaleorCheckout
from app.extensions import db
from app.models import Instance, LedgerEntry, Order, Refund, WebhookEvent
from app.services import identity, refunds
from tests.commerce.conftest import deliver, encode, money, order_event, sign_jws

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00, 1,200 credits included
PACK = "CREDITS-500"
KID = "saleor-key-1"
ORDER_ID = "T3JkZXI6MDAwMDAwMDEtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx"
TRANSACTION_ID = "VHJhbnNhY3Rpb25JdGVtOjE="


def _money(minor: int) -> dict:
    return {"amount": minor / 100, "currency": "USD", "fractionalAmount": minor}


class SaleorPayments:
    """The fake Saleor's side of one paid order: its transaction, charged in full, and the refunds made."""

    def __init__(self, charged_minor: int, *, delay: float = 0.0) -> None:
        self.charged = charged_minor
        self.refunded = 0
        self.events = [{"id": "VHJhbnNhY3Rpb25FdmVudDox", "type": "CHARGE_SUCCESS", "amount": _money(charged_minor),
                        "createdAt": "2026-12-01T10:00:00+00:00", "pspReference": "psp-charge", "message": ""}]
        self.delay = delay
        self.requested = threading.Event()
        self.requests = []

    def install(self, fake) -> None:
        fake.resolvers["order"] = self.order
        fake.resolvers["transactionRequestAction"] = self.request_action

    def transaction(self) -> dict:
        return {"id": TRANSACTION_ID, "pspReference": "psp", "chargedAmount": _money(self.charged),
                "refundedAmount": _money(self.refunded), "events": list(self.events)}

    def order(self, info, id=None, externalReference=None):
        return {"id": id, "transactions": [self.transaction()]} if id == ORDER_ID else None

    def request_action(self, info, actionType, id=None, amount=None, refundReason=None):
        self.requests.append((actionType, id, str(amount), refundReason))
        minor = round(float(amount) * 100)
        self.refunded += minor
        self.events.append({"id": f"VHJhbnNhY3Rpb25FdmVudDo{len(self.events) + 1}", "type": "REFUND_SUCCESS",
                            "amount": _money(minor), "createdAt": "2026-12-06T10:00:00+00:00",
                            "pspReference": f"psp-refund-{len(self.events)}", "message": ""})
        self.requested.set()
        time.sleep(self.delay)  # the refund webhook may arrive while this answer is on its way
        return {"transaction": self.transaction(), "errors": []}

    def refund_event_body(self, typename: str = "OrderRefunded") -> bytes:
        return encode({"__typename": typename, "issuedAt": "2026-12-06T10:00:01+00:00", "version": "3.23.28",
                       "order": {"id": ORDER_ID, "number": "101", "transactions": [self.transaction()]}})


@pytest.fixture
def saleor_app(make_app, jwks, saleor_fake):
    return make_app(SALEOR_JWKS_URL=jwks.url, SALEOR_TIMEOUT=3.0, COMMERCE_BACKEND="saleor",
                    SALEOR_API_URL=saleor_fake.url)


@pytest.fixture
def app(saleor_app):
    """The `session` fixture's app is the Saleor one, so service calls here reach the fake Saleor."""
    return saleor_app


def _paid_saleor_order(app, session, saleor_key, lines=((PLAN, 1, "86.00"),)) -> Order:
    body = encode(order_event(order_id=ORDER_ID, lines=list(lines)))
    response = deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID))
    assert response.status_code == 200, response.get_json()
    session.expire_all()
    return session.scalar(select(Order).where(Order.external_id == ORDER_ID))


def _deliver_refund(app, body, saleor_key, event="order_refunded"):
    return deliver(app.test_client(), body, signature=sign_jws(body, saleor_key, KID), event=event)


def test_an_operator_refund_goes_through_the_transaction_and_records_its_event(
        saleor_app, saleor_fake, demo, session, saleor_key, operator):
    order = _paid_saleor_order(saleor_app, session, saleor_key)
    payments = SaleorPayments(8600)
    payments.install(saleor_fake)

    refund = refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[0].id, amount_minor=4300,
                                       reason="Half of it", actor=operator,
                                       gateway=SaleorCheckout.from_config(saleor_app.config))
    session.commit()

    assert payments.requests == [("REFUND", TRANSACTION_ID, "43.00", "Half of it")]
    assert (refund.external_id, refund.backend, refund.credits_taken_back) == (payments.events[-1]["id"], "saleor", 600)
    # the webhook for that refund, delivered twice, adds nothing
    body = payments.refund_event_body()
    first, second = _deliver_refund(saleor_app, body, saleor_key), _deliver_refund(saleor_app, body, saleor_key)
    assert (first.status_code, first.get_json()["status"]) == (200, "processed")
    assert (second.status_code, second.get_json()["status"]) == (200, "duplicate")
    assert session.scalar(select(func.count()).select_from(Refund)) == 1


def test_a_refund_saleor_refuses_or_cannot_answer_changes_nothing_here(
        saleor_app, saleor_fake, demo, session, saleor_key, operator):
    order = _paid_saleor_order(saleor_app, session, saleor_key)
    SaleorPayments(8600).install(saleor_fake)
    gateway = SaleorCheckout.from_config(saleor_app.config)

    saleor_fake.fail_with_status(500, operation="TransactionRequestAction")
    with pytest.raises(refunds.RefundError) as unavailable:
        refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[0].id, amount_minor=100,
                                  reason="x", actor=operator, gateway=gateway)
    session.rollback()

    assert unavailable.value.status == 502 and "did not answer in time" in unavailable.value.message
    assert session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_refund_made_in_saleors_dashboard_is_recorded_once_across_the_lines(
        saleor_app, saleor_fake, demo, session, saleor_key):
    # given: an order of a plan ($86) and a credit pack ($45), refunded $100 in Saleor's dashboard
    order = _paid_saleor_order(saleor_app, session, saleor_key, lines=((PLAN, 1, "86.00"), (PACK, 1, "45.00")))
    payments = SaleorPayments(13100)
    payments.request_action(None, "REFUND", TRANSACTION_ID, "100.00", None)
    body = payments.refund_event_body("OrderRefunded")

    # when: Saleor delivers the event twice
    statuses = [_deliver_refund(saleor_app, body, saleor_key).status_code for _ in range(2)]

    # then: the plan line is refunded in full (and cancelled), the pack for the rest
    assert statuses == [200, 200]
    session.expire_all()
    rows = session.scalars(select(Refund).order_by(Refund.id)).all()
    assert [(r.order_line_id, r.amount_minor, r.source) for r in rows] == [
        (order.lines[0].id, 8600, "backend"), (order.lines[1].id, 1400, "backend")]
    assert session.scalar(select(Instance.status)) == "cancelled"
    assert session.scalar(select(func.count()).select_from(WebhookEvent).where(
        WebhookEvent.event_type == "OrderRefunded")) == 1


def test_an_unsigned_refund_event_is_refused_and_stores_nothing(saleor_app, demo, session, saleor_key):
    body = SaleorPayments(8600).refund_event_body()

    response = deliver(saleor_app.test_client(), body, signature=None, event="order_refunded")

    assert response.status_code == 401
    assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


@pytest.mark.postgres_only
def test_a_refund_webhook_delivered_twice_while_the_operator_refund_is_in_flight_gives_one_refund(
        saleor_app, saleor_fake, demo, session, saleor_key, operator):
    # given: a Saleor order; Saleor takes half a second to answer the refund request, and its webhook for
    # the refund arrives (twice, at once) while the operator's request is still waiting for that answer
    order = _paid_saleor_order(saleor_app, session, saleor_key)
    payments = SaleorPayments(8600, delay=0.5)
    payments.install(saleor_fake)
    before = session.scalar(select(func.count()).select_from(LedgerEntry))
    order_id, line_id, operator_id = order.id, order.lines[0].id, operator.id
    statuses = []

    def operator_refund():
        with saleor_app.app_context():
            actor = identity.get_user_by_email(db.session, "operator@example.com")
            assert actor.id == operator_id
            refunds.refund_order_line(db.session, order_id=order_id, line_id=line_id, amount_minor=8600,
                                      reason="Refund all", actor=actor,
                                      gateway=SaleorCheckout.from_config(saleor_app.config))
            db.session.commit()

    def webhook():
        assert payments.requested.wait(10)
        statuses.append(_deliver_refund(saleor_app, payments.refund_event_body("OrderFullyRefunded"), saleor_key,
                                        event="order_fully_refunded").status_code)

    threads = [threading.Thread(target=operator_refund)] + [threading.Thread(target=webhook) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then: one refund, the operator's, with its credits taken back once
    session.expire_all()
    assert statuses == [200, 200]
    rows = session.scalars(select(Refund)).all()
    assert [(r.amount_minor, r.source, r.external_id) for r in rows] == [(8600, "operator", payments.events[-1]["id"])]
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "refund")) == 1
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) > before


def test_saleor_refusing_or_still_processing_the_refund_is_told_to_the_operator_and_nothing_is_recorded(
        saleor_app, saleor_fake, demo, session, saleor_key, operator):
    order = _paid_saleor_order(saleor_app, session, saleor_key)
    payments = SaleorPayments(8600)
    payments.install(saleor_fake)
    gateway = SaleorCheckout.from_config(saleor_app.config)

    def refuse(info, actionType, id=None, amount=None, refundReason=None):
        return {"transaction": None, "errors": [{"field": "id", "code": "MISSING_TRANSACTION_ACTION_REQUEST_WEBHOOK",
                                                 "message": "No app handles refunds."}]}

    def pending(info, actionType, id=None, amount=None, refundReason=None):
        payments.events.append({"id": "VHJhbnNhY3Rpb25FdmVudDo5", "type": "REFUND_REQUEST", "amount": _money(100),
                                "createdAt": "2026-12-06T10:00:00+00:00", "pspReference": "", "message": ""})
        return {"transaction": payments.transaction(), "errors": []}

    messages = []
    for resolver in (refuse, pending):
        saleor_fake.resolvers["transactionRequestAction"] = resolver
        with pytest.raises(refunds.RefundError) as refused:
            refunds.refund_order_line(session, order_id=order.id, line_id=order.lines[0].id, amount_minor=100,
                                      reason="x", actor=operator, gateway=gateway)
        session.rollback()
        messages.append(refused.value.message)

    assert messages == ["The store refused the refund: No app handles refunds.",
                        "The payment provider is still processing the refund; it appears on this order when the "
                        "store reports it."]
    assert session.scalar(select(func.count()).select_from(Refund)) == 0


def test_more_than_the_transaction_has_left_is_refused_by_the_adapter(saleor_app, saleor_fake):
    from app.adapters.commerce.checkout import CheckoutError

    payments = SaleorPayments(8600)
    payments.refunded = 8000
    payments.install(saleor_fake)

    with saleor_app.app_context(), pytest.raises(CheckoutError, match=r"can give back at most 6\.00 USD"):
        SaleorCheckout.from_config(saleor_app.config).refund_payment(
            order_external_id=ORDER_ID, amount_minor=700, currency="USD", reason="x", known_refund_ids=frozenset())
    assert saleor_fake.received("TransactionRequestAction") == []


def test_a_refund_event_without_an_order_is_400_and_one_for_an_unknown_order_is_ignored(
        saleor_app, demo, session, saleor_key):
    broken = encode({"__typename": "OrderRefunded", "order": None})
    unknown = encode({"__typename": "OrderRefunded", "order": {"id": "T3JkZXI6dW5rbm93bg==", "transactions": [
        {"id": TRANSACTION_ID, "events": [{"id": "ev-1", "type": "REFUND_SUCCESS", "amount": money("5.00")}]}]}})

    refused = _deliver_refund(saleor_app, broken, saleor_key)
    ignored = _deliver_refund(saleor_app, unknown, saleor_key)

    assert refused.status_code == 400
    assert (ignored.status_code, ignored.get_json()["status"]) == (200, "ignored")
    assert ignored.get_json()["problem"] == "No order here has this Saleor order id."
    assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    assert session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_refund_whose_answer_was_lost_is_recorded_as_the_operators_when_saleor_reports_it(
        saleor_app, saleor_fake, demo, session, saleor_key, operator):
    """As on a real Saleor without its task queue: the refund went through, the API's answer did not
    (502). Saleor's report records it on the line, with the reason and key the operator gave (not spread
    over the order from its first line), and a retry with the key then answers with that refund."""
    from app.services import tokens

    order = _paid_saleor_order(saleor_app, session, saleor_key, lines=((PLAN, 1, "86.00"), (PACK, 1, "45.00")))
    payments = SaleorPayments(13100)
    payments.install(saleor_fake)
    _, secret = tokens.create_token(session, user=operator, name="support desk")
    session.commit()
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "pack-refund"}
    body = {"line_id": order.lines[1].id, "amount_minor": 2000, "reason": "Pack bought twice"}
    client = saleor_app.test_client()

    saleor_fake.fail_with_status(500, operation="TransactionRequestAction")  # the answer is lost...
    lost = client.post(f"/api/orders/{order.id}/refunds", json=body, headers=headers)
    payments.request_action(None, "REFUND", TRANSACTION_ID, "20.00", "Pack bought twice")  # ...the refund was made
    reported = _deliver_refund(saleor_app, payments.refund_event_body(), saleor_key)
    retry = client.post(f"/api/orders/{order.id}/refunds", json=body, headers=headers)

    assert lost.status_code == 502 and reported.status_code == 200
    session.expire_all()
    [refund] = session.scalars(select(Refund)).all()
    assert (refund.order_line_id, refund.amount_minor, refund.reason, refund.source, refund.actor_user_id,
            refund.idempotency_key) == (order.lines[1].id, 2000, "Pack bought twice", "operator", operator.id,
                                        "pack-refund")
    assert retry.status_code == 200 and (retry.get_json()["id"], retry.get_json()["replayed"]) == (refund.id, True)
    listed = client.get(f"/api/orders/{order.id}/refunds", headers=headers).get_json()
    assert ([r["id"] for r in listed["items"]], listed["waiting"]) == ([refund.id], [])
    assert session.scalar(select(Instance.status)) == "active"  # the plan's line was not touched
    from tests.conftest import login

    login(client, operator)
    assert "Waiting for the payment provider" not in client.get(f"/operator/orders/{order.id}").get_data(as_text=True)
