"""Request rates per instance API key: the configured default or the key's own, counted by the key's
prefix; over it a 429 problem with Retry-After that names the rate, and nothing is held or run."""
import pytest
from sqlalchemy import func, select

from app.models import Hold
from app.services import keys
from tests.runtime.test_gateway import QUESTION, make_instance, run_count, wallet_of

pytestmark = pytest.mark.usefixtures("run_worker")
WAIT = {"Prefer": "wait=30"}  # the finished run, as a client that waits for it asks


@pytest.fixture
def app(make_app):
    return make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_API_KEY="2 per minute")


def new_key(session, instance, buyer, **limits):
    _, secret = keys.create_api_key(session, instance=instance, actor=buyer, name="integration", **limits)
    session.commit()
    return secret


def run(client, instance, secret):
    return client.post(f"/api/instances/{instance.id}/runs", json={"input": QUESTION}, headers={**WAIT, "X-API-Key": secret})


def test_a_key_over_the_default_rate_gets_429_and_nothing_is_held(client, session, buyer):
    instance = make_instance(session, buyer)
    secret = new_key(session, instance, buyer)
    other = new_key(session, instance, buyer)
    assert [run(client, instance, secret).status_code for _ in range(2)] == [201, 201]
    wallet = wallet_of(session, instance)
    balance, holds = wallet.balance, session.scalar(select(func.count()).select_from(Hold))

    refused = run(client, instance, secret)
    another_key = run(client, instance, other)

    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["detail"] == ("Too many requests with this API key: its limit is 2 per minute. "
                                            "Wait a little and try again.")
    assert another_key.status_code == 201
    assert run_count(session) == 3
    assert session.scalar(select(func.count()).select_from(Hold)) == holds + 1
    assert wallet_of(session, instance).balance < balance  # only the other key's run was charged


def test_a_keys_own_rate_overrides_the_default_and_can_be_changed(client, buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    secret = new_key(session, instance, buyer, rate_limit="1 per minute")
    [key] = keys.list_api_keys(session, instance=instance)

    first, second = run(client, instance, secret), run(client, instance, secret)
    changed = buyer_client.put(f"/api/instances/{instance.id}/keys/{key.id}/limits",
                               json={"rate_limit": "5 per minute", "monthly_credit_quota": None})
    third = run(client, instance, secret)

    assert (first.status_code, second.status_code) == (201, 429)
    assert "its limit is 1 per minute." in second.get_json()["detail"]
    assert changed.status_code == 200 and changed.get_json()["rate_limit"] == "5 per minute"
    assert third.status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "rate_limit": "lots"}, "rate_limit"),
    ({"name": "x", "rate_limit": "0 per minute"}, "rate_limit"),
    ({"name": "x", "monthly_credit_quota": 0}, "monthly_credit_quota"),
])
def test_unreadable_limits_on_a_new_key_name_the_field_and_create_nothing(buyer_client, session, buyer, body, field):
    instance = make_instance(session, buyer)

    response = buyer_client.post(f"/api/instances/{instance.id}/keys/", json=body)

    assert response.status_code in (400, 422)
    assert [e["field"] for e in response.get_json()["errors"]] == [field]
    assert keys.list_api_keys(session, instance=instance) == []


def test_limits_set_on_the_instance_page(buyer_client, session, buyer):
    instance = make_instance(session, buyer)
    created = buyer_client.post(f"/account/instances/{instance.id}/keys",
                                data={"name": "help desk", "rate_limit": "30 per minute",
                                      "monthly_credit_quota": "250"})
    [key] = keys.list_api_keys(session, instance=instance)

    bad = buyer_client.post(f"/account/instances/{instance.id}/keys/{key.id}/limits",
                            data={f"key{key.id}-rate_limit": "often", f"key{key.id}-monthly_credit_quota": "10"})
    session.expire_all()
    unchanged = (key.rate_limit, key.monthly_credit_quota)
    saved = buyer_client.post(f"/account/instances/{instance.id}/keys/{key.id}/limits",
                              data={f"key{key.id}-rate_limit": "", f"key{key.id}-monthly_credit_quota": "90"})
    session.expire_all()

    assert created.status_code == 201
    assert unchanged == ("30 per minute", 250)
    assert bad.status_code == 400
    assert "“often” is not a rate." in bad.get_data(as_text=True)
    assert saved.status_code == 303
    assert (key.rate_limit, key.monthly_credit_quota) == (None, 90)
