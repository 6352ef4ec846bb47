"""Reviews of offerings: the public list with the rating summary, writing and editing one's
organization's review, the publisher's reply, "helpful" votes, and hiding (operators).
/api/offerings/{id}/reviews and /api/reviews/{id}/..."""
from __future__ import annotations

from flask import g

from app.cp import schemas
from app.cp.auth import USER_KINDS, api_auth, is_operator
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Offering, OfferingStatus, Review
from app.services import reviews as svc

ID = "int(min=1, max=2147483647)"
TAGS = ["reviews"]


def review_out(review: Review, helpful_count: int, *, operator: bool = False) -> schemas.ReviewOut:
    return schemas.ReviewOut(
        id=review.id, offering_id=review.offering_id, organization_id=review.organization_id,
        author_name=review.author_name, reviewer=review.reviewer_kind, rating=review.rating, title=review.title,
        body=review.body, created_at=review.created_at, updated_at=review.updated_at, helpful_count=helpful_count,
        reply=schemas.ReviewReplyOut(body=review.reply_body, replied_at=review.replied_at)
        if review.reply_body is not None else None,
        hidden_at=review.hidden_at if operator else None, hidden_reason=review.hidden_reason if operator else None,
    )


def _out(review: Review) -> schemas.ReviewOut:
    return review_out(review, svc.helpful_counts(db.session, [review.id]).get(review.id, 0), operator=is_operator())


def _published(offering_id: int) -> Offering:
    offering = db.session.get(Offering, offering_id)
    if offering is None or offering.status != OfferingStatus.PUBLISHED.value:
        raise svc.ReviewError("There is no such offering on the marketplace.", field="offering_id", status=404)
    return offering


@bp.get(f"/offerings/<{ID}:offering_id>/reviews")
@api_auth(*USER_KINDS, optional=True)
@spec.validate(query=schemas.ReviewQuery, resp=responses(200, schemas.ReviewList, 404), tags=TAGS)
def list_reviews(offering_id: int, query: schemas.ReviewQuery):
    """The visible reviews of a published offering (public), newest or most helpful first, with the
    average, count and distribution of their stars."""
    offering = _published(offering_id)
    listing = svc.offering_reviews(db.session, offering_id=offering.id, sort=query.sort, page=query.page,
                                   per_page=query.per_page)
    summary = listing.summary
    return schemas.ReviewList(
        summary=schemas.RatingSummaryOut(average=summary.average, count=summary.count,
                                         distribution={str(i + 1): n for i, n in enumerate(summary.distribution)}),
        items=[review_out(r, listing.helpful.get(r.id, 0)) for r in listing.page.items],
        page=query.page, per_page=query.per_page, total=listing.page.total,
    )


@bp.post(f"/offerings/<{ID}:offering_id>/reviews")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.ReviewOut, 403, 404, 409, 422), tags=TAGS)
def create_review(offering_id: int, json: schemas.ReviewCreate):
    """Your organization's review (the current one, or X-Organization-Id): it must have (or have had) a
    subscription or trial of the offering, and reviews each offering once."""
    offering = _published(offering_id)
    review = svc.write_review(db.session, user=g.api_user, organization_id=g.api_org.id, offering=offering,
                              rating=json.rating, title=json.title, body=json.body)
    db.session.commit()
    return _out(review), 201


@bp.patch(f"/reviews/<{ID}:review_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ReviewOut, 403, 404, 409, 422), tags=TAGS)
def update_review(review_id: int, json: schemas.ReviewUpdate):
    """Change the stars, title or text of a review you wrote."""
    review = svc.get_review(db.session, review_id, include_hidden=True)
    if review.is_hidden and review.author_id != g.api_user.id and not is_operator():
        raise svc.ReviewNotFound()
    sent = json.model_dump(exclude_unset=True)
    for name in ("rating", "title", "body"):
        if name in sent and sent[name] is None:
            raise svc.ReviewError("This field cannot be null.", field=name, status=422)
    svc.edit_review(db.session, user=g.api_user, review=review, rating=sent.get("rating", review.rating),
                    title=sent.get("title", review.title), body=sent.get("body", review.body))
    db.session.commit()
    return _out(review)


@bp.post(f"/reviews/<{ID}:review_id>/reply")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ReviewOut, 403, 404, 409, 422), tags=TAGS)
def reply_to_review(review_id: int, json: schemas.ReviewReplyBody):
    """The publisher's one public reply (members of the offering's publisher)."""
    review = svc.get_review(db.session, review_id)
    svc.reply_to_review(db.session, user=g.api_user, review=review, body=json.body)
    db.session.commit()
    return _out(review)


@bp.post(f"/reviews/<{ID}:review_id>/helpful")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.HelpfulOut, 403, 404), tags=TAGS)
def mark_review_helpful(review_id: int):
    """Say a review helped you; counted once per person (not for your own organization's review)."""
    review = svc.get_review(db.session, review_id)
    counted = svc.mark_helpful(db.session, user=g.api_user, review=review)
    db.session.commit()
    return schemas.HelpfulOut(counted=counted,
                              helpful_count=svc.helpful_counts(db.session, [review.id]).get(review.id, 0))


@bp.post(f"/reviews/<{ID}:review_id>/hide")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.ReviewOut, 403, 404, 409, 422), tags=TAGS)
def hide_review(review_id: int, json: schemas.ReviewHideBody):
    """Take a review off the marketplace with the reason its author is mailed (operators only; audited)."""
    review = svc.get_review(db.session, review_id, include_hidden=True)
    svc.hide_review(db.session, operator=g.api_user, review=review, reason=json.reason)
    db.session.commit()
    return _out(review)
