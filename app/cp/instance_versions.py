"""Which version an instance runs: pin it, follow updates, accept a new major. /api/instances/<id>/..."""
from __future__ import annotations

from flask import g

from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.services import instances, offerings

ID = "int(min=1, max=2147483647)"
TAGS = ["instances"]


@bp.post(f"/instances/<{ID}:instance_id>/pin")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InstanceOut, 403, 404, 409), tags=TAGS)
def pin_instance_version(instance_id: int, json: schemas.VersionPin):
    """Keep the instance on one version (owners and admins): the one it runs now, or an earlier one of the same
    major line. Releases of that line stop reaching it until it follows updates again."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    offerings.pin_version(db.session, instance=instance, actor=g.api_user, version=json.version)
    db.session.commit()
    return serializers.instance_out(instance)


@bp.post(f"/instances/<{ID}:instance_id>/follow")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InstanceOut, 403, 404), tags=TAGS)
def follow_instance_updates(instance_id: int):
    """Unpin (owners and admins): from its next run the instance uses the latest version of its major line."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    offerings.follow_updates(db.session, instance=instance, actor=g.api_user)
    db.session.commit()
    return serializers.instance_out(instance)


@bp.post(f"/instances/<{ID}:instance_id>/upgrade")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InstanceOut, 403, 404, 409), tags=TAGS)
def upgrade_instance_version(instance_id: int, json: schemas.VersionUpgrade):
    """Accept the new major version in `upgrade_available` (owners and admins). `version` must be the one offered:
    if a newer one was released meanwhile, nothing changes (409) and the instance shows the new offer."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    offerings.upgrade_instance(db.session, instance=instance, actor=g.api_user, version=json.version)
    db.session.commit()
    return serializers.instance_out(instance)
