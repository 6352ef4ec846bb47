"""Product sync to Saleor against the fake Saleor server (Saleor's API as our schema describes it, over
HTTP) with an in-memory catalog: the right mutations, idempotent re-syncs, failures recorded and retried,
nothing lost."""
from __future__ import annotations

import json

from sqlalchemy import select

from app.adapters.commerce.product_sync import ProductData, get_product_sync
from app.adapters.commerce.saleor.sync import html_to_editorjs
from app.extensions import db
from app.models import AuditEvent, Offering, Organization
from app.services import offerings as svc
from tests.conftest import ON_POSTGRES, login
from tests.seller.saleor_store import APP_TOKEN

CREATES = {"SyncAttributeCreate", "SyncAttributeValueCreate", "SyncProductTypeCreate", "SyncProductTypeAssign",
           "SyncCategoryCreate", "SyncProductCreate", "SyncVariantCreate"}




def _run_jobs(app) -> None:
    """What a worker does next: on PostgreSQL run the queued jobs (on SQLite they ran after the commit)."""
    if ON_POSTGRES:
        from app.jobs.worker import work_off

        work_off(app)


def _submitted(session, seller, *, name="Deal Desk Bot", currency="USD"):
    publisher = next(o for o in svc.publisher_organizations(session, user=seller) if o.slug == "northwind-ai")
    offering = svc.create_offering(
        session, publisher=publisher, actor=seller, name=name, summary="Drafts deal memos.",
        description_md="## Memos\n\nIt writes **memos**.\n\n- fast\n- clear", category="automations",
        facets={"outcome": ["save-time"], "role": ["sales", "finance"], "capability": ["summarization"]},
        trial_days=7, trial_credits=20,
    )
    svc.add_version(session, offering=offering, actor=seller, version="1.0.0", changelog="First.",
                    runtime_kind="builtin", runtime_ref="support-faq")
    svc.add_version(session, offering=offering, actor=seller, version="1.2.0", changelog="Faster memos.",
                    runtime_kind="builtin", runtime_ref="support-faq")
    svc.set_plan(session, offering=offering, actor=seller, tier="starter", name="Starter", price_minor=2900,
                 currency=currency, included_credits=200, credits_per_run=2, max_runs_per_period=300)
    svc.set_plan(session, offering=offering, actor=seller, tier="pro", name="Pro", price_minor=7905,
                 currency=currency, included_credits=1200, credits_per_run=2, max_runs_per_period=None)
    svc.submit_for_review(session, offering=offering, actor=seller)
    session.commit()
    return offering


def _sync(offering_id: int) -> bool:
    offering = db.session.get(Offering, offering_id)
    ok = svc.sync_offering(db.session, offering=offering, sync=get_product_sync(), actor_label="test")
    db.session.commit()
    return ok


def test_the_sync_port_gets_plain_data_built_by_the_offerings_service(app, session, seller):
    offering = _submitted(session, seller)
    publisher = session.get(Organization, offering.publisher_id)

    data = svc.build_product_data(session, offering=offering)

    assert isinstance(data, ProductData)
    assert (data.offering_id, data.slug, data.live, data.product_id) == (offering.id, offering.slug, False, None)
    assert data.description_html == svc.render_description(offering.description_md)
    assert (data.version, data.changelog) == ("1.2.0", "Faster memos.")
    assert [(f.group, f.value) for f in data.facets] == sorted((f.group, f.value) for f in offering.facets)
    assert next(f.label for f in data.facets if f.group == "publisher") == publisher.name
    assert [(p.sku, p.tier, p.price_minor, p.max_runs_per_period) for p in data.plans] == [
        (offering.plans[0].sku, "starter", 2900, 300), (offering.plans[1].sku, "pro", 7905, None),
    ]


