"""Reviews and ratings.

A member of an organization that has (or had) an instance of an offering, paid or a free trial, may
write one review per organization of it: 1 to 5 stars, a title and a text, which its author can
edit. A review says whether its organization subscribed ("Verified buyer") or only tried it ("Trial
user"). Anyone signed in may mark a review helpful, once. A member of the publisher replies once
per review. An operator hides a review with a reason (audited; the author is mailed); hidden reviews
drop out of every average, count and list.

Every change here is an ORM change to `Review` or `ReviewVote`, so it moves the catalog revision in
the same transaction (app.models.catalog): cached catalog pages and the search index see it at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import (
    Instance, Membership, Offering, OfferingStatus, Organization, Review, ReviewerKind, ReviewVote, Role,
    User, utcnow,
)
from app.models.catalog import bump_catalog_revision
from app.services import audit, mail, seller_webhooks
from app.services.errors import ServiceError
from app.services.oversight import Page, paginate
from app.services.text_rules import refuse_spoofing_characters

TITLE_MAX = 120
BODY_MAX = 5_000
REPLY_MAX = 3_000
REASON_MAX = 1_000
PER_PAGE = 10
SORTS = ("newest", "helpful")
SORT_LABELS = {"newest": "Newest", "helpful": "Most helpful"}
KIND_LABELS = {ReviewerKind.BUYER.value: "Verified buyer", ReviewerKind.TRIAL.value: "Trial user"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class ReviewError(ServiceError):
    """A review rule was broken; the message is safe to show beside `field`."""


class ReviewNotFound(ReviewError):
    def __init__(self, message: str = "There is no such review.") -> None:
        super().__init__(message, status=404)


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RatingSummary:
    """The visible reviews of one offering: how many, the sum of their stars, and how many gave each
    number of stars (`distribution[0]` is one star)."""

    count: int = 0
    stars: int = 0
    distribution: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @property
    def average(self) -> float | None:
        """The mean to one decimal (for showing; filters compare `stars >= n * count` exactly)."""
        return round(self.stars / self.count + 1e-9, 1) if self.count else None

    def share(self, star: int) -> int:
        """Percent of the reviews that gave `star` stars, rounded."""
        return round(100 * self.distribution[star - 1] / self.count) if self.count else 0


def visible() -> object:
    return Review.hidden_at.is_(None)


def rating_summaries(session: Session, offering_ids: list[int] | tuple[int, ...]) -> dict[int, RatingSummary]:
    """RatingSummary per offering id (offerings without visible reviews: left out)."""
    if not offering_ids:
        return {}
    rows = session.execute(
        select(Review.offering_id, Review.rating, func.count())
        .where(Review.offering_id.in_(list(offering_ids)), visible())
        .group_by(Review.offering_id, Review.rating)
    )
    spread: dict[int, list[int]] = {}
    for offering_id, rating, n in rows:
        spread.setdefault(offering_id, [0, 0, 0, 0, 0])[rating - 1] += n
    return {
        offering_id: RatingSummary(count=sum(d), stars=sum((i + 1) * n for i, n in enumerate(d)), distribution=tuple(d))
        for offering_id, d in spread.items()
    }


def rating_summary(session: Session, offering_id: int) -> RatingSummary:
    return rating_summaries(session, [offering_id]).get(offering_id, RatingSummary())


def published_offering(session: Session, slug: str) -> Offering | None:
    """A published offering by slug (reviews are ours in both commerce backends)."""
    if not slug or len(slug) > 140:
        return None
    return session.scalar(select(Offering).where(Offering.slug == slug, Offering.status == OfferingStatus.PUBLISHED.value))


def helpful_counts(session: Session, review_ids: list[int]) -> dict[int, int]:
    if not review_ids:
        return {}
    return dict(session.execute(
        select(ReviewVote.review_id, func.count()).where(ReviewVote.review_id.in_(review_ids))
        .group_by(ReviewVote.review_id)
    ).all())


def list_reviews(session: Session, *, offering_id: int, sort: str = "newest", page: int = 1,
                 per_page: int = PER_PAGE, include_hidden: bool = False) -> Page[Review]:
    """The reviews of an offering, newest first or most helpful first (then newest)."""
    query = select(Review).where(Review.offering_id == offering_id)
    if not include_hidden:
        query = query.where(visible())
    if sort == "helpful":
        votes = select(func.count()).where(ReviewVote.review_id == Review.id).correlate(Review).scalar_subquery()
        query = query.order_by(votes.desc(), Review.created_at.desc(), Review.id.desc())
    else:
        query = query.order_by(Review.created_at.desc(), Review.id.desc())
    return paginate(session, query, page=page, per_page=per_page)


def reviews_by_ids(session: Session, *, offering_id: int, ids: list[int]) -> list[Review]:
    """Visible reviews of the offering among `ids` (the ones a product page shows), in id order."""
    if not ids:
        return []
    return list(session.scalars(
        select(Review).where(Review.offering_id == offering_id, Review.id.in_(ids[:50]), visible()).order_by(Review.id)
    ))


def voted_review_ids(session: Session, *, user: User, review_ids: list[int]) -> set[int]:
    if not review_ids:
        return set()
    return set(session.scalars(
        select(ReviewVote.review_id).where(ReviewVote.user_id == user.id, ReviewVote.review_id.in_(review_ids))
    ))


def get_review(session: Session, review_id: int, *, include_hidden: bool = False) -> Review:
    review = session.get(Review, review_id)
    if review is None or (review.is_hidden and not include_hidden):
        raise ReviewNotFound()
    return review


def reviews_for_publisher(session: Session, *, user: User, publisher_id: int, page: int = 1, per_page: int = 20,
                          unanswered: bool = False) -> Page[Review]:
    """Visible reviews of a publisher's offerings, newest first (members of the publisher only)."""
    if session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                  Membership.organization_id == publisher_id)) is None:
        raise ReviewNotFound("There is no such publisher.")
    query = (select(Review).join(Offering, Offering.id == Review.offering_id)
             .where(Offering.publisher_id == publisher_id, visible()))
    if unanswered:
        query = query.where(Review.reply_body.is_(None))
    return paginate(session, query.order_by(Review.created_at.desc(), Review.id.desc()), page=page, per_page=per_page)


