"""Each built-in agent does real, deterministic work: exact outputs for known inputs."""
import json
from datetime import date

import pytest

from app.adapters.runtime import Document, FaqEntry, RunContext, RuntimeFailure, RuntimeInputError, get_runtime
from app.adapters.runtime.agents.textkit import BM25, stem, terms
from app.services.demo_data import OFFERINGS

FAQ = tuple(FaqEntry(e["q"], e["a"]) for e in OFFERINGS[0]["faq"])
DOCS = (
    Document("Travel policy", "Employees book travel through the portal.\n\n"
             "Hotels up to 150 EUR per night are approved automatically. Anything above needs manager approval."),
    Document("Security runbook", "Rotate API keys every 90 days.\n\nReport a suspected breach to the security "
             "team within one hour of noticing it."),
    Document("Expenses", "Submit receipts within 30 days. Meals are reimbursed up to 40 EUR per day."),
)


def run(ref, text, **context):
    return get_runtime("builtin").run(ref, text, "session-1", RunContext(**context))


def test_stemmer_and_bm25_rank_the_matching_document_first():
    assert {stem("passwords"), stem("password")} == {"password"}
    assert stem("charged") == stem("charges") == stem("charge")
    index = BM25([terms("reset your password"), terms("download invoices"), terms("cancel a subscription")])
    assert [i for i, _ in index.rank(terms("I forgot my password, how to reset it"))] == [0]


def test_support_faq_answers_from_the_best_faq_entry_with_its_source():
    output = run("support-faq", "How can I reset my password?", faq=FAQ)

    assert output.text.splitlines()[0] == FAQ[0].answer
    assert "Source: FAQ \u2014 \u201cHow do I reset my password?\u201d" in output.text
    assert output.data["answered"] is True
    assert output.data["confidence"] == 100
    assert output.usage_units == len("How can I reset my password?") + len(output.text)


def test_support_faq_ranks_by_relevance_not_by_order():
    output = run("support-faq", "where do I find my invoices to download", faq=FAQ)

    assert output.data["matches"][0]["question"] == "Where can I download my invoices?"
    assert output.text.startswith("Invoices are under Account > Orders")


def test_support_faq_says_when_it_is_not_confident():
    output = run("support-faq", "What is the weather in Paris tomorrow?", faq=FAQ)

    assert output.data["answered"] is False
    assert output.text.startswith("I am not confident the FAQ answers this")
    assert FAQ[0].answer not in output.text


def test_support_faq_without_entries_says_so():
    output = run("support-faq", "How do I reset my password?")

    assert output.data == {"answered": False, "confidence": 0, "matches": []}
    assert "no FAQ entries" in output.text


def test_kb_search_quotes_the_best_passage_of_the_buyers_documents():
    output = run("kb-search", "hotel price per night approval", documents=DOCS)

    best = output.data["results"][0]
    assert best["document"] == "Travel policy"
    assert best["passage"] == "Hotels up to 150 EUR per night are approved automatically. Anything above needs manager approval."
    assert output.text.startswith("Best match \u2014 \u201cTravel policy\u201d")
    assert "\u201cHotels up to 150 EUR per night" in output.text


def test_kb_search_finds_nothing_for_unrelated_questions_and_asks_for_documents_when_empty():
    assert run("kb-search", "quantum chromodynamics", documents=DOCS).data == {"answered": False, "results": []}
    empty = run("kb-search", "hotel", documents=())
    assert empty.text.startswith("There are no documents in this instance yet.")


def test_sales_email_drafts_from_lines_and_from_json():
    lines = run("sales-email", "name: Ada Lovelace\ncompany: Analytical Engines\nrole: VP Operations\n"
                               "pain: manual invoice processing\nproduct: Invoice Data Extractor\nsender: Sam")
    as_json = run("sales-email", json.dumps({"name": "Ada Lovelace", "company": "Analytical Engines",
                                             "role": "VP Operations", "pain": "manual invoice processing",
                                             "product": "Invoice Data Extractor", "sender": "Sam"}))

    assert lines.text == as_json.text
    assert lines.data["subject"] == "Hours back from manual invoice processing at Analytical Engines"
    body = lines.data["body"]
    assert body.startswith("Hi Ada,\n\nAs VP Operations at Analytical Engines,")
    assert "That is where Invoice Data Extractor helps" in body
    assert body.endswith("Best regards,\nSam")
    assert lines.data["tone"] == "executive"
    assert lines.data["fields_used"] == ["name", "company", "role", "pain", "product", "sender"]


