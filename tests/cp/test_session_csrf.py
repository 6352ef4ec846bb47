"""Browser sessions on the API: same origin, and the CSRF token header on unsafe methods; token
callers need neither."""
import re

import pytest
from sqlalchemy import func, select

from app.models import Organization
from tests.conftest import login
from tests.factories import make_user


@pytest.fixture
def csrf_app(make_app):
    return make_app(WTF_CSRF_ENABLED=True)


def _signed_in_with_token(app, session):
    """A client signed in through the real form, and the CSRF token its pages carry."""
    user = make_user(session, email="csrf-api@example.com", password="correct-horse-battery")
    session.commit()
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    form_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    client.post("/auth/login", data={"email": user.email, "password": "correct-horse-battery",
                                     "csrf_token": form_token.group(1)})
    page = client.get("/api/docs").get_data(as_text=True)
    return client, re.search(r'data-csrf-token="([^"]+)"', page).group(1)


def _orgs(session):
    return session.scalar(select(func.count()).select_from(Organization))


def test_an_unsafe_session_request_without_the_token_is_403_and_changes_nothing(csrf_app, session):
    client, _ = _signed_in_with_token(csrf_app, session)
    before = _orgs(session)

    response = client.post("/api/organizations/", json={"name": "No token"})

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert "CSRF" in response.get_json()["detail"]
    assert _orgs(session) == before


def test_a_wrong_token_is_refused_and_the_right_one_accepted(csrf_app, session):
    client, token = _signed_in_with_token(csrf_app, session)

    wrong = client.post("/api/organizations/", json={"name": "Wrong"}, headers={"X-CSRFToken": "forged"})
    right = client.post("/api/organizations/", json={"name": "Right"}, headers={"X-CSRFToken": token})

    assert wrong.status_code == 403
    assert right.status_code == 201 and right.get_json()["name"] == "Right"


def test_reads_need_no_token_and_other_origins_are_refused(csrf_app, session):
    client, token = _signed_in_with_token(csrf_app, session)
    before = _orgs(session)

    read = client.get("/api/organizations/")
    cross = client.post("/api/organizations/", json={"name": "Cross"},
                        headers={"X-CSRFToken": token, "Origin": "https://evil.example"})

    assert read.status_code == 200
    assert cross.status_code == 403
    assert _orgs(session) == before


def test_token_callers_need_no_csrf_header(csrf_app, session):
    from app.services import tokens

    user = make_user(session)
    _, secret = tokens.create_token(session, user=user, name="script")
    session.commit()

    response = csrf_app.test_client().post("/api/organizations/", json={"name": "Scripted"},
                                           headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 201


def test_a_session_for_a_deleted_user_is_401(client, session):
    user = make_user(session)
    session.commit()
    login(client, user)
    user.is_active = False
    session.commit()

    assert client.get("/api/organizations/").status_code == 401


def test_an_unknown_organization_header_is_404_and_a_malformed_one_422(client, session, auth_for):
    user = make_user(session)
    headers = auth_for(user)

    assert client.get("/api/wallets/me", headers={**headers, "X-Organization-Id": "999999"}).status_code == 404
    malformed = client.get("/api/wallets/me", headers={**headers, "X-Organization-Id": "abc"})
    assert malformed.status_code == 422
    assert malformed.get_json()["errors"][0]["field"] == "X-Organization-Id"
