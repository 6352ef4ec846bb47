"""Signed-in sessions live on the server: signing out ends them for every copy of the cookie; they idle
out and reach an absolute lifetime; "Sign out everywhere"; a password change ends the others; purge."""
import json
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, UserSession, utcnow
from app.services import identity
from tests.conftest import login
from tests.factories import make_user

PASSWORD = "correct-horse-battery"
COOKIE = "dm_session"


def _sessions(session, user=None) -> int:
    query = select(func.count()).select_from(UserSession)
    if user is not None:
        query = query.where(UserSession.user_id == user.id)
    return session.scalar(query)


def _signed_in_client(app, email: str):
    client = app.test_client()
    response = client.post("/auth/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _replay(app, cookie_value: str):
    """A different browser holding a copy of the cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie_value)
    return thief


def test_a_cookie_replayed_after_sign_out_is_refused_on_pages_and_the_api(app, session):
    user = make_user(session, email="u@example.com", password=PASSWORD)
    session.commit()
    client = _signed_in_client(app, "u@example.com")
    copied = client.get_cookie(COOKIE).value
    assert _replay(app, copied).get("/account/settings").status_code == 200
    assert _replay(app, copied).get("/api/wallets/me").status_code == 200

    assert client.post("/auth/logout").status_code == 302

    page = _replay(app, copied).get("/account/settings")
    api = _replay(app, copied).get("/api/wallets/me")
    assert page.status_code == 302 and page.headers["Location"].startswith("/auth/login")
    assert api.status_code == 401 and api.mimetype == "application/problem+json"
    assert _sessions(session, user) == 0


def test_a_signed_cookie_without_a_session_record_signs_no_one_in(client, session):
    """The cookies of before: a user id and stamp, signed, but no server-side session."""
    from app.auth.session_user import session_stamp

    user = make_user(session, password=PASSWORD)
    session.commit()
    with client.session_transaction() as s:
        s["user_id"] = user.id
        s["stamp"] = session_stamp(user)
        s["sid"] = "made-up-token"

    assert client.get("/account/settings").status_code == 302
    assert client.get("/api/wallets/me").status_code == 401


def test_a_session_ends_after_the_idle_timeout(make_app):
    app = make_app(SESSION_IDLE_TIMEOUT=600, SESSION_MAX_LIFETIME=86400)
    with app.app_context():
        user_id = make_user(db.session, email="u@example.com", password=PASSWORD).id
        db.session.commit()
    client = _signed_in_client(app, "u@example.com")
    assert client.get("/account/settings").status_code == 200
    with app.app_context():  # eleven minutes without a request
        record = db.session.scalar(select(UserSession))
        assert record.expires_at - record.last_seen_at == timedelta(seconds=600)
        record.last_seen_at -= timedelta(minutes=11)
        record.expires_at -= timedelta(minutes=11)
        db.session.commit()

    assert client.get("/account/settings").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == user_id)) == 0


def test_idle_deadline_moves_on_with_use_but_never_past_the_absolute_lifetime(session):
    user = make_user(session)
    start = utcnow()
    idle, lifetime = timedelta(minutes=10), timedelta(minutes=25)
    token = identity.start_session(session, user_id=user.id, idle_timeout=idle, max_lifetime=lifetime, now=start)

    for minutes in (9, 18):  # used every nine minutes: the idle deadline follows
        record = identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                         now=start + timedelta(minutes=minutes))
        assert record is not None
    assert record.expires_at == start + lifetime  # 18 + 10 would be past the lifetime
    assert identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                   now=start + timedelta(minutes=24)) is not None
    assert identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                   now=start + timedelta(minutes=25, seconds=1)) is None
    assert _sessions(session, user) == 0


def test_a_session_that_is_not_used_idles_out(session):
    user = make_user(session)
    start = utcnow()
    idle, lifetime = timedelta(minutes=10), timedelta(days=1)
    token = identity.start_session(session, user_id=user.id, idle_timeout=idle, max_lifetime=lifetime, now=start)

    assert identity.resume_session(session, token=token, idle_timeout=idle, max_lifetime=lifetime,
                                   now=start + timedelta(minutes=10, seconds=1)) is None


def test_the_absolute_lifetime_holds_even_when_the_configuration_shortens_it(session):
    user = make_user(session)
    start = utcnow()
    token = identity.start_session(session, user_id=user.id, idle_timeout=timedelta(hours=12),
                                   max_lifetime=timedelta(days=14), now=start)

    assert identity.resume_session(session, token=token, idle_timeout=timedelta(hours=12),
                                   max_lifetime=timedelta(hours=1), now=start + timedelta(hours=2)) is None


def test_sign_out_everywhere_ends_every_session_of_the_account_only(app, session):
    user = make_user(session, email="u@example.com", password=PASSWORD)
    other = make_user(session, email="o@example.com", password=PASSWORD)
    session.commit()
    laptop = _signed_in_client(app, "u@example.com")
    phone = _signed_in_client(app, "u@example.com")
    someone_else = _signed_in_client(app, "o@example.com")
    page = laptop.get("/account/settings").get_data(as_text=True)
    assert "You are signed in on 2 browsers, this one included." in page
    assert 'action="/auth/sessions/end-all"' in page and "Sign out everywhere</button>" in page

    response = laptop.post("/auth/sessions/end-all")

    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    assert laptop.get("/account/settings").status_code == 302
    assert phone.get("/account/settings").status_code == 302
    assert phone.get("/api/wallets/me").status_code == 401
    assert someone_else.get("/account/settings").status_code == 200
    session.expire_all()
    assert _sessions(session, user) == 0 and _sessions(session, other) == 1
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.signed_out_everywhere"))
    assert event.target_id == str(user.id) and json.loads(event.data_json) == {"sessions": 2}


def test_sign_out_everywhere_needs_a_signed_in_post(app, client, session):
    user = make_user(session, password=PASSWORD)
    session.commit()
    login(client, user)
    assert client.get("/auth/sessions/end-all").status_code == 405
    anonymous = app.test_client()
    assert anonymous.post("/auth/sessions/end-all").status_code == 302
    assert _sessions(session, user) == 1


def test_a_password_change_on_the_page_ends_the_other_sessions_and_keeps_this_one(app, session):
    user = make_user(session, email="u@example.com", password=PASSWORD)
    session.commit()
    laptop = _signed_in_client(app, "u@example.com")
    phone = _signed_in_client(app, "u@example.com")

    changed = laptop.post("/account/settings/password", data={
        "current_password": PASSWORD, "new_password": "a-new-password-1", "confirm_password": "a-new-password-1"})

    assert changed.status_code == 303
    assert laptop.get("/account/settings").status_code == 200
    assert phone.get("/account/settings").status_code == 302
    session.expire_all()
    assert _sessions(session, user) == 1


def test_signing_in_again_replaces_the_browsers_previous_session(app, session):
    user = make_user(session, email="u@example.com", password=PASSWORD)
    session.commit()
    client = _signed_in_client(app, "u@example.com")
    first = client.get_cookie(COOKIE).value

    assert client.post("/auth/login", data={"email": "u@example.com", "password": PASSWORD}).status_code == 302

    assert _replay(app, first).get("/account/settings").status_code == 302
    assert client.get("/account/settings").status_code == 200
    assert _sessions(session, user) == 1


def test_purge_deletes_only_expired_sessions(session):
    user = make_user(session)
    now = utcnow()
    identity.start_session(session, user_id=user.id, idle_timeout=timedelta(minutes=5),
                           max_lifetime=timedelta(days=1), now=now - timedelta(minutes=6))
    identity.start_session(session, user_id=user.id, idle_timeout=timedelta(minutes=5),
                           max_lifetime=timedelta(days=1), now=now)
    session.commit()

    assert identity.purge_expired_sessions(session, now=now) == 1
    assert identity.purge_expired_sessions(session, now=now) == 0
    assert _sessions(session, user) == 1


def test_purge_sessions_command(app, session):
    user = make_user(session)
    identity.start_session(session, user_id=user.id, idle_timeout=timedelta(minutes=5),
                           max_lifetime=timedelta(days=1), now=utcnow() - timedelta(hours=1))
    session.commit()

    result = app.test_cli_runner().invoke(args=["purge-sessions"])

    assert result.exit_code == 0 and result.output == "Purged 1 expired session(s).\n"
    session.expire_all()
    assert _sessions(session) == 0
