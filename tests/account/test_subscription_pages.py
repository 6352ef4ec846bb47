"""Subscription pages: saving a card at checkout, the period and next charge on the instance page and My
Agents, cancel at period end / resume / cancel now, plan changes, paying an open renewal, and the
renewal command with a date."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.adapters.commerce.local_checkout import LocalCheckout
from app.formatting import date as date_text
from app.formatting import money
from app.models import Instance, Order, Payment, PaymentMethod, Plan
from app.services import cart as carts
from app.services import orders, subscriptions

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"
CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/30", "cvc": "123"}


def _checkout(client, session, buyer, card=CARD, save=True):
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="local")
    session.commit()
    page = client.get(f"/checkout/orders/{order.id}/pay").get_data(as_text=True)
    assert "Save this card for renewals" in page
    data = dict(card, **({"save_card": "y"} if save else {}))
    response = client.post(f"/checkout/orders/{order.id}/pay", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    session.expire_all()
    return session.scalar(select(Instance).where(Instance.source_order_line_id == order.lines[0].id))


def test_checkout_saves_the_card_and_the_pages_show_the_period_and_next_charge(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)
    plan = session.scalar(select(Plan).where(Plan.sku == PLAN))

    method = session.scalar(select(PaymentMethod))
    assert (instance.payment_method_id, method.brand, method.last4) == (method.id, "Visa", "4242")
    detail = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    agents = buyer_client.get("/account/agents").get_data(as_text=True)
    charge = f"{money(plan.price_minor, 'USD')} on {date_text(instance.period_end)}"
    assert charge in detail and charge in agents
    assert "Visa ending in 4242 (expires 12/2030)" in detail
    api = buyer_client.get(f"/api/instances/{instance.id}/entitlements").get_json()
    assert (api["next_charge_minor"], api["currency"], api["cancel_at_period_end"]) == (plan.price_minor, "USD", False)


def test_without_saving_the_card_nothing_is_stored(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer, save=False)

    assert instance.payment_method_id is None
    assert session.scalar(select(func.count()).select_from(PaymentMethod)) == 0


def test_cancel_at_period_end_then_resume_from_the_pages(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)

    confirm = buyer_client.get(f"/account/instances/{instance.id}/cancel").get_data(as_text=True)
    assert "Cancel at the end of the period" in confirm and 'id="cancel-now-refund"' in confirm
    done = buyer_client.post(f"/account/instances/{instance.id}/cancel-at-period-end")
    assert done.status_code == 303
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.status, instance.cancel_at_period_end) == ("active", True)
    page = buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)
    assert "Resume subscription" in page and f"None: it ends on {date_text(instance.period_end)}" in page

    buyer_client.post(f"/account/instances/{instance.id}/resume-subscription")
    session.expire_all()
    assert session.get(Instance, instance.id).cancel_at_period_end is False


def test_cancel_now_from_the_page_cancels_and_tells_the_refund(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)

    done = buyer_client.post(f"/account/instances/{instance.id}/cancel", follow_redirects=True)

    session.expire_all()
    assert session.get(Instance, instance.id).status == "cancelled"
    from app.models import Invoice, Refund

    [refund] = session.scalars(select(Refund)).all()
    assert refund.order_line_id == instance.source_order_line_id and 0 < refund.amount_minor <= 8600
    assert "is refunded to your payment method" in done.get_data(as_text=True)
    assert session.scalar(select(Invoice).where(Invoice.credited_invoice_id.is_not(None))).total_minor == refund.amount_minor

    again = buyer_client.post(f"/account/instances/{instance.id}/cancel", follow_redirects=True)  # a second submit
    assert again.status_code == 200 and len(session.scalars(select(Refund)).all()) == 1


def test_a_downgrade_from_the_page_is_scheduled_and_a_bad_plan_is_refused(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)
    starter = session.scalar(select(Plan).where(Plan.sku == "CUSTOMER-SUPPORT-AGENT-STARTER"))
    other = session.scalar(select(Plan).where(Plan.offering_id != instance.offering_id))

    refused = buyer_client.post(f"/account/instances/{instance.id}/plan", data={"plan_id": other.id},
                                follow_redirects=True)
    assert "Not a valid choice" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(Instance, instance.id).pending_plan_id is None

    buyer_client.post(f"/account/instances/{instance.id}/plan", data={"plan_id": starter.id})
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (instance.plan.sku, instance.pending_plan_id) == (PLAN, starter.id)


def test_an_upgrade_from_the_page_charges_the_saved_card(buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)
    enterprise = session.scalar(select(Plan).where(Plan.sku == "CUSTOMER-SUPPORT-AGENT-ENTERPRISE"))

    done = buyer_client.post(f"/account/instances/{instance.id}/plan", data={"plan_id": enterprise.id})

    assert done.status_code == 303
    session.expire_all()
    instance = session.get(Instance, instance.id)
    [upgrade] = session.scalars(select(Order).where(Order.purpose == "upgrade")).all()
    assert (instance.plan_id, upgrade.status, upgrade.renews_instance_id) == (enterprise.id, "paid", instance.id)
    assert 0 < upgrade.total_minor <= enterprise.price_minor - session.scalar(
        select(Plan.price_minor).where(Plan.sku == PLAN))


def test_paying_an_open_renewal_with_another_card(buyer_client, session, buyer, app):
    instance = _checkout(buyer_client, session, buyer,
                         card={"card_number": "4000 0000 0000 0341", "expiry": "12/30", "cvc": "123"})
    subscriptions.renew_due_subscriptions(session, now=instance.period_end, gateway=LocalCheckout(), config={})
    session.commit()
    instance = session.get(Instance, instance.id)
    assert instance.status == "past_due"
    order = subscriptions.open_renewal_order(session, instance=instance)
    assert "Pay with another card" in buyer_client.get(f"/account/instances/{instance.id}").get_data(as_text=True)

    declined = buyer_client.post(f"/account/instances/{instance.id}/renewal",
                                 data={"card_number": "4000 0000 0000 0002", "expiry": "12/30", "cvc": "123"})
    bad = buyer_client.post(f"/account/instances/{instance.id}/renewal",
                            data={"card_number": "4242 4242 4242 4241", "expiry": "12/30", "cvc": "123"})
    assert declined.status_code == 402 and bad.status_code == 400
    assert "Enter a valid card number." in bad.get_data(as_text=True)
    session.expire_all()
    assert (session.get(Order, order.id).status, session.get(Instance, instance.id).status) == ("pending", "past_due")

    paid = buyer_client.post(f"/account/instances/{instance.id}/renewal", data=dict(CARD, save_card="y"))

    assert paid.status_code == 303
    session.expire_all()
    instance = session.get(Instance, instance.id)
    assert (session.get(Order, order.id).status, instance.status, instance.payment_method.token.count("_p_")) == (
        "paid", "active", 1)


def test_the_renewal_command_renews_as_of_a_date(app, buyer_client, session, buyer):
    instance = _checkout(buyer_client, session, buyer)
    day = (instance.period_end + timedelta(days=1)).strftime("%Y-%m-%d")

    result = app.test_cli_runner().invoke(args=["renew-subscriptions", "--as-of", day])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"As of {day}: Renewed 1 subscription(s); 0 payment(s) failed, 0 suspended "
                                     "after the last retry; 0 ended at their period's end.")
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Order).where(Order.purpose == "renewal",
                                                                         Order.status == "paid")) == 1
    assert session.scalar(select(func.count()).select_from(Payment)) == 2


def test_the_renewal_command_with_a_date_is_refused_outside_development(make_app):
    # no other app context is pushed here: the command runs in the production app's own
    production = make_app(TESTING=False, APP_ENV="production")

    result = production.test_cli_runner().invoke(args=["renew-subscriptions", "--as-of", "2030-01-01"])

    assert result.exit_code == 2
    assert "runs only with APP_ENV=development" in result.output
    with production.app_context():
        from app.extensions import db

        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
