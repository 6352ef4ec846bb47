"""Connector bindings: /api/connectors/bindings/... Secrets go in, never out."""
from __future__ import annotations

from flask import g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import connectors, instances

ID = "int(min=1, max=2147483647)"
TAGS = ["connectors"]


@bp.get("/connectors/bindings/")
@api_auth(*USER_KINDS)
@spec.validate(query=schemas.BindingQuery, resp=responses(200, schemas.BindingList), tags=TAGS)
def list_bindings(query: schemas.BindingQuery):
    """Connector bindings of your organizations (or of one instance or organization), newest first."""
    rows = connectors.list_bindings(db.session, user=g.api_user, instance_id=query.instance_id,
                                    organization_id=query.organization_id)
    return schemas.BindingList(items=[serializers.binding_out(b) for b in rows])


@bp.post("/connectors/bindings/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.BindingOut, 400, 403, 404, 409, 503), tags=TAGS)
def create_binding(json: schemas.BindingCreate):
    """Bind a connector to an instance (owners and admins). The secret is stored through the secrets
    port and never returned; the response says only `has_secret`."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=json.instance_id)
    binding = connectors.create_binding(db.session, instance=instance, actor=g.api_user, kind=json.kind,
                                        config=json.config, secret=json.secret)
    db.session.commit()
    return serializers.binding_out(binding), 201


@bp.post(f"/connectors/bindings/<{ID}:binding_id>/revoke/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.BindingOut, 403, 404, 503), tags=TAGS)
def revoke_binding(binding_id: int):
    """Revoke a binding and destroy its secret (owners and admins)."""
    binding = connectors.revoke_binding(db.session, binding_id=binding_id, actor=g.api_user)
    db.session.commit()
    return serializers.binding_out(binding)
