"""A buyer subscribes with a saved card; the renewal runs as of a later date (the development command);
the renewal order is on the buyer's orders page with its own invoice; then the buyer cancels at the end
of the period and resumes."""
import os
import re
import subprocess
import sys
from datetime import date, timedelta

from playwright.sync_api import Page, expect

from conftest import ROOT, fact, open_account_menu, sign_up

PRODUCT = "Customer Support Agent"
PRICE = "$29.00"  # the Starter plan (demo data)


def renew_as_of(db_url: str, day: date) -> str:
    env = {**os.environ, "DATABASE_URL": db_url, "APP_ENV": "development",
           "SECRET_KEY": "e2e-secret-key-0123456789"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "renew-subscriptions", "--as-of",
                           day.isoformat()], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_buyer_subscribes_with_a_saved_card_is_renewed_and_cancels_at_period_end(page: Page, journey, e2e_db_url):
    with journey.step("sign up and put the Starter plan in the cart"):
        sign_up(page, "Sam Subscriber")
        page.goto("/p/customer-support-agent")
        page.get_by_role("region", name="Plans").get_by_role("button", name="Add Starter to cart").click()
        page.get_by_role("complementary", name="Order summary").get_by_role("link", name="Check out").click()

    with journey.step("pay with the test card, saved for renewals"):
        expect(page.get_by_role("heading", level=1, name="Checkout")).to_be_visible()
        page.get_by_role("button", name="Place order and continue to payment").click()
        expect(page.get_by_label("Save this card for renewals")).to_be_checked()
        page.get_by_label("Card number").fill("4242 4242 4242 4242")
        page.get_by_label("Expiry (MM/YY)").fill("12/39")
        page.get_by_label("Security code (CVC)").fill("123")
        page.get_by_role("button", name=re.compile(r"^Pay .* \(test mode\)$")).click()
        expect(page.get_by_text(re.compile(r"^Payment received: order DM-\w+ is paid and ready\.$"))).to_be_visible()

    with journey.step("My Agents shows the period and the next charge"):
        open_account_menu(page, "My Agents")
        agent = page.get_by_role("article", name=PRODUCT)
        expect(fact(agent, "Next charge")).to_have_text(re.compile(rf"^{re.escape(PRICE)} on \w{{3}} \d{{2}}, \d{{4}}$"))

    with journey.step("the renewal runs as of a date after the period's end"):
        said = renew_as_of(e2e_db_url, date.today() + timedelta(days=32))
        # the journeys share one database: other buyers' subscriptions may renew too; this buyer's is checked below
        assert re.search(r"Renewed [1-9]\d* subscription\(s\)", said), said

    with journey.step("the renewal order is on the orders page, paid"):
        page.goto("/account/orders")
        row = page.get_by_role("row").filter(has_text=re.compile(r"Starter plan, \w{3} \d+"))
        expect(row).to_have_count(1)
        expect(row).to_contain_text(PRICE)
        row.get_by_role("link", name=re.compile(r"^DM-")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("DM-")
        expect(page.get_by_role("region", name="Items")).to_contain_text(re.compile(r"Instance #\d+\s*Active"))

    with journey.step("the renewal has its own invoice, numbered after the first one"):
        order_url = page.url
        page.get_by_role("link", name=re.compile(r"^INV-\d{4}-\d{6}$")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile(r"INV-\d{4}-\d{6}"))
        expect(page.get_by_text(PRICE).first).to_be_visible()
        page.goto("/account/invoices")
        expect(page.get_by_role("link", name=re.compile(r"^INV-\d{4}-\d{6}$"))).to_have_count(2)
        page.goto(order_url)

    with journey.step("cancel at the end of the period, then resume"):
        page.get_by_role("region", name="Items").get_by_role("link", name=re.compile(r"^Instance #")).click()
        page.get_by_role("link", name="Cancel subscription").click()
        expect(page.get_by_role("heading", level=1, name=f"Cancel {PRODUCT}?")).to_be_visible()
        expect(page.locator("#cancel-now-refund")).to_contain_text("back")
        page.get_by_role("button", name="Cancel at the end of the period").click()
        expect(page.get_by_text(re.compile(rf"^{PRODUCT} runs until .* and then ends\."))).to_be_visible()
        subscription = page.get_by_role("region", name="Subscription")
        expect(fact(subscription, "Next charge")).to_have_text(re.compile(r"^None: it ends on "))
        subscription.get_by_role("button", name="Resume subscription").click()
        expect(page.get_by_text(re.compile(rf"^{PRODUCT} renews again on "))).to_be_visible()
        expect(fact(page.get_by_role("region", name="Subscription"), "Next charge")).to_contain_text(PRICE)
