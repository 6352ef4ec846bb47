"""Storefront catalog pages over the local catalog: what each page shows, htmx fragments, bad input."""
from __future__ import annotations

import re

from app.models import OfferingStatus
from tests.factories import make_offering, make_org, make_user


def _result_slugs(html: str) -> list[str]:
    return re.findall(r'class="card-link" href="/p/([^"]+)"', html)


def test_home_shows_featured_categories_and_newest(client, demo):
    response = client.get("/")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="featured-heading"' in html and 'id="newest-heading"' in html
    for slug in ("agents", "apps", "assistants", "automations"):
        assert f'href="/browse/{slug}"' in html
    assert "3 offerings" in html  # agents in the demo catalog
    featured = html.split('id="featured-heading"')[1].split('id="newest-heading"')[0]
    assert set(_result_slugs(featured)) == {"customer-support-agent", "knowledge-base-assistant", "sales-outreach-agent"}


def test_browse_lists_every_published_offering(client, demo):
    response = client.get("/browse")

    assert response.status_code == 200
    assert "<strong>10</strong> results" in response.get_data(as_text=True)


def test_browse_category_filters_and_checks_the_category(client, demo):
    response = client.get("/browse/assistants")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>2</strong> results" in html
    assert sorted(_result_slugs(html)) == ["knowledge-base-assistant", "meeting-notes-summarizer"]
    assert 'name="category" value="assistants" checked' in html


def test_browse_by_outcome_role_and_capability(client, demo):
    for path in ("/browse/outcome/save-time", "/browse/role/support", "/browse/capability/retrieval"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "results" in response.get_data(as_text=True)


def test_unknown_browse_pages_are_404(client, demo):
    for path in ("/browse/robots", "/browse/pricing/free-trial", "/browse/outcome/world-peace", "/browse/a/b/c",
                 "/browse/%00", "/browse/role/%00sales", "/browse/role/sales%0A", "/browse/outcome/" + "x" * 300):
        assert client.get(path).status_code == 404, path


def test_search_combines_values_with_or_and_groups_with_and(client, demo):
    either_role = client.get("/search?role=support&role=sales").get_data(as_text=True)
    with_trial = client.get("/search?role=support&role=sales&pricing=free-trial").get_data(as_text=True)

    assert sorted(_result_slugs(either_role)) == [
        "customer-support-agent", "lead-scoring-agent", "meeting-notes-summarizer", "sales-outreach-agent",
        "ticket-triage-automation"]
    assert sorted(_result_slugs(with_trial)) == [
        "customer-support-agent", "lead-scoring-agent", "meeting-notes-summarizer"]


def test_search_shows_removable_chips_for_active_filters(client, demo):
    html = client.get("/search?q=agent&role=support&pricing=free-trial").get_data(as_text=True)

    assert 'aria-label="Remove filter Role: Support"' in html
    assert 'href="/search?q=agent&amp;pricing=free-trial"' in html  # removing the role keeps the rest
    assert 'href="/search?role=support&amp;pricing=free-trial"' in html  # removing the text keeps the filters


def test_search_without_results_suggests_categories_and_popular_offerings(client, demo):
    html = client.get("/search?q=xylophone").get_data(as_text=True)

    assert "No offerings match “xylophone”" in html
    assert 'href="/browse/automations"' in html
    assert 'id="popular-heading"' in html
    assert len(_result_slugs(html)) == 4


def test_search_sorts_and_pages(client, demo):
    html = client.get("/search?sort=price_asc").get_data(as_text=True)

    assert _result_slugs(html)[:2] == ["csv-data-cleaner", "meeting-notes-summarizer"]
    assert '<option value="price_asc" selected>' in html


def test_pagination_links_keep_the_query(client, session):
    publisher = make_org(session, owner=make_user(session))
    for n in range(30):
        make_offering(session, publisher=publisher, name=f"Widget {n}")
    session.commit()

    first = client.get("/search?q=widget&sort=name").get_data(as_text=True)
    second = client.get("/search?q=widget&sort=name&page=2").get_data(as_text=True)

    assert "Page 1 of 2" in first
    assert 'href="/search?q=widget&amp;sort=name&amp;page=2"' in first
    assert len(_result_slugs(first)) == 24 and len(_result_slugs(second)) == 6
    assert not set(_result_slugs(first)) & set(_result_slugs(second))


def test_htmx_request_gets_the_results_fragment_only(client, demo):
    response = client.get("/search?category=agents", headers={"HX-Request": "true"})

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    assert html.lstrip().startswith('<div id="search-region"')
    assert "<html" not in html and "site-footer" not in html
    assert 'id="header-q"' in html and 'hx-swap-oob="true"' in html  # the header box follows the results


def test_full_page_is_a_plain_get_form_that_also_drives_htmx(client, demo):
    response = client.get("/search?category=agents")

    html = response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]
    form = re.search(r'<form id="search-form"[^>]*>', html).group(0)
    assert 'action="/search"' in form and 'method="get"' in form
    assert 'hx-get="/search"' in form and 'hx-push-url="true"' in form
    assert 'Apply filters</button>' in html  # the way to apply filters without JavaScript
    assert "<script>" not in html  # the CSP allows no inline script


