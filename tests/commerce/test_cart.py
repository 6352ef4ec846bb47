"""The cart: adding, changing and removing lines, prices from the database, tampering, merging."""
from sqlalchemy import func, select

from app.models import Cart, CartLine, OfferingStatus, Plan
from app.services import cart as carts
from tests.conftest import login
from tests.factories import make_user

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00 a month, 1,200 credits included
STARTER = "CUSTOMER-SUPPORT-AGENT-STARTER"  # $29.00
PACK = "CREDITS-500"  # $45.00 for 500 credits
HTMX = {"HX-Request": "true"}


def _lines(session):
    session.expire_all()
    return sorted((line.sku, line.quantity) for line in session.scalars(select(CartLine)))


def test_adding_a_plan_and_packs_shows_lines_and_totals_from_the_database(client, session, demo):
    # when
    first = client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    second = client.post("/cart/add", data={"sku": PACK, "quantity": "3"})
    page = client.get("/cart").get_data(as_text=True)

    # then
    assert first.status_code == 303 and first.headers["Location"] == "/cart"
    assert second.status_code == 303
    assert _lines(session) == [(PACK, 3), (PLAN, 1)]
    assert "Customer Support Agent · Pro plan" in page
    assert "$135.00" in page  # 3 × $45.00
    assert "$221.00" in page  # $86.00 + $135.00
    assert '4<span class="visually-hidden"> items</span>' in page


def test_a_price_in_the_form_is_ignored(client, session, demo):
    # when: the browser sends its own price fields
    client.post("/cart/add", data={"sku": PACK, "quantity": "1", "price": "1", "price_minor": "1",
                                   "unit_price_minor": "0", "total": "0"})
    page = client.get("/cart").get_data(as_text=True)

    # then
    assert _lines(session) == [(PACK, 1)]
    assert "$45.00" in page and "$0.01" not in page and "$0.00" not in page


def test_adding_the_same_pack_again_adds_up_to_the_limit(client, session, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "60"})

    ok = client.post("/cart/add", data={"sku": PACK, "quantity": "40"})
    over = client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    assert ok.status_code == 303
    assert over.status_code == 400
    assert "at most 100 per order" in over.get_data(as_text=True)
    assert _lines(session) == [(PACK, 100)]


def test_negative_zero_and_huge_quantities_change_nothing(client, session, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})

    responses = [client.post("/cart/add", data={"sku": PACK, "quantity": q}) for q in ("-5", "0", "101", "1000000", "2.5", "lots")]

    assert [r.status_code for r in responses] == [400, 400, 400, 400, 400, 400]
    assert "Choose between 1 and 100 credit packs." in responses[0].get_data(as_text=True)
    assert _lines(session) == [(PACK, 2)]


def test_a_plan_is_bought_once_quantity_above_one_is_refused(client, session, demo):
    response = client.post("/cart/add", data={"sku": PLAN, "quantity": "2"})

    assert response.status_code == 400
    assert "once per organization" in response.get_data(as_text=True)
    assert _lines(session) == []


def test_a_second_plan_of_the_same_offering_replaces_the_first(client, session, demo):
    client.post("/cart/add", data={"sku": STARTER, "quantity": "1"})

    response = client.post("/cart/add", data={"sku": PLAN, "quantity": "1"}, follow_redirects=True)

    assert "Switched to Customer Support Agent · Pro plan" in response.get_data(as_text=True)
    assert _lines(session) == [(PLAN, 1)]


def test_unknown_and_unpublished_skus_are_refused_with_a_clear_message(client, session, demo):
    plan = session.scalar(select(Plan).where(Plan.sku == PLAN))
    plan.offering.status = OfferingStatus.ARCHIVED.value
    session.commit()

    unknown = client.post("/cart/add", data={"sku": "NO-SUCH-SKU", "quantity": "1"})
    unpublished = client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})

    for response in (unknown, unpublished):
        assert response.status_code == 400
        assert "That product is not for sale." in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(CartLine)) == 0


