"""Connector bindings and the secrets port: the local adapter (AES-GCM in the database) and the Vault
adapter (KV v2 over HTTP, against a fake Vault); no response ever carries a secret."""
import base64
import json

import pytest
from sqlalchemy import func, select

from app.adapters.secrets import SecretNotFound, SecretsError, get_secret_store
from app.adapters.secrets.local import LocalSecretStore, derive_key
from app.adapters.secrets.vault import VaultSecretStore
from app.models import AuditEvent, ConnectorBinding, Membership, StoredSecret
from app.services.instances import create_instance
from tests.cp.vault_fake import FakeVault
from tests.factories import make_offering, make_org, make_user

SECRET = "zd-api-token-1234567890"


@pytest.fixture
def vault():
    server = FakeVault()
    yield server
    server.close()


def _org_with_instance(session):
    owner = make_user(session)
    org = make_org(session, owner=owner)
    instance = create_instance(session, organization=org, plan=make_offering(session, publisher=org).plans[0],
                               created_by=owner)
    session.commit()
    return owner, org, instance


# --- the local adapter --------------------------------------------------------------------------

def test_local_store_round_trips_and_keeps_only_ciphertext(session):
    store = LocalSecretStore(session, key_material="", fallback_secret="test-secret-key-123456")

    store.put("org-1/binding-1", SECRET)

    row = session.scalar(select(StoredSecret))
    assert SECRET.encode() not in bytes(row.ciphertext)
    assert store.get("org-1/binding-1") == SECRET


def test_local_store_detects_tampering_a_moved_ciphertext_and_a_wrong_key(session):
    store = LocalSecretStore(session, key_material="", fallback_secret="test-secret-key-123456")
    store.put("org-1/a", SECRET)
    row = session.scalar(select(StoredSecret).where(StoredSecret.ref == "org-1/a"))
    original = bytes(row.ciphertext)

    row.ciphertext = original[:-1] + bytes([original[-1] ^ 1])
    with pytest.raises(SecretsError):
        store.get("org-1/a")
    row.ciphertext = original
    session.add(StoredSecret(ref="org-2/b", ciphertext=original))  # the same bytes under another ref
    session.flush()
    with pytest.raises(SecretsError):
        store.get("org-2/b")
    other_key = LocalSecretStore(session, key_material="", fallback_secret="another-secret-key-654321")
    with pytest.raises(SecretsError):
        other_key.get("org-1/a")
    assert store.get("org-1/a") == SECRET


def test_local_store_delete_destroys_the_ciphertext(session):
    store = LocalSecretStore(session, key_material="", fallback_secret="test-secret-key-123456")
    store.put("org-1/a", SECRET)

    store.delete("org-1/a")

    row = session.scalar(select(StoredSecret))
    assert bytes(row.ciphertext) == b"" and row.destroyed_at is not None
    with pytest.raises(SecretNotFound):
        store.get("org-1/a")


def test_secrets_key_is_used_as_is_when_it_is_32_bytes_of_base64():
    raw = bytes(range(32))
    encoded = base64.urlsafe_b64encode(raw).decode()

    assert derive_key(encoded, "ignored") == raw
    assert derive_key("", "a") != derive_key("", "b")
    assert len(derive_key("short passphrase", "ignored")) == 32


# --- the Vault adapter --------------------------------------------------------------------------

def test_vault_store_writes_reads_and_destroys_under_mount_and_prefix(vault):
    store = VaultSecretStore(url=vault.url, token=vault.token, mount="secret", prefix="digitlify/connectors",
                             timeout=2)

    store.put("org-1/binding-1", SECRET)
    value = store.get("org-1/binding-1")
    store.delete("org-1/binding-1")

    assert value == SECRET
    assert vault.calls == [
        ("POST", "/v1/secret/data/digitlify/connectors/org-1/binding-1"),
        ("GET", "/v1/secret/data/digitlify/connectors/org-1/binding-1"),
        ("DELETE", "/v1/secret/metadata/digitlify/connectors/org-1/binding-1"),
    ]
    assert vault.data == {}
    with pytest.raises(SecretNotFound):
        store.get("org-1/binding-1")


def test_vault_store_refused_token_unreachable_and_slow_vault_raise_secrets_error(vault):
    wrong = VaultSecretStore(url=vault.url, token="wrong", mount="secret", prefix="p", timeout=2)
    with pytest.raises(SecretsError):
        wrong.put("a", SECRET)

    unreachable = VaultSecretStore(url="http://127.0.0.1:9", token=vault.token, mount="secret", prefix="p",
                                   timeout=1)
    with pytest.raises(SecretsError):
        unreachable.get("a")

    vault.delay = 1.0
    slow = VaultSecretStore(url=vault.url, token=vault.token, mount="secret", prefix="p", timeout=0.2)
    with pytest.raises(SecretsError):
        slow.put("a", SECRET)


def test_the_port_chooses_the_adapter_from_configuration(make_app, vault):
    local_app = make_app(SECRETS_BACKEND="local")
    vault_app = make_app(SECRETS_BACKEND="vault", VAULT_ADDR=vault.url, VAULT_TOKEN=vault.token)
    from app.extensions import db

    with local_app.app_context():
        assert isinstance(get_secret_store(db.session), LocalSecretStore)
    with vault_app.app_context():
        assert isinstance(get_secret_store(db.session), VaultSecretStore)


