"""Personal access tokens and instance API keys: shown once, stored as prefix + hash, refused when
wrong, revoked or expired, and an instance key acts only on its own instance."""
from datetime import timedelta

from sqlalchemy import select

from app.models import ApiKey, AuditEvent, PersonalAccessToken, utcnow
from app.services import tokens
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user


def test_a_token_is_shown_once_and_only_its_hash_is_kept(client, session):
    user = make_user(session, email="pat@example.test")
    session.commit()
    login(client, user)

    created = client.post("/api/tokens/", json={"name": "deploy script", "expires_in_days": 30})
    listed = client.get("/api/tokens/")

    assert created.status_code == 201
    secret = created.get_json()["token"]
    assert secret.startswith(created.get_json()["prefix"] + "_")
    assert secret not in listed.get_data(as_text=True)
    assert [t["name"] for t in listed.get_json()["items"]] == ["deploy script"]
    row = session.scalar(select(PersonalAccessToken))
    assert row.prefix == created.get_json()["prefix"]
    assert secret not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
    whoami = client.get("/api/organizations/", headers={"Authorization": f"Bearer {secret}"})
    assert whoami.status_code == 200


def test_a_revoked_an_expired_or_a_wrong_token_is_refused(client, session):
    user = make_user(session)
    live, live_secret = tokens.create_token(session, user=user, name="live")
    revoked, revoked_secret = tokens.create_token(session, user=user, name="revoked")
    expired, expired_secret = tokens.create_token(session, user=user, name="expired", expires_in_days=1)
    revoked.revoked_at = utcnow()
    expired.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()

    def status(secret):
        return client.get("/api/tokens/", headers={"Authorization": f"Bearer {secret}"}).status_code

    assert status(live_secret) == 200
    assert status(revoked_secret) == 401
    assert status(expired_secret) == 401
    assert status(live_secret[:-4] + "abcd") == 401
    assert status("dmp_0000000000_" + "x" * 43) == 401


def test_a_token_cannot_mint_or_revoke_tokens(client, session, auth_for):
    user = make_user(session)
    headers = auth_for(user)
    token_id = session.scalar(select(PersonalAccessToken.id))

    minted = client.post("/api/tokens/", json={"name": "another"}, headers=headers)
    revoked = client.post(f"/api/tokens/{token_id}/revoke", headers=headers)

    assert minted.status_code == 403 and revoked.status_code == 403
    assert session.scalar(select(PersonalAccessToken.revoked_at)) is None
    assert len(session.scalars(select(PersonalAccessToken)).all()) == 1


def test_revoking_a_token_in_the_session_stops_it_at_once(client, session):
    user = make_user(session)
    token, secret = tokens.create_token(session, user=user, name="script")
    session.commit()
    login(client, user)

    revoked = client.post(f"/api/tokens/{token.id}/revoke")

    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert client.get("/api/tokens/", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == "token.revoked"


def test_another_users_token_cannot_be_revoked(client, session):
    owner, stranger = make_user(session), make_user(session)
    token, _ = tokens.create_token(session, user=owner, name="mine")
    session.commit()
    login(client, stranger)

    response = client.post(f"/api/tokens/{token.id}/revoke")

    assert response.status_code == 404
    session.refresh(token)
    assert token.revoked_at is None


def _instance(session, instance_with_key):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    offering = make_offering(session, publisher=org)
    instance, key, secret = instance_with_key(organization=org, owner=owner, offering=offering)
    return owner, org, instance, key, secret


def test_an_api_key_is_shown_once_stored_as_prefix_and_hash_and_listed_without_it(client, session, auth_for,
                                                                                 instance_with_key):
    owner, org, instance, _, _ = _instance(session, instance_with_key)
    headers = auth_for(owner)

    created = client.post(f"/api/instances/{instance.id}/keys/", json={"name": "help desk"}, headers=headers)
    listed = client.get(f"/api/instances/{instance.id}/keys/", headers=headers)

    assert created.status_code == 201
    secret = created.get_json()["secret"]
    row = session.get(ApiKey, created.get_json()["id"])
    assert secret.startswith(row.prefix + "_") and secret not in (row.key_hash, row.prefix)
    assert secret not in listed.get_data(as_text=True)
    assert [(k["name"], k["prefix"], k["last_used_at"]) for k in listed.get_json()["items"]][0] == (
        "help desk", row.prefix, None)
    used = client.get(f"/api/instances/{instance.id}/entitlements", headers={"X-API-Key": secret})
    assert used.status_code == 200
    session.refresh(row)
    assert row.last_used_at is not None


def test_revoked_and_wrong_api_keys_are_refused(client, session, auth_for, instance_with_key):
    owner, org, instance, key, secret = _instance(session, instance_with_key)
    url = f"/api/instances/{instance.id}/entitlements"
    assert client.get(url, headers={"X-API-Key": secret}).status_code == 200

    revoked = client.post(f"/api/instances/{instance.id}/keys/{key.id}/revoke", headers=auth_for(owner))

    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert client.get(url, headers={"X-API-Key": secret}).status_code == 401
    assert client.get(url, headers={"X-API-Key": secret[:-3] + "abc"}).status_code == 401
    assert client.get(url, headers={"X-API-Key": "not-a-key"}).status_code == 401
    assert client.get(url, headers={"X-API-Key": ""}).status_code == 401


def test_an_api_key_reaches_only_its_own_instance(client, session, instance_with_key):
    _, _, instance, _, secret = _instance(session, instance_with_key)
    _, _, other_instance, _, _ = _instance(session, instance_with_key)

    own = client.get(f"/api/instances/{instance.id}", headers={"X-API-Key": secret})
    other = client.get(f"/api/instances/{other_instance.id}", headers={"X-API-Key": secret})
    people_only = client.get("/api/organizations/", headers={"X-API-Key": secret})

    assert own.status_code == 200
    assert other.status_code == 404
    assert people_only.status_code == 403


def test_a_member_who_is_not_an_admin_cannot_create_keys(client, session, auth_for, instance_with_key):
    from app.models import Membership

    owner, org, instance, _, _ = _instance(session, instance_with_key)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    session.commit()

    response = client.post(f"/api/instances/{instance.id}/keys/", json={"name": "mine"}, headers=auth_for(member))

    assert response.status_code == 403
    assert len(session.scalars(select(ApiKey)).all()) == 1
