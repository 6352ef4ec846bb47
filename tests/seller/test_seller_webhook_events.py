"""The publisher's webhook events come from where things happen: a renewal, a suspension after failed
renewals, a subscription ending at its period's end, a refund, and a new review."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import Instance, SellerWebhookEvent
from app.services import refunds, reviews, seller_webhooks, subscription_changes
from tests.billing.test_subscriptions import DECLINES_LATER, GATEWAY, _buy, _renew
from tests.factories import make_offering, make_org, make_user

ALL = ["instance.created", "instance.renewed", "instance.cancelled", "instance.suspended", "order.refunded",
       "review.created"]


@pytest.fixture
def app(make_app):
    return make_app(SELLER_WEBHOOK_ALLOW_PRIVATE=True)


def _shop(session):
    buyer = make_user(session)
    org = make_org(session, owner=buyer, name="Acme")
    seller = make_user(session, roles=("seller",))
    publisher = make_org(session, owner=seller, name="Helper Labs")
    offering = make_offering(session, publisher=publisher, name="Helper", price_minor=1000)
    session.commit()
    seller_webhooks.create_endpoint(session, user=seller, organization_id=publisher.id,
                                    url="http://127.0.0.1:9/hook", events=ALL)
    session.commit()
    return buyer, org, publisher, {p.tier: p for p in offering.plans}


def _events(session, publisher) -> list[str]:
    session.expire_all()
    return [e.event_type for e in session.scalars(select(SellerWebhookEvent).where(
        SellerWebhookEvent.organization_id == publisher.id).order_by(SellerWebhookEvent.id))]


def test_renewal_suspension_and_the_end_of_a_period_are_announced(session):
    buyer, org, publisher, plans = _shop(session)
    paying = _buy(session, buyer, org, plans["starter"])
    _renew(session, paying.period_end)
    assert _events(session, publisher) == ["instance.created", "instance.renewed"]

    subscription_changes.cancel_at_period_end(session, instance=session.get(Instance, paying.id), actor=buyer)
    session.commit()
    _renew(session, session.get(Instance, paying.id).period_end)
    assert _events(session, publisher)[-1] == "instance.cancelled"

    failing = _buy(session, buyer, org, plans["pro"], card=DECLINES_LATER)
    end = failing.period_end
    for days in (0, 1, 3, 5):
        _renew(session, end + timedelta(days=days))
    assert session.get(Instance, failing.id).status == "suspended"
    assert _events(session, publisher)[-2:] == ["instance.created", "instance.suspended"]


def test_a_refund_and_a_review_are_announced(session):
    buyer, org, publisher, plans = _shop(session)
    instance = _buy(session, buyer, org, plans["starter"])
    operator = make_user(session, roles=("operator",))
    session.commit()

    refunds.refund_order_line(session, order_id=_order_id(session, instance), line_id=instance.source_order_line_id,
                              amount_minor=400, reason="Asked for it", actor=operator, gateway=GATEWAY)
    session.commit()
    reviews.write_review(session, user=buyer, organization_id=org.id, offering=instance.offering, rating=5,
                         title="Does the job", body="Sorted our tickets in a day.")
    session.commit()

    assert _events(session, publisher) == ["instance.created", "order.refunded", "review.created"]
    refunded = session.scalar(select(SellerWebhookEvent).where(SellerWebhookEvent.event_type == "order.refunded"))
    assert refunded.payload["data"]["amount_minor"] == 400


def _order_id(session, instance):
    from app.models import OrderLine

    return session.get(OrderLine, instance.source_order_line_id).order_id
