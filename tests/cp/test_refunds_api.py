"""Refunds through the API: operators refund a line once per idempotency key (also when requests with
one key race on PostgreSQL); buyers read the refunds of their own orders; nobody else sees or changes
anything."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.adapters.commerce.local_checkout import LocalCheckout
from app.models import AuditEvent, Invoice, LedgerEntry, Refund
from app.services import billing, payouts
from tests.factories import make_user
from tests.refunds.conftest import PLAN, paid_order


def _counts(session) -> tuple[int, int, int, int]:
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(Refund)),
            session.scalar(select(func.count()).select_from(Invoice).where(Invoice.kind == "credit_note")),
            session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "refund")),
            session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "order.refunded")))


def _refund(client, headers, order, amount=1000, key="refund-1", **extra):
    order_id, line_id = (order.id, order.lines[0].id) if not isinstance(order, tuple) else order
    body = {"line_id": line_id, "amount_minor": amount, "reason": "Charged twice", "idempotency_key": key, **extra}
    return client.post(f"/api/orders/{order_id}/refunds", json=body, headers=headers)


def test_an_operator_refunds_part_of_a_line_and_a_retry_with_the_key_refunds_nothing_more(
        client, session, buyer, operator, auth_for):
    order = paid_order(session, buyer, (PLAN, 1))
    headers = auth_for(operator)

    made = _refund(client, headers, order)
    again = _refund(client, headers, order)

    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert (body["order_id"], body["line_id"], body["amount_minor"], body["currency"], body["source"],
            body["replayed"]) == (order.id, order.lines[0].id, 1000, "USD", "operator", False)
    assert body["credits_taken_back"] > 0 and body["instance_cancelled"] is False
    assert again.status_code == 200 and again.get_json() == {**body, "replayed": True}
    assert _counts(session) == (1, 1, 1, 1)  # one refund, one credit note, one ledger entry, one audit event
    detail = client.get(f"/api/orders/{order.id}", headers=headers).get_json()  # operators read any order
    assert detail["lines"][0]["refunded_minor"] == 1000
    assert billing.verify_ledger(session) == [] and payouts.verify_payouts(session) == []


def test_the_buyer_reads_the_refunds_of_their_order_and_nobody_else_does(client, session, buyer, operator, auth_for):
    order = paid_order(session, buyer, (PLAN, 1))
    made = _refund(client, auth_for(operator), order).get_json()

    mine = client.get(f"/api/orders/{order.id}/refunds", headers=auth_for(buyer))
    theirs = client.get(f"/api/orders/{order.id}/refunds", headers=auth_for(make_user(session)))

    assert mine.status_code == 200 and mine.get_json() == {"items": [{**made, "replayed": False}], "waiting": []}
    assert theirs.status_code == 404 and theirs.mimetype == "application/problem+json"
    assert client.get("/api/orders/999999/refunds", headers=auth_for(buyer)).status_code == 404


def test_only_operators_refund_and_bad_requests_name_the_field_and_change_nothing(
        client, session, buyer, operator, auth_for):
    order = paid_order(session, buyer, (PLAN, 1))
    total = order.lines[0].total_minor
    staff = auth_for(operator)
    _refund(client, staff, order, key="first")
    before = _counts(session)

    def refused(response, status, field=None):
        assert response.status_code == status, response.get_json()
        assert response.mimetype == "application/problem+json"
        if field:
            assert [e["field"] for e in response.get_json()["errors"]] == [field]

    refused(_refund(client, auth_for(buyer), order, key="mine"), 403)  # the buyer cannot refund their own order
    refused(_refund(client, staff, order, key="first", amount=2000), 409, "idempotency_key")  # the key, reused
    refused(_refund(client, staff, order, key="over", amount=total), 422, "amount_minor")  # $10.00 is gone already
    refused(_refund(client, staff, order, key=None), 422, "idempotency_key")
    refused(client.post(f"/api/orders/{order.id}/refunds", headers={**staff, "Idempotency-Key": "a"},
                        json={"line_id": order.lines[0].id, "amount_minor": 100, "reason": "x",
                              "idempotency_key": "b"}), 422, "idempotency_key")
    refused(client.post(f"/api/orders/{order.id}/refunds", headers={**staff, "Idempotency-Key": "has space"},
                        json={"line_id": order.lines[0].id, "amount_minor": 100, "reason": "x"}), 422,
            "idempotency_key")
    refused(_refund(client, staff, order, key="bad-line", line_id=999999), 404, "line_id")
    refused(_refund(client, staff, order, key="zero", amount=0), 422, "amount_minor")
    refused(_refund(client, staff, order, key="why", reason=" "), 422, "reason")
    refused(client.post("/api/orders/999999/refunds", headers=staff,
                        json={"line_id": 1, "amount_minor": 100, "reason": "x", "idempotency_key": "k"}), 404)
    assert _counts(session) == before

    # the header works as well as the body, and the rest of the line can still be refunded once
    rest = client.post(f"/api/orders/{order.id}/refunds", headers={**staff, "Idempotency-Key": "rest"},
                       json={"line_id": order.lines[0].id, "amount_minor": total - 1000, "reason": "Cancelled"})
    assert rest.status_code == 201 and rest.get_json()["instance_cancelled"] is True
    refused(_refund(client, staff, order, key="more", amount=1), 409, "amount_minor")


@pytest.mark.postgres_only
def test_six_requests_racing_with_one_key_make_one_refund_and_one_call_to_the_provider(
        app, session, buyer, operator, auth_for, monkeypatch):
    order = paid_order(session, buyer, (PLAN, 1))
    headers = auth_for(operator)
    calls = []
    refund_payment = LocalCheckout.refund_payment

    def counted(self, **kwargs):
        calls.append(kwargs["amount_minor"])
        return refund_payment(self, **kwargs)

    monkeypatch.setattr(LocalCheckout, "refund_payment", counted)
    barrier, answers, ids = threading.Barrier(6), [], (order.id, order.lines[0].id)

    def attempt():
        client = app.test_client()
        barrier.wait()
        response = _refund(client, headers, ids, amount=2500, key="once")
        answers.append((response.status_code, response.get_json()["id"]))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({refund_id for _, refund_id in answers}) == 1
    assert calls == [2500]
    assert _counts(session) == (1, 1, 1, 1)
    assert billing.verify_ledger(session) == [] and payouts.verify_payouts(session) == []


def test_a_refund_the_provider_did_not_confirm_is_never_asked_again_with_its_key(
        app, client, session, buyer, operator, auth_for, monkeypatch):
    """Seen on a real Saleor 3.23 without its task queue: the refund went through at the provider, but
    the answer came too late (502); the operator's tool retried with the same key and refunded again."""
    from app.adapters.commerce.checkout import CheckoutError
    from app.models import UnconfirmedRefund

    order = paid_order(session, buyer, (PLAN, 1))
    headers = auth_for(operator)
    calls = []

    def too_late(self, **kwargs):
        calls.append(kwargs["amount_minor"])
        raise CheckoutError("The store did not answer in time; the refund may still go through.")

    monkeypatch.setattr(LocalCheckout, "refund_payment", too_late)

    first = _refund(client, headers, order, key="slow")
    retry = _refund(client, headers, order, key="slow")

    assert first.status_code == 502 and "may still go through" in first.get_json()["detail"]
    assert retry.status_code == 409 and retry.get_json()["errors"][0]["field"] == "idempotency_key"
    assert calls == [1000]  # the retry did not ask the provider again
    assert _counts(session) == (0, 0, 0, 0)  # the provider's report records the refund, when it comes
    session.expire_all()
    assert [(u.idempotency_key, u.amount_minor) for u in session.scalars(select(UnconfirmedRefund))] == [("slow", 1000)]
    # the API lists it as waiting for the operator, and not for the buyer
    listed = client.get(f"/api/orders/{order.id}/refunds", headers=headers).get_json()
    assert listed["items"] == [] and [(w["line_id"], w["amount_minor"], w["idempotency_key"], w["reason"])
                                      for w in listed["waiting"]] == [(order.lines[0].id, 1000, "slow", "Charged twice")]
    assert client.get(f"/api/orders/{order.id}/refunds", headers=auth_for(buyer)).get_json()["waiting"] == []
    # the operator console shows it as waiting for the provider, with who asked and why
    from tests.conftest import login

    console = app.test_client()
    login(console, operator)
    page = console.get(f"/operator/orders/{order.id}").get_data(as_text=True)
    waiting = page[page.index("Waiting for the payment provider"):]
    assert "$10.00" in waiting and "Charged twice" in waiting and operator.email in waiting
