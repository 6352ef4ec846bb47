"""What a signed-in page costs: the session, its user and the header's organization count in one query;
the idle deadline written at most once per interval; the session cookie sent only when it changes."""
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.models import UserSession, utcnow
from app.services import identity
from tests.conftest import login
from tests.factories import make_org, make_user

PASSWORD = "correct-horse-battery"
COOKIE = "dm_session"
CATALOG_PAGES = ["/", "/search?q=support", "/search?category=agents&role=support&pricing=free-trial",
                 "/p/customer-support-agent"]


@contextmanager
def statements(app):
    """The SQL statements the app's engine runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", CATALOG_PAGES)
def test_a_signed_in_catalog_page_makes_at_most_three_queries(app, buyer_client, path):
    first = buyer_client.get(path)  # fills the page cache and the session's CSRF token
    assert first.status_code == 200 and "Sign out" in first.get_data(as_text=True)

    with statements(app) as seen:
        page = buyer_client.get(path)
    assert page.status_code == 200 and "Sign out" in page.get_data(as_text=True)
    # the session with its user and organization count, the catalog revision, the cart count
    assert len(seen) <= 3, seen
    assert sum("user_session" in s for s in seen) == 1
    assert not any("user_account" in s and "user_session" not in s for s in seen)  # the user came with the session


def test_the_organization_switch_shows_for_a_member_of_two_organizations_only(app, session, demo):
    one = make_user(session, email="one@example.com")
    two = make_user(session, email="two@example.com")
    identity.ensure_personal_organization(session, user=one)
    identity.ensure_personal_organization(session, user=two)
    make_org(session, owner=two, name="Second Team")
    session.commit()
    for user, expected in ((one, False), (two, True)):
        client = app.test_client()
        login(client, user)
        client.get("/p/customer-support-agent")
        page = client.get("/p/customer-support-agent").get_data(as_text=True)
        assert ("Switch organization" in page) is expected
        assert ("Second Team" in page) is expected


def test_the_idle_deadline_is_written_at_most_once_a_minute(session):
    user = make_user(session)
    start = utcnow()
    idle, lifetime = timedelta(hours=12), timedelta(days=14)
    token = identity.start_session(session, user_id=user.id, idle_timeout=idle, max_lifetime=lifetime, now=start)
    session.commit()

    record = identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                     now=start + timedelta(seconds=59))
    assert record.last_seen_at == start and not session.dirty  # nothing to write
    record = identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                     now=start + timedelta(seconds=61))
    assert record.last_seen_at == start + timedelta(seconds=61)
    assert record.expires_at == start + timedelta(seconds=61) + idle
    assert session.dirty


def test_a_short_idle_timeout_is_written_often_enough_to_keep_a_session_in_use(session):
    user = make_user(session)
    start = utcnow()
    idle, lifetime = timedelta(seconds=60), timedelta(days=1)
    token = identity.start_session(session, user_id=user.id, idle_timeout=idle, max_lifetime=lifetime, now=start)

    for seconds in range(50, 301, 50):  # a request every 50 s: never 60 s idle
        assert identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                       now=start + timedelta(seconds=seconds)) is not None
    assert identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                   now=start + timedelta(seconds=361)) is None


def test_signed_in_requests_within_a_minute_write_nothing(app, buyer_client):
    buyer_client.get("/")
    with statements(app) as seen:
        for path in CATALOG_PAGES:
            assert buyer_client.get(path).status_code == 200
    assert not [s for s in seen if s.startswith(("UPDATE", "INSERT", "DELETE"))]


def test_a_signed_in_request_after_a_minute_moves_the_idle_deadline_on_once(app, buyer_client):
    buyer_client.get("/")
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        record.last_seen_at -= timedelta(minutes=2)
        record.expires_at -= timedelta(minutes=2)
        db.session.commit()
        before = record.last_seen_at

    with statements(app) as seen:
        buyer_client.get("/p/customer-support-agent")
        buyer_client.get("/p/customer-support-agent")
    assert len([s for s in seen if s.startswith("UPDATE user_session")]) == 1
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        assert record.last_seen_at > before + timedelta(minutes=1)
        assert record.expires_at - record.last_seen_at == timedelta(seconds=app.config["SESSION_IDLE_TIMEOUT"])


def _set_cookie(response) -> str | None:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}=")]
    assert len(cookies) <= 1
    return cookies[0] if cookies else None


def test_the_session_cookie_is_sent_again_only_when_the_session_changes(make_app):
    app = make_app(SESSION_COOKIE_SECURE=True)
    with app.app_context():
        from app.services import seed

        seed.seed_demo(db.session, password=app.config["DEMO_PASSWORD"])
        db.session.commit()
    client = app.test_client()
    signed_in = client.post("/auth/login", data={"email": "buyer@example.com",
                                                 "password": app.config["DEMO_PASSWORD"]})
    assert signed_in.status_code == 302
    issued = _set_cookie(signed_in)
    assert issued and "Secure" in issued and "HttpOnly" in issued and "SameSite=Lax" in issued and "Expires=" in issued

    first = client.get("/")  # the session gains its CSRF token: sent again, with the same flags
    again = _set_cookie(first)
    assert again and "Secure" in again and "HttpOnly" in again and "SameSite=Lax" in again

    for path in CATALOG_PAGES + ["/account/settings"]:  # nothing in the session changes: nothing sent
        page = client.get(path)
        assert page.status_code == 200 and "Sign out" in page.get_data(as_text=True)
        assert _set_cookie(page) is None, path

    changed = client.post("/account/organization", data={})  # a message for the next page: the session changed
    assert changed.status_code == 303
    carried = _set_cookie(changed)
    assert carried and "Secure" in carried and "HttpOnly" in carried and "SameSite=Lax" in carried
    shown = client.get("/account/settings")  # the message is shown and taken out of the session
    assert "Choose an organization to switch to." in shown.get_data(as_text=True)
    assert _set_cookie(shown) is not None
    assert _set_cookie(client.get("/account/settings")) is None

    assert _set_cookie(client.post("/auth/logout")) is not None  # signing out clears it
    assert "Sign in" in client.get("/").get_data(as_text=True)
