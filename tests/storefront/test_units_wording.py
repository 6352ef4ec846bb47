"""Prices that use units say what a unit is: on the product page and at checkout."""
from __future__ import annotations

from sqlalchemy import select

from app.models import Plan

NOTE = "A <strong>unit</strong> measures how much text a run reads and writes"


def test_the_product_page_prices_per_1000_units_and_explains_them(client, session, demo):
    plan = session.scalar(select(Plan).where(Plan.sku == "CUSTOMER-SUPPORT-AGENT-PRO"))
    assert plan.credits_per_1k_units == 1

    page = client.get(f"/p/{plan.offering.slug}").get_data(as_text=True)

    assert f"<dd>{plan.credits_per_run} + 1 per 1,000 units</dd>" in page
    assert NOTE in page and page.count('id="units-explained"') == 1


def test_a_product_whose_plans_are_flat_per_run_has_no_units_note(client, session, demo):
    plan = session.scalar(select(Plan).where(Plan.sku == "CUSTOMER-SUPPORT-AGENT-PRO"))
    for p in plan.offering.plans:
        p.credits_per_1k_units = 0
    session.commit()

    page = client.get(f"/p/{plan.offering.slug}").get_data(as_text=True)

    assert "per 1,000 units" not in page and NOTE not in page


def test_checkout_shows_the_run_price_with_units_and_explains_them(buyer_client, session, buyer):
    plan = session.scalar(select(Plan).where(Plan.sku == "CUSTOMER-SUPPORT-AGENT-PRO"))
    buyer_client.post("/cart/add", data={"sku": plan.sku, "quantity": "1"})

    page = buyer_client.get("/checkout").get_data(as_text=True)

    assert f"each run {plan.credits_per_run} credits + 1 per 1,000 units" in page
    assert NOTE in page
