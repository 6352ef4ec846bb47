"""Instances, trials, entitlements and API keys: /api/instances/..."""
from __future__ import annotations

from typing import Literal

from flask import g
from pydantic import Field

from app.auth import rate_limits
from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Instance, Offering
from app.adapters.commerce.checkout import get_checkout
from app.services import instances, keys, subscription_changes, trials

ID = "int(min=1, max=2147483647)"
TAGS = ["instances"]


class RefundNote(schemas.Out):
    amount_minor: int
    currency: str
    status: Literal["refunded", "due"] = Field(description="refunded: to the payment method that paid; due: the "
                                                           "store refused it, the marketplace's team refunds it.")


class InstanceCancelled(schemas.InstanceOut):
    refund: RefundNote | None = Field(None, description="The unused part of a paid period, given back.")


def instance_for_caller(instance_id: int) -> Instance:
    """The instance, if this caller may see it: a member of its organization, its own API key, or the
    gateway. Anyone else gets 404, exactly as for an instance that does not exist."""
    if g.api_user is not None:
        return instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    if g.api_key is not None:
        if g.api_key.instance_id != instance_id:
            raise instances.InstanceNotFound()
        return g.api_key.instance
    instance = db.session.get(Instance, instance_id) if g.api_kind == "service" else None
    if instance is None:
        raise instances.InstanceNotFound()
    return instance


@bp.get("/instances/")
@api_auth(*USER_KINDS)
@spec.validate(query=schemas.InstanceQuery, resp=responses(200, schemas.InstanceList), tags=TAGS)
def list_instances(query: schemas.InstanceQuery):
    """Instances of the organizations you belong to (or of one of them), newest first."""
    rows = instances.list_instances(db.session, user=g.api_user, organization_id=query.organization_id,
                                    status=query.status)
    return schemas.InstanceList(items=[serializers.instance_out(i) for i in rows])


@bp.post("/instances/trial")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.InstanceOut, 400, 404, 409), tags=TAGS)
def start_trial(json: schemas.TrialStart):
    """Start the free trial of a published offering in your current organization: one per person per
    offering, on its cheapest plan, with the offering's trial credits until the trial ends."""
    offering = db.session.get(Offering, json.offering_id)
    if offering is None:
        raise trials.TrialError("Offering not found.", field="offering_id", status=404)
    instance = trials.start_trial(db.session, user=g.api_user, organization=g.api_org, offering=offering)
    db.session.commit()
    return serializers.instance_out(instance), 201


@bp.get(f"/instances/<{ID}:instance_id>")
@api_auth(*USER_KINDS, "api_key")
@spec.validate(resp=responses(200, schemas.InstanceOut, 404), tags=TAGS)
def get_instance(instance_id: int):
    """One instance (members of its organization, or its own API key)."""
    return serializers.instance_out(instance_for_caller(instance_id))


def _lifecycle(instance_id: int, change) -> schemas.InstanceOut:
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    change(db.session, instance=instance, actor=g.api_user)
    db.session.commit()
    return serializers.instance_out(instance)


@bp.post(f"/instances/<{ID}:instance_id>/suspend")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InstanceOut, 403, 404, 409), tags=TAGS)
def suspend_instance(instance_id: int):
    """active -> suspended (owners and admins): runs stop until it is resumed."""
    return _lifecycle(instance_id, instances.suspend_instance)


@bp.post(f"/instances/<{ID}:instance_id>/resume")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.InstanceOut, 403, 404, 409), tags=TAGS)
def resume_instance(instance_id: int):
    """suspended -> active (owners and admins)."""
    return _lifecycle(instance_id, instances.resume_instance)


@bp.post(f"/instances/<{ID}:instance_id>/cancel")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, InstanceCancelled, 403, 404, 409), tags=TAGS)
def cancel_instance(instance_id: int):
    """active or suspended -> cancelled, for good (owners and admins). A paid subscription gets back the
    unused part of its period (as cancelling on the instance page does): `refund` says how much and
    whether it was refunded to the payment method or, when the store refused it, is due and will be
    refunded by the marketplace's team. To stop at the period's end instead, see
    POST …/subscription/cancel-at-period-end."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    quote = subscription_changes.cancel_now(db.session, instance=instance, actor=g.api_user)
    db.session.commit()
    outcome = subscription_changes.refund_cancelled_period(db.session, quote=quote, actor=g.api_user,
                                                           gateway_for=get_checkout)
    refund = RefundNote(amount_minor=quote.refund_minor, currency=quote.currency, status=outcome) \
        if outcome is not None else None
    return InstanceCancelled(**serializers.instance_out(instance).model_dump(), refund=refund)


@bp.get(f"/instances/<{ID}:instance_id>/entitlements")
@api_auth(*USER_KINDS, "api_key", "service")
@spec.validate(resp=responses(200, schemas.EntitlementsOut, 404), tags=TAGS)
def get_entitlements(instance_id: int):
    """What the instance may do now: plan limits, credits available, runs this period, trial end, and
    whether a run may start (with the reason when not). The gateway asks this before a run."""
    result = instances.entitlements(db.session, instance=instance_for_caller(instance_id))
    return schemas.EntitlementsOut(**result.__dict__)


@bp.get(f"/instances/<{ID}:instance_id>/keys/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ApiKeyList, 404), tags=TAGS)
def list_api_keys(instance_id: int):
    """The instance's API keys: prefix, name, created, last used, revoked, their limits, and each key's usage
    this calendar month (runs, credits, failed runs, median run duration)."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    usage = keys.key_usage(db.session, instance=instance)
    return schemas.ApiKeyList(items=[serializers.api_key_out(k, usage.get(k.id, keys.KeyUsage()))
                                     for k in keys.list_api_keys(db.session, instance=instance)])


@bp.post(f"/instances/<{ID}:instance_id>/keys/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.ApiKeyCreated, 400, 403, 404, 409), tags=TAGS)
def create_api_key(instance_id: int, json: schemas.ApiKeyCreate):
    """A new API key (owners and admins), with an optional rate and monthly credit quota of its own. The
    response holds the key, once; only a hash is kept."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    key, secret = keys.create_api_key(db.session, instance=instance, actor=g.api_user, name=json.name,
                                      rate_limit=json.rate_limit, monthly_credit_quota=json.monthly_credit_quota)
    db.session.commit()
    return schemas.ApiKeyCreated(**serializers.api_key_out(key).model_dump(), secret=secret), 201


@bp.put(f"/instances/<{ID}:instance_id>/keys/<{ID}:key_id>/limits")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ApiKeyOut, 400, 403, 404, 409), tags=TAGS)
def update_api_key_limits(instance_id: int, key_id: int, json: schemas.ApiKeyLimitsIn):
    """Set a key's own rate and monthly credit quota (owners and admins); null clears either."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    key = keys.update_api_key_limits(db.session, instance=instance, key_id=key_id, actor=g.api_user,
                                     rate_limit=json.rate_limit, monthly_credit_quota=json.monthly_credit_quota)
    db.session.commit()
    rate_limits.forget_api_key_rate(key.prefix)
    return serializers.api_key_out(key)


@bp.post(f"/instances/<{ID}:instance_id>/keys/<{ID}:key_id>/revoke")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ApiKeyOut, 403, 404), tags=TAGS)
def revoke_api_key(instance_id: int, key_id: int):
    """Revoke a key (owners and admins); it is refused from the next request on."""
    instance = instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)
    key = keys.revoke_api_key(db.session, instance=instance, key_id=key_id, actor=g.api_user)
    db.session.commit()
    return serializers.api_key_out(key)
