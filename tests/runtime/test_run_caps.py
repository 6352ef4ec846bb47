"""Spending caps and the usage fee: a cap that cannot cover the input is refused before anything is
held; an output that reaches the limit is cut there (built-in runtime) or delivered and charged the
limit with the overrun recorded (Langflow); the run result says which, and the ledger stays whole."""
import json

from sqlalchemy import func, select

from app.adapters.runtime.agents import registry
from app.adapters.runtime import FaqEntry, RunContext
from app.models import Hold, HoldStatus, LedgerEntry, Run
from app.services import analytics, billing
from tests.conftest import login
from tests.runtime.test_gateway import QUESTION, make_instance, run_count, wallet_of
import pytest

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")

SUMMARY_INPUT = "x " * 20


def counts(session):
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(Run)),
            session.scalar(select(func.count()).select_from(Hold)),
            session.scalar(select(func.count()).select_from(LedgerEntry)))


def test_a_cap_equal_to_the_run_price_cannot_drop_the_usage_fee(buyer_client, session, buyer):
    # given a plan at 1 credit per run + 1 per 1,000 characters: any input costs at least 2
    instance = make_instance(session, buyer, slug="meeting-notes-summarizer")
    plan = instance.plan
    assert (plan.credits_per_run, plan.credits_per_1k_units) == (1, 1)
    balance, before = wallet_of(session, instance).balance, counts(session)

    # when a run is asked for with a spending cap of 1
    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": SUMMARY_INPUT, "spending_cap": 1}, headers={"Prefer": "wait=30"})

    # then it is refused on the cap, and nothing is held, run or charged
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "cap_below_input"
    assert body["detail"] == ("A spending cap of 1 credit cannot cover this input: its 40 characters alone cost "
                              "2 credits (1 credit per run + 1 credit per 1,000 characters). Raise the cap to at "
                              "least 2, or leave it empty.")
    assert body["errors"] == [{"field": "spending_cap", "message": body["detail"]}]
    assert counts(session) == before
    assert wallet_of(session, instance).balance == balance


def test_the_same_run_with_a_cap_that_covers_the_input_is_charged_its_usage_fee(buyer_client, session, buyer):
    instance = make_instance(session, buyer, slug="meeting-notes-summarizer")
    balance = wallet_of(session, instance).balance

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": SUMMARY_INPUT, "spending_cap": 2}, headers={"Prefer": "wait=30"})

    assert response.status_code == 201
    body = response.get_json()
    assert body["usage_units"] < 1000
    assert (body["credits"], body["cap_outcome"], body["overrun_credits"]) == (2, None, 0)
    assert wallet_of(session, instance).balance == balance - 2


def test_a_cap_that_cannot_cover_a_long_input_is_refused_and_nothing_changes(buyer_client, session, buyer):
    instance = make_instance(session, buyer)  # 2 per run + 1 per 1,000 characters
    long_question = "How do I reset my password? " + "please " * 700  # 4,928 characters: 2 + 5 = 7 > 4
    balance, before = wallet_of(session, instance).balance, counts(session)

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": long_question, "spending_cap": 4}, headers={"Prefer": "wait=30"})

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "cap_below_input" and body["input_credits"] == 7
    assert body["errors"][0]["field"] == "spending_cap"
    assert "A spending cap of 4 credits cannot cover this input: its 4,928 characters alone cost 7 credits" in body["detail"]
    assert counts(session) == before
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)


def test_an_input_beyond_the_plans_maximum_per_run_is_refused_on_the_input(buyer_client, session, buyer):
    instance = make_instance(session, buyer)  # at most 12 credits a run: 10,000 characters
    before = counts(session)

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": "reset password " * 700}, headers={"Prefer": "wait=30"})

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "input_over_limit"
    assert body["errors"][0]["field"] == "input"
    assert body["detail"].startswith("This input is too long for the plan: its 10,500 characters alone would cost "
                                     "13 credits")
    assert counts(session) == before


def padded_question(length: int) -> str:
    text = QUESTION + " please" * (length // 7)
    return text[:length]


def test_an_output_that_would_pass_the_cap_is_cut_where_the_cap_is_reached(buyer_client, session, buyer):
    # given an input of 990 characters: 2 + 1 = 3 credits, and an answer that takes it past 1,000
    instance = make_instance(session, buyer)
    question = padded_question(990)
    faq = tuple(FaqEntry(e["q"], e["a"]) for e in json.loads(instance.offering.faq_json))
    full = registry()["support-faq"](question, RunContext(offering_name=instance.offering.name, faq=faq)).text
    assert len(question) + len(full) > 1000
    balance = wallet_of(session, instance).balance

    # when it runs with a cap of 3
    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": question, "spending_cap": 3}, headers={"Prefer": "wait=30"})

    # then the output stops at the 1,000th character, the run costs 3, and says it was cut
    assert response.status_code == 201
    body = response.get_json()
    assert body["output"] == full[:10]
    assert (body["usage_units"], body["credits"]) == (1000, 3)
    assert (body["cap_outcome"], body["overrun_credits"]) == ("cut", 0)
    run = session.get(Run, body["id"])
    assert (run.cap_outcome, run.credits, run.output_text) == ("cut", 3, full[:10])
    hold = session.get(Hold, run.hold_id)
    assert (hold.status, hold.amount, hold.captured) == (HoldStatus.SETTLED.value, 3, 3)
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance - 3, 0)
    assert billing.verify_ledger(session) == []


