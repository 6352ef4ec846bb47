"""Reviews of offerings: one per organization per offering, by a member of an organization that has
(or had) an instance of it; the "Was this helpful?" votes (one per person); the publisher's one reply;
an operator's hiding with a reason."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, StrEnum


class ReviewerKind(StrEnum):
    BUYER = "buyer"  # the organization has (or had) a subscription
    TRIAL = "trial"  # it only ever had a free trial


class Review(Model):
    __tablename__ = "review"
    __table_args__ = (
        UniqueConstraint("organization_id", "offering_id"),
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        Index("ix_review_offering_id_hidden_at", "offering_id", "hidden_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    author_name: Mapped[str] = mapped_column(String(120))  # as shown, kept if the account goes
    reviewer_kind: Mapped[str] = mapped_column(String(8), default=ReviewerKind.BUYER.value)
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime | None]  # set when the text or stars were changed after writing
    reply_body: Mapped[str | None] = mapped_column(Text)
    reply_author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    replied_at: Mapped[datetime | None]
    hidden_at: Mapped[datetime | None]
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    offering: Mapped["Offering"] = relationship()  # noqa: F821
    organization: Mapped["Organization"] = relationship()  # noqa: F821

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None


class ReviewVote(Model):
    """One person found a review helpful; at most once."""

    __tablename__ = "review_vote"
    __table_args__ = (UniqueConstraint("review_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("review.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
