"""Checkout, the test-mode payment, and the order pages."""
import html
import re

from sqlalchemy import func, select

from app.models import (
    AuditEvent, CartLine, Instance, LedgerEntry, MemberRole, Membership, Order, OrderStatus, Payment, Plan, Wallet,
)
from app.services import identity, instances
from tests.conftest import login
from tests.factories import make_org, make_user

PLAN = "CUSTOMER-SUPPORT-AGENT-PRO"  # $86.00, 1,200 credits included
PACK = "CREDITS-500"  # $45.00, 500 credits
GOOD_CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


def _count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _personal(session, user):
    return identity.ensure_personal_organization(session, user=user)


def _place(client, session, user, *, organization_id=None, email=None):
    org_id = organization_id or _personal(session, user).id
    return client.post("/checkout", data={"email": email or user.email, "organization_id": str(org_id)})


def test_checkout_requires_sign_in(client, demo):
    client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = client.get("/checkout")

    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/checkout"


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(buyer_client, demo):
    response = buyer_client.get("/checkout")

    assert response.status_code == 303 and response.headers["Location"] == "/cart"


def test_checkout_page_reviews_lines_and_offers_only_owned_or_administered_orgs(buyer_client, session, buyer):
    # given: the buyer owns a team, administers another and is a plain member of a third
    owned = make_org(session, owner=buyer, name="Owned Team")
    other_owner = make_user(session)
    administered = make_org(session, owner=other_owner, name="Administered Team")
    member_only = make_org(session, owner=other_owner, name="Member Only Team")
    session.add(Membership(user_id=buyer.id, organization_id=administered.id, role=MemberRole.ADMIN.value))
    session.add(Membership(user_id=buyer.id, organization_id=member_only.id, role=MemberRole.MEMBER.value))
    session.commit()
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})

    page = buyer_client.get("/checkout").get_data(as_text=True)

    select = re.search(r'<select[^>]*id="organization_id"[^>]*>(.*?)</select>', page, re.S).group(1)
    options = [html.unescape(o) for o in re.findall(r"<option[^>]*>([^<]+)</option>", select)]
    assert options == ["Bea Buyer's workspace (personal)", "Administered Team", "Owned Team"]
    assert 'value="buyer@example.com"' in page
    assert "Customer Support Agent · Pro plan" in page and "$86.00" in page
    assert owned.id != member_only.id


def test_placing_an_order_for_a_member_only_org_is_refused(buyer_client, session, buyer):
    other_owner = make_user(session)
    member_only = make_org(session, owner=other_owner, name="Member Only Team")
    session.add(Membership(user_id=buyer.id, organization_id=member_only.id, role=MemberRole.MEMBER.value))
    session.commit()
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})

    response = _place(buyer_client, session, buyer, organization_id=member_only.id)

    assert response.status_code == 400
    assert _count(session, Order) == 0
    assert _count(session, CartLine) == 1


def test_placing_an_order_prices_it_from_the_database_and_empties_the_cart(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "2"})

    response = buyer_client.post("/checkout", data={
        "email": "Receipts@Example.com", "organization_id": str(_personal(session, buyer).id),
        "total_minor": "1", "price": "1",
    })

    order = session.scalar(select(Order))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/checkout/orders/{order.id}/pay"
    assert (order.status, order.total_minor, order.currency, order.email, order.backend) == (
        "pending", 8600 + 2 * 4500, "USD", "receipts@example.com", "local")
    assert [(l.sku, l.kind, l.quantity, l.unit_price_minor, l.total_minor) for l in order.lines] == [
        (PLAN, "plan", 1, 8600, 8600), (PACK, "credit_pack", 2, 4500, 9000)]
    assert _count(session, CartLine) == 0
    assert _count(session, Instance) == 0


def test_buying_a_plan_the_org_already_has_active_is_refused(buyer_client, session, buyer):
    org = _personal(session, buyer)
    plan = session.scalar(select(Plan).where(Plan.sku == PLAN))
    instances.create_instance(session, organization=org, plan=plan)
    session.commit()
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})

    response = _place(buyer_client, session, buyer)

    assert response.status_code == 400
    assert "already has an active Customer Support Agent · Pro plan" in response.get_data(as_text=True)
    assert _count(session, Order) == 0
    assert _count(session, CartLine) == 1


