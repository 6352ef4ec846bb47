"""The run gateway: POST /api/instances/<id>/runs charges exactly once, releases on failure, stays in its tenant."""
import threading

import pytest
from sqlalchemy import func, select

from app.adapters.runtime import RuntimeFailure
from app.adapters.runtime.builtin import BuiltinRuntime
from app.models import Hold, HoldStatus, InstanceStatus, LedgerEntry, Offering, Run, Wallet
from app.services import billing, identity, instances, keys
from tests.conftest import login
from tests.factories import make_user

# runs started here are executed (on PostgreSQL by a worker thread)
pytestmark = pytest.mark.usefixtures("run_worker")

QUESTION = "How do I reset my password?"


def make_instance(session, user, slug="customer-support-agent", tier="starter", **fields):
    offering = session.scalar(select(Offering).where(Offering.slug == slug))
    plan = next(p for p in offering.plans if p.tier == tier)
    org = identity.current_organization(session, user)
    instance = instances.create_instance(session, organization=org, plan=plan, created_by=user)
    for name, value in fields.items():
        setattr(instance, name, value)
    session.commit()
    return instance


def wallet_of(session, instance):
    session.expire_all()
    return session.scalar(select(Wallet).where(Wallet.organization_id == instance.organization_id))


def run_count(session):
    return session.scalar(select(func.count()).select_from(Run))


def set_balance(session, instance, credits):
    """Empty the wallet, then grant exactly `credits` (a purchase, so nothing expires)."""
    wallet = wallet_of(session, instance)
    session.execute(LedgerEntry.__table__.delete().where(LedgerEntry.wallet_id == wallet.id))
    from app.models import CreditGrant
    session.execute(CreditGrant.__table__.delete().where(CreditGrant.wallet_id == wallet.id))
    wallet.balance, wallet.held = 0, 0
    session.flush()
    if credits:
        billing.grant_credits(session, wallet=wallet, amount=credits, origin="purchase", reference="test")
    session.commit()


def test_a_run_deducts_exactly_the_settled_credits_and_records_one_run(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    before = wallet_of(session, instance).balance
    plan = instance.plan

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})

    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "succeeded"
    assert body["output"].startswith("Go to Settings > Security")
    expected = plan.credits_per_run + -(-body["usage_units"] // 1000) * plan.credits_per_1k_units
    assert body["credits"] == expected == 3  # 2 per run + 1 for the first thousand characters
    wallet = wallet_of(session, instance)
    assert wallet.balance == before - expected
    assert wallet.held == 0
    [run] = session.scalars(select(Run)).all()
    assert (run.status, run.credits, run.instance_id) == ("succeeded", expected, instance.id)
    assert run.duration_ms is not None and run.finished_at is not None
    hold = session.get(Hold, run.hold_id)
    assert (hold.status, hold.amount, hold.captured) == (HoldStatus.SETTLED.value, plan.max_credits_per_run, expected)


def test_a_retry_with_the_same_idempotency_key_never_charges_twice(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    first = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                              headers={"Prefer": "wait=30", "Idempotency-Key": "retry-1"})
    balance = wallet_of(session, instance).balance

    second = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                               headers={"Prefer": "wait=30", "Idempotency-Key": "retry-1"})
    changed = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": "another question",
                                                                          "idempotency_key": "retry-1"}, headers={"Prefer": "wait=30"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.get_json()["replayed"] is True
    assert changed.status_code == 409
    assert changed.get_json()["code"] == "idempotency_conflict"
    assert wallet_of(session, instance).balance == balance
    assert run_count(session) == 1


@pytest.mark.parametrize("failure", ["down", "timeout"])
def test_runtime_down_or_timing_out_releases_the_hold_and_charges_nothing(buyer_client, session, buyer, app,
                                                                         monkeypatch, failure):
    from app.adapters.runtime import RuntimeTimeout

    def broken(self, *args, **kwargs):
        if failure == "timeout":
            raise RuntimeTimeout("The agent did not answer within 30 seconds. You were not charged.")
        raise RuntimeFailure("The agent runtime cannot be reached right now. Try again in a moment.")

    monkeypatch.setattr(BuiltinRuntime, "run", broken)
    instance = make_instance(session, buyer)
    before = wallet_of(session, instance)
    balance, ledger_before = before.balance, session.scalar(select(func.count()).select_from(LedgerEntry))

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})

    assert response.status_code == (504 if failure == "timeout" else 502)
    body = response.get_json()
    assert body["detail"] == ("The agent did not answer within 30 seconds. You were not charged." if failure == "timeout"
                              else "The agent runtime cannot be reached right now. Try again in a moment.")
    status = "timed_out" if failure == "timeout" else "failed"
    assert body["run"]["status"] == status and body["run"]["credits"] == 0
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)
    [run] = session.scalars(select(Run)).all()
    assert run.status == status and run.error == body["detail"]
    assert session.get(Hold, run.hold_id).status == HoldStatus.RELEASED.value
    kinds = session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)).all()[ledger_before:]
    assert kinds == ["hold", "release"]