def test_sales_email_refuses_without_name_and_company():
    with pytest.raises(RuntimeInputError) as caught:
        run("sales-email", "role: CTO")
    assert str(caught.value).startswith("Missing name and company.")


NOTES = """We reviewed the Q3 roadmap and the churn numbers.
Revenue is up 12% but churn increased in the SMB segment.
The team discussed pricing for the new SMB tier at length.
We decided to delay the mobile app until November.
Maria will send the revised budget by Friday.
Action: Tom to update the onboarding docs.
TODO: schedule a churn deep-dive."""


def test_summarize_extracts_summary_decisions_and_action_items_with_owners():
    output = run("summarize", NOTES)

    assert output.data["decisions"] == ["We decided to delay the mobile app until November."]
    assert output.data["action_items"] == [
        {"owner": "Maria", "task": "Send the revised budget", "due": "Friday"},
        {"owner": "Tom", "task": "Update the onboarding docs"},
        {"owner": "unassigned", "task": "Schedule a churn deep-dive"},
    ]
    assert output.data["summary"] == ["Revenue is up 12% but churn increased in the SMB segment."]
    assert "- [Maria] Send the revised budget (due Friday)" in output.text


def test_triage_classifies_topic_and_urgency_with_reasons():
    output = run("triage", "I was charged twice for my subscription!! Please refund ASAP.\n---\n"
                           "Dashboard shows error 500 for all users. Production is down.\n---\n"
                           "It would be nice to have a Slack integration, no rush.")

    got = [(t["topic"], t["urgency"], t["queue"]) for t in output.data["tickets"]]
    assert got == [("billing", "high", "Billing"), ("bug", "critical", "Engineering"),
                   ("feature_request", "low", "Product")]
    assert "urgency raised by \u2018asap\u2019" in output.data["tickets"][0]["reasons"][1]
    assert output.data["tickets"][2]["reasons"][1] == "urgency lowered by \u2018no rush\u2019, \u2018nice to have\u2019"


def test_triage_of_an_unmatched_ticket_is_general():
    ticket = run("triage", "Hello, a question about your office address.").data["tickets"][0]
    assert (ticket["topic"], ticket["urgency"], ticket["confidence"]) == ("general", "normal", 0)


INVOICE = """ACME Supplies Ltd
Invoice No: INV-2026-0042
Invoice date: 2026-03-01
Payment terms: Net 30
Bill to: Northwind Traders
Subtotal: \u20ac1.250,00
VAT (20%): \u20ac250,00
Total due: \u20ac1.500,00"""


def test_invoice_extract_returns_fields_as_json_with_integer_minor_units():
    output = run("invoice-extract", INVOICE)
    data = json.loads(output.text)

    assert data == output.data
    assert data["invoice_number"] == "INV-2026-0042"
    assert data["vendor"] == "ACME Supplies Ltd"
    assert data["bill_to"] == "Northwind Traders"
    assert (data["issue_date"], data["due_date"]) == ("2026-03-01", "2026-03-31")
    assert data["currency"] == "EUR"
    assert data["subtotal"] == {"amount": "1250.00", "minor": 125000}
    assert data["tax"] == {"amount": "250.00", "minor": 25000, "rate": "20%"}
    assert data["total"] == {"amount": "1500.00", "minor": 150000}
    assert data["checks"] == {"totals_add_up": True, "tax_matches_rate": True}


def test_invoice_extract_flags_totals_that_do_not_add_up():
    data = run("invoice-extract", "Invoice #A-77\nDate: March 3, 2026\nDue: April 2, 2026\n"
                                  "Subtotal $100.00\nTax $8.00\nTotal $110.00").data

    assert (data["issue_date"], data["due_date"], data["currency"]) == ("2026-03-03", "2026-04-02", "USD")
    assert data["checks"] == {"totals_add_up": False}
    assert "Subtotal plus tax does not equal the total." in data["warnings"]


