"""A visitor finds an offering with the keyboard alone: types in the header search box, waits for the
suggestions, moves down to one with the arrow key and opens it with Enter; Escape closes the list."""
import re

from playwright.sync_api import Page, expect

PRODUCT = "Customer Support Agent"


def test_search_suggestions_work_by_keyboard(page: Page, journey):
    box = page.get_by_role("combobox", name="Search the marketplace")
    suggestions = page.get_by_role("listbox", name="Search suggestions")

    with journey.step("type and see suggestions"):
        page.goto("/")
        box.press_sequentially("support", delay=30)
        expect(suggestions).to_be_visible()
        expect(box).to_have_attribute("aria-expanded", "true")
        expect(suggestions.get_by_role("option", name=re.compile(PRODUCT))).to_be_visible()
        expect(suggestions.get_by_role("option").last).to_have_text("Search for “support”")
        expect(page.get_by_role("status").filter(has_text="suggested")).to_have_text(
            re.compile(r"^\d+ offerings? suggested\. Use the arrow keys to choose\.$"))

    with journey.step("Escape closes the list and keeps the text"):
        box.press("Escape")
        expect(suggestions).to_be_hidden()
        expect(box).to_have_attribute("aria-expanded", "false")
        expect(box).to_have_value("support")

    with journey.step("arrow down to the offering"):
        box.press("ArrowDown")
        expect(suggestions).to_be_visible()
        first = suggestions.get_by_role("option").first
        expect(first).to_have_attribute("aria-selected", "true")
        expect(box).to_have_attribute("aria-activedescendant", "suggestion-0")
        options = suggestions.get_by_role("option")
        target = next(i for i in range(options.count()) if PRODUCT in options.nth(i).inner_text())
        for _ in range(target):
            box.press("ArrowDown")
        expect(options.nth(target)).to_have_attribute("aria-selected", "true")
        expect(box).to_be_focused()

    with journey.step("Enter opens it"):
        box.press("Enter")
        expect(page).to_have_url(re.compile(r"/p/customer-support-agent$"))
        expect(page.get_by_role("heading", level=1, name=PRODUCT)).to_be_visible()
