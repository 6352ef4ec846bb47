"""A visitor signs up, an operator finds the confirmation mail in the Outbox, the visitor confirms
the address with its link, starts a free trial, and the trial-started mail is in the Outbox too."""
import re

from playwright.sync_api import Page, expect

from conftest import NEW_USER_PASSWORD, expect_mail_sent, mail_text, open_mail, sign_in, unique

PRODUCT = "Meeting Notes Summarizer"


def test_sign_up_confirm_by_mail_and_start_a_trial(page: Page, journey):
    name = "Mila Mail"
    email = f"{re.sub(r'[^a-z0-9]+', '.', unique(name).lower())}@example.com"
    with journey.step("sign up"):
        page.goto("/auth/signup")
        page.get_by_label("Full name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(NEW_USER_PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", level=1, name="Check your inbox")).to_be_visible()

    origin = re.match(r"^https?://[^/]+", page.url).group(0)
    operator_context = page.context.browser.new_context(base_url=origin)
    desk = operator_context.new_page()
    try:
        with journey.step("an operator opens the confirmation mail in the Outbox", desk):
            sign_in(desk, "operator@example.com")
            expect(desk.get_by_text("Welcome back, ")).to_be_visible()
            desk.goto("/operator/")
            desk.get_by_role("navigation", name="Operator console").get_by_role("link", name="Outbox").click()
            row = desk.get_by_role("row").filter(has_text=email)
            expect(row).to_contain_text("Confirm your email address")
            expect(row).to_contain_text("Sent")
            open_mail(desk, to=email, subject="Confirm your email address")
            text = mail_text(desk)
            assert f"Hello {name}," in text
            link = re.search(r"https?://\S+", text).group(0)
            expect(desk.frame_locator("iframe[title='The mail as HTML']").get_by_role("link", name="Confirm my email")) \
                .to_be_visible()

        with journey.step("confirm the address with the link, and sign in"):
            page.goto(link)
            page.get_by_role("button", name="Confirm my email").click()
            expect(page.get_by_text("Your email address is confirmed. Sign in to continue.")).to_be_visible()
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(NEW_USER_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text(f"Welcome back, {name}.")).to_be_visible()
            expect(page.get_by_role("region", name="Confirm your email")).to_have_count(0)

        with journey.step("the link works once"):
            page.goto(link)
            page.get_by_role("button", name="Confirm my email").click()
            expect(page.get_by_role("alert")).to_have_text(
                "This confirmation link was already used: your email address is confirmed.")

        with journey.step("start a free trial"):
            page.goto("/p/meeting-notes-summarizer")
            page.get_by_role("button", name="Try free for 7 days").click()  # signed in and confirmed: starts it
            expect(page.get_by_text(re.compile(rf"^Your 7-day free trial of {PRODUCT} has started"))).to_be_visible()

        with journey.step("the trial-started mail is in the Outbox", desk):
            open_mail(desk, to=email, subject=f"Your free trial of {PRODUCT} has started")
            expect_mail_sent(desk)
            text = mail_text(desk)
            assert f"Your free trial of {PRODUCT} has started with 30 credits." in text
            assert re.search(r"/account/instances/\d+", text)
    finally:
        operator_context.close()
