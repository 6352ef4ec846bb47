"""The storefront: home, browse, search, product detail (cart and checkout live in cart.py).

Every page reads the catalog through the commerce port, so it renders the same over the local
tables and over Saleor. Search pages answer htmx requests with the `search_region` block only.
The catalog pages are rendered once per catalog state and URL (page_cache.py): what they show
must depend on the catalog and the URL only; a visitor's own parts are base.html's per-user
blocks or htmx fragments of their own.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_wtf import FlaskForm
from jinja2_fragments.flask import render_block
from wtforms import HiddenField
from wtforms.validators import InputRequired

from app.adapters.commerce import FACET_GROUPS, CommerceUnavailable, SearchQuery, get_catalog
from app.extensions import db
from app.services import catalog as catalog_service
from app.services import reviews as reviews_service
from app.storefront import page_cache
from app.storefront.page_cache import cached_page

bp = Blueprint("storefront", __name__)


@bp.record_once
def _init_page_cache(state) -> None:
    page_cache.init_app(state.app)


class AddToCartForm(FlaskForm):
    """Rendered once per plan; the cart's `storefront.cart_add` view validates what it receives."""

    sku = HiddenField("Plan", validators=[InputRequired()])
    quantity = HiddenField("Quantity", default="1", validators=[InputRequired()])


class TrialStartForm(FlaskForm):
    """The "Try free" button: a POST with the CSRF token only."""


@bp.errorhandler(CommerceUnavailable)
def commerce_unavailable(error: CommerceUnavailable):
    current_app.logger.warning("Commerce backend unavailable on %s: %s", request.path, error)
    retry_url = request.full_path.rstrip("?")
    response = current_app.make_response((
        render_template("errors/503.html", code=503, error=None, retry_url=retry_url), 503,
    ))
    if request.headers.get("HX-Request"):
        # htmx swaps no error answers: load the page itself, which shows this fallback whole
        response.headers["HX-Redirect"] = retry_url
    response.headers["Retry-After"] = "30"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
@cached_page
def home():
    page = catalog_service.home_page(get_catalog())
    return render_template("storefront/home.html", page=page)


@bp.get("/browse")
@cached_page
def browse():
    return _search_response(heading="Browse the catalog",
                            intro="Every agent, app, assistant and automation on the marketplace.")


@bp.get("/browse/<category>")
@cached_page
def browse_category(category: str):
    catalog = get_catalog()
    label = catalog_service.facet_label(catalog, "category", category)
    if label is None:
        abort(404)
    return _search_response(catalog=catalog, preset={"category": category}, heading=label,
                            intro=CATEGORY_INTROS.get(category, ""))


@bp.get("/browse/<group>/<value>")
@cached_page
def browse_facet(group: str, value: str):
    if group not in catalog_service.BROWSE_GROUPS:
        abort(404)
    catalog = get_catalog()
    label = catalog_service.facet_label(catalog, group, value)
    if label is None:
        abort(404)
    headings = {"outcome": "Offerings that help you {}", "role": "For {} teams", "capability": "{} offerings"}
    heading = headings[group].format(label.lower() if group == "outcome" else label)
    return _search_response(catalog=catalog, preset={group: value}, heading=heading, intro="")


@bp.get("/search")
@cached_page
def search():
    return _search_response(heading="Search", intro="")


@bp.get("/p/<slug>")
@cached_page
def product(slug: str):
    page = catalog_service.product_page(get_catalog(), slug)
    if page is None:
        abort(404)
    endpoints = current_app.view_functions
    cart_forms = {}
    if "storefront.cart_add" in endpoints:
        cart_forms = {plan.sku: AddToCartForm(formdata=None, sku=plan.sku, quantity="1") for plan in page.detail.plans}
    trial_form = TrialStartForm(formdata=None) if page.detail.card.has_trial and "account.trial_start" in endpoints \
        else None
    offering = reviews_service.published_offering(db.session, slug)
    reviews = reviews_service.offering_reviews(db.session, offering_id=offering.id, sort=request.args.get("reviews")) \
        if offering is not None else None
    return render_template("storefront/product.html", page=page, detail=page.detail, cart_forms=cart_forms,
                           trial_form=trial_form, reviews=reviews, review_kinds=reviews_service.KIND_LABELS,
                           review_sorts=reviews_service.SORT_LABELS)


CATEGORY_INTROS = {
    "agents": "Autonomous agents that take a goal and work through it: answer tickets, qualify leads, chase invoices.",
    "apps": "Focused tools with an AI core: paste something in, get something better out.",
    "assistants": "Helpers that sit beside your team and answer from your own knowledge.",
    "automations": "Workflows that run on their own: triage, extraction, hand-offs between your systems.",
}


def _search_response(*, heading: str, intro: str, catalog=None, preset: dict[str, str] | None = None):
    catalog = catalog or get_catalog()
    query = catalog_service.parse_search_args(request.args, catalog, preset=preset)
    page = catalog_service.search_page(catalog, query)
    if page.popular:  # suggestions ordered by subscriptions, which the catalog revision does not follow
        page_cache.dont_keep()
    context = {
        "page": page, "result": page.result, "query": query, "heading": heading, "intro": intro,
        "sort_labels": catalog_service.sort_labels(catalog), "search_url": _search_url, "facet_groups": FACET_GROUPS,
        "remove_url": lambda f: _search_url(query, filters=catalog_service.without_value(query, f.group, f.value)),
    }
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        response = current_app.make_response(
            render_block("storefront/search.html", "search_region", htmx_partial=True, **context)
        )
    else:
        response = current_app.make_response(render_template("storefront/search.html", **context))
    response.vary.add("HX-Request")
    return response


def _search_url(query: SearchQuery, **changes) -> str:
    return url_for("storefront.search", **catalog_service.query_args(query, **changes))
