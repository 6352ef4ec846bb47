"""Request rates on /auth/* (per address) and /api (per credential), from the configuration: over the
limit a 429 with Retry-After, problem+json on the API and the friendly page elsewhere."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from app.extensions import db
from app.services import tokens
from tests.factories import make_user

SERVICE_TOKEN = "gateway-service-token-0123456789"


def test_test_apps_are_not_rate_limited_unless_they_ask(make_app):
    assert make_app().config["RATELIMIT_ENABLED"] is False
    assert make_app(RATE_LIMITS_ENABLED=True).config["RATELIMIT_ENABLED"] is True


def test_too_many_sign_in_requests_from_one_address_get_the_friendly_429_page(make_app):
    app = make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_AUTH="3 per minute")
    client = app.test_client()
    for _ in range(3):
        assert client.get("/auth/login").status_code == 200

    refused = client.get("/auth/login")
    posted = client.post("/auth/login", data={"email": "u@example.com", "password": "whatever-it-is"})
    elsewhere = app.test_client().get("/auth/login", environ_base={"REMOTE_ADDR": "198.51.100.4"})

    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    page = refused.get_data(as_text=True)
    assert "<h1>Slow down a little</h1>" in page
    assert "Too many requests in a short time. Wait a little and try again." in page
    assert posted.status_code == 429
    assert elsewhere.status_code == 200


def test_too_many_api_calls_with_one_credential_get_a_problem_with_retry_after(make_app):
    app = make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_API="2 per minute")
    with app.app_context():
        user = make_user(db.session)
        _, first = tokens.create_token(db.session, user=user, name="script one")
        _, second = tokens.create_token(db.session, user=user, name="script two")
        db.session.commit()
    client = app.test_client()

    def wallet(secret: str):
        return client.get("/api/wallets/me", headers={"Authorization": f"Bearer {secret}"})

    assert [wallet(first).status_code for _ in range(2)] == [200, 200]
    refused = wallet(first)
    other = wallet(second)

    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json() == {
        "type": "about:blank", "title": "Too Many Requests", "status": 429,
        "detail": "Too many requests in a short time. Wait a little and try again.",
    }
    assert other.status_code == 200


def test_the_gateway_service_token_is_not_rate_limited(make_app):
    app = make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_API="2 per minute", GATEWAY_SERVICE_TOKEN=SERVICE_TOKEN)
    client = app.test_client()
    statuses = {client.get("/api/health", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}).status_code
                for _ in range(6)}
    anonymous = [client.get("/api/health").status_code for _ in range(3)]

    assert 429 not in statuses
    assert anonymous[-1] == 429


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url():
    shared = os.environ.get("TEST_REDIS_URL")  # make test's throw-away Redis
    if shared:
        import redis

        redis.Redis.from_url(shared).flushdb()
        yield shared
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_with_redis_every_worker_shares_the_counts(make_app, redis_url):
    settings = {"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_AUTH": "3 per minute", "REDIS_URL": redis_url}
    worker_one, worker_two = make_app(**settings), make_app(**settings)

    statuses = [app.test_client().get("/auth/login").status_code
                for app in (worker_one, worker_two, worker_one, worker_two)]

    assert statuses == [200, 200, 200, 429]


def test_an_unreachable_redis_does_not_break_requests(make_app):
    app = make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_AUTH="3 per minute",
                   REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0", REDIS_TIMEOUT=0.2)
    client = app.test_client()

    assert [client.get("/auth/login").status_code for _ in range(4)] == [200, 200, 200, 429]
