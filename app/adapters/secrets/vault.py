"""Secrets in HashiCorp Vault's KV version 2 engine, through hvac.

Each ref is stored at ``<VAULT_PATH_PREFIX>/<ref>`` on the ``VAULT_MOUNT`` mount as ``{"value": ...}``.
Every call has a timeout; a Vault that is down, slow or refuses the token raises SecretsError.
Deleting removes the metadata and every version, so nothing of the value is left behind.
"""
from __future__ import annotations

import hvac
import requests
from hvac import exceptions as vault_exceptions

from app.adapters.secrets import SecretNotFound, SecretsError


class VaultSecretStore:
    def __init__(self, *, url: str, token: str, mount: str, prefix: str, timeout: float = 5.0) -> None:
        self._client = hvac.Client(url=url, token=token, timeout=timeout)
        self._mount = mount.strip("/")
        self._prefix = prefix.strip("/")

    def _path(self, ref: str) -> str:
        if not ref or ".." in ref.split("/") or ref.startswith("/"):
            raise SecretsError("Invalid secret reference.")
        return f"{self._prefix}/{ref}" if self._prefix else ref

    @property
    def _kv(self):
        return self._client.secrets.kv.v2

    def put(self, ref: str, value: str) -> None:
        path = self._path(ref)
        try:
            self._kv.create_or_update_secret(path=path, secret={"value": value}, mount_point=self._mount)
        except (vault_exceptions.VaultError, requests.RequestException) as exc:
            raise SecretsError(f"Vault did not store the secret ({type(exc).__name__}).") from None

    def get(self, ref: str) -> str:
        path = self._path(ref)
        try:
            answer = self._kv.read_secret_version(path=path, mount_point=self._mount, raise_on_deleted_version=True)
        except vault_exceptions.InvalidPath:
            raise SecretNotFound(f"No secret stored under {ref}.") from None
        except (vault_exceptions.VaultError, requests.RequestException) as exc:
            raise SecretsError(f"Vault did not return the secret ({type(exc).__name__}).") from None
        try:
            return answer["data"]["data"]["value"]
        except (KeyError, TypeError):
            raise SecretNotFound(f"No secret stored under {ref}.") from None

    def delete(self, ref: str) -> None:
        path = self._path(ref)
        try:
            self._kv.delete_metadata_and_all_versions(path=path, mount_point=self._mount)
        except vault_exceptions.InvalidPath:
            return
        except (vault_exceptions.VaultError, requests.RequestException) as exc:
            raise SecretsError(f"Vault did not delete the secret ({type(exc).__name__}).") from None
