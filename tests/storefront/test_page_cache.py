"""Catalog pages kept per catalog state: hits, invalidation, conditional requests, and nothing of one
visitor in another's answer (names, cart counts, CSRF tokens, flash messages)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import Membership, Offering, User
from app.services import cart as carts
from app.services.offerings import add_version, approve, submit_for_review, update_offering
from app.storefront import page_cache
from tests.conftest import login
from tests.factories import make_offering, make_org, make_user

PRODUCT = "/p/customer-support-agent"
CATALOG_PAGES = ("/", "/browse", "/browse/agents", "/search?q=support", "/search?q=support&category=agents", PRODUCT)


@pytest.fixture
def csrf_app(make_app):
    """Real CSRF tokens, as in production."""
    return make_app(WTF_CSRF_ENABLED=True)


def _token(html: str) -> str:
    tokens = set(re.findall(r'"X-CSRFToken": "([^"]+)"', html)) | set(
        re.findall(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
        + re.findall(r'name="csrf_token" value="([^"]+)"', html))
    assert len(tokens) == 1, tokens  # one token per answer, in the header and in every form
    return tokens.pop()


def _cart_count(html: str) -> int:
    return int(re.search(r'id="cart-count"[^>]*>\s*Cart <span class="pill">(\d+)<', html).group(1))


def _no_markers(html: str) -> None:
    assert "@@" not in html


def _store(app) -> page_cache.PageStore:
    return page_cache.store_of(app)


def test_second_request_is_served_from_the_store(client, app, demo):
    first = client.get(PRODUCT)
    hits = _store(app).hits
    second = client.get(PRODUCT)

    assert first.status_code == second.status_code == 200
    assert _store(app).hits == hits + 1
    assert second.get_data(as_text=True) == first.get_data(as_text=True)
    assert "Customer Support Agent" in second.get_data(as_text=True)
    _no_markers(second.get_data(as_text=True))


def test_every_catalog_page_is_kept_and_filled(csrf_app, demo):
    client = csrf_app.test_client()
    for path in CATALOG_PAGES:
        first = client.get(path)
        second = client.get(path)
        assert first.status_code == second.status_code == 200, path
        html = second.get_data(as_text=True)
        _no_markers(html)
        assert 'href="/auth/login' in html and _cart_count(html) == 0, path
    assert len(_store(csrf_app)) == len(CATALOG_PAGES)


def test_an_offering_edit_changes_the_kept_product_page_and_cards(client, session, demo, seller):
    client.get(PRODUCT), client.get("/search?q=support")
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    actor = _member_of(session, offering.publisher_id)

    update_offering(session, offering=offering, actor=actor, name="Helpdesk Agent Pro",
                    description_md="Now with **bold** answers.")
    session.commit()

    product = client.get(PRODUCT).get_data(as_text=True)
    assert "Helpdesk Agent Pro" in product and "<strong>bold</strong>" in product
    assert "Customer Support Agent" not in product
    assert "Helpdesk Agent Pro" in client.get("/search?q=support").get_data(as_text=True)


def test_a_new_version_changes_the_product_page(client, session, demo):
    client.get(PRODUCT)
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))

    add_version(session, offering=offering, actor=_member_of(session, offering.publisher_id), version="9.1.0",
                changelog="Answers in French too.", runtime_kind="builtin", runtime_ref="support-faq")
    session.commit()

    html = client.get(PRODUCT).get_data(as_text=True)
    assert "v9.1.0" in html and "Answers in French too." in html


def test_publishing_an_offering_shows_it_on_kept_pages(client, session, demo, operator):
    client.get("/browse"), client.get("/")
    owner = make_user(session, roles=("buyer", "seller"))
    offering = make_offering(session, publisher=make_org(session, owner=owner), name="Invoice Chaser",
                             status="draft")
    offering.description_md = "Chases unpaid invoices politely, then firmly."
    session.commit()
    assert "Invoice Chaser" not in client.get("/browse").get_data(as_text=True)

    submit_for_review(session, offering=offering, actor=owner)
    approve(session, offering=offering, actor=operator)
    session.commit()

    assert "Invoice Chaser" in client.get("/browse").get_data(as_text=True)
    assert "Invoice Chaser" in client.get("/").get_data(as_text=True)  # newest
    assert client.get(f"/p/{offering.slug}").status_code == 200


def test_a_publisher_rename_changes_the_cards(client, session, demo):
    client.get("/browse")
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    offering.publisher.name = "Renamed Publisher Ltd"
    session.commit()

    assert "Renamed Publisher Ltd" in client.get("/browse").get_data(as_text=True)


def test_anonymous_answers_carry_validators_and_answer_304(client, demo):
    first = client.get(PRODUCT)
    etag = first.headers["ETag"]

    assert etag.startswith('W/"')
    assert first.headers["Last-Modified"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert {"Cookie", "HX-Request"} <= set(first.vary)

    by_etag = client.get(PRODUCT, headers={"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.data == b""
    assert by_etag.headers["ETag"] == etag
    by_date = client.get(PRODUCT, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert by_date.status_code == 304
    other = client.get(PRODUCT, headers={"If-None-Match": 'W/"something-else"',
                                         "If-Modified-Since": first.headers["Last-Modified"]})
    assert other.status_code == 200  # If-None-Match decides when both are sent


def test_a_catalog_change_ends_the_304s(client, session, demo):
    first = client.get(PRODUCT)
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    offering.summary = "Answers tickets around the clock."
    session.commit()

    again = client.get(PRODUCT, headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 200
    assert again.headers["ETag"] != first.headers["ETag"]
    assert "Answers tickets around the clock." in again.get_data(as_text=True)


def test_a_new_visitor_gets_no_304_for_a_date(app, demo):
    seen = app.test_client().get(PRODUCT)
    stranger = app.test_client()  # no session: a copy it kept cannot carry its token

    answer = stranger.get(PRODUCT, headers={"If-Modified-Since": seen.headers["Last-Modified"]})

    assert answer.status_code == 200


def test_signed_in_answers_are_not_stored_by_browsers(buyer_client, demo):
    response = buyer_client.get(PRODUCT)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers and "Last-Modified" not in response.headers
    assert buyer_client.get(PRODUCT, headers={"If-None-Match": "*"}).status_code == 200


def test_no_visitor_sees_another_visitors_name_cart_or_token(csrf_app, session, demo):
    alice = make_user(session, email="alice@example.test", name="Alice Kestrel")
    bob = make_user(session, email="bob@example.test", name="Bob Marsh")
    session.commit()
    carts.add_to_cart(session, cart=carts.get_or_create_cart(session, user=alice, token=None), sku=_sku(session),
                      quantity=1)
    session.commit()
    alice_client, bob_client, anonymous = (csrf_app.test_client() for _ in range(3))
    login(alice_client, alice)
    login(bob_client, bob)

    for path in CATALOG_PAGES:
        # every order of first visitor: whoever fills the store, the others get their own parts
        for order in ((alice_client, bob_client, anonymous), (anonymous, bob_client, alice_client)):
            _store(csrf_app).clear()
            pages = {c: c.get(path).get_data(as_text=True) for c in order}
            a, b, anon = pages[alice_client], pages[bob_client], pages[anonymous]
            assert "Alice Kestrel" in a and "alice@example.test" in a and _cart_count(a) == 1, path
            assert "Bob Marsh" in b and _cart_count(b) == 0, path
            for other in (b, anon):
                assert "Alice Kestrel" not in other and "alice@example.test" not in other, path
                assert _token(a) not in other, path
            assert "Bob Marsh" not in anon and _token(b) not in anon and _cart_count(anon) == 0, path
            assert 'href="/auth/login' in anon and "Sign out" not in anon, path
            for html in pages.values():
                _no_markers(html)


def test_an_anonymous_cart_shows_its_count_on_kept_pages_and_the_kept_token_works(csrf_app, demo):
    shopper, other = csrf_app.test_client(), csrf_app.test_client()
    other.get(PRODUCT)  # the page is in the store before the shopper comes
    page = shopper.get(PRODUCT).get_data(as_text=True)
    sku = re.search(r'name="sku" type="hidden" value="([^"]+)"', page).group(1)

    added = shopper.post("/cart/add", data={"csrf_token": _token(page), "sku": sku, "quantity": "1",
                                            "next": PRODUCT})

    assert added.status_code == 303
    for path in CATALOG_PAGES:
        assert _cart_count(shopper.get(path).get_data(as_text=True)) == 1, path
        assert _cart_count(other.get(path).get_data(as_text=True)) == 0, path
    assert shopper.get(PRODUCT, headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}).status_code == 200


def test_flash_messages_are_shown_once_and_never_kept(csrf_app, demo):
    shopper, other = csrf_app.test_client(), csrf_app.test_client()
    page = shopper.get(PRODUCT).get_data(as_text=True)
    sku = re.search(r'name="sku" type="hidden" value="([^"]+)"', page).group(1)
    etag = shopper.get(PRODUCT).headers["ETag"]
    shopper.post("/cart/add", data={"csrf_token": _token(page), "sku": sku, "quantity": "1", "next": PRODUCT})

    flashed = shopper.get(PRODUCT, headers={"If-None-Match": etag})
    after = shopper.get(PRODUCT).get_data(as_text=True)

    assert flashed.status_code == 200
    message = re.search(r'<div class="flash flash-success">([^<]+)</div>', flashed.get_data(as_text=True)).group(1)
    assert message not in after
    assert message not in other.get(PRODUCT).get_data(as_text=True)


def test_a_search_with_suggestions_is_not_kept(client, app, demo):
    client.get("/search?q=zzzzqqq")
    client.get("/search?q=zzzzqqq")

    assert len(_store(app)) == 0


def test_htmx_fragments_are_kept_apart_from_pages(client, demo):
    page = client.get("/search?q=support").get_data(as_text=True)
    fragment = client.get("/search?q=support", headers={"HX-Request": "true"}).get_data(as_text=True)
    boosted = client.get("/search?q=support", headers={"HX-Request": "true", "HX-Boosted": "true"})

    assert "<html" in page and "<html" not in fragment
    assert "<html" in boosted.get_data(as_text=True)


def test_the_cache_can_be_turned_off(make_app, demo):
    app = make_app(PAGE_CACHE_ENABLED=False)
    client = app.test_client()
    client.get(PRODUCT), client.get(PRODUCT)

    assert len(_store(app)) == 0 and "ETag" not in client.get(PRODUCT).headers


def test_saleor_pages_live_for_their_generation_and_ttl(make_app, saleor_fake, store, demo, monkeypatch):
    from tests.seller.saleor_store import APP_TOKEN

    def app_with(ttl: float):
        return make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_APP_TOKEN=APP_TOKEN,
                        SALEOR_CHANNEL="default-channel", PAGE_CACHE_SALEOR_TTL=ttl)

    kept = app_with(3600).test_client()
    kept.get("/browse")
    calls = len(saleor_fake.operations)
    assert kept.get("/browse").status_code == 200
    assert len(saleor_fake.operations) == calls  # served from the store: no call to Saleor

    kept_app = kept.application
    with kept_app.app_context():  # the sync moved the catalog on
        from app.extensions import db
        from app.services import offerings

        offerings.bump_catalog_generation(db.session)
        db.session.commit()
    kept.get("/browse")
    assert len(saleor_fake.operations) > calls

    expired_app = app_with(0)
    expired = expired_app.test_client()
    expired.get("/browse")
    misses = _store(expired_app).misses
    expired.get("/browse")
    assert (_store(expired_app).misses, _store(expired_app).hits) == (misses + 1, 0)  # past its age: rendered again


def _member_of(session, organization_id: int) -> User:
    membership = session.scalar(select(Membership).where(Membership.organization_id == organization_id))
    return session.get(User, membership.user_id)


def _sku(session) -> str:
    offering = session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))
    return offering.plans[0].sku


def test_a_description_is_rendered_once_per_text(monkeypatch):
    from app.services.offerings import rendering

    calls = []
    original = rendering._render
    monkeypatch.setattr(rendering, "_render", lambda text: calls.append(text) or original(text))
    text = f"# Title {id(calls)}\n\nSome *notes*."

    first, second = rendering.render_description(text), rendering.render_description(text)
    changed = rendering.render_description(text + " More.")

    assert first == second == '<h2>Title %d</h2>\n<p>Some <em>notes</em>.</p>' % id(calls)
    assert "More." in changed
    assert calls == [text, text + " More."]


def test_a_sellers_visit_leaves_no_seller_link_on_a_kept_page(make_app, session, demo):
    """The footer's links are the same for everyone: a page a seller's request filled the store with
    must not send an anonymous visitor to the seller console."""
    app = make_app()
    seller = session.scalar(select(User).where(User.email == "seller@example.com"))
    signed_in = app.test_client()
    login(signed_in, seller)
    signed_in.get("/browse")

    page = app.test_client().get("/browse").get_data(as_text=True)

    assert '<a href="/sell">Sell on Digitlify</a>' in page and 'href="/seller/"' not in page
