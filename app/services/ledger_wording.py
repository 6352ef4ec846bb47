"""Ledger lines in words a buyer reads: "Run #12 — 3 credits", "Pro plan of Support Agent, Dec 2026 —
1,200 included credits", "Added 1,000 credits (order DM-…)", "Refund of order DM-… — 1,200 credits taken back".

An entry stores its kind, its signed amounts and references (hold, grant, instance, idempotency key,
a free-text reference). `describe_entries` looks up what those references point to for a page of
entries in a few queries (the run of a hold, the order of an order line, the plan and period of a
grant) and `describe` turns one entry and those facts into a sentence. It never parses our own
internal reference texts ("settled 3 of 12"): those stay in the CSV export for support. A kind this
module does not know yet still reads as a sentence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    CreditGrant, GrantOrigin, Instance, LedgerEntry, LedgerKind, Offering, Order, OrderLine, Plan, Run,
)

DASH = "—"
_ORDER_LINE_KEY = re.compile(r"^order-line:(\d+):")
# order numbers as we give them (DM-…) and as Saleor orders are mirrored (S-…)
_ORDER_NUMBER = re.compile(r"\b(DM-[0-9A-F]{4,}|S-[\w-]+)\b")
# the reason plan_credits writes for people when included credits end early ("..., the plan was cancelled")
_ENDED_REASON = re.compile(r"unused included credits? ended, (.+)$")


KIND_LABELS = {
    LedgerKind.GRANT.value: "Added", LedgerKind.HOLD.value: "Set aside", LedgerKind.CAPTURE.value: "Spent",
    LedgerKind.RELEASE.value: "Returned", LedgerKind.EXPIRY.value: "Expired", LedgerKind.REFUND.value: "Refund",
}


def kind_label(kind: str) -> str:
    """The short word for a kind of entry, as the ledger's badge shows it."""
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


@dataclass(frozen=True)
class EntryFacts:
    """What an entry's references point to; every field may be unknown."""

    run_id: int | None = None
    order_number: str | None = None
    grant_origin: str | None = None
    plan_name: str | None = None
    offering_name: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    instance_label: str | None = None


def _credits(n: int) -> str:
    n = abs(n)
    return f"{n:,} credit{'' if n == 1 else 's'}"


def period_label(start: datetime | None, end: datetime | None) -> str:
    """"Dec 2026" for a period of about a month; "Dec 2026 – Dec 2027" for a longer one."""
    if start is None:
        return ""
    if end is not None and end - start > timedelta(days=40):
        return f"{start:%b %Y} – {end:%b %Y}"
    return f"{start:%b %Y}"


def _plan_title(facts: EntryFacts) -> str:
    plan = f"{facts.plan_name} plan" if facts.plan_name else "Plan"
    return f"{plan} of {facts.offering_name}" if facts.offering_name else plan


def _usage_subject(facts: EntryFacts) -> str:
    if facts.run_id is not None:
        return f"Run #{facts.run_id}"
    if facts.instance_label:
        return f"Usage of {facts.instance_label}"
    return "Usage"


def _order_number(entry: LedgerEntry, facts: EntryFacts) -> str | None:
    if facts.order_number:
        return facts.order_number
    found = _ORDER_NUMBER.search(entry.reference or "")
    return found.group(1) if found else None


def describe(entry: LedgerEntry, facts: EntryFacts | None = None) -> str:
    """One ledger entry as a sentence."""
    facts = facts or EntryFacts()
    kind = entry.kind
    if kind == LedgerKind.HOLD.value:
        return f"{_usage_subject(facts)} {DASH} up to {_credits(entry.held_delta)} set aside while it runs"
    if kind == LedgerKind.CAPTURE.value:
        spent = -entry.amount
        unused = -entry.held_delta - spent
        text = f"{_usage_subject(facts)} {DASH} {_credits(spent)}"
        return text + (f" ({unused:,} set aside and not used)" if unused > 0 else "")
    if kind == LedgerKind.RELEASE.value:
        subject = _usage_subject(facts)
        if (entry.reference or "") == "hold expired":
            return f"{subject} {DASH} did not finish in time; {_credits(entry.held_delta)} set aside returned, nothing charged"
        return f"{subject} {DASH} cancelled; {_credits(entry.held_delta)} set aside returned, nothing charged"
    if kind == LedgerKind.GRANT.value:
        return _describe_grant(entry, facts)
    if kind == LedgerKind.EXPIRY.value:
        if facts.grant_origin == GrantOrigin.PLAN.value:
            when = period_label(facts.period_start, facts.period_end)
            unused = -entry.amount
            reason = _ENDED_REASON.search(entry.reference or "")
            return (f"{_plan_title(facts)}{', ' + when if when else ''} {DASH} {unused:,} unused included "
                    f"credit{'' if unused == 1 else 's'} ended{', ' + reason.group(1) if reason else ' with the period'}")
        if facts.grant_origin == GrantOrigin.TRIAL.value:
            trial = f"Free trial of {facts.offering_name}" if facts.offering_name else "Free trial"
            return f"{trial} {DASH} {_credits(entry.amount)} not used, expired"
        return f"{_credits(entry.amount).capitalize()} expired unused"
    if kind == LedgerKind.REFUND.value:
        number = _order_number(entry, facts)
        what = f"Refund of order {number}" if number else "Refund"
        if entry.amount < 0:
            return f"{what} {DASH} {_credits(entry.amount)} taken back"
        if entry.amount > 0:
            return f"{what} {DASH} {_credits(entry.amount)} returned"
        return what
    # a kind added later that this module does not know yet: its name and its own reference
    text = f"{kind.replace('_', ' ').capitalize()} {DASH} {_credits(entry.amount)}" if entry.amount else \
        kind.replace("_", " ").capitalize()
    return f"{text} ({entry.reference})" if entry.reference else text


