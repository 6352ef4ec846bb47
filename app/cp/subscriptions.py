"""A paid instance's subscription: /api/instances/<id>/subscription...

The same rules as the instance page (app.services.subscription_changes): members of the instance's
organization read it; owners and admins end it at the period's end, resume it, or change its plan
(an upgrade is charged now, prorated, to the saved card, or left as an order to pay; a downgrade
applies at the next period; choosing the current plan keeps it and drops a pending downgrade).
Amounts are in the currency's minor unit, like every price of the API.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import current_app, g, url_for
from pydantic import BaseModel, Field

from app.adapters.commerce.checkout import get_checkout
from app.cp import schemas
from app.cp.auth import USER_KINDS, api_auth
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Instance, Order, Plan
from app.services import instances, subscription_changes, subscriptions
from app.services.subscriptions import SubscriptionError

ID = "int(min=1, max=2147483647)"
TAGS = ["subscriptions"]


class CardOut(schemas.Out):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class SubscriptionOut(schemas.Out):
    instance_id: int
    status: Literal["active", "suspended", "cancelled", "expired", "past_due"]
    is_trial: bool = Field(description="A free trial has no billing period: it cannot be changed here.")
    plan: schemas.PlanRef
    price_minor: int = Field(description="The plan's price per interval.")
    currency: str
    interval: str
    period_start: datetime
    period_end: datetime | None
    cancel_at_period_end: bool
    next_charge_at: datetime | None = Field(description="None: it will not renew.")
    next_charge_minor: int | None
    pending_plan: schemas.PlanRef | None = Field(description="A downgrade chosen for the next period.")
    payment_method: CardOut | None = Field(description="The saved card renewals are charged to.")
    refund_if_cancelled_now_minor: int = Field(
        description="What POST /api/instances/{id}/cancel would refund now: the unused part of the paid period.")


class PlanChangeIn(schemas.In):
    plan_id: schemas.Id = Field(description="A plan of the same agent, with the same currency and interval.")


class PlanChangeQuery(BaseModel):
    plan_id: schemas.QueryId


class OrderRef(schemas.Out):
    id: int
    number: str
    status: str
    total_minor: int
    currency: str
    pay_url: str | None = Field(None, description="Where the order is paid with a card, while it is unpaid.")


class PlanChangeOut(schemas.Out):
    change: Literal["upgrade", "downgrade", "unchanged"]
    plan: schemas.PlanRef
    charge_minor: int = Field(description="Upgrade: the prorated difference for the rest of the period.")
    currency: str
    credits: int = Field(description="Upgrade: the included credits added for the rest of the period.")
    order: OrderRef | None = Field(None, description="Upgrade: the order that charges it; paid when the saved "
                                                     "card was charged, pending while the store confirms its "
                                                     "charge, else pay it at `pay_url`.")
    subscription: SubscriptionOut | None = None


def _plan_ref(plan: Plan) -> schemas.PlanRef:
    return schemas.PlanRef(id=plan.id, tier=plan.tier, name=plan.name, sku=plan.sku)


def subscription_out(instance: Instance) -> SubscriptionOut:
    upcoming = subscriptions.next_charge(instance)
    method = instance.payment_method
    plan = instance.plan
    return SubscriptionOut(
        instance_id=instance.id, status=instance.status, is_trial=instance.is_trial, plan=_plan_ref(plan),
        price_minor=plan.price_minor, currency=plan.currency, interval=plan.interval,
        period_start=instance.period_start, period_end=instance.period_end,
        cancel_at_period_end=instance.cancel_at_period_end,
        next_charge_at=upcoming.at if upcoming else None, next_charge_minor=upcoming.amount_minor if upcoming else None,
        pending_plan=_plan_ref(instance.pending_plan) if instance.pending_plan is not None else None,
        payment_method=CardOut(brand=method.brand, last4=method.last4, exp_month=method.exp_month,
                               exp_year=method.exp_year) if method is not None else None,
        refund_if_cancelled_now_minor=subscription_changes.quote_cancel_now(db.session, instance=instance).refund_minor,
    )


def _instance(instance_id: int) -> Instance:
    return instances.get_instance_for_user(db.session, user=g.api_user, instance_id=instance_id)


def _plan_of(instance: Instance, plan_id: int) -> Plan:
    plan = db.session.get(Plan, plan_id)
    if plan is None or plan.offering_id != instance.offering_id:
        raise SubscriptionError("Choose a plan of the same agent.", field="plan_id", status=422)
    return plan


def _order_ref(order: Order | None) -> OrderRef | None:
    if order is None:
        return None
    # the card page takes the local test-mode gateway's payments; a store's charge is confirmed by the store
    unpaid = (order.status == "pending" and order.backend == "local"
              and "storefront.checkout_pay" in current_app.view_functions)
    return OrderRef(id=order.id, number=order.number, status=order.status, total_minor=order.total_minor,
                    currency=order.currency,
                    pay_url=url_for("storefront.checkout_pay", order_id=order.id) if unpaid else None)


@bp.get(f"/instances/<{ID}:instance_id>/subscription")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, SubscriptionOut, 404), tags=TAGS)
def get_subscription(instance_id: int):
    """The instance's plan, billing period, next charge, saved card, pending downgrade, and what
    cancelling now would refund (members of its organization)."""
    return subscription_out(_instance(instance_id))


def _change(instance_id: int, change) -> SubscriptionOut:
    instance = _instance(instance_id)
    change(db.session, instance=instance, actor=g.api_user)
    db.session.commit()
    return subscription_out(instance)


@bp.post(f"/instances/<{ID}:instance_id>/subscription/cancel-at-period-end")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, SubscriptionOut, 403, 404, 409), tags=TAGS)
def cancel_subscription_at_period_end(instance_id: int):
    """It runs until its period ends and is not renewed, nor charged again (owners and admins). 409 when
    it already ends then, or for a free trial."""
    return _change(instance_id, subscription_changes.cancel_at_period_end)


@bp.post(f"/instances/<{ID}:instance_id>/subscription/resume")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, SubscriptionOut, 403, 404, 409), tags=TAGS)
def resume_subscription(instance_id: int):
    """Undo a cancellation at the period's end: it renews again (owners and admins). 409 when it is not
    set to end, or has ended."""
    return _change(instance_id, subscription_changes.resume_subscription)


@bp.get(f"/instances/<{ID}:instance_id>/subscription/plan-change")
@api_auth(*USER_KINDS)
@spec.validate(query=PlanChangeQuery, resp=responses(200, PlanChangeOut, 400, 404, 422), tags=TAGS)
def quote_plan_change(instance_id: int, query: PlanChangeQuery):
    """What moving to another plan would do now, without doing it: the kind of change, the prorated
    charge and credits of an upgrade."""
    instance = _instance(instance_id)
    plan = _plan_of(instance, query.plan_id)
    change = subscription_changes.quote_plan_change(db.session, instance=instance, plan=plan)
    return PlanChangeOut(change=change.kind, plan=_plan_ref(plan), charge_minor=change.charge_minor,
                         currency=plan.currency, credits=change.credits)


@bp.post(f"/instances/<{ID}:instance_id>/subscription/plan")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, PlanChangeOut, 400, 402, 403, 404, 409, 422, 503), tags=TAGS)
def change_plan(instance_id: int, json: PlanChangeIn):
    """Move to another plan of the same agent (owners and admins). An upgrade is charged now for the
    rest of the period: to the saved card (the order comes back paid and the plan has changed), or,
    without one or when it is declined, as an order to pay at `pay_url`. With Saleor it is charged to
    the card the store's payment app keeps: the order comes back pending and the plan changes when
    the store confirms the payment (a decline is a 402 and changes nothing; 503 when the store did not
    answer). A downgrade applies at the next period. The current plan keeps it (and drops a pending
    downgrade): a retry after an upgrade charges nothing more."""
    instance = _instance(instance_id)
    plan = _plan_of(instance, json.plan_id)
    change = subscription_changes.change_plan(db.session, instance=instance, plan=plan, actor=g.api_user,
                                              gateway=get_checkout())
    db.session.commit()
    db.session.refresh(instance)
    return PlanChangeOut(change=change.kind, plan=_plan_ref(plan), charge_minor=change.charge_minor,
                         currency=plan.currency, credits=change.credits, order=_order_ref(change.order),
                         subscription=subscription_out(instance))
