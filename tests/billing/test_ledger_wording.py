"""Ledger lines in words: every kind of entry reads as a sentence, on the page, in the CSV and in the API."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from app.models import LedgerEntry, Run
from app.services import identity, provisioning, tokens
from app.services.ledger_wording import EntryFacts, describe, kind_label, period_label
from tests.account.test_console_and_billing import finish, run_console
from tests.conftest import login
from tests.invoices.helpers import paid_order
from tests.runtime.test_gateway import make_instance

DEC = datetime(2026, 12, 6, tzinfo=timezone.utc)
JAN = datetime(2027, 1, 6, tzinfo=timezone.utc)
PLAN = EntryFacts(grant_origin="plan", plan_name="Pro", offering_name="Support Agent", period_start=DEC,
                  period_end=JAN, instance_label="Support Agent #4")


def _entry(kind, amount=0, held_delta=0, reference=None):
    return LedgerEntry(kind=kind, amount=amount, held_delta=held_delta, reference=reference)


@pytest.mark.parametrize(("entry", "facts", "sentence"), [
    (_entry("hold", held_delta=12, reference="x"), EntryFacts(run_id=12),
     "Run #12 — up to 12 credits set aside while it runs"),
    (_entry("capture", amount=-3, held_delta=-12, reference="settled 3 of 12"), EntryFacts(run_id=12),
     "Run #12 — 3 credits (9 set aside and not used)"),
    (_entry("capture", amount=-1, held_delta=-1, reference="settled 1 of 1"), EntryFacts(instance_label="Bot #3"),
     "Usage of Bot #3 — 1 credit"),
    (_entry("release", held_delta=-5, reference="released (k)"), EntryFacts(run_id=7),
     "Run #7 — cancelled; 5 credits set aside returned, nothing charged"),
    (_entry("release", held_delta=-5, reference="hold expired"), EntryFacts(run_id=7),
     "Run #7 — did not finish in time; 5 credits set aside returned, nothing charged"),
    (_entry("grant", amount=1200, reference="Support Agent Pro plan, order DM-1"), PLAN,
     "Pro plan of Support Agent, Dec 2026 — 1,200 included credits"),
    (_entry("grant", amount=12000), EntryFacts(grant_origin="plan", plan_name="Pro", offering_name="Support Agent",
                                               period_start=DEC, period_end=datetime(2027, 12, 6, tzinfo=timezone.utc)),
     "Pro plan of Support Agent, Dec 2026 – Dec 2027 — 12,000 included credits"),
    (_entry("grant", amount=1000, reference="2 × 500 credits, order DM-ABC123"),
     EntryFacts(grant_origin="purchase", order_number="DM-ABC123"), "Added 1,000 credits (order DM-ABC123)"),
    (_entry("grant", amount=100, reference="purchase"), EntryFacts(grant_origin="purchase"), "Added 100 credits"),
    (_entry("grant", amount=50, reference="Trial: Support Agent"),
     EntryFacts(grant_origin="trial", offering_name="Support Agent"), "Free trial of Support Agent — 50 credits"),
    (_entry("grant", amount=500, reference="Welcome credits"), EntryFacts(grant_origin="promo"),
     "Welcome credits — 500 credits"),
    (_entry("expiry", amount=-300, reference="Pro: 300 unused included credits ended, period ended"), PLAN,
     "Pro plan of Support Agent, Dec 2026 — 300 unused included credits ended, period ended"),
    (_entry("expiry", amount=-1, reference="plan credits expired"), PLAN,
     "Pro plan of Support Agent, Dec 2026 — 1 unused included credit ended with the period"),
    (_entry("expiry", amount=-20, reference="trial credits expired"),
     EntryFacts(grant_origin="trial", offering_name="Support Agent"), "Free trial of Support Agent — 20 credits not used, expired"),
    (_entry("expiry", amount=-1, reference="promo credits expired"), EntryFacts(grant_origin="promo"),
     "1 credit expired unused"),
    (_entry("refund", amount=-1200, reference="Refund of order DM-ABC123, line 5"), EntryFacts(),
     "Refund of order DM-ABC123 — 1,200 credits taken back"),
    (_entry("refund", amount=-200), EntryFacts(order_number="S-1042"), "Refund of order S-1042 — 200 credits taken back"),
    (_entry("refund", amount=0, reference="nothing left to take back"), EntryFacts(), "Refund"),
    (_entry("adjustment", amount=-5, reference="Support goodwill"), EntryFacts(), "Adjustment — 5 credits (Support goodwill)"),
])
def test_every_kind_of_entry_reads_as_a_sentence(entry, facts, sentence):
    assert describe(entry, facts) == sentence


def test_internal_reference_texts_never_show():
    capture = _entry("capture", amount=-3, held_delta=-3, reference="settled 3 of 3 (capped)")
    assert "settled" not in describe(capture) and describe(capture) == "Usage — 3 credits"


def test_kind_labels_and_period_labels():
    assert [kind_label(k) for k in ("grant", "hold", "capture", "release", "expiry", "refund", "plan_change")] == [
        "Added", "Set aside", "Spent", "Returned", "Expired", "Refund", "Plan change"]
    assert period_label(DEC, JAN) == "Dec 2026" and period_label(None, None) == ""


@pytest.mark.usefixtures("run_worker")
def test_the_billing_page_csv_and_api_describe_a_run_a_purchase_and_a_plan(client, session, buyer):
    # given: a run in the console, and a paid order of a plan and two credit packs
    login(client, buyer)
    instance = make_instance(session, buyer)
    started = run_console(client, instance)
    assert started.status_code == 200
    finish(client, instance, started.get_data(as_text=True))  # the run ends before the ledger is read
    run = session.scalar(select(Run))
    org = identity.ensure_personal_organization(session, user=buyer)
    order = paid_order(session, user=buyer, organization=org, packs=2)
    provisioning.handle_order_paid(session, order=order, actor_label="test")
    session.commit()
    plan = order.lines[0].plan
    month = datetime.now(timezone.utc).strftime("%b %Y")
    spent = -session.scalar(select(LedgerEntry.amount).where(LedgerEntry.kind == "capture"))
    run_line = f"Run #{run.id} — {spent:,} credit{'' if spent == 1 else 's'}"
    plan_line = f"{plan.name} plan of {plan.offering.name}, {month} — 1,200 included credits"
    pack_line = f"Added 1,000 credits (order {order.number})"

    # when
    page = client.get("/account/billing").get_data(as_text=True)
    export = client.get("/account/billing/ledger.csv").get_data(as_text=True)
    _, secret = tokens.create_token(session, user=buyer, name="wording")
    session.commit()
    api = client.get("/api/wallets/me/ledger", headers={"Authorization": f"Bearer {secret}"}).get_json()

    # then
    for text in (run_line, plan_line, pack_line, "Welcome credits — 500 credits"):
        assert text in page and text in export
    assert '<span class="badge badge-kind-capture">Spent</span>' in page
    assert "settled" not in page
    descriptions = [item["description"] for item in api["items"]]
    assert {plan_line, pack_line, "Welcome credits — 500 credits"} <= set(descriptions)
    assert any(d.startswith(run_line) for d in descriptions)
