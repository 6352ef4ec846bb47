"""The storefront over the Saleor adapter, against the fake Saleor (Saleor's API as our schema describes it)."""
from __future__ import annotations

import json

import pytest

ATTRIBUTE_NAMES = {"category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
                   "pricing": "Pricing", "publisher": "Publisher"}
CHOICES = {
    "category": [("agents", "Agents"), ("apps", "Apps"), ("assistants", "Assistants"), ("automations", "Automations")],
    "outcome": [("save-time", "Save time"), ("grow-pipeline", "Grow pipeline")],
    "role": [("support", "Support"), ("sales", "Sales")],
    "capability": [("chat", "Chat"), ("retrieval", "Retrieval")],
    "pricing": [("free-trial", "Free trial"), ("subscription", "Subscription")],
    "publisher": [("northwind-ai", "Northwind AI")],
}


PREFIX = "digitlify-"
OFFERING_TYPE = "UHJvZHVjdFR5cGU6Nw=="


def _money(cents: int) -> dict:
    return {"currency": "USD", "fractionalAmount": cents, "fractionDigits": 2, "amount": cents / 100}


def _choice(slug: str, **values: list[str]) -> list[dict]:
    labels = {g: dict(c) for g, c in CHOICES.items()}
    out = []
    for group, slugs in values.items():
        if group in ("category", "publisher"):
            out.append({"__typename": "AssignedSingleChoiceAttribute", "attribute": {"slug": PREFIX + group, "name": group},
                        "value": {"slug": slugs[0], "name": labels[group][slugs[0]]}})
        else:
            out.append({"__typename": "AssignedMultiChoiceAttribute", "attribute": {"slug": PREFIX + group, "name": group},
                        "value": [{"slug": s, "name": labels[group][s]} for s in slugs]})
    return out


def _product(n: int, slug: str, name: str, *, price: int, **facets: list[str]) -> dict:
    return {
        "id": f"UHJvZHVjdDo{n}", "name": name, "slug": slug, "seoDescription": f"{name} does useful work.",
        "created": f"2026-0{n}-01T00:00:00+00:00", "category": {"name": "Default", "slug": "default"},
        "productType": {"id": OFFERING_TYPE, "slug": "digitlify-offering"}, "collections": [],
        "assignedAttributes": _choice(slug, publisher=["northwind-ai"], **facets),
        "pricing": {"priceRange": {"start": {"gross": _money(price)}}},
        "description": json.dumps({"blocks": [
            {"type": "header", "data": {"text": "Why teams use it", "level": 1}},
            {"type": "paragraph", "data": {"text": "It is <b>fast</b>.<script>alert(1)</script>"}},
            {"type": "list", "data": {"style": "unordered", "items": ["One", "Two"]}},
        ]}),
        "metafield": _metadata({"version": "2.3.0", "changelog": "Better answers.", "trial_credits": "50",
                                "trial_days": "14" if "free-trial" in facets.get("pricing", []) else None,
                                "versions": json.dumps([
                                    {"version": "2.3.0", "changelog": "Better answers.", "released_at": None},
                                    {"version": "1.0.0", "changelog": "First release.",
                                     "released_at": "2026-01-02T00:00:00+00:00"}])}),
        "productVariants": {"edges": [
            {"node": _variant(slug, "Starter", "starter", price, 200)},
            {"node": _variant(slug, "Pro", "pro", price * 3, 1200)},
            {"node": _variant(slug, "Enterprise", "enterprise", price * 10, 6000)},
        ]},
    }


def _metadata(values: dict):
    """Product.metafield(key:) as the fake resolves it: a callable taking the field's arguments."""
    return lambda info, key: values.get(key)


def _variant(slug: str, name: str, tier: str, price: int, credits: int) -> dict:
    return {
        "id": f"VmFyaWFudDo{slug}{tier}", "name": name, "sku": f"{slug.upper()}-{tier.upper()}",
        "assignedAttributes": [
            {"__typename": "AssignedNumericAttribute", "attribute": {"slug": PREFIX + "included-credits",
                                                                    "name": "Credits"}, "value": credits},
            {"__typename": "AssignedNumericAttribute", "attribute": {"slug": PREFIX + "credits-per-run",
                                                                    "name": "Per run"}, "value": 2},
            # a store's own attribute of the same name is not ours
            {"__typename": "AssignedNumericAttribute", "attribute": {"slug": "credits-per-run", "name": "x"},
             "value": 99},
        ],
        "metafield": _metadata({"features": json.dumps([f"{name} support", "Email reports"])}),
        "pricing": {"price": {"gross": _money(price)}},
    }


