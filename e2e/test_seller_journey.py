"""A seller lists a new automation with three plans under a new publisher organization, an operator
approves it, it shows up in the catalog, a new buyer buys and runs it, and the seller sees the sale
and the analytics move. Three people, three browser contexts."""
import re

from playwright.sync_api import Page, expect

from conftest import open_account_menu, pay_with_test_card, run_in_console, sign_in, sign_up, unique

PLANS = [  # tier, price, included credits, credits per run, runs per month ("" = unlimited)
    ("Starter", "9.00", "100", "2", "500"),
    ("Pro", "19.00", "400", "2", "2000"),
    ("Enterprise", "49.00", "2000", "2", ""),
]
TICKET = "I was charged twice for my subscription this month! Please refund ASAP."


def dashboard_row(page: Page, name: str):
    return page.get_by_role("table").get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def test_seller_lists_an_offering_that_is_approved_bought_and_counted(page: Page, new_context, journey):
    seller = page
    publisher, name = unique("Routing Studio"), unique("Refund Router")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower())

    with journey.step("the seller opens a new publisher organization"):
        sign_in(seller, "seller@example.com")
        open_account_menu(seller, "Seller dashboard")
        expect(seller.get_by_role("heading", level=1, name="Seller dashboard")).to_be_visible()
        seller.get_by_text("Publish under another organization").click()
        seller.get_by_label("Organization name").fill(publisher)
        seller.get_by_role("button", name="Create publisher organization").click()
        expect(seller.get_by_text(f"Publisher organization “{publisher}” created.")).to_be_visible()
        expect(seller.get_by_text(f"{publisher} has no offerings yet.")).to_be_visible()

    with journey.step("the seller describes the offering"):
        seller.get_by_role("link", name="Create your first offering").click()
        expect(seller.get_by_role("heading", level=1, name="New offering")).to_be_visible()
        expect(seller.get_by_label("Publisher").locator("option:checked")).to_have_text(publisher)
        seller.get_by_label("Name", exact=True).fill(name)
        seller.get_by_label("Summary").fill("Reads refund requests and sends each to the right queue, with its reasons.")
        seller.get_by_label("Category").select_option(label="Automation")
        seller.get_by_label("Description").fill("## Routes refund requests\n\n- Finds the **topic** and urgency\n")
        expect(seller.get_by_role("heading", level=2, name="Routes refund requests")).to_be_visible()  # live preview
        seller.get_by_role("group", name="Roles").get_by_role("checkbox", name="Support").check()
        seller.get_by_role("group", name="Capabilities").get_by_role("checkbox", name="Classification").check()
        seller.get_by_role("group", name="Pricing").get_by_role("checkbox", name="Subscription").check()
        seller.get_by_label("Agent or flow", exact=True).select_option(label="Ticket triage")
        seller.get_by_role("button", name="Save draft").click()
        expect(seller.get_by_text(f"Draft “{name}” saved. Add its plans, then submit it for review.")).to_be_visible()

    with journey.step("the seller sets three plans"):
        expect(seller.get_by_role("heading", level=1, name="Plans")).to_be_visible()
        for tier, price, included, per_run, runs in PLANS:
            plan = seller.get_by_role("group", name=tier, exact=True)
            expect(plan.get_by_role("checkbox", name="Offer this tier")).to_be_checked()
            plan.get_by_label("Price").fill(price)
            plan.get_by_label("Included credits", exact=True).fill(included)
            plan.get_by_label("Credits per run").fill(per_run)
            plan.get_by_label("Runs per month").fill(runs)
            plan.get_by_label("Features").fill(f"{tier} support\nRouting reasons")
        seller.get_by_role("button", name="Save plans").click()
        expect(seller.get_by_text("Plans saved.")).to_be_visible()
        rows = seller.get_by_role("table").get_by_role("row")
        expect(rows).to_have_count(4)
        expect(rows.nth(1)).to_contain_text("$9.00")
        expect(rows.nth(3)).to_contain_text("Unlimited")

    with journey.step("the seller submits it for review"):
        seller.get_by_role("button", name="Submit for review").click()
        expect(seller.get_by_text("Submitted for review.")).to_be_visible()
        expect(seller.get_by_role("heading", level=1)).to_contain_text("In review")

    visitor = new_context().new_page()
    with journey.step("not in the catalog while in review", visitor):
        assert visitor.goto(f"/p/{slug}").status == 404
        visitor.goto("/search?q=" + name.split()[-1])
        expect(visitor.get_by_role("heading", level=2, name=re.compile(r"^No offerings match"))).to_be_visible()

    operator = new_context().new_page()
    with journey.step("the operator approves it", operator):
        sign_in(operator, "operator@example.com")
        open_account_menu(operator, "Operator console")
        operator.get_by_role("link", name=f"Review {name}").click()
        expect(operator.get_by_role("heading", level=1)).to_contain_text(name)
        expect(operator.get_by_role("table").get_by_role("row")).to_have_count(4)
        operator.get_by_role("button", name="Approve and publish").click()
        expect(operator.get_by_text(f"“{name}” is published.")).to_be_visible()
        expect(operator.get_by_role("link", name=f"Review {name}")).to_have_count(0)

    with journey.step("the seller's dashboard shows it published, not yet sold", seller):
        open_account_menu(seller, "Seller dashboard")
        expect(dashboard_row(seller, name).get_by_role("cell")).to_have_text(
            [re.compile(name), "Published", "—", "0", "0", "0", re.compile("Edit")])

    with journey.step("a visitor finds it in the catalog", visitor):
        visitor.get_by_role("combobox", name="Search the marketplace").fill(name)
        visitor.get_by_role("button", name="Search", exact=True).click()
        card = visitor.get_by_role("article", name=name)
        expect(card).to_contain_text(f"by {publisher}")
        expect(card).to_contain_text("from $9.00")
        card.get_by_role("link", name=name).click()
        expect(visitor.get_by_role("heading", level=1, name=name)).to_be_visible()
        expect(visitor.get_by_role("region", name="Plans").get_by_role("heading", level=3)) \
            .to_have_text(["Starter", "Pro", "Enterprise"])

    buyer_name = "Bo Buyer"
    with journey.step("the visitor buys the Starter plan, signing up at checkout", visitor):
        visitor.get_by_role("button", name="Add Starter to cart").click()
        expect(visitor.get_by_text(f"Added {name} · Starter plan to your cart.")).to_be_visible()
        visitor.get_by_role("complementary", name="Order summary").get_by_role("link", name="Check out").click()
        visitor.get_by_role("link", name="Create an account").click()
        sign_up(visitor, buyer_name, open_form=False)
        pay_with_test_card(visitor)
        expect(visitor.get_by_text(re.compile(r"^Payment received: order DM-\w+ is paid and ready\.$"))).to_be_visible()
        line = visitor.get_by_role("region", name="Items").get_by_role("row", name=re.compile(name))
        expect(line).to_contain_text(re.compile(r"Instance #\d+\s*Active"))

    with journey.step("the buyer runs it once", visitor):
        line.get_by_role("link", name=re.compile(r"^Instance #\d+$")).click()
        result, used = run_in_console(visitor, TICKET)
        expect(result).to_contain_text("Topic: billing")

    with journey.step("the seller sees the sale on the dashboard", seller):
        seller.reload()
        expect(seller.get_by_role("region", name=re.compile(r"^This month so far"))).to_contain_text(
            re.compile(r"Sales this month\s*\$9\.00\s*1 order\b"))
        expect(dashboard_row(seller, name).get_by_role("cell")).to_have_text(
            [re.compile(name), "Published", "$9.00", "1", "1", str(used), re.compile("Edit")])

    with journey.step("the seller's sales list the order", seller):
        seller.get_by_role("navigation", name="Seller area").get_by_role("link", name="Sales").click()
        expect(seller.get_by_text(re.compile(r"^1 order line · \$9\.00$"))).to_be_visible()
        sale = seller.get_by_role("table").get_by_role("row").nth(1)
        expect(sale.get_by_role("cell").nth(2)).to_have_text(f"{buyer_name}'s workspace")
        expect(sale.get_by_role("cell").nth(3)).to_have_text(name)
        expect(sale.get_by_role("cell").nth(4)).to_have_text("Starter")
        expect(sale.get_by_role("cell").nth(6)).to_have_text("$9.00")

    with journey.step("the seller's analytics moved", seller):
        seller.get_by_role("navigation", name="Seller area").get_by_role("link", name="Analytics").click()
        totals = seller.get_by_role("region", name="Totals for the period")
        expect(totals).to_contain_text(re.compile(r"Revenue\s*\$9\.00"))
        expect(totals).to_contain_text(re.compile(r"New paid instances\s*1\D"))
        expect(totals).to_contain_text(re.compile(rf"Runs · credits\s*1 · {used}(\D|$)"))
        per_offering = seller.get_by_role("row").filter(has_text=name)
        # runs, credits, runs that reached their limit, trials started, trials converted
        expect(per_offering.get_by_role("cell")).to_have_text([name, "1", str(used), "0", "0", "0"])