def reviews_for_operators(session: Session, *, page: int = 1, per_page: int = 25, hidden: bool | None = None
                          ) -> Page[Review]:
    query = select(Review)
    if hidden is True:
        query = query.where(Review.hidden_at.is_not(None))
    elif hidden is False:
        query = query.where(visible())
    return paginate(session, query.order_by(Review.created_at.desc(), Review.id.desc()), page=page, per_page=per_page)


# --- who may write ------------------------------------------------------------------------------

def reviewer_kind(session: Session, *, organization_id: int, offering_id: int) -> ReviewerKind | None:
    """BUYER when the organization has (or had) a subscription of the offering, TRIAL when it only
    had a free trial, None when it never had an instance of it."""
    trial_only = session.scalar(
        select(func.min(case((Instance.is_trial.is_(True), 1), else_=0)))
        .where(Instance.organization_id == organization_id, Instance.offering_id == offering_id)
    )
    if trial_only is None:
        return None
    return ReviewerKind.TRIAL if trial_only == 1 else ReviewerKind.BUYER


@dataclass(frozen=True)
class ReviewerOrganization:
    organization: Organization
    kind: ReviewerKind
    review: Review | None  # the organization's review of the offering, if written


def reviewer_organizations(session: Session, *, user: User, offering: Offering) -> list[ReviewerOrganization]:
    """The user's organizations that may review the offering (verified buyers or trial users), with
    their review if they wrote one; the current organization first."""
    rows = session.execute(
        select(Organization, func.min(case((Instance.is_trial.is_(True), 1), else_=0)))
        .join(Membership, Membership.organization_id == Organization.id)
        .join(Instance, Instance.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Instance.offering_id == offering.id)
        .group_by(Organization.id).order_by(Organization.id)
    ).all()
    if not rows:
        return []
    written = {r.organization_id: r for r in session.scalars(
        select(Review).where(Review.offering_id == offering.id,
                             Review.organization_id.in_([org.id for org, _ in rows])))}
    found = [ReviewerOrganization(org, ReviewerKind.TRIAL if trial_only == 1 else ReviewerKind.BUYER,
                                  written.get(org.id)) for org, trial_only in rows]
    return sorted(found, key=lambda r: r.organization.id != user.current_organization_id)


# --- writing ------------------------------------------------------------------------------------

def _clean_rating(rating: object) -> int:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ReviewError("Choose from 1 to 5 stars.", field="rating", status=422)
    return rating


