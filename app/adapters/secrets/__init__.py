"""The secrets port: where connector credentials live.

Two adapters: ``local`` (authenticated encryption into the StoredSecret table, key from
configuration) and ``vault`` (HashiCorp Vault KV v2 through hvac). ``SECRETS_BACKEND`` chooses.
Services ask ``get_secret_store(session)``; nothing else imports an adapter.

A secret is addressed by a ``ref``: a short path-like string the caller chooses and stores
(``ConnectorBinding.secret_ref``); the value never leaves the store except through ``get``.
"""
from __future__ import annotations

from typing import Protocol

from flask import current_app
from sqlalchemy.orm import Session


class SecretsError(Exception):
    """The secret store failed; the message is safe to show (it never contains the secret)."""


class SecretNotFound(SecretsError):
    """No secret under this ref, or it was destroyed."""


class SecretStore(Protocol):
    def put(self, ref: str, value: str) -> None:
        """Store (or replace) the value under ref."""

    def get(self, ref: str) -> str:
        """The value under ref; SecretNotFound when there is none."""

    def delete(self, ref: str) -> None:
        """Destroy the value under ref; deleting a missing ref is not an error."""


def get_secret_store(session: Session) -> SecretStore:
    """The configured store. The local one keeps ciphertext in `session`'s transaction."""
    config = current_app.config
    backend = config.get("SECRETS_BACKEND", "local")
    if backend == "local":
        from app.adapters.secrets.local import LocalSecretStore

        return LocalSecretStore(session, key_material=config.get("SECRETS_KEY") or "",
                                fallback_secret=config["SECRET_KEY"])
    if backend == "vault":
        from app.adapters.secrets.vault import VaultSecretStore

        return VaultSecretStore(
            url=config["VAULT_ADDR"], token=config.get("VAULT_TOKEN") or "", mount=config["VAULT_MOUNT"],
            prefix=config.get("VAULT_PATH_PREFIX") or "", timeout=float(config.get("VAULT_TIMEOUT", 5.0)),
        )
    raise SecretsError(f"Unknown SECRETS_BACKEND {backend!r}: use local or vault.")