FOREIGN = {  # the store's own product in the same channel: a juice, with the store's own `publisher`
    "id": "UHJvZHVjdDo5OQ==", "name": "Apple Juice", "slug": "apple-juice", "seoDescription": "Fresh.",
    "created": "2026-09-01T00:00:00+00:00", "category": {"name": "Juices", "slug": "juices"},
    "productType": {"id": "UHJvZHVjdFR5cGU6MQ==", "slug": "juice"}, "collections": [{"slug": "featured-products"}],
    "assignedAttributes": [{"__typename": "AssignedSingleChoiceAttribute", "attribute": {"slug": "publisher", "name": "P"},
                            "value": {"slug": "saleor-publishing", "name": "Saleor Publishing"}}],
    "pricing": {"priceRange": {"start": {"gross": _money(500)}}}, "description": None,
    "metafield": _metadata({}), "productVariants": {"edges": []},
}

PRODUCTS = [
    _product(1, "support-bot", "Support Bot", price=2900, category=["agents"], outcome=["save-time"],
             role=["support"], capability=["chat"], pricing=["free-trial", "subscription"]),
    _product(2, "lead-finder", "Lead Finder", price=3900, category=["agents"], outcome=["grow-pipeline"],
             role=["sales"], capability=["retrieval"], pricing=["subscription"]),
    _product(3, "notes-app", "Notes App", price=1500, category=["apps"], outcome=["save-time"],
             role=["support"], capability=["chat"], pricing=["subscription"]),
]


def _attributes(info, **args):
    wanted = set(args["where"]["slug"]["oneOf"])
    ours = [{"node": {"slug": PREFIX + g, "name": ATTRIBUTE_NAMES[g],
                      "choices": {"edges": [{"node": {"slug": s, "name": n}} for s, n in CHOICES[g]]}}}
            for g in ATTRIBUTE_NAMES if PREFIX + g in wanted]
    foreign = [{"node": {"slug": "publisher", "name": "Publisher", "choices": {"edges": [
        {"node": {"slug": "digital-audio", "name": "Digital Audio"}}]}}}] if "publisher" in wanted else []
    return {"edges": ours + foreign}


def _product_types(info, filter=None, first=None):  # noqa: A002
    types = [{"id": OFFERING_TYPE, "slug": "digitlify-offering"}, {"id": "UHJvZHVjdFR5cGU6MQ==", "slug": "juice"}]
    return {"edges": [{"node": t} for t in types if t["slug"] in (filter or {}).get("slugs", [])]}


def _has(product: dict, group: str, values: list[str]) -> bool:
    for item in product["assignedAttributes"]:
        if item["attribute"]["slug"] == group:
            chosen = item["value"] if isinstance(item["value"], list) else [item["value"]]
            return any(c["slug"] in values for c in chosen)
    return False


def _products(info, **args):
    """A small Saleor: search by name, AND of attribute filters (OR of values), sort, cursor pages."""
    where = args.get("where") or {}
    items = [p for p in PRODUCTS + [FOREIGN] if not args.get("search") or args["search"].lower() in p["name"].lower()]
    if where.get("productType"):
        items = [p for p in items if p["productType"]["id"] == where["productType"]["eq"]]
    for condition in (args.get("where") or {}).get("attributes") or []:
        items = [p for p in items if _has(p, condition["slug"], condition["value"]["slug"]["oneOf"])]
    sort = (args.get("sortBy") or {}).get("field")
    if sort == "NAME":
        items.sort(key=lambda p: p["name"])
    elif sort == "MINIMAL_PRICE":
        items.sort(key=lambda p: p["pricing"]["priceRange"]["start"]["gross"]["fractionalAmount"],
                   reverse=args["sortBy"]["direction"] == "DESC")
    start = int(args["after"].split(":")[1]) if args.get("after") else 0
    page = items[start:start + args["first"]]
    end = start + len(page)
    return {"totalCount": len(items),
            "pageInfo": {"hasNextPage": end < len(items), "endCursor": f"cursor:{end}"},
            "edges": [{"node": p} for p in page]}