def _clean_line(value: str | None, *, field: str, limit: int, missing: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise ReviewError(missing, field=field, status=422)
    if len(value) > limit:
        raise ReviewError(f"Use at most {limit:,} characters.", field=field, status=422)
    refuse_spoofing_characters(value, field=field, error=ReviewError)
    return value


def _clean_text(value: str | None, *, field: str, limit: int, missing: str) -> str:
    value = (value or "").replace("\r\n", "\n").strip()
    if not value:
        raise ReviewError(missing, field=field, status=422)
    if len(value) > limit:
        raise ReviewError(f"Use at most {limit:,} characters.", field=field, status=422)
    if _CONTROL.search(value):
        raise ReviewError("Remove the control characters.", field=field, status=422)
    refuse_spoofing_characters(value, field=field, error=ReviewError)
    return value


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)


def write_review(session: Session, *, user: User, organization_id: int, offering: Offering, rating: int,
                 title: str, body: str) -> Review:
    """A new review of a published offering by `user` for their organization.

    Refused with 403 unless the user is a member of an organization that has (or had) an instance of
    the offering, and with 409 when the organization reviewed it already (also when two members
    write at the same moment: the unique key decides, and the loser is told, nothing is half-written).
    """
    if offering.status != OfferingStatus.PUBLISHED.value:
        raise ReviewError("Only offerings on the marketplace can be reviewed.", field="offering_id", status=404)
    rating = _clean_rating(rating)
    title = _clean_line(title, field="title", limit=TITLE_MAX, missing="Give your review a title.")
    body = _clean_text(body, field="body", limit=BODY_MAX, missing="Write what you found.")
    member = session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                        Membership.organization_id == organization_id))
    if member is None:
        raise ReviewError("You are not a member of that organization.", field="organization_id", status=403)
    kind = reviewer_kind(session, organization_id=organization_id, offering_id=offering.id)
    if kind is None:
        raise ReviewError("Only organizations that subscribed to or tried this offering can review it.",
                          field="organization_id", status=403)
    # ON CONFLICT DO NOTHING: a concurrent review by a colleague waits for ours and then inserts
    # nothing, so the loser gets the 409 below rather than a failed transaction
    review_id = session.scalar(
        _insert(session)(Review).values(
            offering_id=offering.id, organization_id=organization_id, author_id=user.id, author_name=user.name[:120],
            reviewer_kind=kind.value, rating=rating, title=title, body=body, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["organization_id", "offering_id"]).returning(Review.id)
    )
    if review_id is None:
        raise ReviewError("Your organization has reviewed this offering already; edit that review instead.",
                          field="organization_id", status=409)
    review = session.get(Review, review_id)
    # Core statements do not pass through the ORM's flush: move the catalog revision here
    bump_catalog_revision(session.connection())
    on_review_created(session, review=review, actor=user)
    return review


def on_review_created(session: Session, *, review: Review, actor: User) -> None:
    """The one place that runs after a review is written, in its transaction: the audit record, and
    the point where the publisher's `review.created` webhook event is to be deferred."""
    audit.record(
        session, action="review.created", target_type="review", target_id=review.id,
        organization_id=review.organization_id, actor=actor,
        data={"offering": review.offering.slug, "rating": review.rating},
    )
    offering = review.offering
    seller_webhooks.emit(session, publisher_id=offering.publisher_id, event="review.created", data={
        "review_id": review.id, "offering": {"id": offering.id, "slug": offering.slug, "name": offering.name},
        "rating": review.rating, "title": review.title,
    })


def edit_review(session: Session, *, user: User, review: Review, rating: int, title: str, body: str) -> Review:
    """Change a review: only its author, while still a member of the organization it speaks for."""
    if review.author_id != user.id or session.scalar(select(Membership.id).where(
            Membership.user_id == user.id, Membership.organization_id == review.organization_id)) is None:
        raise ReviewError("Only the person who wrote this review can change it.", field="review", status=403)
    if review.is_hidden:
        raise ReviewError("This review was hidden by our moderators and cannot be changed.", field="review",
                          status=409)
    review.rating = _clean_rating(rating)
    review.title = _clean_line(title, field="title", limit=TITLE_MAX, missing="Give your review a title.")
    review.body = _clean_text(body, field="body", limit=BODY_MAX, missing="Write what you found.")
    kind = reviewer_kind(session, organization_id=review.organization_id, offering_id=review.offering_id)
    if kind is not None:  # a trial user who subscribed since is a verified buyer now
        review.reviewer_kind = kind.value
    review.updated_at = utcnow()
    session.flush()
    return review


