"""Search as you type: the suggestions endpoint and the header search box's combobox markup."""
from __future__ import annotations

import re

from app.models import OfferingStatus
from tests.factories import make_offering, make_org, make_user


def _catalog(session):
    owner = make_user(session, roles=("buyer", "seller"))
    publisher = make_org(session, owner=owner, name="Lamp Works")
    make_offering(session, publisher=publisher, name="Brass Lamp Helper", category="agents")
    make_offering(session, publisher=publisher, name="Lamp Inventory App", category="apps")
    make_offering(session, publisher=publisher, name="Hidden Lamp Draft", status=OfferingStatus.DRAFT.value)
    make_offering(session, publisher=publisher, name="Invoice Chaser", category="automations")
    session.commit()


def _options(html: str) -> list[str]:
    return re.findall(r'<li role="option" id="([^"]+)"', html)


def test_suggestions_list_matching_published_offerings_with_category_and_a_search_line(app, client, session):
    _catalog(session)

    response = client.get("/search/suggest?q=lamp")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert _options(html) == ["suggestion-0", "suggestion-1", "suggestion-search"]
    assert "Brass Lamp Helper" in html and "Lamp Inventory App" in html
    assert "Hidden Lamp Draft" not in html and "Invoice Chaser" not in html
    assert "Agents" in html and "Apps" in html  # each with its category
    assert 'data-href="/p/' in html
    assert 'data-href="/search?q=lamp"' in html and "Search for “lamp”" in html
    assert 'data-count="2"' in html
    assert html.count('aria-selected="false"') == 3


def test_suggestions_are_limited_by_configuration(make_app, session):
    app = make_app(SEARCH_SUGGEST_LIMIT=1)
    with app.app_context():
        from app.extensions import db
        _catalog(db.session)
    html = app.test_client().get("/search/suggest?q=lamp").get_data(as_text=True)

    assert _options(html) == ["suggestion-0", "suggestion-search"]
    assert 'data-count="1"' in html


def test_no_match_still_offers_the_full_search(app, client, session):
    _catalog(session)

    html = client.get("/search/suggest?q=zebra").get_data(as_text=True)

    assert _options(html) == ["suggestion-search"]
    assert 'data-count="0"' in html


def test_a_query_too_short_or_empty_suggests_nothing(app, client, session):
    _catalog(session)

    for q in ("", "l", "   ", "%20l%20"):
        response = client.get(f"/search/suggest?q={q}")
        assert response.status_code == 200
        assert _options(response.get_data(as_text=True)) == []


def test_the_query_is_escaped_and_bounded(app, client, session):
    _catalog(session)

    html = client.get("/search/suggest?q=<script>alert(1)</script>" + "x" * 500).get_data(as_text=True)

    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "x" * 201 not in html


def test_suggestions_are_rate_limited_per_address(make_app, session):
    app = make_app(RATE_LIMITS_ENABLED=True, RATE_LIMIT_SUGGEST="2 per minute")
    client = app.test_client()

    codes = [client.get("/search/suggest?q=lamp").status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    assert client.get("/search?q=lamp").status_code == 200  # the search page keeps its own budget


def test_header_search_box_is_an_aria_combobox_driven_by_htmx(client):
    html = client.get("/").get_data(as_text=True)

    box = re.search(r'<input id="header-q"[^>]*>', html).group(0)
    assert 'role="combobox"' in box
    assert 'aria-expanded="false"' in box
    assert 'aria-controls="header-suggestions"' in box
    assert 'aria-autocomplete="list"' in box
    assert 'hx-get="/search/suggest"' in box
    assert 'hx-trigger="input changed delay:250ms"' in box
    assert 'hx-sync="this:replace"' in box
    assert 'name="q"' in box  # without JavaScript the form submits the text to the search page
    assert '<ul id="header-suggestions" class="suggestions" role="listbox" aria-label="Search suggestions" hidden>' in html
    assert re.search(r'id="header-suggestions-status"[^>]*role="status"[^>]*aria-live="polite"', html)
    assert 'src="/static/js/search-suggest.js"' in html
    form = re.search(r'<form class="header-search" role="search" action="([^"]+)" method="get">', html)
    assert form.group(1) == "/search"


def test_the_suggestion_script_needs_no_inline_code(client):
    response = client.get("/")

    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in response.get_data(as_text=True)
    assert client.get("/static/js/search-suggest.js").status_code == 200


def test_suggestions_read_the_catalog_port_so_they_work_over_saleor(make_app, saleor_fake):
    from app.adapters.commerce.saleor.catalog import forget_vocabularies
    from tests.storefront.test_saleor_catalog import (
        _attributes, _collection, _product_by_slug, _product_types, _products,
    )

    forget_vocabularies()
    saleor_fake.resolvers.update({"attributes": _attributes, "products": _products, "product": _product_by_slug,
                                  "collection": _collection, "productTypes": _product_types})
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="web",
                   SALEOR_APP_TOKEN="app-secret", SEARCH_SUGGEST_LIMIT=4)

    html = app.test_client().get("/search/suggest?q=bot").get_data(as_text=True)

    assert _options(html) == ["suggestion-0", "suggestion-search"]
    assert "Support Bot" in html and "Agents" in html and 'data-href="/p/support-bot"' in html
    [listing] = saleor_fake.received("ProductList")
    assert (listing.variables["search"], listing.variables["first"]) == ("bot", 4)
