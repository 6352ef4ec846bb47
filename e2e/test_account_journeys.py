"""A new visitor signs up, signs in before confirming the email, signs out and signs back in."""
import re

from playwright.sync_api import Page, expect

from conftest import sign_in, unique


def test_visitor_signs_up_then_signs_in_again(page: Page, journey):
    with journey.step("home lists the catalog"):
        page.goto("/")
        expect(page.get_by_role("heading", name="Customer Support Agent")).to_be_visible()
    email = f"{unique('grace').replace(' ', '.')}@example.com"
    with journey.step("create an account"):
        page.get_by_role("link", name="Create account").click()
        page.get_by_label("Full name").fill("Grace Hopper")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("compilers-are-fun")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", level=1, name="Check your inbox")).to_be_visible()
        expect(page.get_by_text(f"We sent a mail to {email}.")).to_be_visible()
    with journey.step("sign in before confirming the email: the banner asks for it"):
        sign_in(page, email, "compilers-are-fun")
        expect(page.get_by_role("region", name="Confirm your email")).to_contain_text(
            "before you start a free trial or buy")
    with journey.step("sign out"):
        page.get_by_label("Account menu for Grace Hopper").click()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    with journey.step("wrong password is refused"):
        sign_in(page, email, "not-the-password")
        expect(page.get_by_text("Email or password is not right.")).to_be_visible()
    with journey.step("sign in again"):
        sign_in(page, email, "compilers-are-fun")
        expect(page.get_by_label("Account menu for Grace Hopper")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/$"))
