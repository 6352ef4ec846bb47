"""A buyer becomes a seller: signs up, follows "Sell on Digitlify", creates a publisher with a logo, accepts the
seller terms and prepares a first draft with a screenshot while the application waits; an operator approves
the publisher; the new seller submits the draft for review, and the vendor page shows the verified badge."""
import io
import re

from PIL import Image
from playwright.sync_api import Page, expect

from conftest import open_account_menu, sign_in, sign_up, unique


def _png(color) -> dict:
    out = io.BytesIO()
    Image.new("RGB", (320, 200), color).save(out, format="PNG")
    return {"name": "image.png", "mimeType": "image/png", "buffer": out.getvalue()}


def test_a_buyer_applies_an_operator_approves_and_the_new_seller_submits_a_first_offering(
        page: Page, new_context, journey):
    applicant = page
    publisher, name = unique("Harbor Agents"), unique("Dock Scheduler")
    slug = re.sub(r"[^a-z0-9]+", "-", publisher.lower())

    with journey.step("a new buyer follows Sell on Digitlify"):
        sign_up(applicant, "Hana Harbor")
        applicant.get_by_role("contentinfo").get_by_role("link", name="Sell on Digitlify").click()
        expect(applicant.get_by_role("heading", level=1, name="Tell buyers who you are")).to_be_visible()

    with journey.step("the publisher's details, with a mistake first"):
        applicant.get_by_label("Publisher name").fill(publisher)
        applicant.get_by_label("Vendor page address").fill(slug)
        applicant.get_by_label("Website").fill("not a website")
        applicant.get_by_label("Support email").fill("help@harbor.example.com")
        applicant.get_by_label("Logo").set_input_files(_png((20, 90, 160)))
        applicant.get_by_role("button", name="Continue to the seller terms").click()
        expect(applicant.get_by_text("Enter a web address starting with https://")).to_be_visible()
        applicant.get_by_label("Website").fill("https://harbor.example.com")
        applicant.get_by_label("Logo").set_input_files(_png((20, 90, 160)))
        applicant.get_by_role("button", name="Continue to the seller terms").click()

    with journey.step("the seller terms are accepted"):
        expect(applicant.get_by_role("heading", level=1, name="Seller terms")).to_be_visible()
        applicant.get_by_role("button", name="Accept and apply").click()
        expect(applicant.get_by_text("Accept the seller terms to continue.")).to_be_visible()
        applicant.get_by_label("I accept the seller terms").check()
        applicant.get_by_role("button", name="Accept and apply").click()
        expect(applicant.get_by_text(re.compile(r"is waiting for an operator's approval"))).to_be_visible()
        expect(applicant.get_by_role("heading", level=1, name="New offering")).to_be_visible()

    with journey.step("the applicant prepares a draft while waiting"):
        expect(applicant.get_by_label("Publisher").locator("option:checked")).to_have_text(publisher)
        applicant.get_by_label("Name", exact=True).fill(name)
        applicant.get_by_label("Summary").fill("Books loading docks for inbound trucks and tells the drivers.")
        applicant.get_by_label("Category").select_option(label="Automation")
        applicant.get_by_label("Description").fill("## Books loading docks\n\n- Reads the carrier's email\n")
        applicant.get_by_label("Agent or flow", exact=True).select_option(label="Ticket triage")
        applicant.get_by_role("button", name="Save draft").click()
        expect(applicant.get_by_text(f"Draft “{name}” saved.")).to_be_visible()
        starter = applicant.get_by_role("group", name="Starter", exact=True)
        starter.get_by_label("Price").fill("15.00")
        starter.get_by_label("Included credits", exact=True).fill("100")
        for tier in ("Pro", "Enterprise"):
            applicant.get_by_role("group", name=tier, exact=True).get_by_role("checkbox", name="Offer this tier").uncheck()
        applicant.get_by_role("button", name="Save plans").click()
        expect(applicant.get_by_text("Plans saved.")).to_be_visible()

    with journey.step("a screenshot with its description"):
        applicant.get_by_role("navigation", name="Offering").get_by_role("link", name="Images").click()
        applicant.get_by_label("Screenshot", exact=True).set_input_files(_png((200, 120, 40)))
        applicant.get_by_label("What it shows").fill("The dock calendar with three trucks booked")
        applicant.get_by_role("button", name="Add screenshot").click()
        expect(applicant.get_by_text("Screenshot added.")).to_be_visible()
        expect(applicant.get_by_role("img", name="The dock calendar with three trucks booked")).to_be_visible()

    with journey.step("submitting waits for the approval"):
        applicant.get_by_role("navigation", name="Offering").get_by_role("link", name="Overview").click()
        expect(applicant.get_by_text(re.compile(r"waiting for an operator's approval"))).to_be_visible()
        expect(applicant.get_by_role("button", name="Submit for review")).to_have_count(0)

    operator = new_context().new_page()
    with journey.step("an operator approves the publisher", operator):
        sign_in(operator, "operator@example.com")
        open_account_menu(operator, "Operator console")
        operator.get_by_role("navigation", name="Operator console").get_by_role("link", name="Publishers").click()
        application = operator.get_by_role("article", name=publisher)
        expect(application).to_contain_text("https://harbor.example.com")
        expect(application).to_contain_text(re.compile(r"Version \S+, accepted"))
        application.get_by_role("button", name=f"Approve {publisher}").click()
        expect(operator.get_by_text(f"{publisher} is approved; its people can now submit offerings.")).to_be_visible()

    with journey.step("the new seller submits the draft for review", applicant):
        applicant.reload()
        applicant.get_by_role("button", name="Submit for review").click()
        expect(applicant.get_by_text("Submitted for review.")).to_be_visible()
        expect(applicant.get_by_role("heading", level=1)).to_contain_text("In review")
        open_account_menu(applicant, "Seller dashboard")
        expect(applicant.get_by_role("heading", level=1, name="Seller dashboard")).to_be_visible()

    visitor = new_context().new_page()
    with journey.step("the vendor page is live with the verified badge", visitor):
        visitor.goto(f"/vendors/{slug}")
        expect(visitor.get_by_role("heading", level=1)).to_contain_text(publisher)
        expect(visitor.get_by_text("Verified publisher")).to_be_visible()
        expect(visitor.get_by_role("img", name=f"{publisher} logo")).to_be_visible()
        expect(visitor.get_by_text(f"{publisher} has no offerings in the catalog yet.")).to_be_visible()