def _product_by_slug(info, **args):
    return next((p for p in PRODUCTS + [FOREIGN] if p["slug"] == args["slug"]), None)


def _collection(info, **args):
    members = {"digitlify-featured": [PRODUCTS[0]], "featured-products": [FOREIGN]}.get(args["slug"])
    if members is None:
        return None

    def products(info, where=None, first=None):
        scoped = [p for p in members if not (where or {}).get("productType")
                  or p["productType"]["id"] == where["productType"]["eq"]]
        return {"edges": [{"node": p} for p in scoped[:first]]}

    return {"id": "Q29sbGVjdGlvbjox", "slug": args["slug"], "products": products}


@pytest.fixture
def saleor_app(make_app, saleor_fake):
    from app.adapters.commerce.saleor.catalog import forget_vocabularies

    forget_vocabularies()
    saleor_fake.resolvers.update({"attributes": _attributes, "products": _products, "product": _product_by_slug,
                                  "collection": _collection, "productTypes": _product_types})
    return make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="web",
                    SALEOR_APP_TOKEN="app-secret")


def _slugs(html: str) -> list[str]:
    import re
    return re.findall(r'class="card-link" href="/p/([^"]+)"', html)


def test_home_lists_featured_categories_and_newest_from_saleor(saleor_app, saleor_fake):
    response = saleor_app.test_client().get("/")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'href="/browse/automations"' in html
    assert "offerings</span>" not in html  # Saleor cannot count
    assert _slugs(html.split('id="featured-heading"')[1].split('id="newest-heading"')[0]) == ["support-bot"]
    assert set(_slugs(html.split('id="newest-heading"')[1])) == {"support-bot", "lead-finder", "notes-app"}
    newest = saleor_fake.received("ProductList")[0]
    assert newest.variables["sortBy"] == {"field": "CREATED_AT", "direction": "DESC"}
    assert newest.variables["where"] == {"isPublished": True, "isVisibleInListing": True,
                                         "productType": {"eq": OFFERING_TYPE}}
    assert "apple-juice" not in html  # the store's own products stay out, in every listing
    assert all("Authorization" not in op.headers for op in saleor_fake.operations)  # visitors' view of Saleor


def test_search_sends_text_facets_and_rank_sort_and_shows_values_without_counts(saleor_app, saleor_fake):
    response = saleor_app.test_client().get("/search?q=bot&role=support&role=sales&category=agents")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _slugs(html) == ["support-bot"]
    assert "<strong>1</strong> result" in html
    [listing] = saleor_fake.received("ProductList")
    assert listing.variables == {
        "channel": "web", "search": "bot", "first": 24,
        "sortBy": {"field": "RANK", "direction": "DESC"},
        "where": {"isPublished": True, "isVisibleInListing": True, "productType": {"eq": OFFERING_TYPE},
                  "attributes": [
                      {"slug": "digitlify-category", "value": {"slug": {"oneOf": ["agents"]}}},
                      {"slug": "digitlify-role", "value": {"slug": {"oneOf": ["support", "sales"]}}},
                  ]},
    }
    assert 'name="outcome" value="grow-pipeline"' in html  # every value listed...
    assert 'class="count"' not in html  # ...without counts
    assert "Filter counts are not available" in html


def test_search_sorts_by_price_and_pages_with_cursors(saleor_app, saleor_fake):
    from app.adapters.commerce import SearchQuery
    from app.adapters.commerce.saleor.catalog import SaleorCatalog

    with saleor_app.test_request_context():
        catalog = SaleorCatalog("web")
        first = catalog.search(SearchQuery(sort="price_asc", per_page=2))
        second = catalog.search(SearchQuery(sort="price_asc", per_page=2, page=2))

    assert [c.slug for c in first.items] == ["notes-app", "support-bot"]
    assert [c.slug for c in second.items] == ["lead-finder"]
    assert (first.total, second.total, second.pages) == (3, 3, 2)
    [cursor] = saleor_fake.received("ProductCursor")
    assert cursor.variables["first"] == 2
    assert saleor_fake.received("ProductList")[-1].variables["after"] == "cursor:2"