def test_a_plan_unpublished_after_it_was_added_blocks_checkout(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    session.scalar(select(Plan).where(Plan.sku == PLAN)).offering.status = "archived"
    session.commit()

    response = _place(buyer_client, session, buyer)

    assert response.status_code == 400
    assert "no longer for sale (CUSTOMER-SUPPORT-AGENT-PRO)" in response.get_data(as_text=True)
    assert _count(session, Order) == 0


def test_test_mode_payment_page_is_clearly_labelled(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]

    page = buyer_client.get(location).get_data(as_text=True)

    assert "TEST MODE" in page
    assert "4242 4242 4242 4242" in page and "4000 0000 0000 0002" in page
    assert "Pay $45.00 (test mode)" in page
    for label in ("Card number", "Expiry (MM/YY)", "Security code (CVC)"):
        assert f">{label}</label>" in page


def test_paying_with_the_success_card_marks_paid_and_provisions(buyer_client, session, buyer):
    # given
    org = _personal(session, buyer)
    wallet = session.scalar(select(Wallet).where(Wallet.organization_id == org.id))
    balance_before = wallet.balance
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "2"})
    location = _place(buyer_client, session, buyer).headers["Location"]

    # when
    response = buyer_client.post(location, data=GOOD_CARD)

    # then
    order = session.scalar(select(Order))
    assert response.status_code == 303 and response.headers["Location"] == f"/account/orders/{order.id}"
    assert order.status == OrderStatus.PAID.value and order.paid_at is not None and order.provisioned_at is not None
    [instance] = session.scalars(select(Instance)).all()
    plan_line, pack_line = order.lines
    assert (instance.organization_id, instance.plan.sku, instance.status, instance.source_order_line_id) == (
        org.id, PLAN, "active", plan_line.id)
    session.refresh(wallet)
    assert wallet.balance == balance_before + 1200 + 1000
    entries = {e.idempotency_key: (e.amount, e.instance_id) for e in session.scalars(
        select(LedgerEntry).where(LedgerEntry.idempotency_key.like("order-line:%")))}
    assert entries == {f"order-line:{plan_line.id}:plan-credits": (1200, instance.id),
                       f"order-line:{pack_line.id}:credits": (1000, None)}
    [payment] = session.scalars(select(Payment)).all()
    assert (payment.status, payment.card_last4, payment.amount_minor) == ("succeeded", "4242", 17600)
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"order.placed", "order.paid", "order.provisioned", "instance.created", "credits.purchased"} <= actions


def test_a_declined_card_leaves_the_order_unpaid_and_provisions_nothing(buyer_client, session, buyer):
    org = _personal(session, buyer)
    balance_before = session.scalar(select(Wallet.balance).where(Wallet.organization_id == org.id))
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]

    response = buyer_client.post(location, data={**GOOD_CARD, "card_number": "4000 0000 0000 0002"})

    assert response.status_code == 402
    assert "Your card was declined." in response.get_data(as_text=True)
    order = session.scalar(select(Order))
    assert (order.status, order.paid_at, order.provisioned_at) == ("pending", None, None)
    assert _count(session, Instance) == 0
    assert session.scalar(select(Wallet.balance).where(Wallet.organization_id == org.id)) == balance_before
    assert [(p.status, p.card_last4) for p in session.scalars(select(Payment))] == [("declined", "0002")]


def test_other_valid_numbers_and_malformed_cards_are_refused(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]

    other_card = buyer_client.post(location, data={**GOOD_CARD, "card_number": "5555 5555 5555 4444"})
    bad_luhn = buyer_client.post(location, data={**GOOD_CARD, "card_number": "4242 4242 4242 4241"})
    expired = buyer_client.post(location, data={**GOOD_CARD, "expiry": "01/20"})
    bad_month = buyer_client.post(location, data={**GOOD_CARD, "expiry": "13/30"})
    bad_cvc = buyer_client.post(location, data={**GOOD_CARD, "cvc": "12a"})

    assert other_card.status_code == 402
    assert "not accepted in test mode" in other_card.get_data(as_text=True)
    assert bad_luhn.status_code == 400 and "Enter a valid card number." in bad_luhn.get_data(as_text=True)
    assert expired.status_code == 400 and "This card has expired." in expired.get_data(as_text=True)
    assert bad_month.status_code == 400 and "between 01 and 12" in bad_month.get_data(as_text=True)
    assert bad_cvc.status_code == 400 and "3 or 4 digit security code" in bad_cvc.get_data(as_text=True)
    order = session.scalar(select(Order))
    assert order.status == "pending"
    assert [p.status for p in session.scalars(select(Payment))] == ["declined"]
    assert _count(session, LedgerEntry, LedgerEntry.idempotency_key.like("order-line:%")) == 0