def test_approval_syncs_the_product_type_product_variants_and_prices(
    saleor_app, saleor_fake, store, session, seller, operator,
):
    offering = _submitted(session, seller)
    client = saleor_app.test_client()
    login(client, operator)

    response = client.post(f"/operator/offerings/{offering.id}/approve")
    _run_jobs(saleor_app)  # the approval queued the sync in its own transaction

    assert response.status_code == 302
    names = saleor_fake.operation_names()
    create, value = "SyncAttributeCreate", "SyncAttributeValueCreate"
    assert names == [
        "SyncChannel", "SyncAttributes",
        create, value,  # category: automations
        create, value,  # outcome: save-time
        create, value, value,  # role: finance, sales
        create, value,  # capability: summarization
        create, value,  # pricing: free-trial (from the trial terms)
        create, value,  # publisher: northwind-ai
        create, value, value,  # tier: starter, pro
        create, create, create,  # included-credits, credits-per-run, max-runs-per-period (numbers)
        "SyncProductType", "SyncProductTypeCreate", "SyncCategory", "SyncCategoryCreate",
        "SyncProduct", "SyncProductCreate", "SyncProductChannelListing",
        "SyncVariant", "SyncVariantCreate", "SyncVariantPrice",
        "SyncVariant", "SyncVariantCreate", "SyncVariantPrice",
        "SyncCollection",  # not featured: no featured collection is made for it
    ]
    assert {op.headers.get("Authorization") for op in saleor_fake.operations} == {f"Bearer {APP_TOKEN}"}
    product = store.product_by_slug("deal-desk-bot")
    assert product["name"] == "Deal Desk Bot"
    assert product["seo"] == {"title": "Deal Desk Bot", "description": "Drafts deal memos."}
    assert store.categories[product["category"]]["slug"] == "automations"
    assert {g: store.value_slugs(product, f"digitlify-{g}") for g in ("category", "outcome", "role", "capability", "pricing",
                                                         "publisher")} == {
        "category": ["automations"], "outcome": ["save-time"], "role": ["finance", "sales"],
        "capability": ["summarization"], "pricing": ["free-trial"], "publisher": ["northwind-ai"],
    }
    versions = json.loads(product["metadata"].pop("versions"))
    assert product["metadata"] == {"digitlify_kind": "offering", "offering_id": str(offering.id), "version": "1.2.0",
                                   "changelog": "Faster memos.", "trial_days": "7", "trial_credits": "20"}
    assert [(v["version"], v["changelog"]) for v in versions] == [("1.2.0", "Faster memos."), ("1.0.0", "First.")]
    assert all(v["released_at"] for v in versions)
    assert json.loads(product["description"])["blocks"][:2] == [
        {"type": "header", "data": {"text": "Memos", "level": 2}},
        {"type": "paragraph", "data": {"text": "It writes <b>memos</b>."}},
    ]
    assert product["channels"] == {store.channel_id: {"isPublished": True, "visibleInListings": True,
                                                      "isAvailableForPurchase": True}}
    variants = sorted(store.variants.values(), key=lambda v: v["sku"])
    assert [(v["sku"], v["name"], v["prices"], v["trackInventory"]) for v in variants] == [
        ("DEAL-DESK-BOT-PRO", "Pro", {store.channel_id: "79.05"}, False),
        ("DEAL-DESK-BOT-STARTER", "Starter", {store.channel_id: "29.00"}, False),
    ]
    runs = store.attribute_by_slug("digitlify-max-runs-per-period")["id"]
    assert [v["attributes"][runs] for v in variants] == [None, "300"]
    product_type = next(iter(store.product_types.values()))
    assert (product_type["slug"], product_type["isShippingRequired"], len(product_type["productAttributes"]),
            len(product_type["variantAttributes"])) == ("digitlify-offering", False, 6, 4)
    with saleor_app.app_context():
        stored = db.session.get(Offering, offering.id)
        assert (stored.status, stored.sync_status, stored.sync_error, stored.saleor_product_id) == (
            "published", "synced", None, product["id"])
        assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == "offering.synced"