BAD_ARGUMENTS = [
    "page=-1", "page=abc", "page=0", "page=99999999999999999999", "sort=drop", "sort=", "category=robots",
    "outcome=%00", "role=sales%00", "publisher=../../etc", "capability=" + "c" * 500, "q=" + "x" * 5000, "q=%E2%80%AE%00", "page=2.5&sort=price_asc",
]


def test_bad_search_arguments_are_ignored_not_errors(client, demo):
    for query in BAD_ARGUMENTS:
        response = client.get("/search?" + query)

        assert response.status_code == 200, query
        expected = "results" if query.startswith("q=") else "<strong>10</strong> results"  # all ten: ignored
        assert expected in response.get_data(as_text=True), query


def test_unknown_facet_values_are_dropped_and_known_ones_kept(client, demo):
    html = client.get("/search?category=robots&category=apps").get_data(as_text=True)

    assert "<strong>3</strong> results" in html
    assert "robots" not in html


def test_page_past_the_end_says_so(client, demo):
    html = client.get("/search?page=5").get_data(as_text=True)

    assert "There are only 1 page of results." in html
    assert _result_slugs(html) == []


def test_query_and_facet_values_are_escaped(client, demo):
    evil = '<script>alert("x")</script>'

    response = client.get("/search", query_string={"q": evil, "role": '"><script>alert(1)</script>'})

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_facet_value_with_quotes_in_a_known_label_is_escaped(client, session, demo):
    from app.models import FacetValue

    session.add(FacetValue(group="role", slug="legal", label='Legal "&" <b>compliance</b>'))
    publisher = make_org(session, owner=make_user(session))
    make_offering(session, publisher=publisher, name="Contract Reader", facets={"role": ["legal"]})
    session.commit()

    html = client.get("/search?role=legal").get_data(as_text=True)

    assert "<b>compliance</b>" not in html
    assert "Legal &#34;&amp;&#34; &lt;b&gt;compliance&lt;/b&gt;" in html


def test_product_page_shows_everything_a_buyer_needs(client, demo):
    response = client.get("/p/customer-support-agent")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1 id=\"product-name\">Customer Support Agent</h1>" in html
    assert "<strong>Northwind AI</strong>" in html
    assert '<h2>Answer tickets in seconds</h2>' in html  # Markdown rendered
    assert 'href="/search?outcome=reduce-support-load"' in html  # facet chips link to their searches
    assert "v1.1.0" in html and "Faster responses and clearer explanations" in html
    assert html.count('class="card plan') == 3
    assert "$29.00" in html and "$86.00" in html and "$289.00" in html
    assert "1,200 / month" in html and "Unlimited" in html
    assert 'id="related-heading"' in html


def test_product_page_forms_post_to_the_cart_and_trial_routes_when_they_exist(client, demo, app):
    html = client.get("/p/customer-support-agent").get_data(as_text=True)

    if "storefront.cart_add" in app.view_functions:
        assert html.count('action="/cart/add"') == 3
        assert 'name="sku" type="hidden" value="CUSTOMER-SUPPORT-AGENT-PRO"' in html
        assert html.count('name="quantity" type="hidden" value="1"') == 3
    else:
        assert 'action="/cart/add"' not in html
    if "account.trial_start" in app.view_functions:
        assert 'action="/account/trials/customer-support-agent"' in html
    else:
        assert "Try free for" not in html
    assert "14-day free trial" in html


def test_product_without_trial_has_no_try_free(client, demo):
    html = client.get("/p/sales-outreach-agent").get_data(as_text=True)

    assert "free trial" not in html.lower().split('id="related-heading"')[0]
    assert "/account/trials/" not in html


def test_product_description_is_sanitized(client, session):
    publisher = make_org(session, owner=make_user(session))
    offering = make_offering(
        session, publisher=publisher, name="Sneaky",
        description='# Title\n\n<script>alert(1)</script><img src=x onerror=alert(2)>[link](javascript:alert(3))',
    )
    session.commit()

    html = client.get(f"/p/{offering.slug}").get_data(as_text=True)

    assert "<script>alert(1)" not in html
    assert "onerror" not in html
    assert "javascript:" not in html
    assert "<h2>Title</h2>" in html


def test_unknown_and_unpublished_products_are_the_404_page(client, session):
    publisher = make_org(session, owner=make_user(session))
    draft = make_offering(session, publisher=publisher, name="Draft Thing", status=OfferingStatus.DRAFT.value)
    session.commit()

    for path in ("/p/no-such-thing", f"/p/{draft.slug}", "/p/%00", "/p/" + "x" * 500):
        response = client.get(path)
        assert response.status_code == 404
        assert "We couldn't find that page" in response.get_data(as_text=True)