def mark_helpful(session: Session, *, user: User, review: Review) -> bool:
    """Count the user's "helpful" once; True when it was new. Not on one's own organization's review."""
    if review.is_hidden:
        raise ReviewNotFound()
    if session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                  Membership.organization_id == review.organization_id)) is not None:
        raise ReviewError("You cannot vote on your own organization's review.", field="review", status=403)
    added = session.scalar(
        _insert(session)(ReviewVote).values(review_id=review.id, user_id=user.id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["review_id", "user_id"]).returning(ReviewVote.id)
    )
    if added is not None:
        bump_catalog_revision(session.connection())
    return added is not None


def reply_to_review(session: Session, *, user: User, review: Review, body: str) -> Review:
    """The publisher's one public reply (a member of the offering's publisher)."""
    if review.is_hidden:
        raise ReviewNotFound()
    publisher_id = review.offering.publisher_id
    if session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                  Membership.organization_id == publisher_id)) is None:
        raise ReviewError("Only the publisher of this offering can reply.", field="review", status=403)
    body = _clean_text(body, field="body", limit=REPLY_MAX, missing="Write your reply.")
    # one reply, also when two colleagues answer at once: only the first update finds it empty
    answered = session.execute(
        Review.__table__.update().where(Review.id == review.id, Review.reply_body.is_(None))
        .values(reply_body=body, reply_author_id=user.id, replied_at=utcnow())
    ).rowcount
    if answered != 1:
        raise ReviewError("This review has a reply already.", field="body", status=409)
    bump_catalog_revision(session.connection())
    session.refresh(review)
    audit.record(session, action="review.replied", target_type="review", target_id=review.id,
                 organization_id=publisher_id, actor=user, data={"offering": review.offering.slug})
    return review


def hide_review(session: Session, *, operator: User, review: Review, reason: str) -> Review:
    """Hide a review with the reason its author is mailed (operators only); audited."""
    if not operator.has_role(Role.OPERATOR):
        raise ReviewError("Only operators can hide reviews.", field="review", status=403)
    if review.is_hidden:
        raise ReviewError("This review is hidden already.", field="review", status=409)
    reason = _clean_text(reason, field="reason", limit=REASON_MAX, missing="Say why the review is hidden.")
    review.hidden_at = utcnow()
    review.hidden_reason = reason
    review.hidden_by_id = operator.id
    session.flush()
    audit.record(session, action="review.hidden", target_type="review", target_id=review.id,
                 organization_id=review.organization_id, actor=operator,
                 data={"offering": review.offering.slug, "reason": reason})
    author = session.get(User, review.author_id) if review.author_id else None
    if author is not None and author.is_active:
        mail.queue_mail(
            session, to=author.email, template="review_hidden", user_id=author.id,
            dedupe_key=f"review-hidden:{review.id}:{review.hidden_at:%Y%m%dT%H%M%S%f}",
            context={"name": author.name, "offering": review.offering.name, "title": review.title,
                     "reason": reason, "product_url": mail.link("storefront.product", slug=review.offering.slug)},
        )
    return review


@dataclass(frozen=True)
class OfferingReviews:
    """What a product page or review page shows of an offering's reviews (the same for every visitor)."""

    offering_id: int
    summary: RatingSummary
    page: Page[Review]
    sort: str
    helpful: dict[int, int]

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.page.items]


def offering_reviews(session: Session, *, offering_id: int, sort: str | None = None, page: int = 1,
                     per_page: int = PER_PAGE) -> OfferingReviews:
    sort = sort if sort in SORTS else "newest"
    listed = list_reviews(session, offering_id=offering_id, sort=sort, page=page, per_page=per_page)
    return OfferingReviews(
        offering_id=offering_id, summary=rating_summary(session, offering_id), page=listed, sort=sort,
        helpful=helpful_counts(session, [r.id for r in listed.items]),
    )


def is_publisher_member(session: Session, *, user: User, offering: Offering) -> bool:
    return session.scalar(select(Membership.id).where(Membership.user_id == user.id,
                                                      Membership.organization_id == offering.publisher_id)) is not None


def member_organization_ids(session: Session, *, user: User) -> set[int]:
    return set(session.scalars(select(Membership.organization_id).where(Membership.user_id == user.id)))