def test_the_spending_cap_bounds_the_hold_and_a_cap_below_the_price_is_refused(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    capped = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "spending_cap": 3}, headers={"Prefer": "wait=30"})
    too_low = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION, "spending_cap": 1}, headers={"Prefer": "wait=30"})

    assert capped.status_code == 201
    run = session.get(Run, capped.get_json()["id"])
    assert session.get(Hold, run.hold_id).amount == 3
    assert too_low.status_code == 422
    assert too_low.get_json()["errors"] == [{"field": "spending_cap", "message": too_low.get_json()["detail"]}]
    assert run_count(session) == 1


def test_usage_above_the_hold_is_never_charged_silently(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    long_question = "How do I reset my password? " + "please " * 700  # ~5,000 characters: 2 + 5 > cap of 4

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": long_question, "spending_cap": 4}, headers={"Prefer": "wait=30"})

    # the input alone costs more than the cap: refused before anything is held (see test_run_caps)
    assert response.status_code == 422
    assert response.get_json()["code"] == "cap_below_input"
    assert run_count(session) == 0
    assert wallet_of(session, instance).balance == balance


def test_a_wallet_without_enough_credits_gets_402_and_nothing_changes(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    set_balance(session, instance, 5)  # the hold is the plan's max per run: 12

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})

    assert response.status_code == 402
    assert response.get_json()["code"] == "insufficient_credits"
    assert response.get_json()["available"] == 5
    assert run_count(session) == 0
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (5, 0)
    assert session.scalar(select(func.count()).select_from(Hold)) == 0


@pytest.mark.parametrize("change, status, code", [
    ({"status": InstanceStatus.SUSPENDED.value}, 403, "instance_suspended"),
    ({"status": InstanceStatus.CANCELLED.value}, 403, "instance_cancelled"),
    ({"is_trial": True, "trial_ends_at": "past"}, 403, "trial_ended"),
])
def test_instances_that_may_not_run_are_refused_without_a_charge(buyer_client, session, buyer, change, status, code):
    from datetime import timedelta

    from app.models import utcnow
    if change.get("trial_ends_at") == "past":
        change = {**change, "trial_ends_at": utcnow() - timedelta(minutes=1)}
    instance = make_instance(session, buyer, **change)
    balance = wallet_of(session, instance).balance

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})

    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert run_count(session) == 0
    assert wallet_of(session, instance).balance == balance


def test_a_run_limit_reached_is_429(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    instance.plan.max_runs_per_period = 1
    session.commit()
    assert buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"}).status_code == 201

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})

    assert response.status_code == 429
    assert response.get_json()["code"] == "run_limit_reached"
    assert run_count(session) == 1


def test_a_member_of_another_organization_can_neither_open_nor_run_the_instance(client, session, buyer):
    instance = make_instance(session, buyer)
    outsider = make_user(session, email="outsider@example.test")
    session.commit()
    login(client, outsider)
    balance = wallet_of(session, instance).balance

    page = client.get(f"/account/instances/{instance.id}")
    run = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30"})
    console = client.post(f"/account/instances/{instance.id}/runs", data={"input": QUESTION})

    assert page.status_code == 404
    assert run.status_code == 404
    assert run.get_json()["detail"] == "Instance not found."
    assert console.status_code == 404
    assert run_count(session) == 0
    assert wallet_of(session, instance).balance == balance


def test_an_instance_api_key_runs_only_its_own_instance(client, session, buyer):
    instance = make_instance(session, buyer)
    other = make_instance(session, buyer, slug="meeting-notes-summarizer")
    _, secret = keys.create_api_key(session, instance=instance, actor=buyer, name="help desk")
    session.commit()

    own = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={"Prefer": "wait=30", "X-API-Key": secret})
    foreign = client.post(f"/api/instances/{other.id}/runs", json={"input": "x " * 20}, headers={"Prefer": "wait=30", "X-API-Key": secret})

    assert own.status_code == 201
    assert foreign.status_code == 404
    [run] = session.scalars(select(Run)).all()
    assert run.api_key_id is not None and run.created_by_id is None


def test_an_input_the_agent_cannot_use_is_a_422_failed_run_without_charge(buyer_client, session, buyer):
    instance = make_instance(session, buyer, slug="sales-outreach-agent")
    balance = wallet_of(session, instance).balance

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": "role: CTO"}, headers={"Prefer": "wait=30"})

    assert response.status_code == 422
    assert response.get_json()["detail"].startswith("Missing name and company.")
    assert wallet_of(session, instance).balance == balance


def test_bad_bodies_name_the_field(buyer_client, session, buyer):
    instance = make_instance(session, buyer)

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": ""}, headers={"Prefer": "wait=30"})

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["input"]
    assert run_count(session) == 0


