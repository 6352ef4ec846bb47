"""The storage port: where uploaded files (listing images, publisher logos) live.

Two adapters: ``local`` (a directory, ``MEDIA_DIR``; the default, so a fresh checkout needs nothing
else) and ``s3`` (any S3-compatible store: ``S3_ENDPOINT``, ``S3_BUCKET``, ``S3_ACCESS_KEY``,
``S3_SECRET_KEY``, ``S3_REGION``, ``S3_TIMEOUT``). ``STORAGE_BACKEND`` chooses. Services ask
``get_storage()``; nothing else imports an adapter.

Files are addressed by a ``key``: a flat name the caller chooses (``<sha256>.<ext>``), checked by
``check_key`` so no adapter ever sees a path.
"""
from __future__ import annotations

import re
from typing import Protocol

from flask import current_app

KEY_RE = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp)$")


class StorageError(Exception):
    """The store could not be reached or refused the operation; the message is safe to show."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"Not a storage key: {key!r}")
    return key


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` (replacing what is there)."""

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there are none."""

    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""


def get_storage() -> Storage:
    """The configured store (one per application, cached: the S3 client is thread-safe)."""
    app = current_app._get_current_object()
    store = app.extensions.get("storage")
    if store is None:
        store = build_storage(app.config, instance_path=app.instance_path)
        app.extensions["storage"] = store
    return store


def build_storage(config, *, instance_path: str) -> Storage:
    backend = (config.get("STORAGE_BACKEND") or "local").strip().lower()
    if backend == "local":
        from pathlib import Path

        from app.adapters.storage.local import LocalStorage

        root = config.get("MEDIA_DIR") or str(Path(instance_path) / "media")
        return LocalStorage(root)
    if backend == "s3":
        from app.adapters.storage.s3 import S3Storage

        return S3Storage(
            endpoint=config.get("S3_ENDPOINT") or None, bucket=config.get("S3_BUCKET") or "",
            access_key=config.get("S3_ACCESS_KEY") or None, secret_key=config.get("S3_SECRET_KEY") or None,
            region=config.get("S3_REGION") or "us-east-1", timeout=float(config.get("S3_TIMEOUT") or 5.0),
        )
    raise StorageError(f"Unknown STORAGE_BACKEND {backend!r}: use local or s3.")