def _describe_grant(entry: LedgerEntry, facts: EntryFacts) -> str:
    origin = facts.grant_origin
    if origin == GrantOrigin.PLAN.value:
        when = period_label(facts.period_start, facts.period_end)
        return f"{_plan_title(facts)}{', ' + when if when else ''} {DASH} {entry.amount:,} included credits"
    if origin == GrantOrigin.TRIAL.value:
        trial = f"Free trial of {facts.offering_name}" if facts.offering_name else "Free trial"
        return f"{trial} {DASH} {_credits(entry.amount)}"
    number = _order_number(entry, facts)
    if origin == GrantOrigin.PURCHASE.value or number:
        return f"Added {_credits(entry.amount)}" + (f" (order {number})" if number else "")
    if origin == GrantOrigin.PROMO.value and entry.reference and entry.reference != origin:
        return f"{entry.reference} {DASH} {_credits(entry.amount)}"
    return f"Added {_credits(entry.amount)}"


def describe_entries(session: Session, entries: list[LedgerEntry]) -> dict[int, str]:
    """{entry id: sentence} for a page of entries, looking up their references in a few queries."""
    hold_ids = {e.hold_id for e in entries if e.hold_id is not None}
    grant_ids = {e.grant_id for e in entries if e.grant_id is not None}
    line_ids = {int(m.group(1)) for e in entries if e.idempotency_key
                for m in [_ORDER_LINE_KEY.match(e.idempotency_key)] if m}
    runs = dict(session.execute(select(Run.hold_id, Run.id).where(Run.hold_id.in_(hold_ids))).all()) if hold_ids else {}
    grants = {g.id: g for g in session.scalars(select(CreditGrant).where(CreditGrant.id.in_(grant_ids)))} \
        if grant_ids else {}
    orders = dict(session.execute(
        select(OrderLine.id, Order.number).join(Order, Order.id == OrderLine.order_id).where(OrderLine.id.in_(line_ids))
    ).all()) if line_ids else {}
    instance_ids = {e.instance_id for e in entries if e.instance_id is not None}
    instance_ids |= {g.instance_id for g in grants.values() if g.instance_id is not None}
    instances = {
        row.id: row for row in session.execute(
            select(Instance.id, Offering.name.label("offering"), Plan.name.label("plan"))
            .join(Offering, Offering.id == Instance.offering_id).outerjoin(Plan, Plan.id == Instance.plan_id)
            .where(Instance.id.in_(instance_ids))
        )
    } if instance_ids else {}
    described = {}
    for entry in entries:
        grant = grants.get(entry.grant_id) if entry.grant_id is not None else None
        instance = instances.get(entry.instance_id if entry.instance_id is not None else
                                 (grant.instance_id if grant is not None else None))
        line = _ORDER_LINE_KEY.match(entry.idempotency_key or "")
        facts = EntryFacts(
            run_id=runs.get(entry.hold_id) if entry.hold_id is not None else None,
            order_number=orders.get(int(line.group(1))) if line else None,
            grant_origin=grant.origin if grant is not None else None,
            plan_name=instance.plan if instance is not None else None,
            offering_name=instance.offering if instance is not None else None,
            period_start=grant.created_at if grant is not None else None,
            period_end=grant.expires_at if grant is not None else None,
            instance_label=f"{instance.offering} #{instance.id}" if instance is not None else None,
        )
        described[entry.id] = describe(entry, facts)
    return described
