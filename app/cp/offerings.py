"""Offerings: the public catalog listing, and publishing for sellers (their publisher organizations)
and operators (review, and every offering). /api/offerings/..."""
from __future__ import annotations

from collections.abc import Callable

from flask import g

from app.adapters.commerce import RATING_GROUP, CommerceUnavailable, SearchQuery, get_catalog, supports_ratings
from app.cp import schemas, serializers
from app.cp.auth import USER_KINDS, api_auth, is_operator
from app.cp.openapi import responses, spec
from app.cp.views import bp
from app.extensions import db
from app.models import Offering, Role
from app.services import catalog, listings, offerings
from app.web import problem

ID = "int(min=1, max=2147483647)"
TAGS = ["offerings"]
FILTER_GROUPS = ("category", "outcome", "role", "capability", "pricing", "publisher")


@bp.get("/offerings/")
@api_auth(*USER_KINDS, optional=True)
@spec.validate(query=schemas.OfferingQuery, resp=responses(200, schemas.OfferingList, 400, 403, 503), tags=TAGS)
def list_offerings(query: schemas.OfferingQuery):
    """Published offerings, public, filtered like the storefront (text, category and facet values);
    operators may also list another status (e.g. the review queue, `status=in_review`)."""
    offset = (query.page - 1) * query.per_page
    if query.status != "published":
        if g.api_user is None:
            return problem(403, "Forbidden", "Only operators can list offerings that are not published.",
                           errors=[{"field": "status", "message": "Sign in as an operator."}])
        rows, total = listings.offerings_with_status(db.session, user=g.api_user, status=query.status,
                                                     offset=offset, limit=query.per_page)
        items = [serializers.offering_out(o, private=True) for o in rows]
        return schemas.OfferingList(items=items, page=query.page, per_page=query.per_page, total=total)
    filters = tuple(
        (group, (getattr(query, group),)) for group in FILTER_GROUPS if getattr(query, group) is not None
    )
    catalog_port = get_catalog()
    if (query.sort == "rating" or query.min_rating is not None) and not supports_ratings(catalog_port):
        field = "sort" if query.sort == "rating" else "min_rating"
        return problem(400, "Bad Request", "This marketplace's catalog cannot sort or filter by rating.",
                       errors=[{"field": field, "message": "Ratings are not available from the commerce backend."}])
    if query.min_rating is not None:
        filters += ((RATING_GROUP, (str(query.min_rating),)),)
    search = SearchQuery(q=catalog.clean_text_query(query.q), filters=filters, sort=query.sort,
                         page=query.page, per_page=query.per_page)
    try:
        result = catalog_port.search(search)
    except CommerceUnavailable:
        return problem(503, "Service Unavailable", "The catalog could not be read; try again shortly.")
    rows = listings.offerings_by_slugs(db.session, [card.slug for card in result.items])
    private = is_operator()
    return schemas.OfferingList(items=[serializers.offering_out(o, private=private) for o in rows],
                                page=query.page, per_page=query.per_page, total=result.total)


@bp.post("/offerings/")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.OfferingOut, 400, 403, 404), tags=TAGS)
def create_offering(json: schemas.OfferingCreate):
    """A new draft offering of one of your organizations (sellers only)."""
    if not g.api_user.has_role(Role.SELLER):
        return problem(403, "Forbidden", "Only sellers can create offerings.")
    publisher_id = json.publisher_id or g.api_org.id
    publisher = offerings.get_publisher_for_seller(db.session, user=g.api_user, organization_id=publisher_id)
    offering = offerings.create_offering(
        db.session, publisher=publisher, actor=g.api_user, name=json.name, summary=json.summary,
        description_md=json.description_md, category=json.category, facets=json.facets,
        trial_days=json.trial_days, trial_credits=json.trial_credits, slug=json.slug,
    )
    db.session.commit()
    return _private(offering.id), 201


@bp.get(f"/offerings/<{ID}:offering_id>")
@api_auth(*USER_KINDS, optional=True)
@spec.validate(resp=responses(200, schemas.OfferingOut, 404), tags=TAGS)
def get_offering(offering_id: int):
    """A published offering (public), or any offering of your publishers (and every one for operators)."""
    offering, private = listings.visible_offering(db.session, user=g.api_user, offering_id=offering_id)
    return serializers.offering_out(offering, private=private)


