"""Run limits: runs in progress per instance and per wallet (429 + Retry-After), an API key's monthly
credit quota (402), each refused before anything is held; and each key's usage this month."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.adapters.runtime import RuntimeFailure
from app.adapters.runtime.builtin import BuiltinRuntime
from app.models import Hold, Run, utcnow
from app.services import keys
from app.services.run_limits import month_start
from tests.conftest import login
from tests.runtime.test_gateway import QUESTION, make_instance, run_count, wallet_of

pytestmark = pytest.mark.usefixtures("run_worker")
WAIT = {"Prefer": "wait=30"}  # the finished run, as a client that waits for it asks

HOLD = 12  # the starter plan's most per run (2 per run + 10): what each run holds
COST = 3  # what the QUESTION run is charged: 2 per run + 1 for its first thousand characters


def hold_count(session):
    return session.scalar(select(func.count()).select_from(Hold))


def in_progress_run(session, instance, status="running", api_key=None):
    """A run another request is working on (no hold: the limits count runs, not holds)."""
    run = Run(instance_id=instance.id, status=status, input_text="x", api_key_id=api_key.id if api_key else None)
    session.add(run)
    session.commit()
    return run


def api_key(session, instance, buyer, **limits):
    key, secret = keys.create_api_key(session, instance=instance, actor=buyer, name="integration", **limits)
    # marked used just now, so no request writes the key's row: the races below are not serialized by
    # that row's lock, only by the limits' own
    key.last_used_at = utcnow()
    session.commit()
    return key, secret


@pytest.mark.parametrize("status", ["running", "queued"])
def test_too_many_runs_in_progress_on_an_instance_is_429_with_retry_after_and_nothing_held(
        buyer_client, session, buyer, status):
    instance = make_instance(session, buyer)
    instance.plan.max_concurrent_runs = 2
    session.commit()
    for _ in range(2):
        in_progress_run(session, instance, status)
    wallet = wallet_of(session, instance)
    balance, held = wallet.balance, wallet.held

    response = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers=WAIT)

    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "2"
    body = response.get_json()
    assert (body["code"], body["limit"], body["in_progress"]) == ("instance_concurrency_limit", 2, 2)
    assert body["detail"] == ("This instance already has 2 runs in progress, the most its plan allows at once (2). "
                              "Wait for one to finish and try again.")
    assert run_count(session) == 2
    assert hold_count(session) == 0
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, held)


def test_finished_runs_do_not_count_and_a_freed_slot_runs(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    instance.plan.max_concurrent_runs = 1
    session.commit()
    busy = in_progress_run(session, instance)
    refused = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers=WAIT)
    busy.status = "failed"
    session.commit()

    first = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers=WAIT)
    second = buyer_client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers=WAIT)

    assert (refused.status_code, first.status_code, second.status_code) == (429, 201, 201)


def test_runs_in_progress_across_the_wallet_are_limited_by_the_plan(buyer_client, session, buyer):
    first = make_instance(session, buyer)
    second = make_instance(session, buyer, slug="meeting-notes-summarizer")
    third = make_instance(session, buyer, tier="pro")
    third.plan.max_concurrent_runs_per_wallet = 2
    session.commit()
    in_progress_run(session, first)
    in_progress_run(session, second)

    refused = buyer_client.post(f"/api/instances/{third.id}/runs", json={"input": QUESTION}, headers=WAIT)
    first.plan.max_concurrent_runs_per_wallet = 3  # another plan's wallet limit is its own
    session.commit()
    allowed = buyer_client.post(f"/api/instances/{first.id}/runs", json={"input": QUESTION}, headers=WAIT)

    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert (refused.get_json()["code"], refused.get_json()["limit"]) == ("wallet_concurrency_limit", 2)
    assert "Your organization already has 2 runs in progress" in refused.get_json()["detail"]
    assert allowed.status_code == 201
    assert run_count(session) == 3


def test_another_organizations_runs_do_not_count(client, session, buyer):
    from tests.factories import make_user

    theirs = make_instance(session, buyer)
    theirs.plan.max_concurrent_runs_per_wallet = 1
    session.commit()
    in_progress_run(session, theirs)
    other = make_user(session, email="other@example.com")
    session.commit()
    mine = make_instance(session, other)
    from app.services import billing
    billing.grant_credits(session, wallet=wallet_of(session, mine), amount=100, origin="purchase", reference="t")
    session.commit()
    login(client, other)

    response = client.post(f"/api/instances/{mine.id}/runs", json={"input": QUESTION}, headers=WAIT)

    assert response.status_code == 201


def test_a_key_over_its_monthly_quota_gets_402_with_the_reason_and_nothing_held(client, session, buyer):
    instance = make_instance(session, buyer)
    key, secret = api_key(session, instance, buyer, monthly_credit_quota=2 * COST + HOLD)
    last_month = month_start(utcnow()) - timedelta(days=3)
    session.add(Run(instance_id=instance.id, status="succeeded", credits=500, api_key_id=key.id,
                    created_at=last_month))  # last month's runs do not count
    session.commit()

    statuses = [client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                            headers={**WAIT, "X-API-Key": secret}).status_code for _ in range(3)]
    wallet = wallet_of(session, instance)
    balance, holds = wallet.balance, hold_count(session)
    refused = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                          headers={**WAIT, "X-API-Key": secret})

    # 0 + 12, then 3 + 12, then 6 + 12 fit a quota of 18; the fourth would reach 9 + 12 = 21
    assert statuses == [201, 201, 201]
    assert refused.status_code == 402
    body = refused.get_json()
    assert (body["code"], body["quota"], body["used"], body["requested"]) == ("key_quota_exceeded", 18, 9, 12)
    assert body["detail"] == ("This API key's monthly quota of 18 credits would be exceeded: 9 are used or held this "
                              "month and this run may cost up to 12. Raise the key's quota, or wait for next month.")
    assert run_count(session) == 4
    assert hold_count(session) == holds
    wallet = wallet_of(session, instance)
    assert (wallet.balance, wallet.held) == (balance, 0)


def test_the_quota_counts_what_runs_in_progress_hold_and_other_keys_are_not_limited(client, session, buyer):
    instance = make_instance(session, buyer)
    limited, limited_secret = api_key(session, instance, buyer, monthly_credit_quota=HOLD + 5)
    _, free_secret = api_key(session, instance, buyer)
    busy = in_progress_run(session, instance, api_key=limited)
    hold = Hold(wallet_id=wallet_of(session, instance).id, instance_id=instance.id, amount=6, status="active",
                idempotency_key="busy", expires_at=utcnow() + timedelta(minutes=5))
    session.add(hold)
    session.flush()
    busy.hold_id = hold.id
    session.commit()

    refused = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                          headers={**WAIT, "X-API-Key": limited_secret})
    other = client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                        headers={**WAIT, "X-API-Key": free_secret})

    assert refused.status_code == 402
    assert (refused.get_json()["used"], refused.get_json()["requested"]) == (6, 12)
    assert other.status_code == 201


@pytest.mark.postgres_only
def test_concurrent_runs_of_one_key_never_overshoot_its_quota(app, session, buyer, monkeypatch):
    attempts, fits = 8, 3
    instance = make_instance(session, buyer)
    key, secret = api_key(session, instance, buyer, monthly_credit_quota=fits * HOLD + HOLD - 1)
    refusals = []
    all_refused = threading.Event()
    real_run = BuiltinRuntime.run

    def run_once_the_others_were_refused(self, *args, **kwargs):
        all_refused.wait(15)  # the holds stay in place while the other attempts are checked
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(BuiltinRuntime, "run", run_once_the_others_were_refused)
    clients = [app.test_client() for _ in range(attempts)]
    barrier = threading.Barrier(attempts)
    statuses = []
    url = f"/api/instances/{instance.id}/runs"

    def attempt(client):
        barrier.wait()
        response = client.post(url, json={"input": QUESTION},
                               headers={**WAIT, "X-API-Key": secret})
        statuses.append(response.status_code)
        if response.status_code == 402:
            refusals.append(response.get_json()["code"])
            if len(refusals) == attempts - fits:
                all_refused.set()

    threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * fits + [402] * (attempts - fits)
    assert set(refusals) == {"key_quota_exceeded"}
    session.expire_all()
    charged = session.scalar(select(func.sum(Run.credits)).where(Run.api_key_id == key.id))
    assert charged == fits * COST
    wallet = wallet_of(session, instance)
    assert wallet.held == 0


@pytest.mark.postgres_only
def test_concurrent_runs_of_one_instance_never_exceed_its_concurrency_limit(app, session, buyer, monkeypatch):
    attempts, limit = 6, 2
    instance = make_instance(session, buyer)
    instance.plan.max_concurrent_runs = limit
    session.commit()
    _, secret = api_key(session, instance, buyer)
    refused_all = threading.Event()
    refused = []
    real_run = BuiltinRuntime.run

    def run_once_the_others_were_refused(self, *args, **kwargs):
        refused_all.wait(15)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(BuiltinRuntime, "run", run_once_the_others_were_refused)
    barrier = threading.Barrier(attempts)
    statuses = []
    url = f"/api/instances/{instance.id}/runs"

    def attempt(client):
        barrier.wait()
        response = client.post(url, json={"input": QUESTION}, headers={**WAIT, "X-API-Key": secret})
        statuses.append(response.status_code)
        if response.status_code == 429:
            refused.append(response.headers["Retry-After"])
            if len(refused) == attempts - limit:
                refused_all.set()

    threads = [threading.Thread(target=attempt, args=(app.test_client(),)) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * limit + [429] * (attempts - limit)
    assert refused == ["2"] * (attempts - limit)
    assert wallet_of(session, instance).held == 0


def test_each_keys_usage_this_month_in_the_api_and_on_the_instance_page(buyer_client, client, session, buyer,
                                                                       monkeypatch):
    instance = make_instance(session, buyer)
    used, used_secret = api_key(session, instance, buyer, monthly_credit_quota=500)
    idle, _ = api_key(session, instance, buyer)
    for _ in range(2):
        assert client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                           headers={**WAIT, "X-API-Key": used_secret}).status_code == 201

    def down(self, *args, **kwargs):
        raise RuntimeFailure("The agent runtime cannot be reached right now. Try again in a moment.")

    monkeypatch.setattr(BuiltinRuntime, "run", down)
    assert client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION},
                       headers={**WAIT, "X-API-Key": used_secret}).status_code == 502
    durations = [40, 10, 25]
    for run, ms in zip(session.scalars(select(Run).order_by(Run.id)), durations):
        run.duration_ms = ms
    session.add(Run(instance_id=instance.id, status="succeeded", credits=99, duration_ms=1, api_key_id=used.id,
                    created_at=month_start(utcnow()) - timedelta(seconds=1)))  # last month
    session.commit()

    listed = buyer_client.get(f"/api/instances/{instance.id}/keys/")
    page = buyer_client.get(f"/account/instances/{instance.id}")

    assert listed.status_code == 200
    by_id = {k["id"]: k for k in listed.get_json()["items"]}
    assert by_id[used.id]["usage"] == {"runs": 3, "credits": 2 * COST, "errors": 1, "p50_latency_ms": 25}
    assert by_id[used.id]["monthly_credit_quota"] == 500 and by_id[used.id]["rate_limit"] is None
    assert by_id[idle.id]["usage"] == {"runs": 0, "credits": 0, "errors": 0, "p50_latency_ms": None}
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<th scope=\"col\" class=\"num\">Runs this month</th>" in html
    row = html[html.index(used.prefix):]
    row = row[:row.index("</tr>")]
    assert '<td class="num">3</td>' in row
    assert f'<td class="num">{2 * COST} <span class="muted small">of 500</span></td>' in row
    assert '<td class="num">25 ms</td>' in row
