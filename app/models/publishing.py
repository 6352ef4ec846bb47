"""Publishing: a publisher's public profile and its approval, the seller terms and who accepted them,
and the images of a listing (logo and screenshots, stored through the storage port)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, func
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.models.base import Model, StrEnum
from app.models.catalog import bump_catalog_revision


class PublisherStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class PublisherProfile(Model):
    """What buyers see of a publisher organization on its vendor page, and whether an operator approved it.

    An organization without a profile predates self-serve onboarding: it was set up by an operator."""

    __tablename__ = "publisher_profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PublisherStatus.PENDING.value, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str] = mapped_column(String(300), default="")
    support_email: Mapped[str] = mapped_column(String(254), default="")
    logo_key: Mapped[str | None] = mapped_column(String(100))
    applied_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    applied_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)

    organization: Mapped["Organization"] = relationship()  # noqa: F821
    applicant: Mapped["User | None"] = relationship(foreign_keys=[applied_by_user_id])  # noqa: F821

    @property
    def is_approved(self) -> bool:
        return self.status == PublisherStatus.APPROVED.value


class SellerTerms(Model):
    """One version of the seller terms; the newest is the one a new publisher accepts."""

    __tablename__ = "seller_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(20), unique=True)
    body_md: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SellerTermsAcceptance(Model):
    """Who accepted which version of the seller terms, for which publisher, and when."""

    __tablename__ = "seller_terms_acceptance"
    __table_args__ = (UniqueConstraint("organization_id", "terms_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    terms_id: Mapped[int] = mapped_column(ForeignKey("seller_terms.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    accepted_at: Mapped[datetime]

    terms: Mapped[SellerTerms] = relationship()


class MediaKind(StrEnum):
    LOGO = "logo"
    SCREENSHOT = "screenshot"


class OfferingMedia(Model):
    """An image of a listing: its logo (one) or a screenshot (up to six, in `position` order). The file lives
    in the storage port under `storage_key`, a name derived from its content."""

    __tablename__ = "offering_media"
    __table_args__ = (Index("ix_offering_media_offering_kind_position", "offering_id", "kind", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)
    storage_key: Mapped[str] = mapped_column(String(100), index=True)
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    alt_text: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


@event.listens_for(Session, "before_flush")
def _bump_revision_on_media_change(session: Session, flush_context, instances) -> None:
    """Cards and product pages show these images: a change moves the catalog revision like any listing edit."""
    changed = any(isinstance(obj, OfferingMedia) for obj in (*session.new, *session.deleted)) or any(
        isinstance(obj, OfferingMedia) and session.is_modified(obj) for obj in session.dirty
    )
    if changed:
        bump_catalog_revision(session.connection())