@bp.patch(f"/offerings/<{ID}:offering_id>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingOut, 400, 404), tags=TAGS)
def update_offering(offering_id: int, json: schemas.OfferingUpdate):
    """Change the listing fields you send (members of the publisher, or operators)."""
    offering = _editable(offering_id)
    fields = json.model_dump(exclude_unset=True)
    for name in ("name", "summary", "description_md", "category", "facets", "trial_days", "trial_credits"):
        if name in fields and fields[name] is None:
            return problem(422, "Unprocessable Content", "The request does not match the schema.",
                           errors=[{"field": name, "message": "This field cannot be null."}])
    return _apply(offering, offerings.update_offering, **fields)


@bp.post(f"/offerings/<{ID}:offering_id>/versions")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(201, schemas.VersionOut, 400, 404, 503), tags=TAGS)
def add_version(offering_id: int, json: schemas.VersionCreate):
    """Publish a new version with its runtime reference, after checking it (see the request body): instances
    on the same major line run it from their next run; a new major is offered to them as an upgrade."""
    offering = _editable(offering_id)
    version = offerings.add_version(db.session, offering=offering, actor=g.api_user, version=json.version,
                                    changelog=json.changelog, runtime_kind=json.runtime_kind,
                                    runtime_ref=json.runtime_ref, output_component=json.output_component,
                                    tweaks=json.tweaks)
    db.session.commit()
    return serializers.version_out(version, private=True), 201


@bp.put(f"/offerings/<{ID}:offering_id>/plans/<any(starter, pro, enterprise):tier>")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.PlanOut, 400, 404), tags=TAGS)
def set_plan(offering_id: int, tier: str, json: schemas.PlanSet):
    """Create or update the plan of a tier (starter, pro, enterprise). Its SKU is made once and kept."""
    offering = _editable(offering_id)
    plan = offerings.set_plan(
        db.session, offering=offering, actor=g.api_user, tier=tier, name=json.name, price_minor=json.price_minor,
        currency=json.currency, included_credits=json.included_credits, credits_per_run=json.credits_per_run,
        max_runs_per_period=json.max_runs_per_period, features=json.features,
        max_concurrent_runs=json.max_concurrent_runs, max_concurrent_runs_per_wallet=json.max_concurrent_runs_per_wallet,
    )
    db.session.commit()
    return serializers.plan_out(plan)


@bp.post(f"/offerings/<{ID}:offering_id>/submit")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingOut, 400, 404), tags=TAGS)
def submit_offering(offering_id: int):
    """draft -> in_review (members of the publisher)."""
    return _apply(_editable(offering_id), offerings.submit_for_review)


@bp.post(f"/offerings/<{ID}:offering_id>/approve")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingOut, 400, 403, 404), tags=TAGS)
def approve_offering(offering_id: int):
    """in_review -> published (operators only)."""
    if not is_operator():
        return problem(403, "Forbidden", "Only operators publish offerings.")
    return _apply(_editable(offering_id), offerings.approve)


@bp.post(f"/offerings/<{ID}:offering_id>/reject")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingOut, 400, 403, 404), tags=TAGS)
def reject_offering(offering_id: int, json: schemas.RejectBody):
    """in_review -> draft, with the reason the seller sees (operators only)."""
    if not is_operator():
        return problem(403, "Forbidden", "Only operators review offerings.")
    return _apply(_editable(offering_id), offerings.reject, reason=json.reason)


@bp.post(f"/offerings/<{ID}:offering_id>/archive")
@api_auth(*USER_KINDS)
@spec.validate(resp=responses(200, schemas.OfferingOut, 400, 404), tags=TAGS)
def archive_offering(offering_id: int):
    """Take an offering off the catalog for good (members of the publisher, or operators)."""
    return _apply(_editable(offering_id), offerings.archive)


def _editable(offering_id: int) -> Offering:
    """The offering if the caller may change it (a member of its publisher, or an operator); else 404."""
    return listings.offering_for_operator_or_publisher(db.session, user=g.api_user, offering_id=offering_id)


def _apply(offering: Offering, change: Callable[..., object], **arguments) -> schemas.OfferingOut:
    """Make one change to the offering as the caller, commit it, and answer with the offering as it is now."""
    change(db.session, offering=offering, actor=g.api_user, **arguments)
    db.session.commit()
    return _private(offering.id)


def _private(offering_id: int) -> schemas.OfferingOut:
    offering, _ = listings.visible_offering(db.session, user=g.api_user, offering_id=offering_id)
    return serializers.offering_out(offering, private=True)

