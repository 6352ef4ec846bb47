"""Offerings, their versions, plans and facet values; credit packs; controlled facet vocabularies."""
from __future__ import annotations

import json

import secrets
from datetime import datetime

from sqlalchemy import (
    Boolean, CheckConstraint, Connection, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, func, false,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.models.base import Model, StrEnum
from app.models.reviews import Review, ReviewVote

CATEGORIES = ("agents", "apps", "assistants", "automations")
FACET_GROUPS = ("category", "outcome", "role", "capability", "pricing", "publisher")
PLAN_TIERS = ("starter", "pro", "enterprise")
DEFAULT_CONCURRENT_RUNS = 8
DEFAULT_CONCURRENT_RUNS_PER_WALLET = 32


class OfferingStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Offering(Model):
    __tablename__ = "offering"
    __table_args__ = (
        CheckConstraint("trial_days >= 0", name="trial_days_nonnegative"),
        CheckConstraint("trial_credits >= 0", name="trial_credits_nonnegative"),
        Index("ix_offering_status_published_at", "status", "published_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(140), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(280))
    description_md: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), index=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=OfferingStatus.DRAFT.value)
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)  # 0: no free trial
    trial_credits: Mapped[int] = mapped_column(Integer, default=0)
    # Knowledge the built-in runtime answers from (FAQ as JSON [{"q":..,"a":..}]).
    faq_json: Mapped[str] = mapped_column(Text, default="[]")
    review_note: Mapped[str | None] = mapped_column(Text)
    saleor_product_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    sync_status: Mapped[str | None] = mapped_column(String(16))
    sync_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    published_at: Mapped[datetime | None]

    publisher: Mapped["Organization"] = relationship()  # noqa: F821
    versions: Mapped[list["OfferingVersion"]] = relationship(
        back_populates="offering", order_by="OfferingVersion.id", cascade="all, delete-orphan"
    )
    plans: Mapped[list["Plan"]] = relationship(
        back_populates="offering", order_by="Plan.price_minor", cascade="all, delete-orphan"
    )
    facets: Mapped[list["OfferingFacet"]] = relationship(back_populates="offering", cascade="all, delete-orphan")

    @property
    def has_trial(self) -> bool:
        return self.trial_days > 0

    @property
    def current_version(self) -> "OfferingVersion | None":
        """The highest version by semantic order: what a new buyer gets. (A patch to an older major
        line may be released after a newer major, so the last one added is not always the highest.)"""
        return max(self.versions, key=lambda v: v.semver, default=None)

    def facet_values(self, group: str) -> list[str]:
        return sorted(f.value for f in self.facets if f.group == group)


class OfferingFacet(Model):
    """One facet value of an offering; all six groups, category and publisher included, live here."""

    __tablename__ = "offering_facet"
    __table_args__ = (
        UniqueConstraint("offering_id", "group", "value"),
        Index("ix_offering_facet_group_value", "group", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"), index=True)
    group: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))

    offering: Mapped[Offering] = relationship(back_populates="facets")


