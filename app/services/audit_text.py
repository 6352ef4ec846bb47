"""Audit events as sentences people read: "seller@example.com set the Pro plan to $249.00 a month."
rather than `offering.plan_updated` with `price_minor 24900`. Amounts in minor units are shown as money
in their currency, credits as numbers with separators, field names as words."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from app.formatting import credits as credit_count
from app.formatting import money
from app.models import AuditEvent

FIELD_WORDS = {
    "name": "name", "summary": "summary", "description_md": "description", "category": "category",
    "facets": "facets", "trial_days": "trial length", "trial_credits": "trial credits", "slug": "address",
    "price_minor": "price", "currency": "currency", "included_credits": "included credits",
    "credits_per_run": "credits per run", "max_runs_per_period": "run limit", "features": "features",
    "credits_per_1k_units": "credits per 1,000 characters or tokens",
}
STATUS_WORDS = {"draft": "draft", "in_review": "in review", "published": "published", "archived": "archived",
                "active": "active", "suspended": "suspended", "cancelled": "cancelled", "expired": "expired"}


def _words(fields: object) -> str:
    names = [FIELD_WORDS.get(str(f), str(f).replace("_", " ")) for f in (fields or [])]
    if not names:
        return "nothing"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _amount(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        return str(value)
    return money(value, str(data.get("currency") or "USD"))


def _credits(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{credit_count(value)} credit{'' if value == 1 else 's'}"
    return str(value)


def _target(e: AuditEvent) -> str:
    return f"{e.target_type.replace('_', ' ')} #{e.target_id}" if e.target_id else e.target_type.replace("_", " ")


Phrase = Callable[[AuditEvent, Mapping[str, Any]], str]

PHRASES: dict[str, Phrase] = {
    "offering.created": lambda e, d: f"created the offering “{d.get('name', '')}”",
    "offering.updated": lambda e, d: f"changed the {_words(d.get('fields'))} of {_target(e)}",
    "offering.submitted": lambda e, d: f"sent {_target(e)} for review",
    "offering.approved": lambda e, d: f"approved {_target(e)}; it is on the marketplace",
    "offering.rejected": lambda e, d: f"sent {_target(e)} back to its seller: “{d.get('reason', '')}”",
    "offering.archived": lambda e, d: f"archived {_target(e)} (it was {STATUS_WORDS.get(d.get('from'), d.get('from'))})",
    "offering.version_added": lambda e, d: f"added version {d.get('version', '')} to {_target(e)}",
    "offering.plan_created": lambda e, d: (f"created the {str(d.get('tier', '')).title()} plan of {_target(e)} "
                                           f"at {_amount(d, 'price_minor')} a month"),
    "offering.plan_updated": lambda e, d: (f"changed the {_words(d.get('fields'))} of the "
                                           f"{str(d.get('tier', '')).title()} plan of {_target(e)}"
                                           + (f"; it costs {_amount(d, 'price_minor')} a month"
                                              if "price_minor" in (d.get("fields") or []) else "")),
    "offering.synced": lambda e, d: f"updated {_target(e)} in the store",
    "offering.sync_failed": lambda e, d: f"could not update {_target(e)} in the store: {d.get('error', '')}",
    "order.placed": lambda e, d: f"placed order {d.get('number', '')} for {_amount(d, 'total_minor')}",
    "order.paid": lambda e, d: f"recorded the payment of order {d.get('number', '')}: {_amount(d, 'total_minor')}",
    "order.imported": lambda e, d: f"imported order {d.get('number', '')} from the store",
    "order.provisioned": lambda e, d: f"delivered order {d.get('number', '')}",
    "credits.purchased": lambda e, d: f"added {_credits(d.get('credits'))} bought with order {d.get('order', '')}",
    "credits.plan_credits_ended": lambda e, d: f"removed {_credits(d.get('credits_removed'))} of a plan's credits",
    "instance.created": lambda e, d: f"started a subscription ({_target(e)}) of {d.get('offering', '')}",
    "instance.trial_started": lambda e, d: f"started a free trial ({_target(e)}) of {d.get('offering', '')}",
    "instance.trial_expired": lambda e, d: f"ended the free trial {_target(e)}",
    "instance.suspended": lambda e, d: f"suspended {_target(e)}",
    "instance.resumed": lambda e, d: f"resumed {_target(e)}",
    "instance.cancelled": lambda e, d: f"cancelled {_target(e)}",
    "billing.hold_authorized": lambda e, d: f"held {_credits(d.get('amount'))} for a run",
    "billing.hold_settled": lambda e, d: (f"charged {_credits(d.get('captured'))} of a hold of "
                                          f"{_credits(d.get('amount'))}"),
    "billing.hold_released": lambda e, d: f"released a hold of {_credits(d.get('amount'))}",
    "wallet.low_balance_threshold_set": lambda e, d: f"set the low-balance alert to {_credits(d.get('threshold'))}",
    "organization.created": lambda e, d: "created the organization",
    "organization.member_added": lambda e, d: f"added a member as {d.get('role', '')}",
    "organization.member_removed": lambda e, d: f"removed a member ({d.get('role', '')})",
    "organization.member_role_changed": lambda e, d: f"changed a member's role from {d.get('from')} to {d.get('to')}",
    "api_key.created": lambda e, d: f"created the API key “{d.get('name', '')}”",
    "api_key.revoked": lambda e, d: f"revoked an API key ({d.get('prefix', '')}…)",
    "token.created": lambda e, d: f"created the access token “{d.get('name', '')}”",
    "token.revoked": lambda e, d: f"revoked an access token ({d.get('prefix', '')}…)",
    "connector.bound": lambda e, d: f"connected {d.get('kind', 'a connector')}",
    "connector.revoked": lambda e, d: f"disconnected {d.get('kind', 'a connector')}",
    "knowledge.added": lambda e, d: f"added the document “{d.get('title', '')}”",
    "knowledge.deleted": lambda e, d: "deleted a document",
    "user.created": lambda e, d: "signed up",
    "user.email_verified": lambda e, d: "confirmed their email address",
    "user.password_changed": lambda e, d: "changed their password",
    "user.password_reset": lambda e, d: "reset their password",
    "user.linked_to_provider": lambda e, d: "linked their account to single sign-on",
    "user.roles_changed": lambda e, d: f"changed roles from {d.get('from', '')} to {d.get('to', '')}",
    "review.created": lambda e, d: f"reviewed {d.get('offering', '')} with {d.get('rating')} stars",
    "review.replied": lambda e, d: f"replied to a review of {d.get('offering', '')}",
    "review.hidden": lambda e, d: f"hid a review of {d.get('offering', '')}: “{d.get('reason', '')}”",
}


def _value(key: str, value: object, data: Mapping[str, Any]) -> str:
    if key.endswith("_minor"):
        return _amount(data, key)
    if "credits" in key and isinstance(value, int):
        return _credits(value)
    if isinstance(value, list):
        return ", ".join(FIELD_WORDS.get(str(v), str(v)) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) or "none"
    return str(value)


def describe(event: AuditEvent) -> str:
    """One sentence saying what happened, starting with who did it."""
    try:
        data = json.loads(event.data_json or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    actor = "The system" if event.actor_label == "system" else event.actor_label
    phrase = PHRASES.get(event.action)
    if phrase is not None:
        try:
            return f"{actor} {phrase(event, data)}."
        except (TypeError, ValueError):
            pass  # unexpected data in an old event: the general wording below
    what = event.action.replace(".", " ").replace("_", " ")
    details = "; ".join(f"{k.replace('_', ' ')}: {_value(k, v, data)}" for k, v in data.items()
                        if k != "currency" or not any(key.endswith("_minor") for key in data))
    return f"{actor}: {what} ({_target(event)})" + (f" — {details}." if details else ".")
