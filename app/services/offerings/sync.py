"""Keeping the commerce backend's own catalog (Saleor) in step with published offerings.

`sync_offering` is the one place that pushes an offering through the product-sync port: the
`sync-offering` job runs it (queued by `queue_store_sync` with an approval or an archive, and by
the periodic sync-saleor sweep), the operator's "Sync to the store now" button and `flask
sync-saleor` call it directly. The port gets plain data (`ProductData`, built by
`build_product_data`), never a model: the adapter needs no session and no publishing rule.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adapters.commerce.product_sync import (
    FacetData, PlanData, ProductData, ProductSync, ProductSyncError, get_product_sync,
)
from app.models import FacetValue, Offering, OfferingStatus, Organization, User
from app.services import audit
from app.services.offerings.rendering import render_description
from app.services.offerings.rules import SYNC_ERROR_MAX, SYNC_FAILED, SYNC_SYNCED
from app.services.offerings.versions import latest_version



def queue_store_sync(session: Session, *, offering: Offering) -> bool:
    """Queue a job that pushes `offering` to the commerce backend's catalog, in the caller's transaction
    (a decision that rolls back queues nothing; one waiting job per offering at most). False when the
    backend keeps no catalog of its own (the local one reads our tables)."""
    from app.services import jobs

    if get_product_sync() is None:
        return False
    jobs.defer(session, "sync-offering", queueing_lock=f"sync-offering:{offering.id}", offering_id=offering.id)
    return True


def offerings_to_sync(session: Session, *, include_synced: bool = False) -> list[Offering]:
    """Offerings whose product in the commerce backend is missing or out of date.

    Published offerings not yet synced, pending or failed; archived ones that were synced before
    (their product must be taken off sale). With `include_synced`, every published offering.
    """
    published = Offering.status == OfferingStatus.PUBLISHED.value
    archived_known = (Offering.status == OfferingStatus.ARCHIVED.value) & Offering.saleor_product_id.is_not(None)
    query = select(Offering).where(published | archived_known)
    if not include_synced:
        query = query.where((Offering.sync_status.is_(None)) | (Offering.sync_status != SYNC_SYNCED))
    return list(session.scalars(query.order_by(Offering.id)))


def build_product_data(session: Session, *, offering: Offering) -> ProductData:
    """The offering as the product-sync port takes it: rendered description, latest version,
    facet values with their labels (the publisher's name for its own facet), plans."""
    facets = sorted(offering.facets, key=lambda f: (f.group, f.value))
    labels = {
        (group, slug): label
        for group, slug, label in session.execute(
            select(FacetValue.group, FacetValue.slug, FacetValue.label)
            .where(FacetValue.slug.in_(sorted({f.value for f in facets})))
        )
    } if facets else {}
    publisher = session.get(Organization, offering.publisher_id)

    def label(group: str, value: str) -> str | None:
        found = labels.get((group, value))
        if not found and group == "publisher" and publisher is not None and value == publisher.slug:
            found = publisher.name
        return found or None

    latest = latest_version(offering)
    return ProductData(
        offering_id=offering.id,
        slug=offering.slug,
        name=offering.name,
        summary=offering.summary,
        category=offering.category,
        description_html=render_description(offering.description_md or ""),
        live=offering.status == OfferingStatus.PUBLISHED.value,
        trial_days=offering.trial_days,
        trial_credits=offering.trial_credits,
        version=latest.version if latest else "",
        changelog=latest.changelog if latest else "",
        product_id=offering.saleor_product_id,
        facets=tuple(FacetData(f.group, f.value, label(f.group, f.value)) for f in facets),
        plans=tuple(
            PlanData(
                sku=p.sku, name=p.name, tier=p.tier, price_minor=p.price_minor, currency=p.currency,
                included_credits=p.included_credits, credits_per_run=p.credits_per_run,
                max_runs_per_period=p.max_runs_per_period,
            )
            for p in offering.plans
        ),
    )


def sync_offering(session: Session, *, offering: Offering, sync: ProductSync, actor: User | None = None,
                  actor_label: str | None = None) -> bool:
    """Push the offering through the product-sync port and record the outcome on it.

    A failure never touches the offering's own data: it sets sync_status "failed" and keeps the
    message in sync_error for the retry (`flask sync-saleor`) and for operators. Returns success.
    """
    def remember(product_id: str) -> None:
        offering.saleor_product_id = product_id

    try:
        sync.sync_product(build_product_data(session, offering=offering), on_product_id=remember)
    except ProductSyncError as exc:
        offering.sync_status = SYNC_FAILED
        offering.sync_error = str(exc)[:SYNC_ERROR_MAX]
        session.flush()
        audit.record(
            session, action="offering.sync_failed", target_type="offering", target_id=offering.id,
            organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
            data={"backend": sync.backend, "error": offering.sync_error},
        )
        return False
    offering.sync_status = SYNC_SYNCED
    offering.sync_error = None
    session.flush()
    audit.record(
        session, action="offering.synced", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
        data={"backend": sync.backend, "product_id": offering.saleor_product_id, "status": offering.status},
    )
    return True

