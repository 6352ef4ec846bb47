"""Idempotent demo data: facet vocabularies, publishers, ten offerings, credit packs, demo users."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    CreditPack, FacetValue, GrantOrigin, MemberRole, Membership, Offering, OfferingFacet, OfferingStatus,
    OfferingVersion, Organization, Plan, PublisherProfile, PublisherStatus, User, utcnow,
)
from app.services import billing, catalog, identity
from app.services.demo_data import CREDIT_PACKS, FACET_VOCABULARY, OFFERINGS, PLAN_SHAPES, PUBLISHERS

DEMO_USERS = [
    ("buyer@example.com", "Bea Buyer", ["buyer"]),
    ("seller@example.com", "Sam Seller", ["buyer", "seller"]),
    ("operator@example.com", "Olive Operator", ["buyer", "operator"]),
]
BUYER_STARTING_CREDITS = 500


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


def seed_demo(session: Session, *, password: str) -> SeedReport:
    """Create whatever part of the demo data is missing; running it again creates nothing."""
    report = SeedReport()
    users = {email: _ensure_user(session, report, email, name, roles, password) for email, name, roles in DEMO_USERS}
    publishers = {
        "northwind-ai": _ensure_publisher(session, report, "northwind-ai", users["seller@example.com"]),
        "digitlify-labs": _ensure_publisher(session, report, "digitlify-labs", users["operator@example.com"]),
    }
    _ensure_vocabulary(session, report, publishers)
    for data in OFFERINGS:
        _ensure_offering(session, report, data, publishers[data["publisher"]])
    for sku, name, credits_, price in CREDIT_PACKS:
        if session.scalar(select(CreditPack.id).where(CreditPack.sku == sku)) is None:
            session.add(CreditPack(sku=sku, name=name, credits=credits_, price_minor=price, currency="USD"))
            report.created.append(f"credit pack {sku}")
    buyer = users["buyer@example.com"]
    org = identity.ensure_personal_organization(session, user=buyer)
    wallet = billing.wallet_for_organization(session, org.id)
    billing.grant_credits(
        session, wallet=wallet, amount=BUYER_STARTING_CREDITS, origin=GrantOrigin.PROMO.value,
        reference="Welcome credits", expires_at=utcnow() + timedelta(days=365),
        idempotency_key=f"seed:welcome:{org.id}",
    )
    session.flush()
    return report


def _ensure_user(session, report, email, name, roles, password) -> User:
    user = identity.get_user_by_email(session, email)
    if user is None:
        user = identity.create_user(session, email=email, name=name, password=password, roles=roles)
        user.email_verified_at = utcnow()  # demo accounts are ready to buy and try
        report.created.append(f"user {email}")
    return user


def _ensure_publisher(session, report, slug: str, owner: User) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        org = Organization(name=PUBLISHERS[slug], slug=slug, is_personal=False)
        session.add(org)
        session.flush()
        session.add(Membership(user_id=owner.id, organization_id=org.id, role=MemberRole.OWNER.value))
        billing.wallet_for_organization(session, org.id)
        report.created.append(f"publisher {slug}")
    if session.scalar(select(PublisherProfile.id).where(PublisherProfile.organization_id == org.id)) is None:
        session.add(PublisherProfile(  # the demo publishers are approved, so their vendor pages show the badge
            organization_id=org.id, status=PublisherStatus.APPROVED.value, applied_at=utcnow(), decided_at=utcnow(),
            description=f"{PUBLISHERS[slug]} builds agents and automations for teams on Digitlify.",
            website=f"https://{slug}.example.com", support_email=f"support@{slug}.example.com",
        ))
        session.flush()
    return org


def _ensure_vocabulary(session, report, publishers: dict[str, Organization]) -> None:
    existing = {(g, s) for g, s in session.execute(select(FacetValue.group, FacetValue.slug))}
    vocabulary = dict(FACET_VOCABULARY)
    vocabulary["publisher"] = [(org.slug, org.name) for org in publishers.values()]
    for group, values in vocabulary.items():
        for slug, label in values:
            if (group, slug) not in existing:
                session.add(FacetValue(group=group, slug=slug, label=label))
                report.created.append(f"facet {group}:{slug}")


def _ensure_offering(session, report, data: dict, publisher: Organization) -> None:
    slug = identity.slugify(data["name"])
    if session.scalar(select(Offering.id).where(Offering.slug == slug)) is not None:
        return
    now = utcnow()
    offering = Offering(
        slug=slug, name=data["name"], summary=data["summary"], description_md=data["description"],
        category=data["category"], publisher_id=publisher.id, status=OfferingStatus.PUBLISHED.value,
        featured=data.get("featured", False), trial_days=data["trial_days"], trial_credits=data["trial_credits"],
        faq_json=json.dumps(data.get("faq", [])), published_at=now,
    )
    session.add(offering)
    session.flush()
    facets = {"category": [data["category"]], "publisher": [publisher.slug]}
    for group in ("outcome", "role", "capability", "pricing"):
        facets[group] = data[group]
    for group, values in facets.items():
        for value in values:
            session.add(OfferingFacet(offering_id=offering.id, group=group, value=value))
    session.add(OfferingVersion(
        offering_id=offering.id, version="1.0.0", runtime_kind="builtin", runtime_ref=data["runtime"],
        changelog="First public release.",
    ))
    session.add(OfferingVersion(
        offering_id=offering.id, version="1.1.0", runtime_kind="builtin", runtime_ref=data["runtime"],
        changelog="Faster responses and clearer explanations of each result.",
    ))
    for tier, (name, price_factor, credit_factor, max_runs, features) in PLAN_SHAPES.items():
        session.add(Plan(
            offering_id=offering.id, tier=tier, name=name, sku=f"{slug.upper()[:40]}-{tier.upper()}",
            price_minor=data["base_price"] * price_factor - (100 if price_factor > 1 else 0),
            currency="USD", included_credits=data["base_credits"] * credit_factor,
            credits_per_run=data["per_run"], credits_per_1k_units=1, max_runs_per_period=max_runs,
            max_credits_per_run=data["per_run"] + 10, features=features,
        ))
    catalog.reindex_offering(session, offering)
    report.created.append(f"offering {slug}")
