"""A trial user watches a run's output stream into the console, continues the conversation, stops a
second run midway and sees what it was charged, then starts a new conversation and reopens the first."""
import re
import time

from playwright.sync_api import Page, expect

from conftest import credits_badge, sign_up

PRODUCT = "Meeting Notes Summarizer"
TRIAL_CREDITS = 30


def notes(lines: int) -> str:
    return "\n".join(f"We decided to move launch step {n} to week {n}.\n"
                     f"Action: Sam to prepare checklist item {n} by Friday." for n in range(1, lines + 1))


def test_console_streams_stops_and_keeps_conversations(page: Page, journey):
    with journey.step("start a free trial"):
        page.goto("/p/meeting-notes-summarizer")
        page.get_by_role("button", name="Try free for 7 days").click()
        page.get_by_role("link", name="Create an account").click()
        sign_up(page, "Cora Console", open_form=False)
        page.get_by_role("button", name="Start my free trial").click()
        expect(page.get_by_role("heading", level=1, name=PRODUCT)).to_be_visible()

    console = page.get_by_role("region", name="Run console")
    stats = page.get_by_role("region", name="At a glance")
    with journey.step("the output grows while the run streams"):
        expect(console.get_by_role("heading", name="New conversation")).to_be_visible()
        console.get_by_label("Input").fill(notes(6))
        console.get_by_role("button", name="Run agent").click()
        turn = console.get_by_role("article", name=re.compile(r"^Run #\d+$")).last
        output = turn.get_by_label(re.compile(r"^Output of run #\d+$"))
        expect(output).to_have_attribute("aria-live", "polite")
        expect(output).to_contain_text("Decisions:")
        first = len(output.inner_text())
        expect(turn.get_by_role("button", name="Stop this run")).to_be_visible()  # still running
        expect(turn.get_by_text(re.compile(r"\d+ credits? so far \(up to \d+ held\)"))).to_be_visible()
        deadline = time.monotonic() + 20
        while len(output.inner_text()) <= first and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        grown = len(output.inner_text())
        assert grown > first
        assert turn.get_by_role("button", name="Stop this run").is_visible()  # it grew before the run ended

    with journey.step("the run ends: credits used, stat cards and badge follow"):
        result = turn.get_by_role("status")
        expect(result.get_by_text(re.compile(r"credits? used"))).to_be_visible(timeout=60_000)
        used = int(re.search(r"(\d+) credits? used", result.get_by_text(re.compile(r"^Run #\d+ ·")).inner_text()).group(1))
        expect(result).to_contain_text("- We decided to move launch step 6 to week 6.")
        balance = TRIAL_CREDITS - used
        expect(credits_badge(page)).to_have_accessible_name(f"Credits {balance}")
        expect(stats).to_contain_text(f"Credits available{balance}")
        expect(stats).to_contain_text("Runs this period1")
        expect(stats).to_contain_text(f"Credits used this period{used}")
        expect(console.get_by_role("heading", name=re.compile(r"^This conversation · 1 turn"))).to_be_visible()

    with journey.step("a second turn in the same conversation is stopped midway"):
        console.get_by_label("Input").fill(notes(15))
        console.get_by_role("button", name="Send to the agent").click()
        second = console.get_by_role("article", name=re.compile(r"^Run #\d+$")).nth(1)
        expect(second.get_by_label(re.compile(r"^Output of run"))).to_contain_text("Decisions:")
        second.get_by_role("button", name="Stop this run").press("Enter")  # the keyboard works too
        stopped = second.get_by_role("status")
        expect(stopped).to_contain_text("Stopped.", timeout=30_000)
        expect(stopped).to_contain_text(re.compile(r"charged for what was delivered|nothing was charged"))
        expect(console.locator("#fresh-memory-note")).to_contain_text("starts the next turn with fresh memory")
        expect(console.get_by_role("heading", name=re.compile(r"^This conversation · 2 turns"))).to_be_visible()

    with journey.step("a new conversation, then the first one reopened"):
        console.get_by_role("link", name="New conversation").click()
        expect(console.get_by_role("heading", name="New conversation")).to_be_visible()
        console.get_by_text("Past conversations (1)").click()
        console.get_by_role("link", name=re.compile(r"^We decided to move launch step 1")).click()
        expect(console.get_by_role("heading", name=re.compile(r"^This conversation · 2 turns"))).to_be_visible()
        expect(console.get_by_role("article", name=re.compile(r"^Run #\d+$"))).to_have_count(2)
