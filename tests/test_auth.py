"""Local accounts: sign-up, sign-in, throttling, CSRF, safe redirects, cookie flags."""
import re

import pytest
from sqlalchemy import func, select

from app.models import LoginThrottle, MailMessage, Membership, Organization, User, Wallet
from tests.conftest import login
from tests.factories import make_user


def _count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_signup_creates_user_personal_org_and_wallet(client, session):
    response = client.post("/auth/signup", data={"name": "Ada Lovelace", "email": "Ada@Example.com",
                                                 "password": "analytical-engine"})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/signup/check-inbox"
    user = session.scalar(select(User).where(User.email == "ada@example.com"))
    assert user is not None and user.password_hash.startswith("scrypt:")
    assert user.email_verified_at is None  # confirmed by the link mailed to it
    org = session.scalar(select(Organization).join(Membership).where(Membership.user_id == user.id))
    assert org.is_personal and org.name == "Ada Lovelace's workspace"
    assert session.scalar(select(Wallet).where(Wallet.organization_id == org.id)).balance == 0
    page = client.get("/auth/signup/check-inbox").get_data(as_text=True)
    assert "We sent a mail to <strong>ada@example.com</strong>" in page
    assert session.scalars(select(MailMessage.template).where(MailMessage.to_address == "ada@example.com")).all() \
        == ["verify_email"]


def test_signup_duplicate_email_answers_like_a_new_one_and_mails_the_owner(client, session):
    make_user(session, email="taken@example.com")
    session.commit()
    before = _count(session, User)
    response = client.post("/auth/signup", data={"name": "X", "email": "taken@example.com", "password": "long-enough-pw"})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/signup/check-inbox"
    assert "already" not in client.get("/auth/signup/check-inbox").get_data(as_text=True)
    assert _count(session, User) == before
    assert session.scalars(select(MailMessage.template).where(MailMessage.to_address == "taken@example.com")).all() \
        == ["signup_existing"]


def test_login_success_redirects_to_safe_next(client, session):
    make_user(session, email="u@example.com", name="Uma User", password="correct-horse-battery")
    session.commit()
    response = client.post("/auth/login", data={"email": "u@example.com", "password": "correct-horse-battery",
                                                "next": "/account/"})
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert "Uma User" in client.get("/account/").get_data(as_text=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"])
def test_login_never_redirects_off_site(client, session, target):
    make_user(session, email="u@example.com", password="correct-horse-battery")
    session.commit()
    response = client.post("/auth/login", data={"email": "u@example.com", "password": "correct-horse-battery",
                                                "next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("email,password", [("u@example.com", "wrong-password"), ("nobody@example.com", "whatever-pw")])
def test_wrong_credentials_are_a_form_error_and_change_nothing_but_the_counter(client, session, email, password):
    make_user(session, email="u@example.com", password="correct-horse-battery")
    session.commit()
    users_before = _count(session, User)
    response = client.post("/auth/login", data={"email": email, "password": password})
    body = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "Email or password is not right." in body
    assert _count(session, User) == users_before
    with client.session_transaction() as s:
        assert "user_id" not in s


def test_huge_email_is_rejected_with_a_form_error(client, session):
    before = _count(session, User)
    response = client.post("/auth/signup", data={"name": "A", "email": "a" * 10_000 + "@x.com", "password": "long-enough-pw"})
    assert response.status_code == 400
    assert "Field cannot be longer than 254 characters." in response.get_data(as_text=True)
    response = client.post("/auth/login", data={"email": "a" * 10_000, "password": "x"})
    assert response.status_code == 400
    assert _count(session, User) == before
    assert _count(session, LoginThrottle) == 0


def test_missing_csrf_token_is_refused_and_changes_nothing(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    from app.extensions import db
    with app.app_context():
        before = _count(db.session, User)
    response = client.post("/auth/signup", data={"name": "A", "email": "a@example.com", "password": "long-enough-pw"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    with app.app_context():
        assert _count(db.session, User) == before


def test_csrf_token_from_the_form_is_accepted(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    page = client.get("/auth/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/auth/signup", data={"csrf_token": token, "name": "A", "email": "a@example.com",
                                                 "password": "long-enough-pw"})
    assert response.status_code == 302


def test_repeated_failures_lock_the_account_for_a_while(make_app):
    app = make_app(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_SECONDS=600)
    client = app.test_client()
    from app.extensions import db
    with app.app_context():
        make_user(db.session, email="u@example.com", password="correct-horse-battery")
        db.session.commit()
    for _ in range(3):
        assert client.post("/auth/login", data={"email": "u@example.com", "password": "nope-nope"}).status_code == 401
    locked = client.post("/auth/login", data={"email": "u@example.com", "password": "correct-horse-battery"})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    with client.session_transaction() as s:
        assert "user_id" not in s


def test_session_cookie_flags(make_app):
    app = make_app(SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    from app.extensions import db
    with app.app_context():
        make_user(db.session, email="u@example.com", password="correct-horse-battery")
        db.session.commit()
    response = client.post("/auth/login", data={"email": "u@example.com", "password": "correct-horse-battery"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_logout_requires_post_and_ends_the_session(client, session):
    user = make_user(session)
    session.commit()
    login(client, user)
    assert client.get("/auth/logout").status_code == 405
    assert client.post("/auth/logout").status_code == 302
    assert client.get("/account/").status_code == 302


def test_login_required_redirects_with_next(client):
    response = client.get("/account/?tab=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/account/?tab%3D1"


def test_password_change_elsewhere_ends_old_sessions(client, session):
    from app.services import identity
    user = make_user(session, password="correct-horse-battery")
    session.commit()
    login(client, user)
    assert client.get("/account/").status_code == 200
    identity.change_password(session, user=user, current="correct-horse-battery", new="another-long-password")
    session.commit()
    assert client.get("/account/").status_code == 302