def test_update_and_remove_a_line(client, session, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    pack_line = session.scalar(select(CartLine).where(CartLine.sku == PACK))
    plan_line = session.scalar(select(CartLine).where(CartLine.sku == PLAN))

    updated = client.post(f"/cart/lines/{pack_line.id}", data={"quantity": "7"})
    plan_two = client.post(f"/cart/lines/{plan_line.id}", data={"quantity": "2"})
    removed = client.post(f"/cart/lines/{plan_line.id}/remove")

    assert updated.status_code == 303 and removed.status_code == 303
    assert plan_two.status_code == 400
    assert _lines(session) == [(PACK, 7)]


def test_htmx_update_returns_the_lines_block_and_fires_cart_changed(client, session, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    line = session.scalar(select(CartLine))

    response = client.post(f"/cart/lines/{line.id}", data={"quantity": "4"}, headers=HTMX)

    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "cart-changed"
    assert "HX-Request" in response.headers["Vary"]
    assert "<html" not in body and "$180.00" in body
    assert _lines(session) == [(PACK, 4)]


def test_htmx_add_answers_a_notice_and_a_refusal_without_a_4xx(client, session, demo):
    added = client.post("/cart/add", data={"sku": PACK, "quantity": "1"}, headers=HTMX)
    refused = client.post("/cart/add", data={"sku": "NOPE", "quantity": "1"}, headers=HTMX)

    assert added.status_code == 200 and added.headers["HX-Trigger"] == "cart-changed"
    assert "Added 1 × Credit pack · 500 credits to your cart." in added.get_data(as_text=True)
    assert refused.status_code == 200 and "HX-Trigger" not in refused.headers
    assert "That product is not for sale." in refused.get_data(as_text=True)
    assert _lines(session) == [(PACK, 1)]


def test_cart_count_block_is_the_header_fragment(client, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "3"})

    response = client.get("/cart/count", headers=HTMX)

    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == 'Cart <span class="pill">3<span class="visually-hidden"> items</span></span>'


def test_another_users_cart_token_opens_nothing(app, client, session, demo, buyer):
    # given: the buyer's own cart holds a pack
    buyer_client = app.test_client()
    login(buyer_client, buyer)
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "5"})
    buyer_cart = session.scalar(select(Cart).where(Cart.user_id == buyer.id))
    line = buyer_cart.lines[0]

    # when: an anonymous visitor puts that cart's token in their session and tries to use it
    with client.session_transaction() as s:
        s["cart_token"] = buyer_cart.token
    page = client.get("/cart").get_data(as_text=True)
    update = client.post(f"/cart/lines/{line.id}", data={"quantity": "1"})
    remove = client.post(f"/cart/lines/{line.id}/remove")
    count = client.get("/cart/count").get_data(as_text=True)

    # then
    assert "Your cart is empty" in page
    assert update.status_code == 404 and remove.status_code == 404
    assert '0<span class="visually-hidden"> items</span>' in count
    session.expire_all()
    assert [(l.sku, l.quantity) for l in session.get(Cart, buyer_cart.id).lines] == [(PACK, 5)]


def test_a_line_of_another_cart_cannot_be_changed(app, client, session, demo):
    # given: two anonymous visitors with a cart each
    other = app.test_client()
    other.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    others_line = session.scalar(select(CartLine).where(CartLine.sku == PACK))

    response = client.post(f"/cart/lines/{others_line.id}", data={"quantity": "9"})
    removal = client.post(f"/cart/lines/{others_line.id}/remove")

    assert response.status_code == 404 and removal.status_code == 404
    assert _lines(session) == [(PACK, 2), (PLAN, 1)]


def test_the_anonymous_cart_merges_into_the_users_cart_at_sign_in(app, client, session, demo, buyer):
    # given: the buyer's account cart has 10 packs and the Starter plan
    account = app.test_client()
    login(account, buyer)
    account.post("/cart/add", data={"sku": PACK, "quantity": "10"})
    account.post("/cart/add", data={"sku": STARTER, "quantity": "1"})
    # and, signed out, the same person adds 95 packs and the Pro plan
    client.post("/cart/add", data={"sku": PACK, "quantity": "95"})
    client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})

    # when
    response = client.post("/auth/login", data={"email": "buyer@example.com", "password": "demo-password-2026"})

    # then: one cart; packs capped at 100; the newer plan choice wins
    assert response.status_code == 302
    carts_left = list(session.scalars(select(Cart)))
    assert len(carts_left) == 1 and carts_left[0].user_id == buyer.id
    assert _lines(session) == [(PACK, 100), (PLAN, 1)]
    with client.session_transaction() as s:
        assert "cart_token" not in s
    assert '101<span class="visually-hidden"> items</span>' in client.get("/cart").get_data(as_text=True)


def test_an_anonymous_cart_becomes_the_users_cart_when_they_have_none(client, session, demo):
    user = make_user(session, email="newbuyer@example.com")
    session.commit()
    client.post("/cart/add", data={"sku": PACK, "quantity": "2"})

    client.post("/auth/login", data={"email": "newbuyer@example.com", "password": "correct-horse-battery"})

    cart = session.scalar(select(Cart))
    assert cart.user_id == user.id
    assert _lines(session) == [(PACK, 2)]


def test_count_items_reads_without_creating_a_cart(session, demo):
    assert carts.count_items(session, user=None, token="unknown-token") == 0
    assert session.scalar(select(func.count()).select_from(Cart)) == 0
