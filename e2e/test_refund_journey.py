"""A buyer pays for a plan; an operator finds the order in the Orders view and refunds it in full; the
plan's publisher sees the sale and its refund on the month's statement."""
import re
from datetime import datetime, timezone

from playwright.sync_api import Page, expect

from conftest import pay_with_test_card, sign_in, sign_up

PRODUCT = "Customer Support Agent"


def test_an_operator_refunds_an_order_and_the_sellers_statement_shows_it(page: Page, journey):
    with journey.step("a buyer pays for the Starter plan"):
        sign_up(page, "Rita Refund")
        page.goto("/p/customer-support-agent")
        page.get_by_role("region", name="Plans").get_by_role("button", name="Add Starter to cart").click()
        page.get_by_role("complementary", name="Order summary").get_by_role("link", name="Check out").click()
        pay_with_test_card(page)
        expect(page.get_by_text(re.compile(r"^Payment received: order DM-\w+ is paid and ready\.$"))).to_be_visible()
        number = re.search(r"DM-\w+", page.get_by_role("heading", level=1).inner_text()).group(0)

    origin = re.match(r"^https?://[^/]+", page.url).group(0)
    desk_context = page.context.browser.new_context(base_url=origin)
    seller_context = page.context.browser.new_context(base_url=origin)
    try:
        desk = desk_context.new_page()
        with journey.step("an operator finds the order", desk):
            sign_in(desk, "operator@example.com")
            expect(desk.get_by_text(re.compile(r"^Welcome back, "))).to_be_visible()
            desk.goto("/operator/")
            desk.get_by_role("navigation", name="Operator console").get_by_role("link", name="Orders").click()
            desk.get_by_role("searchbox", name="Search orders").fill(number)
            desk.get_by_role("main").get_by_role("button", name="Search", exact=True).click()
            desk.get_by_role("link", name=number).click()
            expect(desk.get_by_role("heading", level=1, name=f"Order {number}")).to_be_visible()

        with journey.step("and refunds the plan in full", desk):
            desk.get_by_label("Amount to refund").fill("29.00")
            desk.get_by_label("Reason").fill("Bought by mistake")
            desk.get_by_role("button", name=re.compile(rf"^Refund {PRODUCT}")).click()
            expect(desk.get_by_text("Refunded $29.00; the buyer was mailed.")).to_be_visible()
            expect(desk.get_by_text("Refunded in full.")).to_be_visible()
            refunds = desk.get_by_role("region", name="Refunds")
            expect(refunds.get_by_role("row").filter(has_text="Bought by mistake")).to_contain_text(
                "(subscription cancelled)")

        seller = seller_context.new_page()
        month = datetime.now(timezone.utc).strftime("%B %Y")
        with journey.step("the seller's statement shows the sale and the refund", seller):
            sign_in(seller, "seller@example.com")
            expect(seller.get_by_text(re.compile(r"^Welcome back, "))).to_be_visible()
            seller.goto("/seller/")
            seller.get_by_role("navigation", name="Seller area").get_by_role("link", name="Earnings").click()
            expect(seller.get_by_role("heading", level=1, name="Earnings")).to_be_visible()
            seller.get_by_role("link", name=f"Statement for {month}").click()
            expect(seller.get_by_role("heading", level=1, name=f"Statement for {month}")).to_be_visible()
            rows = seller.get_by_role("row").filter(has_text=number)
            expect(rows).to_have_count(2)
            expect(rows.filter(has_text="Refund:")).to_contain_text("$29.00")
    finally:
        desk_context.close()
        seller_context.close()
