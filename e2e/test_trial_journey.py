"""A visitor starts a free trial from a product page: signs up on the way, runs the assistant in the
console, and sees the trial credits go down."""
import re

from playwright.sync_api import Page, expect

from conftest import credits_badge, fact, run_in_console, sign_up

PRODUCT = "Meeting Notes Summarizer"
TRIAL_CREDITS = 30  # demo data: a 7-day trial with 30 credits
NOTES = ("We reviewed the Q3 roadmap. We decided to delay the mobile app until November.\n"
         "Maria will send the revised budget by Friday.\n"
         "Action: Tom to update the onboarding docs.")


def test_visitor_tries_an_assistant_free(page: Page, journey):
    with journey.step("the product page offers a free trial"):
        page.goto("/p/meeting-notes-summarizer")
        expect(page.get_by_role("heading", level=1, name=PRODUCT)).to_be_visible()
        expect(page.get_by_text(f"7-day free trial with {TRIAL_CREDITS} credits. No card needed.")).to_be_visible()
        page.get_by_role("button", name="Try free for 7 days").click()

    with journey.step("sign up on the way"):
        expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
        page.get_by_role("link", name="Create an account").click()
        sign_up(page, "Tom Trial", open_form=False)

    with journey.step("start the trial"):
        expect(page.get_by_role("heading", level=1, name=f"Try {PRODUCT} free")).to_be_visible()
        expect(page.get_by_role("listitem").filter(has_text=f"{TRIAL_CREDITS} credits to run it")).to_be_visible()
        page.get_by_role("button", name="Start my free trial").click()
        expect(page.get_by_text(
            f"Your 7-day free trial of {PRODUCT} has started with {TRIAL_CREDITS} credits. Try it below.")).to_be_visible()
        expect(page.get_by_role("heading", level=1, name=PRODUCT)).to_be_visible()
        expect(page.get_by_role("region", name="Run console")).to_contain_text(f"{TRIAL_CREDITS} available.")
        expect(credits_badge(page)).to_have_accessible_name(f"Credits {TRIAL_CREDITS}")

    with journey.step("run it in the console"):
        result, used = run_in_console(page, NOTES)
        expect(result).to_contain_text("Decisions:")
        expect(result).to_contain_text("We decided to delay the mobile app until November.")
        expect(result).to_contain_text("[Maria] Send the revised budget (due Friday)")
        expect(result).to_contain_text("[Tom] Update the onboarding docs")
        assert 1 <= used <= 11  # 1 per run + 1 per 1,000 characters, at most 11 on this plan

    left = TRIAL_CREDITS - used
    with journey.step("the trial credits went down"):
        expect(page.get_by_role("region", name="Run console")).to_contain_text(f"{left} available.")
        expect(credits_badge(page)).to_have_accessible_name(f"Credits {left}")
        page.reload()
        glance = page.get_by_role("region", name="At a glance")
        expect(glance).to_contain_text(re.compile(rf"Credits available\s*{left}\D"))
        expect(glance).to_contain_text(re.compile(rf"Credits used this period\s*{used}\D"))
        expect(glance).to_contain_text(re.compile(r"Trial\s*7 days left"))
        expect(fact(page.get_by_role("region", name="Plan and entitlements"), "May run now")).to_have_text("Yes")
