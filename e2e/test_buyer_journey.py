"""A new buyer finds the Customer Support Agent through search and filters, buys its Starter plan with
the test card, runs it from the console and sees the credits the run used, then reviews the order."""
import re

from playwright.sync_api import Page, expect

from conftest import credits_badge, fact, open_account_menu, pay_with_test_card, run_in_console, sign_up

PRODUCT = "Customer Support Agent"
INCLUDED_CREDITS = 200  # the Starter plan's included credits (demo data)


def test_buyer_searches_buys_runs_and_reviews_the_order(page: Page, journey):
    with journey.step("sign up"):
        sign_up(page, "Ada Buyer")
        expect(credits_badge(page)).to_have_accessible_name("Credits 0")

    with journey.step("browse the catalog"):
        page.get_by_role("link", name="See everything").click()
        expect(page.get_by_role("heading", level=1, name="Browse the catalog")).to_be_visible()
        expect(page.get_by_role("article", name=PRODUCT)).to_be_visible()

    results = page.get_by_role("region", name=re.compile(r"^\d+ results?$"))
    with journey.step("search"):
        page.get_by_role("combobox", name="Search the marketplace").fill("tickets")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page).to_have_url(re.compile(r"/search\?q=tickets$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Results for “tickets”")
        expect(results.get_by_role("article", name=PRODUCT)).to_be_visible()
        expect(results.get_by_role("article", name="Ticket Triage Automation")).to_be_visible()

    with journey.step("filter by category, updated in place"):
        page.evaluate("window.journeySameDocument = true")  # a full page load would forget it
        with page.expect_response(lambda r: "/search?" in r.url and r.request.headers.get("hx-request") == "true") \
                as answer:
            page.get_by_role("group", name="Category").get_by_role("checkbox", name="Agents").check()
        assert answer.value.status == 200
        expect(page).to_have_url(re.compile(r"/search\?q=tickets&category=agents(&|$)"))
        expect(page.get_by_role("link", name="Remove filter Category: Agents")).to_be_visible()
        expect(results.get_by_role("article", name="Ticket Triage Automation")).to_have_count(0)
        expect(results.get_by_role("article", name=PRODUCT)).to_be_visible()
        expect(page.get_by_role("group", name="Category").get_by_role("checkbox", name="Agents")).to_be_checked()
        assert page.evaluate("window.journeySameDocument") is True

    with journey.step("product detail"):
        results.get_by_role("link", name=PRODUCT).click()
        expect(page).to_have_url(re.compile(r"/p/customer-support-agent$"))
        expect(page.get_by_role("heading", level=1, name=PRODUCT)).to_be_visible()
        plans = page.get_by_role("region", name="Plans")
        expect(plans.get_by_role("heading", level=3)).to_have_text(["Starter", "Pro", "Enterprise"])

    with journey.step("add the Starter plan to the cart"):
        plans.get_by_role("button", name="Add Starter to cart").click()
        expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()
        expect(page.get_by_text(f"Added {PRODUCT} · Starter plan to your cart.")).to_be_visible()
        expect(page.get_by_role("banner").get_by_role("link", name=re.compile(r"^Cart"))).to_have_text("Cart 1 item")
        summary = page.get_by_role("complementary", name="Order summary")
        expect(fact(summary, "Total")).to_have_text("$29.00")

    with journey.step("check out and pay with the test card"):
        summary.get_by_role("link", name="Check out").click()
        pay_with_test_card(page)
        expect(page.get_by_text(re.compile(r"^Payment received: order DM-\w+ is paid and ready\.$"))).to_be_visible()

    with journey.step("the order provisioned an instance"):
        order_number = re.search(r"DM-\w+", page.get_by_role("heading", level=1).inner_text()).group(0)
        line = page.get_by_role("region", name="Items").get_by_role("row", name=re.compile(PRODUCT))
        expect(line).to_contain_text(re.compile(r"Instance #\d+\s*Active"))
        expect(line).to_contain_text(f"+{INCLUDED_CREDITS} credits")
        expect(credits_badge(page)).to_have_accessible_name(f"Credits {INCLUDED_CREDITS}")

    with journey.step("My Agents lists it"):
        open_account_menu(page, "My Agents")
        expect(page.get_by_role("heading", level=1, name="My Agents")).to_be_visible()
        agent = page.get_by_role("article", name=PRODUCT)
        expect(agent).to_contain_text("Starter plan")
        expect(fact(agent, "Runs this period")).to_have_text("0 of 300")

    with journey.step("run the agent in the console"):
        agent.get_by_role("link", name=f"Open console for {PRODUCT}").click()
        console = page.get_by_role("region", name="Run console")
        expect(console).to_contain_text(f"{INCLUDED_CREDITS} available.")
        result, used = run_in_console(page, "How do I reset my password?")
        expect(result).to_contain_text("Go to Settings > Security and choose 'Reset password'.")
        expect(result).to_contain_text("Source: FAQ — “How do I reset my password?”")
        assert 2 <= used <= 12  # 2 per run + 1 per 1,000 characters, at most 12 on this plan

    balance = INCLUDED_CREDITS - used
    with journey.step("the badge and the console show the lower balance"):
        expect(console).to_contain_text(f"{balance} available.")
        expect(credits_badge(page)).to_have_accessible_name(f"Credits {balance}")
        runs = page.get_by_role("region", name="Last runs")
        expect(runs.get_by_role("row")).to_have_count(2)
        expect(runs.get_by_role("row").nth(1)).to_contain_text("succeeded")

    with journey.step("billing shows the balance, the usage and the run in the ledger"):
        credits_badge(page).click()
        expect(page.get_by_role("heading", level=1, name="Billing & Credits")).to_be_visible()
        expect(page.get_by_role("region", name="Wallet")).to_contain_text(re.compile(rf"Balance\s*{balance}\D"))
        expect(page.get_by_role("region", name="Credits used per day")).to_contain_text(
            f"Last 30 days · {used} credit")
        newest = page.get_by_role("table", name="Ledger entries, newest first").get_by_role("row").nth(1)
        expect(newest).to_contain_text(re.compile(rf"Spent\s*Run #\d+ — {used} credits?"))
        expect(newest).to_contain_text(PRODUCT)
        expect(newest).to_contain_text(f"−{used}")

    with journey.step("order detail"):
        page.get_by_role("link", name="Orders", exact=True).click()
        page.get_by_role("link", name=order_number).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Order {order_number}")
        payment = page.get_by_role("region", name="Payment")
        expect(fact(payment, "Status")).to_have_text("Paid")
        expect(payment).to_contain_text("card ending 4242")
        expect(page.get_by_role("region", name="Items").get_by_role("link", name=re.compile(r"^Instance #\d+$"))) \
            .to_be_visible()