# --- the API ------------------------------------------------------------------------------------

def test_a_binding_keeps_its_secret_out_of_every_response(client, session, auth_for):
    owner, org, instance = _org_with_instance(session)
    headers = auth_for(owner)

    created = client.post("/api/connectors/bindings/", json={
        "instance_id": instance.id, "kind": "zendesk", "config": {"subdomain": "acme", "max_results": 5},
        "secret": SECRET}, headers=headers)
    listed = client.get(f"/api/connectors/bindings/?instance_id={instance.id}", headers=headers)
    revoked = client.post(f"/api/connectors/bindings/{created.get_json()['id']}/revoke/", headers=headers)
    audit = client.get("/api/audit/", headers={**headers, "X-Organization-Id": str(org.id)})

    assert created.status_code == 201
    body = created.get_json()
    assert (body["kind"], body["config"], body["has_secret"], body["status"]) == (
        "zendesk", {"subdomain": "acme", "max_results": 5}, True, "active")
    assert [b["id"] for b in listed.get_json()["items"]] == [body["id"]]
    assert revoked.get_json()["status"] == "revoked"
    for response in (created, listed, revoked, audit):
        assert SECRET not in response.get_data(as_text=True)
    assert SECRET not in json.dumps([e.data_json for e in session.scalars(select(AuditEvent))])
    stored = session.scalar(select(StoredSecret))
    assert stored.destroyed_at is not None and bytes(stored.ciphertext) == b""
    assert [e["action"] for e in audit.get_json()["items"]][:2] == ["connector.revoked", "connector.bound"]


def test_the_secret_can_be_read_back_by_the_runtime_side_only(client, session, auth_for):
    from app.services import connectors

    owner, org, instance = _org_with_instance(session)
    created = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, "kind": "hubspot",
                                                              "secret": SECRET}, headers=auth_for(owner))

    binding = session.get(ConnectorBinding, created.get_json()["id"])
    assert connectors.read_binding_secret(session, binding=binding) == SECRET


def test_bindings_through_vault(make_app, vault, session):
    from app.services import tokens

    app = make_app(SECRETS_BACKEND="vault", VAULT_ADDR=vault.url, VAULT_TOKEN=vault.token)
    owner, org, instance = _org_with_instance(session)
    _, pat = tokens.create_token(session, user=owner, name="t")
    session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {pat}"}

    created = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, "kind": "slack",
                                                              "secret": SECRET}, headers=headers)
    stored = dict(vault.data)
    revoked = client.post(f"/api/connectors/bindings/{created.get_json()['id']}/revoke/", headers=headers)

    assert created.status_code == 201 and SECRET not in created.get_data(as_text=True)
    assert [v[-1] for v in stored.values()] == [{"value": SECRET}]
    assert list(stored)[0].startswith(f"digitlify/connectors/org-{org.id}/binding-")
    assert revoked.status_code == 200 and vault.data == {}
    assert session.scalar(select(func.count()).select_from(StoredSecret)) == 0


def test_vault_down_is_503_and_nothing_is_bound(make_app, session):
    from app.services import tokens

    app = make_app(SECRETS_BACKEND="vault", VAULT_ADDR="http://127.0.0.1:9", VAULT_TOKEN="t", VAULT_TIMEOUT=1)
    owner, org, instance = _org_with_instance(session)
    _, pat = tokens.create_token(session, user=owner, name="t")
    session.commit()

    response = app.test_client().post("/api/connectors/bindings/", json={
        "instance_id": instance.id, "kind": "slack", "secret": SECRET}, headers={"Authorization": f"Bearer {pat}"})

    assert response.status_code == 503 and SECRET not in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(ConnectorBinding)) == 0


@pytest.mark.parametrize("body,field", [
    ({"kind": "Zen Desk!"}, "kind"),
    ({"kind": "zendesk", "config": {"api_token": "abc"}}, "config.api_token"),
    ({"kind": "zendesk", "config": {"password": "abc"}}, "config.password"),
])
def test_bad_bindings_are_refused_naming_the_field(client, session, auth_for, body, field):
    owner, org, instance = _org_with_instance(session)

    response = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, **body},
                           headers=auth_for(owner))

    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == field
    assert session.scalar(select(func.count()).select_from(ConnectorBinding)) == 0


def test_members_who_are_not_admins_cannot_bind_or_revoke(client, session, auth_for):
    owner, org, instance = _org_with_instance(session)
    member = make_user(session)
    session.add(Membership(user_id=member.id, organization_id=org.id, role="member"))
    session.commit()
    created = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, "kind": "slack"},
                          headers=auth_for(owner))
    member_headers = auth_for(member)

    bind = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, "kind": "slack"},
                       headers=member_headers)
    revoke = client.post(f"/api/connectors/bindings/{created.get_json()['id']}/revoke/", headers=member_headers)
    seen = client.get("/api/connectors/bindings/", headers=member_headers)

    assert (bind.status_code, revoke.status_code) == (403, 403)
    assert [b["status"] for b in seen.get_json()["items"]] == ["active"]
    assert session.scalar(select(func.count()).select_from(ConnectorBinding)) == 1