def test_product_detail_maps_attributes_variants_and_metadata(saleor_app, saleor_fake):
    response = saleor_app.test_client().get("/p/support-bot")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<h1 id="product-name">Support Bot</h1>' in html
    assert "<strong>Northwind AI</strong>" in html
    assert '<h2>Why teams use it</h2>' in html and "<strong>fast</strong>" in html
    assert "<script>alert(1)" not in html
    assert 'href="/search?outcome=save-time"' in html
    assert html.count('class="card plan') == 3
    assert "$29.00" in html and "$87.00" in html and "$290.00" in html
    assert "1,200 / month" in html
    assert "v2.3.0" in html and "Better answers." in html
    assert "1.0.0" in html and "First release." in html  # older version notes too, as in the local catalog
    assert "Pro support" in html and "Email reports" in html  # plan features
    assert "14-day free trial" in html
    if "storefront.cart_add" in saleor_app.view_functions:
        assert 'value="SUPPORT-BOT-PRO"' in html
    related = [op for op in saleor_fake.received("ProductList")][-1]
    assert related.variables["where"]["attributes"] == [
        {"slug": "digitlify-category", "value": {"slug": {"oneOf": ["agents"]}}}]
    assert related.variables["where"]["productType"] == {"eq": OFFERING_TYPE}
    assert _slugs(html.split('id="related-heading"')[1]) == ["lead-finder"]


def test_unknown_product_is_404(saleor_app):
    response = saleor_app.test_client().get("/p/nothing-here")

    assert response.status_code == 404


def test_slow_saleor_shows_the_fallback_page_instead_of_waiting(make_app, saleor_fake):
    # given: Saleor answers only after 20 s, and the app waits at most half a second
    saleor_fake.resolvers.update({"attributes": _attributes, "products": _products})
    saleor_fake.fail_with_delay(20.0)
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_TIMEOUT=0.5)

    # when
    response = app.test_client().get("/search?q=bot")

    # then: the fallback page (a 200 would mean the app waited for Saleor's answer)
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "We're having trouble reaching a service" in html
    assert 'href="/search?q=bot"' in html  # the retry link
    assert "Traceback" not in html


@pytest.mark.parametrize("path", ["/", "/browse/agents", "/p/support-bot"])
def test_saleor_graphql_errors_show_the_fallback_page(saleor_app, saleor_fake, path):
    saleor_fake.fail_with_graphql_errors("Channel with slug web is inactive.")

    response = saleor_app.test_client().get(path)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert f'href="{path}"' in response.get_data(as_text=True)


def test_saleor_failure_during_an_in_place_update_loads_the_fallback_page(saleor_app, saleor_fake):
    saleor_fake.fail_with_graphql_errors("Internal error")

    response = saleor_app.test_client().get("/search?role=sales", headers={"HX-Request": "true"})

    assert response.status_code == 503
    assert response.headers["HX-Redirect"] == "/search?role=sales"


def test_saleor_http_500_shows_the_fallback_page(saleor_app, saleor_fake):
    saleor_fake.fail_with_status(500)

    response = saleor_app.test_client().get("/search?category=agents")

    assert response.status_code == 503
    assert 'href="/search?category=agents"' in response.get_data(as_text=True)


def test_saleor_down_shows_the_fallback_page(saleor_app, saleor_fake):
    saleor_fake.stop()

    response = saleor_app.test_client().get("/")

    assert response.status_code == 503


def test_editorjs_description_becomes_markdown():
    from app.adapters.commerce.saleor.catalog import editorjs_to_markdown

    text = editorjs_to_markdown(json.dumps({"blocks": [
        {"type": "header", "data": {"text": "Title", "level": 3}},
        {"type": "paragraph", "data": {"text": "A <i>b</i>"}},
        {"type": "list", "data": {"style": "ordered", "items": ["x", {"content": "y"}]}},
        {"type": "quote", "data": {"text": "q"}},
        {"type": "image", "data": {"url": "http://x"}},
    ]}))

    assert text == "### Title\n\nA <em>b</em>\n\n1. x\n1. y\n\n> q"


