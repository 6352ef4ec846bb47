"""Double submits: one cart state gives one order, and a second payment of an order lands on the paid order."""
import threading
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adapters.commerce.checkout import get_checkout
from app.models import CartLine, Instance, Order, Payment
from app.services import cart as carts
from app.services import identity, orders, payments
from tests.conftest import login

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00, 1,200 credits included
PACK = "CREDITS-500"
GOOD_CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


def _count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _checkout_form(session, user):
    org = identity.ensure_personal_organization(session, user=user)
    return {"email": user.email, "organization_id": str(org.id)}


def _place_one(session, buyer):
    cart = carts.get_or_create_cart(session, user=buyer, token=None)
    carts.add_to_cart(session, cart=cart, sku=PLAN, quantity=1)
    order = orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email,
                               backend="local")
    session.commit()
    return cart, order


def test_a_repeated_checkout_lands_on_the_order_the_cart_became(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    form = _checkout_form(session, buyer)
    first = buyer_client.post("/checkout", data=form)

    second = buyer_client.post("/checkout", data=form)

    order = session.scalar(select(Order))
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"] == f"/checkout/orders/{order.id}/pay"
    assert _count(session, Order) == 1
    page = buyer_client.get(second.headers["Location"]).get_data(as_text=True)
    assert f"Order {order.number} is placed and waiting for your payment." in page


def test_after_the_cart_changes_a_new_checkout_is_a_new_order(buyer_client, session, buyer):
    form = _checkout_form(session, buyer)
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    buyer_client.post("/checkout", data=form)
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    again = buyer_client.post("/checkout", data=form)

    newest = session.scalars(select(Order).order_by(Order.id.desc())).first()
    assert again.status_code == 303 and again.headers["Location"] == f"/checkout/orders/{newest.id}/pay"
    assert _count(session, Order) == 2


def test_a_checkout_of_a_cart_state_already_ordered_gets_that_order(session, buyer):
    # given: an order was placed from the cart at some revision, and the same state is submitted again
    # (as a parallel request that read the cart before the first one emptied it would)
    cart, order = _place_one(session, buyer)
    session.add(CartLine(cart_id=cart.id, sku=PLAN, quantity=1))
    cart.revision = order.cart_revision
    session.commit()

    with pytest.raises(orders.AlreadyPlaced) as caught:
        orders.place_order(session, user=buyer, cart=cart, organization_id=None, email=buyer.email, backend="local")

    assert caught.value.order.id == order.id
    session.rollback()
    assert _count(session, Order) == 1


def test_the_database_refuses_two_orders_for_one_cart_state(session, buyer):
    cart, order = _place_one(session, buyer)

    session.add(Order(number="DM-TWIN", user_id=buyer.id, organization_id=order.organization_id, email=buyer.email,
                      total_minor=0, currency="USD", backend="local", cart_id=cart.id,
                      cart_revision=order.cart_revision))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_a_payment_that_finds_the_order_paid_charges_nothing(app, session, buyer):
    # given: this request loaded the order while it was pending; another one paid it meanwhile
    _, order = _place_one(session, buyer)
    with Session(session.get_bind()) as other:
        payments.pay_order(other, order=other.get(Order, order.id), card=payments.CardDetails("4242424242424242",
                           "12/39", "123"), gateway=get_checkout("local"), actor=other.get(type(buyer), buyer.id),
                           today=date(2026, 12, 6))
        other.commit()

    with pytest.raises(payments.OrderAlreadyPaid):
        payments.pay_order(session, order=order, card=payments.CardDetails("4242424242424242", "12/39", "123"),
                           gateway=get_checkout("local"), actor=buyer, today=date(2026, 12, 6))

    session.rollback()
    assert _count(session, Payment) == 1
    assert _count(session, Instance) == 1


def test_a_pay_click_on_a_paid_order_lands_on_the_order_page(buyer_client, session, buyer):
    _, order = _place_one(session, buyer)
    buyer_client.post(f"/checkout/orders/{order.id}/pay", data=GOOD_CARD)

    again = buyer_client.post(f"/checkout/orders/{order.id}/pay", data=GOOD_CARD)

    assert again.status_code == 303 and again.headers["Location"] == f"/account/orders/{order.id}"


# --- real races (PostgreSQL) ------------------------------------------------------------------

def _in_parallel(app, user, requests_: list) -> list:
    """Send each (path, data) from its own thread and client, all released at the same moment."""
    barrier = threading.Barrier(len(requests_))
    results = [None] * len(requests_)
    clients = []
    for _ in requests_:  # signed in here: the user object belongs to this thread's session
        client = app.test_client()
        login(client, user)
        clients.append(client)

    def worker(i, path, data):
        client = clients[i]
        barrier.wait()
        response = client.post(path, data=data)
        results[i] = (response.status_code, response.headers.get("Location"))

    threads = [threading.Thread(target=worker, args=(i, p, d)) for i, (p, d) in enumerate(requests_)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.postgres_only
def test_ten_parallel_checkouts_of_one_cart_make_one_order(app, buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "3"})
    form = _checkout_form(session, buyer)
    session.commit()

    results = _in_parallel(app, buyer, [("/checkout", form)] * 10)

    order = session.scalar(select(Order))
    assert _count(session, Order) == 1
    assert results == [(303, f"/checkout/orders/{order.id}/pay")] * 10
    assert [(line.sku, line.quantity) for line in order.lines] == [(PLAN, 1), (PACK, 3)]
    assert _count(session, CartLine) == 0


@pytest.mark.postgres_only
def test_ten_parallel_pay_clicks_charge_once_and_all_land_on_the_paid_order(app, session, buyer):
    _, order = _place_one(session, buyer)

    results = _in_parallel(app, buyer, [(f"/checkout/orders/{order.id}/pay", GOOD_CARD)] * 10)

    assert results == [(303, f"/account/orders/{order.id}")] * 10
    assert _count(session, Payment) == 1
    assert _count(session, Instance) == 1
    session.expire_all()
    assert session.get(Order, order.id).status == "paid"
