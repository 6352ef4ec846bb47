"""Keeping the commerce backend's own catalog (Saleor) in step with published offerings.

`sync_offering` is the one place that pushes an offering through the product-sync port: the
`sync-offering` job runs it (queued by `queue_store_sync` with an approval or an archive, and by
the periodic sync-saleor sweep), the operator's "Sync to the store now" button and `flask
sync-saleor` call it directly. The port gets plain data (`ProductData`, built by
`build_product_data`), never a model: the adapter needs no session and no publishing rule.
`sync_credit_packs` pushes the credit packs the same way (the `sync-credit-packs` job, queued by
the same sweep when the packs changed since their last push).

Every sync bumps the store's catalog generation (`catalog_generation`): each process caches the
store's facet vocabulary and catalog scope, and a new generation tells it they are stale. The
same number can key any other per-process cache of Saleor-mode catalog pages.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.adapters.commerce.product_sync import (
    CreditPackData, FacetData, PlanData, ProductData, ProductSync, ProductSyncError, VersionData, get_product_sync,
)
from app.models import STORE_SYNC_KEY, CreditPack, FacetValue, Offering, OfferingStatus, Organization, StoreSyncState, User, utcnow
from app.services import audit
from app.services.offerings.rendering import render_description
from app.services.offerings.rules import SYNC_ERROR_MAX, SYNC_FAILED, SYNC_SYNCED
from app.services.offerings.versions import latest_version

STATE_KEY = STORE_SYNC_KEY


# --- the store's sync state: generation, scope, last credit-pack push ----------------------------

def catalog_generation(session: Session) -> int:
    """The store catalog's generation: it goes up with every sync, in every process's view (0 before
    the first). A per-process cache of anything read from the store is fresh while it is unchanged."""
    return int(session.scalar(select(StoreSyncState.generation).where(StoreSyncState.key == STATE_KEY)) or 0)


def _state(session: Session) -> StoreSyncState:
    """The state row, locked for this transaction (created on first use)."""
    from app.services.orders import insert_once

    row = session.scalar(select(StoreSyncState).where(StoreSyncState.key == STATE_KEY).with_for_update())
    if row is None:
        row = StoreSyncState(key=STATE_KEY, generation=0, data="{}")
        if not insert_once(session, row):  # another sync created it at the same moment
            row = session.scalar(select(StoreSyncState).where(StoreSyncState.key == STATE_KEY).with_for_update())
    return row


def store_state(session: Session) -> dict[str, Any]:
    """What the syncs recorded: {"scope": {...}, "credit_packs": digest}; {} before the first sync."""
    raw = session.scalar(select(StoreSyncState.data).where(StoreSyncState.key == STATE_KEY))
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def bump_catalog_generation(session: Session, *, scope: Mapping[str, Any] | None = None,
                            credit_packs: str | None = None) -> int:
    """A sync changed the store: count a new generation (flushes) and keep what it learnt (the store
    ids of our product type and collections; the digest of the credit packs it pushed)."""
    row = _state(session)
    data = store_state(session)
    if scope:
        known = dict(data.get("scope") or {})
        for key, value in scope.items():
            known[key] = {**(known.get(key) or {}), **value} if isinstance(value, dict) else value
        data["scope"] = known
    if credit_packs is not None:
        data["credit_packs"] = credit_packs
    session.execute(
        update(StoreSyncState).where(StoreSyncState.key == STATE_KEY)
        .values(generation=StoreSyncState.generation + 1, data=json.dumps(data, sort_keys=True), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.expire(row)
    return catalog_generation(session)


# --- credit packs -------------------------------------------------------------------------------

def credit_pack_data(session: Session) -> tuple[CreditPackData, ...]:
    """The credit packs for sale, as the product-sync port takes them."""
    return tuple(
        CreditPackData(sku=p.sku, name=p.name, credits=p.credits, price_minor=p.price_minor, currency=p.currency)
        for p in session.scalars(select(CreditPack).where(CreditPack.active.is_(True)).order_by(CreditPack.sku))
    )


def credit_packs_digest(packs: tuple[CreditPackData, ...]) -> str:
    return hashlib.sha256(json.dumps([list(p.__dict__.values()) for p in packs]).encode()).hexdigest()[:32]


def credit_packs_to_sync(session: Session) -> bool:
    """Whether the packs for sale differ from the ones last pushed to the store."""
    return store_state(session).get("credit_packs") != credit_packs_digest(credit_pack_data(session))


def sync_credit_packs(session: Session, *, sync: ProductSync, actor: User | None = None,
                      actor_label: str | None = None) -> bool:
    """Push the credit packs for sale to the store (one product, a variant per pack) and record it
    (flushes). Returns success; the failure is in the audit log and the sweep queues it again."""
    packs = credit_pack_data(session)
    try:
        sync.sync_credit_packs(packs)
    except ProductSyncError as exc:
        bump_catalog_generation(session)  # part of it may have happened
        audit.record(session, action="credit_packs.sync_failed", target_type="credit_pack", target_id=None,
                     actor=actor, actor_label=actor_label, data={"backend": sync.backend, "error": str(exc)[:500]})
        return False
    bump_catalog_generation(session, scope=sync.catalog_scope(), credit_packs=credit_packs_digest(packs))
    audit.record(session, action="credit_packs.synced", target_type="credit_pack", target_id=None, actor=actor,
                 actor_label=actor_label, data={"backend": sync.backend, "skus": [p.sku for p in packs]})
    return True



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
    versions = sorted(offering.versions, key=lambda v: (_semver_key(v.version), v.id), reverse=True)
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
                max_runs_per_period=p.max_runs_per_period, features=tuple(p.feature_list),
            )
            for p in offering.plans
        ),
        featured=bool(offering.featured),
        versions=tuple(
            VersionData(v.version, v.changelog or "", v.created_at.isoformat() if v.created_at else None)
            for v in versions
        ),
    )


def _semver_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


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
        bump_catalog_generation(session, scope=sync.catalog_scope())  # part of it may have happened
        audit.record(
            session, action="offering.sync_failed", target_type="offering", target_id=offering.id,
            organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
            data={"backend": sync.backend, "error": offering.sync_error},
        )
        return False
    offering.sync_status = SYNC_SYNCED
    offering.sync_error = None
    session.flush()
    bump_catalog_generation(session, scope=sync.catalog_scope())
    audit.record(
        session, action="offering.synced", target_type="offering", target_id=offering.id,
        organization_id=offering.publisher_id, actor=actor, actor_label=actor_label,
        data={"backend": sync.backend, "product_id": offering.saleor_product_id, "status": offering.status},
    )
    return True