def test_a_paid_order_cannot_be_paid_again(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]
    buyer_client.post(location, data=GOOD_CARD)

    again = buyer_client.post(location, data=GOOD_CARD)

    assert again.status_code == 303
    assert _count(session, Payment) == 1
    assert _count(session, LedgerEntry, LedgerEntry.idempotency_key.like("order-line:%")) == 1


def test_orders_list_and_detail_show_what_the_order_provisioned(buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]
    buyer_client.post(location, data=GOOD_CARD)
    order = session.scalar(select(Order))
    instance = session.scalar(select(Instance))

    listing = buyer_client.get("/account/orders").get_data(as_text=True)
    detail = buyer_client.get(f"/account/orders/{order.id}").get_data(as_text=True)

    assert order.number in listing and "$86.00" in listing and "Paid" in listing
    assert f"Instance #{instance.id}" in detail
    assert "+1,200 credits" in detail
    assert "card ending 4242" in detail


def test_another_users_order_is_not_found(app, buyer_client, session, buyer):
    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    location = _place(buyer_client, session, buyer).headers["Location"]
    order = session.scalar(select(Order))
    stranger = make_user(session)
    session.commit()
    other = app.test_client()
    login(other, stranger)

    detail = other.get(f"/account/orders/{order.id}")
    pay = other.post(location, data=GOOD_CARD)
    listing = other.get("/account/orders").get_data(as_text=True)

    assert detail.status_code == 404 and pay.status_code == 404
    assert order.number not in listing
    assert session.scalar(select(Order.status)) == "pending"
    assert _count(session, Payment) == 0


def test_a_second_order_for_a_plan_bought_meanwhile_is_not_charged(buyer_client, session, buyer):
    # given: two orders for the same plan, placed in two tabs before either was paid
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    first = _place(buyer_client, session, buyer).headers["Location"]
    buyer_client.post("/cart/add", data={"sku": PLAN, "quantity": "1"})
    second = _place(buyer_client, session, buyer).headers["Location"]
    buyer_client.post(first, data=GOOD_CARD)

    # when
    response = buyer_client.post(second, data=GOOD_CARD)

    # then
    assert response.status_code == 400
    assert "already has an active Customer Support Agent · Pro plan" in response.get_data(as_text=True)
    assert [o.status for o in session.scalars(select(Order).order_by(Order.id))] == ["paid", "pending"]
    assert _count(session, Instance) == 1 and _count(session, Payment) == 1


def test_an_order_waiting_for_the_store_refreshes_itself_until_it_is_delivered(buyer_client, session, buyer):
    from app.services import provisioning

    buyer_client.post("/cart/add", data={"sku": PACK, "quantity": "1"})
    _place(buyer_client, session, buyer)
    order = session.scalar(select(Order))
    local_page = buyer_client.get(f"/account/orders/{order.id}").get_data(as_text=True)
    order.backend = "saleor"  # as an order paid through the store: its payment is confirmed by a webhook
    session.commit()
    htmx = {"HX-Request": "true"}

    waiting = buyer_client.get(f"/account/orders/{order.id}", headers=htmx)
    order.status = "paid"
    provisioning.handle_order_paid(session, order=order, actor_label="test")
    session.commit()
    delivered = buyer_client.get(f"/account/orders/{order.id}", headers=htmx).get_data(as_text=True)

    assert 'hx-trigger="every 5s"' not in local_page  # a local order waits for the buyer's own payment
    assert "HX-Request" in waiting.headers["Vary"]
    assert f'<div id="order-live" hx-get="/account/orders/{order.id}" hx-trigger="every 5s"' in waiting.get_data(as_text=True)
    assert "<html" not in waiting.get_data(as_text=True) and "confirming the payment" in waiting.get_data(as_text=True)
    assert 'hx-trigger' not in delivered and "+500 credits" in delivered and "<html" not in delivered
