"""Search-as-you-type: the suggestions under the header search box (an htmx fragment).

The header's search box asks this endpoint after a short pause in typing; the answer is the
options of the box's listbox. Without JavaScript nothing asks, and the form submits to /search.
"""
from __future__ import annotations

from flask import current_app, render_template, request

from app.adapters.commerce import get_catalog
from app.services import suggestions
from app.services.catalog import clean_text_query
from app.storefront.views import bp


@bp.get("/search/suggest")
def search_suggest():
    q = clean_text_query(request.args.get("q"))
    limit = int(current_app.config.get("SEARCH_SUGGEST_LIMIT") or suggestions.DEFAULT_LIMIT)
    items = suggestions.suggest_offerings(get_catalog(), q=q, limit=limit)
    response = current_app.make_response(render_template(
        "storefront/_suggestions.html", q=q, items=items, show=len(q) >= suggestions.MIN_QUERY,
    ))
    # the same for everyone: a short shared cache keeps a burst of typists cheap
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.record_once
def _rate_limited(state) -> None:
    from app.auth.rate_limits import limit_view

    limit_view(state.app, "storefront.search_suggest", "RATE_LIMIT_SUGGEST")