def test_pages_stop_where_cursor_paging_stops():
    from app.adapters.commerce import SearchQuery, SearchResult
    from app.adapters.commerce.saleor.catalog import REACHABLE

    result = SearchResult(items=(), total=5000, facets=(), query=SearchQuery(per_page=24), reachable=REACHABLE)

    assert REACHABLE == 1000
    assert result.pages == 42
    assert SearchResult(items=(), total=30, facets=(), query=SearchQuery(per_page=24), reachable=REACHABLE).pages == 2


def test_a_store_s_own_products_and_attributes_never_show(saleor_app, saleor_fake):
    client = saleor_app.test_client()

    assert client.get("/p/apple-juice").status_code == 404
    search = client.get("/search").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)

    assert "apple-juice" not in search and "apple-juice" not in home
    assert "Digital Audio" not in search and "Saleor Publishing" not in search
    [vocabulary] = saleor_fake.received("FacetAttributes")
    assert vocabulary.variables["slugs"] == [f"digitlify-{g}" for g in ATTRIBUTE_NAMES]
    assert saleor_fake.received("FeaturedProducts")[0].variables["collection"] == "digitlify-featured"


def test_the_vocabulary_is_fetched_once_per_sync_generation(saleor_app, saleor_fake):
    from app.extensions import db
    from app.services import offerings

    client = saleor_app.test_client()
    client.get("/search?q=bot")
    client.get("/search?role=sales")
    client.get("/")
    assert len(saleor_fake.received("FacetAttributes")) == 1

    with saleor_app.app_context():  # a sync (in any process) changed the store
        offerings.bump_catalog_generation(db.session)
        db.session.commit()
    client.get("/search?q=bot")
    client.get("/search?q=lead")

    assert len(saleor_fake.received("FacetAttributes")) == 2


def test_with_the_scope_known_the_vocabulary_and_the_product_list_are_fetched_at_the_same_time(
    saleor_app, saleor_fake,
):
    import threading

    from app.extensions import db
    from app.services import offerings

    with saleor_app.app_context():  # the sync recorded our product type's id
        offerings.bump_catalog_generation(db.session, scope={"offering_type": OFFERING_TYPE})
        db.session.commit()
    both_running = threading.Barrier(2, timeout=2)  # each call waits until the other one has started

    def together(resolver):
        def run(info, **args):
            both_running.wait()
            return resolver(info, **args)
        return run

    saleor_fake.resolvers.update({"attributes": together(_attributes), "products": together(_products)})

    response = saleor_app.test_client().get("/search?q=bot")

    assert response.status_code == 200 and _slugs(response.get_data(as_text=True)) == ["support-bot"]
    assert sorted(saleor_fake.operation_names()) == ["FacetAttributes", "ProductList"]
    assert saleor_fake.received("ProductList")[0].variables["where"]["productType"] == {"eq": OFFERING_TYPE}


def test_the_side_by_side_saleor_benchmark_runs_against_a_served_fake(saleor_fake):
    """bench/catalog.py --saleor-url, against the fake Saleor: both sides answer every search."""
    from app.adapters.commerce.saleor.catalog import forget_vocabularies
    from bench.catalog import SALEOR_QUERIES, bench_saleor

    forget_vocabularies()
    saleor_fake.resolvers.update({"attributes": _attributes, "products": _products, "product": _product_by_slug,
                                  "collection": _collection, "productTypes": _product_types})

    results = bench_saleor(saleor_fake.url, "web", iterations=2, quiet=True)

    assert list(results) == [label for label, _ in SALEOR_QUERIES]
    assert all(r["list_median"] > 0 and r["page_median"] > 0 for r in results.values())
    lists = saleor_fake.received("ProductList")
    assert all(op.variables["where"]["productType"] == {"eq": OFFERING_TYPE} for op in lists)
    assert len(saleor_fake.received("FacetAttributes")) == 1  # cached across the run, as in production