def test_without_a_cap_the_same_run_is_delivered_whole_and_charged_its_usage(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    question = padded_question(990)

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": question}, headers={"Prefer": "wait=30"})

    body = response.get_json()
    assert body["usage_units"] > 1000
    assert (body["credits"], body["cap_outcome"], body["overrun_credits"]) == (4, None, 0)


def test_a_runtime_that_cannot_stop_is_charged_the_cap_and_the_overrun_is_recorded(make_app, session, buyer, seller):
    from tests.runtime import fake_langflow

    server, langflow = fake_langflow.start()
    try:
        app = make_app(LANGFLOW_URL=langflow.url, LANGFLOW_API_KEY=fake_langflow.API_KEY, LANGFLOW_TIMEOUT=5)
        instance = make_instance(session, buyer)
        instance.version.runtime_kind, instance.version.runtime_ref = "langflow", "usage"  # reports 1,545 tokens
        session.commit()
        balance = wallet_of(session, instance).balance
        client = app.test_client()
        login(client, buyer)

        response = client.post(f"/api/instances/{instance.id}/runs", json={"input": "summarize this", "spending_cap": 3}, headers={"Prefer": "wait=30"})
    finally:
        server.shutdown()
        server.server_close()

    # 2 + 2 thousands = 4 credits of usage; the cap is 3: delivered whole, charged 3, 1 over recorded
    assert response.status_code == 201
    body = response.get_json()
    assert body["output"] == "answer to summarize this"
    assert (body["usage_units"], body["credits"]) == (1545, 3)
    assert (body["cap_outcome"], body["overrun_credits"]) == ("overrun", 1)
    run = session.get(Run, body["id"])
    assert (run.cap_outcome, run.overrun_credits, run.credits) == ("overrun", 1, 3)
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance - 3, 0)
    assert billing.verify_ledger(session) == []

    # and the seller sees it
    today = run.created_at.date()
    report = analytics.publisher_analytics(session, publisher_id=instance.offering.publisher_id, start=today,
                                           end=today)
    [usage] = [o for o in report.per_offering if o.offering_id == instance.offering_id]
    assert (usage.runs, usage.credits, usage.runs_cut, usage.runs_overrun, usage.overrun_credits) == (1, 3, 0, 1, 1)
    seller_client = app.test_client()
    login(seller_client, seller)
    page = seller_client.get(f"/seller/analytics?publisher={instance.offering.publisher_id}"
                             f"&start={today.isoformat()}&end={today.isoformat()}")
    assert page.status_code == 200
    assert "1 delivered in full, 1 credit over the limit not charged" in page.get_data(as_text=True)


def test_the_console_says_when_an_output_was_cut(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = buyer_client.post(f"/account/instances/{instance.id}/runs",
                                 data={"input": padded_question(990), "idempotency_key": "cut-1", "spending_cap": "3"},
                                 headers={"HX-Request": "true"})

    from tests.account.test_console_and_billing import finish
    html = finish(buyer_client, instance, response.get_data(as_text=True)).get_data(as_text=True)
    assert "<strong>3 credits</strong> used" in html
    assert ("The output was cut where this run reached its limit of 3 credits: you were charged for what you see."
            in html)
    assert "output cut at the limit" in html  # the last runs table


def test_the_console_shows_a_cap_that_cannot_cover_the_input_beside_the_field(buyer_client, session, buyer):
    instance = make_instance(session, buyer, slug="meeting-notes-summarizer")

    response = buyer_client.post(f"/account/instances/{instance.id}/runs",
                                 data={"input": SUMMARY_INPUT, "idempotency_key": "cap-1", "spending_cap": "1"},
                                 headers={"HX-Request": "true"})

    html = response.get_data(as_text=True)
    assert 'id="spending_cap-error"' in html
    assert "A spending cap of 1 credit cannot cover this input" in html
    assert run_count(session) == 0


def test_the_run_result_schema_documents_the_cap_outcome(client):
    document = client.get("/api/openapi.json").get_json()
    created = document["paths"]["/api/instances/{instance_id}/runs"]["post"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][ref]["properties"]

    assert {"cap_outcome", "overrun_credits"} <= set(properties)
    outcome = properties["cap_outcome"]
    assert {"cut", "overrun"} <= {value for option in outcome.get("anyOf", [outcome]) for value in option.get("enum", [])}
    assert "cut" in outcome["description"] and "overrun" in outcome["description"]
    assert {"cap_outcome", "overrun_credits"} <= set(document["components"]["schemas"][ref]["required"])
