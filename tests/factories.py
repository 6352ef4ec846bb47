"""Plain factory functions: add and flush, the caller commits."""
from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from app.models import Offering, OfferingFacet, OfferingStatus, OfferingVersion, Organization, Plan, User, utcnow
from app.services import identity
from app.services.catalog import reindex_offering

_seq = itertools.count(1)


def make_user(session: Session, *, email: str | None = None, name: str = "Test User", roles=("buyer",),
              password: str = "correct-horse-battery", verified: bool = True) -> User:
    n = next(_seq)
    user = identity.create_user(session, email=email or f"user{n}@example.test", name=name, password=password,
                                roles=list(roles))
    if verified:
        user.email_verified_at = utcnow()
    return user


def make_org(session: Session, *, owner: User, name: str | None = None) -> Organization:
    return identity.create_organization(session, name=name or f"Team {next(_seq)}", owner=owner)


def make_offering(session: Session, *, publisher: Organization, name: str | None = None, category: str = "agents",
                  status: str = OfferingStatus.PUBLISHED.value, summary: str = "A useful agent.",
                  description: str = "It does useful things.", facets: dict[str, list[str]] | None = None,
                  trial_days: int = 0, trial_credits: int = 0, price_minor: int = 1000,
                  runtime_ref: str = "support-faq") -> Offering:
    n = next(_seq)
    name = name or f"Offering {n}"
    offering = Offering(
        slug=f"{identity.slugify(name)}-{n}", name=name, summary=summary, description_md=description,
        category=category, publisher_id=publisher.id, status=status, trial_days=trial_days,
        trial_credits=trial_credits,
    )
    session.add(offering)
    session.flush()
    all_facets = {"category": [category], "publisher": [publisher.slug], **(facets or {})}
    for group, values in all_facets.items():
        for value in values:
            session.add(OfferingFacet(offering_id=offering.id, group=group, value=value))
    session.add(OfferingVersion(offering_id=offering.id, version="1.0.0", runtime_kind="builtin",
                                runtime_ref=runtime_ref))
    for i, tier in enumerate(("starter", "pro", "enterprise")):
        session.add(Plan(offering_id=offering.id, tier=tier, name=tier.title(), sku=f"SKU-{n}-{tier.upper()}",
                         price_minor=price_minor * (i + 1), currency="USD", included_credits=100 * (i + 1),
                         credits_per_run=1, max_runs_per_period=None))
    session.flush()
    reindex_offering(session, offering)  # searchable on SQLite too, as the offerings service does
    return offering