def test_a_catalog_collection_from_the_environment_scopes_every_read_instead_of_the_product_type(
    make_app, saleor_fake,
):
    from app.adapters.commerce.saleor.catalog import forget_vocabularies

    forget_vocabularies()
    in_collection = {PRODUCTS[1]["id"]}

    def collection(info, **args):
        return {"id": "Q29sbGVjdGlvbjo5", "slug": args["slug"]} if args["slug"] == "mkt-catalog" else _collection(
            info, **args)

    def products(info, **args):
        where = dict(args.get("where") or {})
        scoped = where.pop("collection", None)
        answer = _products(info, **{**args, "where": where, "first": 100})
        edges = [e for e in answer["edges"]
                 if scoped is None or (scoped == {"eq": "Q29sbGVjdGlvbjo5"} and e["node"]["id"] in in_collection)]
        return {**answer, "totalCount": len(edges), "edges": edges}

    saleor_fake.resolvers.update({"attributes": _attributes, "products": products, "product": _product_by_slug,
                                  "collection": collection, "productTypes": _product_types})
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="web",
                   SALEOR_CATALOG_COLLECTION="mkt-catalog")
    client = app.test_client()

    search = client.get("/search").get_data(as_text=True)
    detail = client.get("/p/support-bot")  # a product of our type, but not in the collection

    assert _slugs(search) == ["lead-finder"]
    [vocabulary] = saleor_fake.received("FacetAttributes")
    assert (vocabulary.variables["collection"], vocabulary.variables["byCollection"]) == ("mkt-catalog", True)
    assert saleor_fake.received("ProductList")[0].variables["where"]["collection"] == {"eq": "Q29sbGVjdGlvbjo5"}
    assert "productType" not in saleor_fake.received("ProductList")[0].variables["where"]
    assert detail.status_code == 404


def test_cards_and_the_product_page_show_our_ratings_logo_and_screenshots_over_saleor(make_app, saleor_fake):
    """Reviews and listing images live here, not in Saleor: cards and product pages read from Saleor
    carry them by the product's slug, and a review hidden here changes the kept pages at once."""
    from app.adapters.commerce.saleor.catalog import forget_vocabularies
    from app.extensions import db
    from app.models import MediaKind, OfferingMedia, Review
    from app.services import reviews
    from tests.factories import make_offering, make_org, make_user

    forget_vocabularies()
    saleor_fake.resolvers.update({"attributes": _attributes, "products": _products, "product": _product_by_slug,
                                  "collection": _collection, "productTypes": _product_types})
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_CHANNEL="web",
                   SALEOR_APP_TOKEN="app-secret", PAGE_CACHE_ENABLED=True, PAGE_CACHE_SALEOR_TTL=3600)
    with app.app_context():
        seller = make_user(db.session, roles=("buyer", "seller"))
        offering = make_offering(db.session, publisher=make_org(db.session, owner=seller, name="Northwind AI"),
                                 name="Support Bot")
        offering.slug = "support-bot"
        buyers = [make_org(db.session, owner=make_user(db.session)) for _ in range(2)]
        for org, stars in zip(buyers, (5, 4)):
            db.session.add(Review(offering_id=offering.id, organization_id=org.id, author_name="A buyer",
                                  rating=stars, title="Good", body="It answers our tickets."))
        db.session.add_all([
            OfferingMedia(offering_id=offering.id, kind=MediaKind.LOGO.value, storage_key="logo-key.png",
                          content_type="image/png", width=256, height=256, byte_size=100),
            OfferingMedia(offering_id=offering.id, kind=MediaKind.SCREENSHOT.value, storage_key="shot-key.png",
                          content_type="image/png", width=1280, height=800, byte_size=100, alt_text="The inbox view"),
        ])
        db.session.commit()
    client = app.test_client()

    home = client.get("/").get_data(as_text=True)
    card = home.split('href="/p/support-bot"')[0].rsplit('<article', 1)[1]
    assert "logo-key.png" in card
    assert '<span class="rating-average">4.5</span>' in home and "(2 reviews)" in home
    lead_finder = home.split('href="/p/lead-finder"')[0].rsplit('<article', 1)[1]
    assert "logo-key.png" not in lead_finder  # a product without our extras keeps its letter avatar
    product = client.get("/p/support-bot").get_data(as_text=True)
    assert "offering-logo-lg" in product and "logo-key.png" in product
    assert "shot-key.png" in product and 'alt="The inbox view"' in product

    with app.app_context():
        operator = make_user(db.session, roles=("operator",))
        review = db.session.scalars(db.select(Review).where(Review.rating == 4)).one()
        reviews.hide_review(db.session, operator=operator, review=review, reason="Written by the seller.")
        db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert '<span class="rating-average">5.0</span>' in home and "(1 review)" in home