class FacetValue(Model):
    """The controlled vocabulary of a facet group: slug and human label."""

    __tablename__ = "facet_value"
    __table_args__ = (UniqueConstraint("group", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group: Mapped[str] = mapped_column(String(16))
    slug: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(80))


class OfferingVersion(Model):
    __tablename__ = "offering_version"
    __table_args__ = (UniqueConstraint("offering_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    changelog: Mapped[str] = mapped_column(Text, default="")
    runtime_kind: Mapped[str] = mapped_column(String(16), default="builtin")  # builtin | langflow
    runtime_ref: Mapped[str] = mapped_column(String(200))
    # Langflow only: which output component a run reads, and {component id: {field: value}} overrides (JSON)
    output_component: Mapped[str | None] = mapped_column(String(200))
    tweaks_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    offering: Mapped[Offering] = relationship(back_populates="versions")

    @property
    def semver(self) -> tuple[int, int, int]:
        """(major, minor, patch); a version that is not MAJOR.MINOR.PATCH sorts first, as (-1, -1, -1)."""
        parts = self.version.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return (-1, -1, -1)
        return int(parts[0]), int(parts[1]), int(parts[2])

    @property
    def major(self) -> int:
        return self.semver[0]

    @property
    def tweaks(self) -> dict:
        return json.loads(self.tweaks_json) if self.tweaks_json else {}


class Plan(Model):
    __tablename__ = "plan"
    __table_args__ = (
        UniqueConstraint("offering_id", "tier"),
        CheckConstraint("price_minor >= 0", name="price_nonnegative"),
        CheckConstraint("included_credits >= 0", name="included_credits_nonnegative"),
        CheckConstraint("credits_per_run >= 0", name="credits_per_run_nonnegative"),
        CheckConstraint("max_concurrent_runs >= 1", name="max_concurrent_runs_positive"),
        CheckConstraint("max_concurrent_runs_per_wallet >= 1", name="max_concurrent_runs_per_wallet_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(16))  # starter | pro | enterprise
    name: Mapped[str] = mapped_column(String(60))
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    price_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    interval: Mapped[str] = mapped_column(String(8), default="month")  # month | year: the period it renews for
    # unused included credits carry over into the next period instead of ending with it
    rollover_credits: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    included_credits: Mapped[int] = mapped_column(Integer, default=0)
    credits_per_run: Mapped[int] = mapped_column(Integer, default=1)
    # extra credits per 1,000 usage units (tokens, characters) a run reports; 0 = flat per run
    credits_per_1k_units: Mapped[int] = mapped_column(Integer, default=0)
    max_runs_per_period: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    max_credits_per_run: Mapped[int] = mapped_column(Integer, default=10)
    # runs in progress (queued or running) at once: on one instance, and across the buyer's wallet
    max_concurrent_runs: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_CONCURRENT_RUNS, server_default=str(DEFAULT_CONCURRENT_RUNS))
    max_concurrent_runs_per_wallet: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_CONCURRENT_RUNS_PER_WALLET, server_default=str(DEFAULT_CONCURRENT_RUNS_PER_WALLET))
    features: Mapped[str] = mapped_column(Text, default="")  # one feature per line

    offering: Mapped[Offering] = relationship(back_populates="plans")

    @property
    def feature_list(self) -> list[str]:
        return [line.strip() for line in self.features.splitlines() if line.strip()]


class CreditPack(Model):
    __tablename__ = "credit_pack"
    __table_args__ = (
        CheckConstraint("price_minor >= 0", name="price_nonnegative"),
        CheckConstraint("credits > 0", name="credits_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    credits: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CatalogRevision(Model):
    """One row whose token changes in the same transaction as any change to the published catalog's
    search data (offerings, their facets and plans, the facet vocabulary, reviews and their helpful votes and
    replies, which the cards, the rating sort and facet and the product page show): in-process search indexes
    are valid for exactly one token (see app/adapters/commerce/catalog_index.py). A random token, not
    a counter, so a rolled-back change can never make two different catalogs look alike."""

    __tablename__ = "catalog_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


CATALOG_SEARCH_MODELS = (Offering, OfferingFacet, Plan, FacetValue, Review, ReviewVote)
# what the catalog pages show beyond the search data: a product page's versions, every card's publisher
# name. Cached catalog pages (app/storefront/page_cache.py) are valid for one revision token too.
CATALOG_PAGE_MODELS = (OfferingVersion,)
CATALOG_PAGE_ATTRIBUTES = {"organization": ("name",)}


def bump_catalog_revision(connection: Connection) -> None:
    """Give the catalog a new revision token, in the caller's transaction."""
    table = CatalogRevision.__table__
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    token = secrets.token_hex(16)
    connection.execute(
        insert(table).values(id=1, token=token, changed_at=func.now())
        .on_conflict_do_update(index_elements=[table.c.id], set_={"token": token, "changed_at": func.now()})
    )


@event.listens_for(Session, "before_flush")
def _bump_revision_on_catalog_change(session: Session, flush_context, instances) -> None:
    """Every ORM change to the catalog's search data moves the revision in the same transaction.

    (Bulk statements that bypass the ORM must call bump_catalog_revision themselves.)"""
    watched = CATALOG_SEARCH_MODELS + CATALOG_PAGE_MODELS
    changed = any(isinstance(obj, watched) for obj in (*session.new, *session.deleted)) or any(
        isinstance(obj, watched) and session.is_modified(obj) for obj in session.dirty
    ) or any(_page_attribute_changed(obj) for obj in session.dirty)
    if changed:
        bump_catalog_revision(session.connection())


def _page_attribute_changed(obj: object) -> bool:
    """A change to a column the catalog pages show of a model that is not catalog data (a publisher's name)."""
    names = CATALOG_PAGE_ATTRIBUTES.get(getattr(obj, "__tablename__", ""), ())
    if not names:
        return False
    state = sa_inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)
