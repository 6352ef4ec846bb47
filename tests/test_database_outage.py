"""The database down: every page and API call answers 503 with Retry-After, never a 500."""
import socket

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.web import database_unavailable


def _refusing_postgres_url() -> str:
    with socket.socket() as probe:  # a loopback port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/marketplace"


@pytest.fixture(params=["postgresql", "sqlite"])
def down_app(request, make_app, tmp_path):
    url = _refusing_postgres_url() if request.param == "postgresql" else f"sqlite:///{tmp_path}/missing/dir/db.sqlite"
    return make_app(SQLALCHEMY_DATABASE_URI=url)


@pytest.mark.parametrize("path", ["/", "/browse/agents", "/cart", "/search?q=agent"])
def test_pages_answer_a_friendly_503_with_retry_after(down_app, path):
    response = down_app.test_client().get(path)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    page = response.get_data(as_text=True)
    assert "We can&#39;t reach our database right now" in page or "We can't reach our database right now" in page
    assert "Try again" in page and "<html" in page


def test_a_signed_in_page_answers_503(down_app):
    client = down_app.test_client()
    from app.auth.session_user import SESSION_TOKEN_KEY

    with client.session_transaction() as s:  # a signed-in browser: its session record is looked up first
        s["user_id"], s["stamp"], s[SESSION_TOKEN_KEY] = 1, "stamp", "a-session-token"

    response = client.get("/account/orders")

    assert response.status_code == 503 and response.headers["Retry-After"] == "30"


@pytest.mark.parametrize("path, headers", [
    ("/api/offerings/", {}),
    ("/api/wallets/me", {"Authorization": "Bearer dmp_0123456789_abcdefghijklmnopqrstuvwxyz0123456789"}),
    ("/api/instances/1/entitlements", {"X-API-Key": "dmk_0123456789_abcdefghijklmnopqrstuvwxyz0123456789"}),
])
def test_the_api_answers_a_503_problem_with_retry_after(down_app, path, headers):
    response = down_app.test_client().get(path, headers=headers)

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "30"
    assert response.get_json() == {"type": "about:blank", "title": "Service Unavailable", "status": 503,
                                   "detail": "The database is not answering right now; try again shortly."}


def test_health_still_reports_degraded(down_app):
    response = down_app.test_client().get("/api/health")

    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded"


def test_a_query_the_database_refuses_is_not_an_outage():
    engine = create_engine("sqlite://")
    with pytest.raises(OperationalError) as caught, engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))

    assert database_unavailable(caught.value) is False


def test_the_500_page_does_not_claim_that_nothing_was_charged(app):
    def broken():
        raise RuntimeError("a defect")

    app.add_url_rule("/broken-for-test", view_func=broken)
    response = app.test_client().get("/broken-for-test")

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong on our side" in page
    assert "Nothing was charged" not in page and "nothing was charged" not in page
