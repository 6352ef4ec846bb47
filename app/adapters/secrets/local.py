"""Secrets encrypted into the database with AES-256-GCM (authenticated encryption).

The key is SECRETS_KEY (32 bytes, urlsafe base64) or, when that is empty, derived from SECRET_KEY
with HKDF-SHA256, so a development install works with nothing configured. Each value gets a fresh
96-bit nonce, and the ref is bound in as associated data, so a ciphertext copied to another ref
does not decrypt. Deleting overwrites the ciphertext and stamps destroyed_at.
"""
from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adapters.secrets import SecretNotFound, SecretsError
from app.models import StoredSecret, utcnow

FORMAT_VERSION = b"\x01"
NONCE_BYTES = 12
HKDF_INFO = b"digitlify-marketplace connector secrets v1"


def derive_key(key_material: str, fallback_secret: str) -> bytes:
    """32 key bytes: SECRETS_KEY decoded when it is 32 bytes of base64, else HKDF of whatever was given."""
    if key_material:
        try:
            raw = base64.urlsafe_b64decode(key_material + "=" * (-len(key_material) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return raw
        source = key_material.encode("utf-8")
    else:
        source = fallback_secret.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(source)


class LocalSecretStore:
    def __init__(self, session: Session, *, key_material: str, fallback_secret: str) -> None:
        self._session = session
        self._aead = AESGCM(derive_key(key_material, fallback_secret))

    def _row(self, ref: str) -> StoredSecret | None:
        return self._session.scalar(select(StoredSecret).where(StoredSecret.ref == ref))

    def put(self, ref: str, value: str) -> None:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = FORMAT_VERSION + nonce + self._aead.encrypt(nonce, value.encode("utf-8"), ref.encode("utf-8"))
        row = self._row(ref)
        if row is None:
            self._session.add(StoredSecret(ref=ref, ciphertext=ciphertext))
        else:
            row.ciphertext, row.destroyed_at = ciphertext, None
        self._session.flush()

    def get(self, ref: str) -> str:
        row = self._row(ref)
        if row is None or row.destroyed_at is not None or not row.ciphertext:
            raise SecretNotFound(f"No secret stored under {ref}.")
        blob = bytes(row.ciphertext)
        if blob[:1] != FORMAT_VERSION:
            raise SecretsError("The stored secret has an unknown format.")
        nonce, sealed = blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, ref.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise SecretsError("The stored secret cannot be decrypted with the configured key "
                               "(was SECRETS_KEY or SECRET_KEY changed?).") from None

    def delete(self, ref: str) -> None:
        row = self._row(ref)
        if row is not None and row.destroyed_at is None:
            row.ciphertext, row.destroyed_at = b"", utcnow()
            self._session.flush()
