"""A visitor tries an assistant free, then reviews it: the review appears on the product page for
everyone, labelled "Trial user", and the catalog card shows the rating."""
import re

from playwright.sync_api import Page, expect

from conftest import sign_up

PRODUCT = "Meeting Notes Summarizer"
SLUG = "meeting-notes-summarizer"
TITLE = "Minutes in a minute"


def test_a_trial_user_writes_a_review_that_appears_on_the_product_page(page: Page, journey, browser):
    with journey.step("sign up and start a free trial"):
        sign_up(page, "Rita Reviewer")
        page.goto(f"/p/{SLUG}")
        page.get_by_role("button", name="Try free for 7 days").click()
        expect(page.get_by_text(f"Your 7-day free trial of {PRODUCT} has started")).to_be_visible()

    with journey.step("the product page offers the review form"):
        page.goto(f"/p/{SLUG}")
        reviews = page.get_by_role("region", name="Reviews")
        expect(reviews.get_by_role("heading", name="Write a review")).to_be_visible()  # loaded by htmx
        reviews.get_by_label("5 stars").check()
        reviews.get_by_label("Title", exact=True).fill(TITLE)
        reviews.get_by_label("Your review").fill("It found every action item in our weekly meeting.")
        reviews.get_by_role("button", name="Publish review").click()

    with journey.step("the review is on the product page"):
        expect(page.get_by_text("Thank you: your review is on the page.")).to_be_visible()
        review = page.get_by_role("article", name=TITLE)
        expect(review).to_be_visible()
        expect(review).to_contain_text("Trial user")
        expect(review.get_by_role("img", name="5 out of 5 stars")).to_be_visible()
        expect(page.get_by_role("region", name="Reviews").get_by_text("1 review", exact=True)).to_be_visible()

    with journey.step("everyone sees it, and the card shows the rating"):
        visitor = browser.new_page(base_url=re.match(r"https?://[^/]+", page.url).group(0))
        visitor.goto(f"/p/{SLUG}")
        expect(visitor.get_by_role("article", name=TITLE)).to_be_visible()
        expect(visitor.get_by_role("region", name="Reviews").get_by_role(
            "link", name="Sign in to write a review")).to_be_visible()
        visitor.goto("/search?q=meeting")
        card = visitor.get_by_role("article", name=PRODUCT)
        expect(card).to_contain_text("(1 review)")
        visitor.close()