@pytest.mark.postgres_only
def test_two_concurrent_runs_on_a_wallet_with_credits_for_one_one_succeeds_one_gets_402(app, session, buyer,
                                                                                         monkeypatch):
    refused = threading.Event()
    real_run = BuiltinRuntime.run

    def run_after_the_other_was_refused(self, *args, **kwargs):
        refused.wait(10)  # the winner may not settle (and free credits) before the loser asked for its hold
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(BuiltinRuntime, "run", run_after_the_other_was_refused)
    instance = make_instance(session, buyer)
    set_balance(session, instance, 15)  # one hold of 12 fits, two do not
    app.config["WTF_CSRF_ENABLED"] = False
    url = f"/api/instances/{instance.id}/runs"
    clients = [app.test_client() for _ in range(2)]
    for client in clients:
        login(client, buyer)
    barrier = threading.Barrier(2)
    statuses = []

    def attempt(client):
        barrier.wait()
        status = client.post(url, json={"input": QUESTION}, headers={"Prefer": "wait=30"}).status_code
        statuses.append(status)
        if status == 402:
            refused.set()

    threads = [threading.Thread(target=attempt, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201, 402]
    wallet = wallet_of(session, instance)
    [run] = session.scalars(select(Run)).all()
    assert wallet.balance == 15 - run.credits
    assert wallet.held == 0


def test_a_langflow_offering_runs_through_the_adapter_and_is_charged_for_its_tokens(make_app, session, buyer):
    from tests.runtime import fake_langflow

    server, langflow = fake_langflow.start()
    try:
        app = make_app(LANGFLOW_URL=langflow.url, LANGFLOW_API_KEY=fake_langflow.API_KEY, LANGFLOW_TIMEOUT=5)
        instance = make_instance(session, buyer)
        instance.version.runtime_kind, instance.version.runtime_ref = "langflow", "usage"
        session.commit()
        balance = wallet_of(session, instance).balance
        client = app.test_client()
        login(client, buyer)

        response = client.post(f"/api/instances/{instance.id}/runs", json={"input": "summarize this", "session_id": "chat-7"}, headers={"Prefer": "wait=30"})
    finally:
        server.shutdown()
        server.server_close()

    assert response.status_code == 201
    body = response.get_json()
    assert body["output"] == "answer to summarize this"
    assert body["usage_units"] == 1545
    assert body["credits"] == 2 + 2 * 1  # per run + two started thousands of tokens
    assert wallet_of(session, instance).balance == balance - 4
    [request] = langflow.requests
    assert request.body["session_id"] == body["session_id"] == f"inst{instance.id}-chat-7"
    assert request.headers["x-api-key"] == fake_langflow.API_KEY


def test_a_runs_request_carries_its_versions_tweaks_and_output_component(make_app, session, buyer):
    from tests.runtime import fake_langflow

    server, langflow = fake_langflow.start()
    try:
        app = make_app(LANGFLOW_URL=langflow.url, LANGFLOW_API_KEY=fake_langflow.API_KEY, LANGFLOW_TIMEOUT=5)
        instance = make_instance(session, buyer)
        version = instance.version
        version.runtime_kind, version.runtime_ref = "langflow", "usage"
        version.output_component = "ChatOutput-yK0AU"
        version.tweaks_json = '{"ChatInput-a1": {"should_store_message": false}}'
        session.commit()
        client = app.test_client()
        login(client, buyer)

        response = client.post(f"/api/instances/{instance.id}/runs", json={"input": "summarize this"},
                               headers={"Prefer": "wait=30"})
    finally:
        server.shutdown()
        server.server_close()

    assert response.status_code == 201
    [request] = langflow.requests
    assert request.body["tweaks"] == {"ChatInput-a1": {"should_store_message": False}}
    assert request.body["output_component"] == "ChatOutput-yK0AU"


def test_stale_running_runs_are_failed_and_their_holds_released(buyer_client, session, buyer):
    from datetime import timedelta

    from app.models import utcnow
    from app.services import run_endings, runs

    instance = make_instance(session, buyer)
    balance = wallet_of(session, instance).balance
    prepared = runs.start_run(session, instance=instance, input_text=QUESTION, user=buyer,
                              now=utcnow() - timedelta(minutes=10))
    session.commit()  # the process "died" here: never finished

    swept = run_endings.fail_stale_runs(session)
    session.commit()
    again = run_endings.fail_stale_runs(session)

    assert (swept, again) == (1, 0)
    run = session.get(Run, prepared.run_id)
    assert (run.status, run.credits, run.error) == ("failed", 0, "The run did not finish. You were not charged.")
    assert session.get(Hold, prepared.hold_id).status in (HoldStatus.RELEASED.value, HoldStatus.EXPIRED.value)
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)