def test_a_second_sync_sends_no_creates_and_duplicates_nothing(saleor_app, saleor_fake, store, session, seller,
                                                               operator):
    offering = _submitted(session, seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()
    with saleor_app.app_context():
        assert _sync(offering.id)
        saleor_fake.clear_log()
        counts = (len(store.attributes), len(store.product_types), len(store.categories), len(store.products),
                  len(store.variants), sum(len(a["values"]) for a in store.attributes.values()))

        assert _sync(offering.id)

    names = saleor_fake.operation_names()
    assert set(names) & CREATES == set()
    assert names == [
        "SyncChannel", "SyncAttributes", "SyncProductType", "SyncCategory", "SyncProduct", "SyncProductUpdate",
        "SyncProductChannelListing", "SyncVariant", "SyncVariantUpdate", "SyncVariantPrice",
        "SyncVariant", "SyncVariantUpdate", "SyncVariantPrice", "SyncCollection",
    ]
    assert (len(store.attributes), len(store.product_types), len(store.categories), len(store.products),
            len(store.variants), sum(len(a["values"]) for a in store.attributes.values())) == counts


def test_a_resync_after_edits_updates_the_product_and_prices(saleor_app, store, session, seller, operator):
    offering = _submitted(session, seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()
    with saleor_app.app_context():
        _sync(offering.id)
    session.expire_all()  # the sync committed in another session
    svc.update_offering(session, offering=offering, actor=seller, summary="Memos in seconds.")
    svc.set_plan(session, offering=offering, actor=seller, tier="starter", name="Starter", price_minor=3500,
                 currency="USD", included_credits=200, credits_per_run=2, max_runs_per_period=None)
    session.commit()
    assert offering.sync_status == "pending"

    with saleor_app.app_context():
        assert db.session.get(Offering, offering.id) in svc.offerings_to_sync(db.session)
        assert _sync(offering.id)

    product = store.product_by_slug("deal-desk-bot")
    starter = next(v for v in store.variants.values() if v["sku"] == "DEAL-DESK-BOT-STARTER")
    assert product["seo"]["description"] == "Memos in seconds."
    assert starter["prices"] == {store.channel_id: "35.00"}
    assert starter["attributes"][store.attribute_by_slug("digitlify-max-runs-per-period")["id"]] is None
    assert (len(store.products), len(store.variants)) == (1, 2)


def test_saleor_down_on_approval_keeps_the_approval_and_records_the_failure(
    saleor_app, saleor_fake, store, session, seller, operator,
):
    offering = _submitted(session, seller)
    client = saleor_app.test_client()
    login(client, operator)
    saleor_fake.fail_with_status(500)

    response = client.post(f"/operator/offerings/{offering.id}/approve", follow_redirects=True)
    _run_jobs(saleor_app)

    assert response.status_code == 200
    assert "The store will be updated in a moment" in response.get_data(as_text=True)
    session.expire_all()
    assert offering.status == "published"
    assert offering.sync_status == "failed"
    assert offering.sync_error.startswith("Saleor is unreachable for SyncChannel: 500 Server Error")
    assert APP_TOKEN not in offering.sync_error
    assert (offering.name, [p.sku for p in offering.plans]) == (
        "Deal Desk Bot", ["DEAL-DESK-BOT-STARTER", "DEAL-DESK-BOT-PRO"])
    assert store.products == {}


def test_the_cli_retries_failed_syncs_and_a_partial_failure_never_duplicates(
    saleor_app, saleor_fake, store, session, seller, operator,
):
    offering = _submitted(session, seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()
    runner = saleor_app.test_cli_runner()
    saleor_fake.fail_with_status(500, operation="SyncVariantPrice")  # dies after the product was created

    with saleor_app.app_context():  # the CLI runs in the app context it finds
        first = runner.invoke(args=["sync-saleor", "--offering", offering.slug])

    assert first.exit_code == 1
    assert "Saleor sync: 0 offering(s) synced, 1 failed." in first.output
    session.expire_all()
    product_id = store.product_by_slug("deal-desk-bot")["id"]
    assert (offering.sync_status, offering.saleor_product_id) == ("failed", product_id)
    saleor_fake.recover()
    saleor_fake.clear_log()

    with saleor_app.app_context():
        second = runner.invoke(args=["sync-saleor", "--offering", offering.slug])

    assert second.exit_code == 0
    assert "Saleor sync: 1 offering(s) synced, 0 failed." in second.output
    assert "SyncProductCreate" not in saleor_fake.operation_names()
    assert (len(store.products), len(store.variants)) == (1, 2)
    assert all(v["prices"] == {store.channel_id: v_price} for v, v_price in zip(
        sorted(store.variants.values(), key=lambda v: v["sku"]), ["79.05", "29.00"]))
    session.expire_all()
    assert (offering.sync_status, offering.sync_error) == ("synced", None)
    with saleor_app.app_context():
        everything = runner.invoke(args=["sync-saleor"])
        again = runner.invoke(args=["sync-saleor"])
    assert "Saleor sync: 10 offering(s) synced, 0 failed." in everything.output  # the demo catalog
    assert "Saleor sync: 0 offering(s) synced, 0 failed." in again.output


def test_a_product_deleted_in_saleor_is_found_again_by_slug_or_recreated(saleor_app, saleor_fake, store, session,
                                                                         seller, operator):
    offering = _submitted(session, seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()
    with saleor_app.app_context():
        _sync(offering.id)
        old = db.session.get(Offering, offering.id).saleor_product_id
        store.products.clear()
        store.variants.clear()

        assert _sync(offering.id)
        new = db.session.get(Offering, offering.id).saleor_product_id

    assert new != old and set(store.products) == {new}
    assert len(store.variants) == 2


def test_a_plan_currency_the_channel_does_not_sell_fails_clearly(saleor_app, store, session, seller, operator):
    offering = _submitted(session, seller, currency="EUR")
    svc.approve(session, offering=offering, actor=operator)
    session.commit()

    with saleor_app.app_context():
        assert _sync(offering.id) is False
        stored = db.session.get(Offering, offering.id)
        assert stored.sync_error == (
            "Plan DEAL-DESK-BOT-STARTER is priced in EUR, but channel default-channel sells in USD.")
        assert stored.status == "published"
    assert store.products == {}


def test_archiving_a_synced_offering_takes_it_off_sale_in_saleor(saleor_app, store, session, seller, operator):
    offering = _submitted(session, seller)
    client = saleor_app.test_client()
    login(client, operator)
    client.post(f"/operator/offerings/{offering.id}/approve")
    _run_jobs(saleor_app)

    client.post(f"/operator/offerings/{offering.id}/archive")
    _run_jobs(saleor_app)

    product = store.product_by_slug("deal-desk-bot")
    assert product["channels"][store.channel_id] == {
        "isPublished": False, "visibleInListings": False, "isAvailableForPurchase": False}
    session.expire_all()
    assert (offering.status, offering.sync_status) == ("archived", "synced")


def test_sync_saleor_refuses_to_run_on_the_local_backend(app, demo):
    result = app.test_cli_runner().invoke(args=["sync-saleor"])

    assert result.exit_code == 2
    assert "COMMERCE_BACKEND is not saleor: nothing to sync." in result.output


def test_markdown_becomes_editorjs_blocks_saleor_and_the_storefront_read():
    blocks = json.loads(html_to_editorjs(svc.render_description(
        "# Title\n\nText with [a link](https://example.com/?a=1&b=2).\n\n1. one\n2. two\n\n> said\n\n"
        "<script>alert(1)</script>"
    )))["blocks"]

    assert blocks == [
        {"type": "header", "data": {"text": "Title", "level": 2}},
        {"type": "paragraph", "data": {"text": 'Text with <a href="https://example.com/?a=1&amp;b=2">a link</a>.'}},
        {"type": "list", "data": {"style": "ordered", "items": ["one", "two"]}},
        {"type": "quote", "data": {"text": "said", "caption": ""}},
    ]


def test_an_operator_can_retry_a_failed_sync_from_the_review_page(saleor_app, saleor_fake, store, session, seller,
                                                                  operator):
    offering = _submitted(session, seller)
    client = saleor_app.test_client()
    login(client, operator)
    saleor_fake.fail_with_status(503)
    client.post(f"/operator/offerings/{offering.id}/approve")
    _run_jobs(saleor_app)
    saleor_fake.recover()

    page = client.get(f"/operator/offerings/{offering.id}").get_data(as_text=True)
    response = client.post(f"/operator/offerings/{offering.id}/sync", follow_redirects=True)

    assert "Sync to the store now" in page and "Saleor is unreachable for SyncChannel" in page
    assert "The store was updated." in response.get_data(as_text=True)
    session.expire_all()
    assert (offering.sync_status, offering.sync_error) == ("synced", None)
    assert len(store.products) == 1


def test_approving_queues_the_store_sync_with_the_decision_and_a_rolled_back_one_queues_nothing(
    saleor_app, saleor_fake, store, session, seller, operator,
):
    offering = _submitted(session, seller)
    other = _submitted(session, seller, name="Memo Bot")
    with saleor_app.app_context():
        svc.approve(db.session, offering=db.session.get(Offering, other.id), actor=db.session.get(type(operator), operator.id))
        db.session.rollback()  # the decision is undone: no job, no call to Saleor
        _run_jobs(saleor_app)
        assert saleor_fake.operation_names() == []
        svc.approve(db.session, offering=db.session.get(Offering, offering.id), actor=db.session.get(type(operator), operator.id))
        assert saleor_fake.operation_names() == []  # nothing leaves inside the transaction
        db.session.commit()
    _run_jobs(saleor_app)

    session.expire_all()
    assert (offering.sync_status, other.status, other.sync_status) == ("synced", "in_review", None)
    assert list(store.products.values())[0]["slug"] == "deal-desk-bot" and len(store.products) == 1


def test_a_featured_offering_fills_our_featured_collection_and_a_store_s_own_attribute_is_never_adopted(
    saleor_app, saleor_fake, store, session, seller, operator,
):
    # given: a shared store with its own `publisher` attribute and its own featured collection
    foreign = store.attribute_create(None, {"slug": "publisher", "name": "Publisher", "inputType": "DROPDOWN",
                                            "type": "PRODUCT_TYPE"})["attribute"]
    store.attribute_value_create(None, foreign["id"], {"name": "Northwind AI"})
    store.collection_create(None, {"slug": "featured-products", "name": "Featured Products", "products": []})
    offering = _submitted(session, seller)
    offering.featured = True
    svc.approve(session, offering=offering, actor=operator)
    session.commit()

    with saleor_app.app_context():
        assert _sync(offering.id)

    product = store.product_by_slug("deal-desk-bot")
    featured = store.collection_by_slug("digitlify-featured")
    assert featured["products"] == [product["id"]] and featured["channels"] == {store.channel_id: True}
    assert store.collection_by_slug("featured-products")["products"] == []
    assert [v["name"] for v in store.attribute_by_slug("publisher")["values"]] == ["Northwind AI"]  # untouched
    assert foreign["id"] not in product["attributes"]
    assert store.value_slugs(product, "digitlify-publisher") == ["northwind-ai"]
    assert {store.attributes[i]["slug"] for i in next(iter(store.product_types.values()))["productAttributes"]} == {
        f"digitlify-{g}" for g in ("category", "outcome", "role", "capability", "pricing", "publisher")}

    # when: the offering is no longer featured, then featured again, then archived
    with saleor_app.app_context():
        db.session.get(Offering, offering.id).featured = False
        assert _sync(offering.id)
        unfeatured = list(featured["products"])
        db.session.get(Offering, offering.id).featured = True
        assert _sync(offering.id)
        refeatured = list(featured["products"])
        svc.archive(db.session, offering=db.session.get(Offering, offering.id),
                    actor=db.session.get(type(operator), operator.id))
        db.session.commit()
        assert _sync(offering.id)

    # then
    assert (unfeatured, refeatured, featured["products"]) == ([], [product["id"]], [])
    assert len(store.collections) == 2


def test_plan_features_and_version_notes_travel_with_the_product(saleor_app, store, session, seller, operator):
    offering = _submitted(session, seller)
    svc.set_plan(session, offering=offering, actor=seller, tier="pro", name="Pro", price_minor=7905, currency="USD",
                 included_credits=1200, credits_per_run=2, max_runs_per_period=None,
                 features="Priority support\nCustom prompts")
    svc.approve(session, offering=offering, actor=operator)
    session.commit()

    with saleor_app.app_context():
        assert _sync(offering.id)

    pro = store.variant_by_sku("DEAL-DESK-BOT-PRO")
    starter = store.variant_by_sku("DEAL-DESK-BOT-STARTER")
    assert json.loads(pro["metadata"]["features"]) == ["Priority support", "Custom prompts"]
    assert json.loads(starter["metadata"]["features"]) == []


def test_an_attribute_prefix_from_the_environment_names_everything_we_create(
    make_app, saleor_fake, store, demo, session, seller, operator,
):
    app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=saleor_fake.url, SALEOR_APP_TOKEN=APP_TOKEN,
                   SALEOR_ATTRIBUTE_PREFIX="mkt-", SALEOR_CATALOG_COLLECTION="mkt-catalog")
    offering = _submitted(session, seller)
    svc.approve(session, offering=offering, actor=operator)
    session.commit()

    with app.app_context():
        assert _sync(offering.id)

    assert {a["slug"] for a in store.attributes.values()} == {
        f"mkt-{n}" for n in ("category", "outcome", "role", "capability", "pricing", "publisher", "tier",
                             "included-credits", "credits-per-run", "max-runs-per-period")}
    assert [t["slug"] for t in store.product_types.values()] == ["mkt-offering"]
    product = store.product_by_slug("deal-desk-bot")
    assert store.collection_slugs(product) == ["mkt-catalog"]  # live: in the catalog collection, not featured


def test_credit_packs_are_one_store_product_with_a_variant_per_pack_synced_by_the_same_sweep(
    saleor_app, saleor_fake, store, session,
):
    from app.jobs.tasks import queue_store_syncs
    from app.models import CreditPack

    runner = saleor_app.test_cli_runner()
    with saleor_app.app_context():
        assert queue_store_syncs(db.session).endswith("the credit packs too.")
        db.session.rollback()  # only the answer was wanted here
        first = runner.invoke(args=["sync-saleor"])
        saleor_fake.clear_log()
        second = runner.invoke(args=["sync-saleor"])
        swept = queue_store_syncs(db.session)
        db.session.rollback()

    assert first.exit_code == 0 and "Credit packs synced." in first.output
    assert "Credit packs" not in second.output and saleor_fake.operation_names() == []  # nothing changed
    assert swept == "0 offering(s) to sync with the store."
    product = store.product_by_slug("digitlify-credits")
    assert store.product_types[product["productType"]]["slug"] == "digitlify-credit-pack"
    assert product["channels"][store.channel_id] == {
        "isPublished": True, "visibleInListings": False, "isAvailableForPurchase": True}
    packs = session.scalars(select(CreditPack).where(CreditPack.active.is_(True)).order_by(CreditPack.sku)).all()
    assert packs
    for pack in packs:
        variant = store.variant_by_sku(pack.sku)
        assert variant["product"] == product["id"]
        assert variant["prices"] == {store.channel_id: f"{pack.price_minor / 100:.2f}"}
        assert variant["metadata"] == {"credits": str(pack.credits)}

    # a changed pack is pushed again by the next sweep
    with saleor_app.app_context():
        db.session.scalar(select(CreditPack).where(CreditPack.sku == packs[0].sku)).price_minor += 100
        db.session.commit()
        assert queue_store_syncs(db.session).endswith("the credit packs too.")
        db.session.rollback()