def test_lead_score_explains_every_point():
    output = run("lead-score", "role: VP of Sales\nemployees: 250\nbudget: $40k\ntimeline: this quarter\n"
                               "demo_requested: yes\npricing_page_visits: 3\nemail: jo@gmail.com")

    assert output.data["score"] == 76
    assert output.data["grade"] == "A"
    assert [p["points"] for p in output.data["points"]] == [20, 22, 15, 12, 12, -5]
    assert "+22  role \u2018VP of Sales\u2019 (VP or head of a function)" in output.text
    assert output.data["missing"] == []


def test_lead_score_names_missing_signals():
    data = run("lead-score", "role: Student\nemployees: 5").data
    assert data["score"] == 0
    assert data["grade"] == "D"
    assert data["missing"] == ["budget", "timeline", "engagement (demo_requested, pricing_page_visits, email_opens)"]


def test_seo_brief_finds_key_terms_outline_and_readability():
    draft = ("# Invoice automation for small businesses\n"
             "Invoice automation helps small businesses get paid faster. Manual invoice processing takes hours "
             "every week and causes errors. With invoice automation, invoice data is captured from PDF invoices, "
             "checked against purchase orders and sent to accounting software. Small businesses that adopt "
             "invoice automation report fewer late payments. Choose invoice automation that connects to the "
             "accounting software you already use.")
    data = run("seo-brief", draft).data

    assert [k["term"] for k in data["key_terms"]][:3] == ["invoice automation", "accounting software", "small businesses"]
    assert data["key_terms"][0]["count"] == 4
    assert data["title"] == "Invoice Automation: A Practical Guide"
    assert data["outline"][0] == "H1: Invoice automation for small businesses"
    assert "  H2 (add): Accounting software explained" in data["outline"]
    assert data["readability"]["words"] == 59
    assert data["readability"]["sentences"] == 5


def test_onboarding_dates_the_checklist_in_working_days():
    data = run("onboarding", "name: Jamie Rivera\nrole: Backend Engineer\nstart_date: 2026-03-07\n"
                             "manager: Priya\nbuddy: Tom", today=date(2026, 2, 1)).data

    assert data["start_date"] == "2026-03-09"  # Saturday moves to Monday
    assert data["tracks"] == ["engineering"]
    due = {item["task"]: item["due"] for item in data["items"]}
    assert due["Send the contract and collect signed paperwork"] == "2026-03-02"  # 5 working days before
    assert due["Send the welcome email with the first-day schedule"] == "2026-03-06"  # the Friday before
    assert due["Two-week check-in"] == "2026-03-20"
    assert due["30-day review against the plan"] == "2026-04-03"
    assert not any(item["overdue"] for item in data["items"])


def test_csv_clean_normalizes_dedupes_and_reports():
    data = run("csv-clean", "Name , Email,Phone,Signup Date\n"
                            " JOHN SMITH ,John@Example.com ,(555) 123-4567,2026-01-05\n"
                            "Jane Doe,jane@example.com,+44 20 7946 0958,15/01/2026\n"
                            "john smith,john@example.com,555.123.4567,2026-01-05\n"
                            ",,,\n"
                            "Bob,bob@,12,notadate\n").data

    assert data["csv"] == ("name,email,phone,signup_date\n"
                           "John Smith,john@example.com,5551234567,2026-01-05\n"
                           "Jane Doe,jane@example.com,+442079460958,2026-01-15\n"
                           "Bob,bob@,12,notadate\n")
    assert (data["rows_in"], data["rows_out"]) == (5, 3)
    assert data["duplicates"] == ["row 4 repeats row 2"]
    assert data["problems"] == ["row 6: email \u2018bob@\u2019 is not a valid email",
                                "row 6: phone \u201812\u2019 is not a phone number",
                                "row 6: signup_date \u2018notadate\u2019 is not a date"]
    assert "1 empty row removed" in data["changes"]


def test_unknown_agent_and_oversized_input_fail_cleanly():
    with pytest.raises(RuntimeFailure):
        run("no-such-agent", "x")
    with pytest.raises(RuntimeInputError):
        run("summarize", "word " * 50_001)
