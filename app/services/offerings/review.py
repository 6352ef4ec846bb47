"""The review flow: draft -> in review -> published (or back to draft with a reason), and archived."""
from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Offering, OfferingStatus, User, utcnow
from app.services import audit, mail, publishers
from app.services.offerings.sync import queue_store_sync
from app.services.offerings.versions import check_published_versions
from app.services.offerings.rules import (
    REASON_MAX, OfferingError, _clean_multiline, _mark_sync_pending, _require_member, _require_operator,
    _require_status,
)


def submit_for_review(session: Session, *, offering: Offering, actor: User) -> Offering:
    """Draft -> in review. The offering must be complete enough for a buyer to use it."""
    _require_member(session, actor, offering.publisher_id)
    blocker = publishers.submit_blocker(session, organization_id=offering.publisher_id, actor=actor)
    if blocker is not None:  # a publisher waiting for (or refused) an operator's approval prepares drafts only
        raise OfferingError(blocker, status=403)
    _require_status(offering, {OfferingStatus.DRAFT}, "Only a draft can be submitted for review.")
    missing = review_blockers(offering)
    if missing:
        raise OfferingError("Before submitting: " + "; ".join(missing) + ".")
    check_published_versions(offering)  # its flow may have been deleted since the version was added
    offering.status = OfferingStatus.IN_REVIEW.value
    offering.review_note = None
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.submitted", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
    )
    return offering


def review_blockers(offering: Offering) -> list[str]:
    """What still stops the offering from being submitted (empty when it is ready)."""
    missing = []
    if not offering.description_md.strip():
        missing.append("write a description")
    if not offering.versions:
        missing.append("add a version")
    if not offering.plans:
        missing.append("add at least one plan")
    return missing


def approve(session: Session, *, offering: Offering, actor: User) -> Offering:
    """In review -> published (operators only)."""
    _require_operator(actor)
    _require_status(offering, {OfferingStatus.IN_REVIEW}, "Only an offering in review can be approved.")
    check_published_versions(offering)  # what buyers will run must exist now, not only when it was added
    offering.status = OfferingStatus.PUBLISHED.value
    offering.review_note = None
    offering.published_at = offering.published_at or utcnow()
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.approved", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor,
    )
    queue_store_sync(session, offering=offering)
    mail.offering_reviewed(session, offering, True, None)
    return offering


def reject(session: Session, *, offering: Offering, actor: User, reason: str) -> Offering:
    """In review -> draft, with the reason the seller will see (operators only)."""
    _require_operator(actor)
    _require_status(offering, {OfferingStatus.IN_REVIEW}, "Only an offering in review can be rejected.")
    reason = _clean_multiline(reason, REASON_MAX, "reason")
    if not reason:
        raise OfferingError("Tell the seller what to change.", field="reason")
    offering.status = OfferingStatus.DRAFT.value
    offering.review_note = reason
    offering.updated_at = utcnow()
    session.flush()
    audit.record(
        session, action="offering.rejected", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, data={"reason": reason},
    )
    mail.offering_reviewed(session, offering, False, reason)
    return offering


def archive(session: Session, *, offering: Offering, actor: User) -> Offering:
    """Take the offering off the catalog for good (its publisher or an operator)."""
    _require_member(session, actor, offering.publisher_id)
    _require_status(offering, {OfferingStatus.DRAFT, OfferingStatus.IN_REVIEW, OfferingStatus.PUBLISHED},
                    "This offering is already archived.")
    previous = offering.status
    offering.status = OfferingStatus.ARCHIVED.value
    offering.updated_at = utcnow()
    _mark_sync_pending(offering)
    session.flush()
    audit.record(
        session, action="offering.archived", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, data={"from": previous},
    )
    if offering.saleor_product_id:  # its product in the store is taken off sale
        queue_store_sync(session, offering=offering)
    return offering
