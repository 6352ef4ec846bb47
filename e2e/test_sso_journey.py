"""Single sign-on in the browser: a second app server with AUTH_BACKEND=oidc, against the Keycloak-shaped
OpenID provider of the SSO tests (node, on loopback). A member of the `sellers` group signs in on the
provider's login form and lands on the seller dashboard; signing out ends the provider's session too."""
import re

from playwright.sync_api import Page, expect

from tests.oidc_support import PASSWORDS


def test_seller_signs_in_through_the_provider_and_lands_on_the_seller_dashboard(
        page: Page, journey, sso_app, oidc_provider):
    with journey.step("a seller follows “Sell on Digitlify”"):
        page.goto(sso_app.url + "/")
        page.get_by_role("navigation", name="For builders").get_by_role("link", name="Sell on Digitlify").click()

    with journey.step("the provider asks them to sign in"):
        expect(page).to_have_url(re.compile(rf"^{re.escape(oidc_provider.issuer)}/interaction/"))
        expect(page.get_by_role("heading", level=1, name="Sign in to your account")).to_be_visible()
        page.get_by_label("Username or email").fill("sam")
        page.get_by_label("Password").fill(PASSWORDS["sam"])
        page.get_by_role("button", name="Sign In").click()

    with journey.step("they land on the seller dashboard"):
        expect(page).to_have_url(f"{sso_app.url}/seller/")
        expect(page.get_by_role("heading", level=1, name="Seller dashboard")).to_be_visible()
        expect(page.get_by_text("Welcome, Sam Seller.")).to_be_visible()
        expect(page.get_by_role("banner").get_by_label("Account menu for Sam Seller")).to_be_visible()

    with journey.step("signing out ends the provider's session too"):
        page.get_by_role("banner").get_by_label("Account menu for Sam Seller").click()
        page.get_by_role("banner").get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(oidc_provider.issuer)}/session/end"))
        page.get_by_role("button", name="Logout").click()
        expect(page).to_have_url(f"{sso_app.url}/")
        expect(page.get_by_role("banner").get_by_role("link", name="Sign in")).to_be_visible()

    with journey.step("the next sign-in asks for the password again"):
        page.get_by_role("navigation", name="For builders").get_by_role("link", name="Sell on Digitlify").click()
        expect(page.get_by_role("heading", level=1, name="Sign in to your account")).to_be_visible()
