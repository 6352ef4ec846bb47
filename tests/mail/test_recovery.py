"""Accounts by mail: password reset links, email confirmation, the banner's resend."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.models import MailMessage, User
from app.services import recovery
from tests.conftest import login
from tests.factories import make_user

SECRET = "test-secret-key-123456"


def _last_link(session, template: str) -> str:
    body = session.scalars(select(MailMessage.text_body).where(MailMessage.template == template)
                           .order_by(MailMessage.id.desc())).first()
    return re.search(r"http://localhost(/auth/\S+)", body).group(1)


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(client, session):
    make_user(session, email="known@example.com")
    session.commit()
    known = client.post("/auth/password/forgot", data={"email": "known@example.com"})
    unknown = client.post("/auth/password/forgot", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    strip = lambda r, email: r.get_data(as_text=True).replace(email, "EMAIL")  # noqa: E731
    assert strip(known, "known@example.com") == strip(unknown, "nobody@example.com")
    assert session.scalars(select(MailMessage.to_address)).all() == ["known@example.com"]


def test_reset_sets_the_password_ends_every_session_and_the_link_works_once(make_app, session):
    user = make_user(session, email="reset@example.com", password="old-password-123")
    session.commit()
    from flask import current_app
    app = current_app._get_current_object()
    other_device, this_device = app.test_client(), app.test_client()
    login(other_device, user)
    assert other_device.get("/account/").status_code == 200
    this_device.post("/auth/password/forgot", data={"email": "reset@example.com"})
    link = _last_link(session, "password_reset")
    assert this_device.get(link).status_code == 200
    response = this_device.post(link, data={"password": "new-password-456", "confirm": "new-password-456"})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    # the other device's session ended
    assert other_device.get("/account/").headers["Location"].startswith("/auth/login")
    # the link is used up
    used = this_device.post(link, data={"password": "third-password-789", "confirm": "third-password-789"})
    assert used.status_code == 410 and "already used" in used.get_data(as_text=True)
    session.expire_all()
    assert this_device.post("/auth/login", data={"email": "reset@example.com",
                                                 "password": "new-password-456"}).status_code == 302


def test_an_expired_or_tampered_reset_link_is_refused_and_changes_nothing(client, session, app):
    user = make_user(session, email="r2@example.test", password="old-password-123")
    session.commit()
    before = user.password_hash
    token = recovery.make_reset_token(user, secret_key=SECRET)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = client.post(f"/auth/password/reset/{tampered}", data={"password": "new-password-456",
                                                                     "confirm": "new-password-456"})
    assert response.status_code == 400 and "not valid" in response.get_data(as_text=True)
    other_key = recovery.make_reset_token(user, secret_key="another-secret-key-0000")
    assert client.get(f"/auth/password/reset/{other_key}").status_code == 400
    app.config["PASSWORD_RESET_MINUTES"] = -1  # every link is older than that
    expired = client.post(f"/auth/password/reset/{token}", data={"password": "new-password-456",
                                                                 "confirm": "new-password-456"})
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    session.expire_all()
    assert session.get(User, user.id).password_hash == before


def test_a_short_new_password_is_a_form_error(client, session):
    user = make_user(session, email="r3@example.test")
    session.commit()
    token = recovery.make_reset_token(user, secret_key=SECRET)
    response = client.post(f"/auth/password/reset/{token}", data={"password": "short", "confirm": "short"})
    assert response.status_code == 400 and "Field must be between 10 and 200 characters long." in response.get_data(as_text=True)


def test_sign_up_then_the_link_confirms_the_address_once(client, session):
    client.post("/auth/signup", data={"name": "Vera", "email": "vera@example.com", "password": "long-enough-pw",
                                      "next": "/p/some-product"})
    user = session.scalar(select(User).where(User.email == "vera@example.com"))
    assert user.email_verified_at is None
    link = _last_link(session, "verify_email")
    assert link.endswith("?next=/p/some-product")
    assert client.get(link).status_code == 200 and user.email_verified_at is None  # GET only asks
    confirmed = client.post(link, data={"next": "/p/some-product"})
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/auth/login?next=/p/some-product"
    session.expire_all()
    assert session.get(User, user.id).email_verified_at is not None
    again = client.post(link, data={})
    assert again.status_code == 409 and "already used" in again.get_data(as_text=True)


def test_a_tampered_or_expired_confirmation_link_is_refused(client, session, app):
    user = make_user(session, verified=False)
    session.commit()
    token = recovery.make_verification_token(user, secret_key=SECRET)
    assert client.post(f"/auth/verify/{token}x", data={}).status_code == 400
    app.config["EMAIL_VERIFY_HOURS"] = -1
    assert client.post(f"/auth/verify/{token}", data={}).status_code == 410
    session.expire_all()
    assert session.get(User, user.id).email_verified_at is None


def test_the_banner_asks_to_confirm_and_resends_the_link(client, session):
    user = make_user(session, email="b@example.test", verified=False)
    session.commit()
    login(client, user)
    page = client.get("/").get_data(as_text=True)
    assert "Confirm your email address (b@example.test) before you start a free trial or buy" in page
    response = client.post("/auth/verify/resend", data={"next": "/account/"})
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert session.scalars(select(MailMessage.template).where(MailMessage.to_address == "b@example.test")).all() \
        == ["verify_email"]
    client.post("/auth/verify/resend", data={"next": "/"})  # again at once: refused, nothing more sent
    assert len(session.scalars(select(MailMessage).where(MailMessage.to_address == "b@example.test")).all()) == 1


def test_a_verified_account_sees_no_banner(client, session):
    login(client, make_user(session, email="v@example.test"))
    session.commit()
    assert "Confirm your email address" not in client.get("/").get_data(as_text=True)


def test_repeated_reset_requests_mail_one_link_a_minute(client, session):
    make_user(session, email="flood@example.com")
    session.commit()
    for _ in range(3):
        assert client.post("/auth/password/forgot", data={"email": "flood@example.com"}).status_code == 200
    assert len(session.scalars(select(MailMessage).where(MailMessage.to_address == "flood@example.com")).all()) == 1


def test_with_oidc_the_providers_email_verified_is_trusted(make_app):
    from app.adapters.identity import ExternalProfile
    from app.auth import oidc
    from app.extensions import db

    app = make_app(AUTH_BACKEND="oidc", KEYCLOAK_ISSUER="http://127.0.0.1:9/realms/x")
    with app.test_request_context():
        def sign_in(verified: bool) -> User:
            return oidc._upsert_user(ExternalProfile(subject="kc-1", email="kc@example.com", email_verified=verified,
                                                     name="Kay", username="kay", roles=("buyer",)))

        assert sign_in(False).email_verified_at is None
        assert sign_in(True).email_verified_at is not None
        assert sign_in(False).email_verified_at is None  # the provider says so again on every sign-in
        assert app.test_client().get("/auth/password/forgot").status_code == 404  # Keycloak's job
        db.session.remove()
