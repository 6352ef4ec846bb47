"""Connector bindings: an instance's link to an outside system (a help desk, a CRM, a mailbox).

The binding keeps the non-secret settings (``config``) in the database and the credential in the
secrets port under ``secret_ref``. No function here returns the secret except
``read_binding_secret``, which the runtime side uses to make the call; the API never does.
"""
from __future__ import annotations

import json
import re
import secrets as random
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adapters.secrets import SecretsError, get_secret_store
from app.models import ConnectorBinding, Instance, InstanceStatus, Membership, User, utcnow
from app.services import audit, organizations
from app.services.errors import ServiceError

KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
# settings that are credentials belong in `secret`, where they are encrypted and never shown again
SECRET_LOOKING_KEY_RE = re.compile(r"pass(word)?|secret|token|api[_.-]?key|credential|private[_.-]?key", re.I)
MAX_CONFIG_KEYS = 30
MAX_CONFIG_VALUE = 1000
MAX_CONFIG_BYTES = 8192
MAX_SECRET = 10_000


class ConnectorError(ServiceError):
    """A connector rule was broken; the message is safe to show."""


class ConnectorNotFound(ConnectorError):
    def __init__(self, message: str = "Connector binding not found.") -> None:
        super().__init__(message, status=404)


def _clean_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConnectorError("Send the settings as an object of names to values.", field="config")
    if len(config) > MAX_CONFIG_KEYS:
        raise ConnectorError(f"Use at most {MAX_CONFIG_KEYS} settings.", field="config")
    for key, value in config.items():
        if not isinstance(key, str) or not CONFIG_KEY_RE.match(key):
            raise ConnectorError("Setting names start with a letter and use letters, digits, '_', '.' or '-'.",
                                 field=f"config.{key}")
        if SECRET_LOOKING_KEY_RE.search(key):
            raise ConnectorError("Put credentials in the secret field, not in the settings.", field=f"config.{key}")
        if value is not None and not isinstance(value, (str, int, bool)):
            raise ConnectorError("Use text, a whole number, true/false or null.", field=f"config.{key}")
        if isinstance(value, str) and len(value) > MAX_CONFIG_VALUE:
            raise ConnectorError(f"Use at most {MAX_CONFIG_VALUE} characters.", field=f"config.{key}")
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise ConnectorError("The settings are too large.", field="config")
    return dict(config)


def config_of(binding: ConnectorBinding) -> dict[str, Any]:
    return json.loads(binding.config_json or "{}")


def create_binding(
    session: Session, *, instance: Instance, actor: User, kind: str, config: dict[str, Any] | None,
    secret: str | None,
) -> ConnectorBinding:
    """Bind a connector to the instance (owners and admins); the secret goes to the secrets port."""
    organizations.require_role(session, user=actor, organization_id=instance.organization_id,
                               not_found=ConnectorNotFound("Instance not found."))
    if instance.status in (InstanceStatus.CANCELLED.value, InstanceStatus.EXPIRED.value):
        raise ConnectorError(f"This instance is {instance.status}; it cannot get new connectors.", status=409)
    kind = (kind or "").strip().lower()
    if not KIND_RE.match(kind):
        raise ConnectorError("Name the connector kind in lowercase letters, digits, '-' or '_' (2 to 40).",
                             field="kind")
    clean = _clean_config(config)
    if secret is not None and not 1 <= len(secret) <= MAX_SECRET:
        raise ConnectorError(f"The secret must be 1 to {MAX_SECRET:,} characters.", field="secret")
    binding = ConnectorBinding(
        organization_id=instance.organization_id, instance_id=instance.id, kind=kind,
        config_json=json.dumps(clean, sort_keys=True), status="active", created_by_id=actor.id,
    )
    session.add(binding)
    session.flush()
    if secret is not None:
        ref = f"org-{instance.organization_id}/binding-{binding.id}-{random.token_hex(4)}"
        try:
            get_secret_store(session).put(ref, secret)
        except SecretsError as exc:
            raise ConnectorError(f"The secret could not be stored: {exc}", field="secret", status=503) from None
        binding.secret_ref = ref
        session.flush()
    audit.record(session, action="connector.bound", target_type="connector_binding", target_id=binding.id,
                 organization_id=instance.organization_id, actor=actor,
                 data={"instance_id": instance.id, "kind": kind, "config_keys": sorted(clean),
                       "has_secret": secret is not None})
    return binding


def list_bindings(session: Session, *, user: User, instance_id: int | None = None,
                  organization_id: int | None = None) -> list[ConnectorBinding]:
    """Bindings of the organizations the user belongs to, optionally of one instance or organization."""
    query = (
        select(ConnectorBinding)
        .join(Membership, Membership.organization_id == ConnectorBinding.organization_id)
        .where(Membership.user_id == user.id)
        .order_by(ConnectorBinding.id.desc())
    )
    if instance_id is not None:
        query = query.where(ConnectorBinding.instance_id == instance_id)
    if organization_id is not None:
        query = query.where(ConnectorBinding.organization_id == organization_id)
    return list(session.scalars(query))


def get_binding_for_user(session: Session, *, user: User, binding_id: int) -> ConnectorBinding:
    binding = session.get(ConnectorBinding, binding_id)
    if binding is None or organizations.membership(session, user=user,
                                                    organization_id=binding.organization_id) is None:
        raise ConnectorNotFound()
    return binding


def revoke_binding(session: Session, *, binding_id: int, actor: User) -> ConnectorBinding:
    """Revoke the binding and destroy its secret (owners and admins); revoking twice is a no-op."""
    binding = get_binding_for_user(session, user=actor, binding_id=binding_id)
    organizations.require_role(session, user=actor, organization_id=binding.organization_id)
    if binding.status == "revoked":
        return binding
    if binding.secret_ref:
        try:
            get_secret_store(session).delete(binding.secret_ref)
        except SecretsError as exc:
            raise ConnectorError(f"The secret could not be destroyed: {exc}", status=503) from None
    binding.status = "revoked"
    binding.revoked_at = utcnow()
    session.flush()
    audit.record(session, action="connector.revoked", target_type="connector_binding", target_id=binding.id,
                 organization_id=binding.organization_id, actor=actor,
                 data={"instance_id": binding.instance_id, "kind": binding.kind})
    return binding


def read_binding_secret(session: Session, *, binding: ConnectorBinding) -> str | None:
    """The credential of an active binding, for the code that calls the outside system. Never for a response."""
    if binding.status != "active" or not binding.secret_ref:
        return None
    try:
        return get_secret_store(session).get(binding.secret_ref)
    except SecretsError as exc:
        raise ConnectorError(f"The secret could not be read: {exc}", status=503) from None
