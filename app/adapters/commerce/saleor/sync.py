"""Saleor adapter of the product-sync port: an offering becomes a Saleor product, the credit packs
one product with a variant per pack.

The mapping is the one the Saleor catalog adapter reads (see `catalog.py`); every name we create
carries SALEOR_ATTRIBUTE_PREFIX (see `names.py`), so nothing merges with a shared store's own:
- the product type `<prefix>offering`, carrying the six facet attributes `<prefix>category` ...
  `<prefix>publisher` (category and publisher single choice; outcome, role, capability and pricing
  multiple choice) and the plan attributes on variants (`<prefix>tier` choice;
  `<prefix>included-credits`, `<prefix>credits-per-run`, `<prefix>max-runs-per-period` numbers);
- the product (slug = offering slug, Saleor category = offering category, summary as SEO
  description, the Markdown description as Editor.js blocks, the latest version, changelog, trial
  terms and every version's note (`versions`, JSON) as metadata);
- one variant per plan, found by SKU, priced in the channel SALEOR_CHANNEL, its features as
  variant metadata (`features`, JSON);
- a channel listing: published and purchasable, or neither for an archived offering;
- membership of the featured collection (SALEOR_FEATURED_COLLECTION) exactly while the offering is
  live and featured, and of SALEOR_CATALOG_COLLECTION (when set) while it is live; both collections
  are created and published in the channel when missing.
- credit packs: the product type `<prefix>credit-pack`, one product `<prefix>credits` (not shown in
  listings; bought from the billing page), a variant per active pack (SKU = pack SKU), priced.

It receives plain data (`ProductData`, `CreditPackData`) from the offerings service, never a model
or a session.

Idempotent: everything is looked up (product by stored id or slug, variants by SKU, attributes,
their values, the product types, collections and categories by slug) before anything is created,
so a second run only updates. All calls go through the shared client (app token, short timeout).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from app.adapters.commerce.product_sync import (
    CreditPackData, FacetData, PlanData, ProductData, ProductSyncError,
)
from app.adapters.commerce.saleor import client
from app.adapters.commerce.saleor.client import SaleorError
from app.adapters.commerce.saleor.names import KIND_KEY, StoreNames
from app.formatting import decimal_amount  # the decimal string Saleor's PositiveDecimal takes
from app.models import CATEGORIES, FACET_GROUPS

PRODUCT_TYPE_NAME = "Digitlify offering"
CREDIT_PACK_TYPE_NAME = "Digitlify credit pack"
CREDIT_PACK_PRODUCT_NAME = "Marketplace credits"
CREDIT_PACK_DESCRIPTION = "<p>Credits for runs of any agent, app, assistant or automation on the marketplace.</p>"
SINGLE_CHOICE_GROUPS = ("category", "publisher")
GROUP_NAMES = {
    "category": "Category", "outcome": "Outcome", "role": "Role", "capability": "Capability",
    "pricing": "Pricing", "publisher": "Publisher",
}
TIER_ATTRIBUTE = "tier"
NUMERIC_ATTRIBUTES = {
    "included-credits": ("Included credits", "included_credits"),
    "credits-per-run": ("Credits per run", "credits_per_run"),
    "max-runs-per-period": ("Runs per period", "max_runs_per_period"),
}
TIER_NAMES = {"starter": "Starter", "pro": "Pro", "enterprise": "Enterprise"}
CATEGORY_NAMES = {"agents": "Agents", "apps": "Apps", "assistants": "Assistants", "automations": "Automations"}
VERSIONS_KEPT = 20  # version notes kept in the product's metadata, newest first


@dataclass
class _Attribute:
    id: str
    slug: str
    choices: dict[str, str]  # our value slug -> Saleor value id


class SaleorProductSync:
    """Pushes offerings and credit packs to one Saleor channel. Needs an app context (the client reads its config)."""

    backend = "saleor"

    def __init__(self, *, channel: str, names: StoreNames | None = None) -> None:
        self.channel = channel
        self.names = names or StoreNames()
        self._scope: dict[str, Any] = {}
        self._channel_cache: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SaleorProductSync":
        return cls(channel=config.get("SALEOR_CHANNEL") or "default-channel", names=StoreNames.from_config(config))

    # --- the port ------------------------------------------------------------------------------
    def sync_product(self, product: ProductData, *, on_product_id: Callable[[str], None]) -> str:
        return self._guarded(lambda: self._sync(product, on_product_id))

    def sync_credit_packs(self, packs: tuple[CreditPackData, ...]) -> None:
        self._guarded(lambda: self._sync_packs(packs))

    def catalog_scope(self) -> dict[str, Any]:
        """{"offering_type": id, "collections": {slug: id}} as far as this sync has seen them."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._scope.items()}

    @staticmethod
    def _guarded(work: Callable[[], Any]) -> Any:
        try:
            return work()
        except SaleorError as error:  # unreachable, slow, or refused: recorded and retried
            raise ProductSyncError(str(error)) from error
        except (KeyError, TypeError, IndexError) as error:  # an answer without what the schema promises
            raise ProductSyncError(f"Saleor sent an unexpected answer: {error!r}") from error

    def _sync(self, offering: ProductData, on_product_id: Callable[[str], None]) -> str:
        channel = self._channel()
        live = offering.live
        for plan in offering.plans:
            if plan.currency != channel["currencyCode"]:
                raise ProductSyncError(
                    f"Plan {plan.sku} is priced in {plan.currency}, but channel {self.channel} sells in "
                    f"{channel['currencyCode']}."
                )
        wanted = self._wanted_values(offering)
        attributes = self._attributes(wanted)
        product_type_id = self._product_type(attributes)
        self._scope["offering_type"] = product_type_id
        category_id = self._category(offering.category)

        product_input = self._product_input(offering, attributes, category_id)
        product = self._find_product(offering.product_id, offering.slug)
        if product is None:
            data = self._mutate("SyncProductCreate", "productCreate",
                                {"input": {**product_input, "productType": product_type_id}})
            product_id = data["product"]["id"]
        else:
            product_id = product["id"]
            if product["productType"]["id"] != product_type_id:
                raise ProductSyncError(
                    f"Saleor product {offering.slug} has another product type; fix it in Saleor, then sync again."
                )
            self._mutate("SyncProductUpdate", "productUpdate", {"id": product_id, "input": product_input})
        on_product_id(product_id)

        self._list_in_channel(product_id, channel, published=live, visible=live, purchasable=live)
        warehouses = [w["id"] for w in channel.get("warehouses") or []]
        for plan in offering.plans:
            variant_id = self._variant(product_id, plan, attributes, warehouses)
            self._price(variant_id, channel, plan.price_minor, plan.currency)
        self._membership(self.names.featured_collection, "Featured", product_id, live and offering.featured, channel)
        if self.names.catalog_collection:
            self._membership(self.names.catalog_collection, "Marketplace", product_id, live, channel)
        return product_id

    def _sync_packs(self, packs: tuple[CreditPackData, ...]) -> None:
        channel = self._channel()
        for pack in packs:
            if pack.currency != channel["currencyCode"]:
                raise ProductSyncError(f"Credit pack {pack.sku} is priced in {pack.currency}, but channel "
                                       f"{self.channel} sells in {channel['currencyCode']}.")
        type_id = self._product_type_by_slug(self.names.credit_pack_type, CREDIT_PACK_TYPE_NAME, [], [])
        category_id = self._category(self.names.credit_pack_category, name="Credits")
        slug = self.names.credit_pack_product
        product_input = {
            "name": CREDIT_PACK_PRODUCT_NAME, "slug": slug, "category": category_id, "attributes": [],
            "description": html_to_editorjs(CREDIT_PACK_DESCRIPTION),
            "seo": {"title": CREDIT_PACK_PRODUCT_NAME, "description": "Credits for the marketplace's offerings."},
            "metadata": [{"key": KIND_KEY, "value": "credit-pack"}],
        }
        product = self._find_product(None, slug)
        if product is None:
            product_id = self._mutate("SyncProductCreate", "productCreate",
                                      {"input": {**product_input, "productType": type_id}})["product"]["id"]
        else:
            product_id = product["id"]
            if product["productType"]["id"] != type_id:
                raise ProductSyncError(f"Saleor product {slug} has another product type; fix it in Saleor, then "
                                       "sync again.")
            self._mutate("SyncProductUpdate", "productUpdate", {"id": product_id, "input": product_input})
        # sold from the billing page and the cart, never listed among the offerings
        self._list_in_channel(product_id, channel, published=bool(packs), visible=False, purchasable=bool(packs))
        warehouses = [w["id"] for w in channel.get("warehouses") or []]
        for pack in packs:
            variant_id = self._upsert_variant(
                product_id, sku=pack.sku, name=pack.name, attributes=[], warehouses=warehouses,
                metadata={"credits": str(pack.credits)})
            self._price(variant_id, channel, pack.price_minor, pack.currency)

    # --- lookups and creation ------------------------------------------------------------------
    def _channel(self) -> dict[str, Any]:
        if self._channel_cache is None:
            channel = client.execute("SyncChannel", {"slug": self.channel}).get("channel")
            if channel is None:
                raise ProductSyncError(f"Saleor has no channel {self.channel!r} (SALEOR_CHANNEL).")
            self._channel_cache = channel
        return self._channel_cache

    def _list_in_channel(self, product_id: str, channel: dict[str, Any], *, published: bool, visible: bool,
                         purchasable: bool) -> None:
        self._mutate("SyncProductChannelListing", "productChannelListingUpdate", {
            "id": product_id,
            "input": {"updateChannels": [{
                "channelId": channel["id"], "isPublished": published, "visibleInListings": visible,
                "isAvailableForPurchase": purchasable,
            }]},
        })

    def _price(self, variant_id: str, channel: dict[str, Any], price_minor: int, currency: str) -> None:
        self._mutate("SyncVariantPrice", "productVariantChannelListingUpdate", {
            "id": variant_id,
            "input": [{"channelId": channel["id"], "price": decimal_amount(price_minor, currency)}],
        })

    def _wanted_values(self, offering: ProductData) -> dict[str, list[tuple[str, str]]]:
        """our attribute name -> [(value slug, label)] the offering needs: its facets and its plan tiers."""
        wanted: dict[str, list[tuple[str, str]]] = {group: [] for group in FACET_GROUPS}
        for facet in sorted(offering.facets, key=lambda f: (f.group, f.value)):
            if facet.group not in wanted:
                continue
            wanted[facet.group].append((facet.value, _facet_label(facet)))
        wanted[TIER_ATTRIBUTE] = [(p.tier, TIER_NAMES.get(p.tier, p.tier.title())) for p in offering.plans]
        for name in NUMERIC_ATTRIBUTES:
            wanted[name] = []
        return wanted

    def _attributes(self, wanted: dict[str, list[tuple[str, str]]]) -> dict[str, _Attribute]:
        """Our attributes by name (created when missing, with the values the offering needs). Only
        attributes with our prefixed slugs are ever used: a store's own `publisher` stays its own."""
        slugs = [self.names.attribute(name) for name in wanted]
        value_slugs = sorted({slug for values in wanted.values() for slug, _ in values}) or ["-"]
        value_names = sorted({label for values in wanted.values() for _, label in values}) or ["-"]
        data = client.execute("SyncAttributes", {"slugs": slugs, "valueSlugs": value_slugs, "valueNames": value_names})
        found = {edge["node"]["slug"]: edge["node"] for edge in (data.get("attributes") or {}).get("edges") or []}
        attributes: dict[str, _Attribute] = {}
        for name in wanted:
            slug = self.names.attribute(name)
            node = found.get(slug)
            if node is None:
                node = self._create_attribute(name)
            choices = [c["node"] for c in ((node.get("choices") or {}).get("edges") or [])]
            by_slug = {c["slug"]: c["id"] for c in choices}
            by_name = {c["name"]: c["id"] for c in choices}
            resolved: dict[str, str] = {}
            for value_slug, label in wanted[name]:
                value_id = by_slug.get(value_slug) or by_name.get(label)
                if value_id is None:
                    value = self._mutate("SyncAttributeValueCreate", "attributeValueCreate",
                                         {"attribute": node["id"], "name": label})["attributeValue"]
                    value_id = value["id"]
                resolved[value_slug] = value_id
            attributes[name] = _Attribute(node["id"], slug, resolved)
        return attributes

    def _create_attribute(self, name: str) -> dict[str, Any]:
        slug = self.names.attribute(name)
        if name in NUMERIC_ATTRIBUTES:
            label, input_type = NUMERIC_ATTRIBUTES[name][0], "NUMERIC"
        elif name == TIER_ATTRIBUTE:
            label, input_type = "Plan tier", "DROPDOWN"
        else:
            label = GROUP_NAMES[name]
            input_type = "DROPDOWN" if name in SINGLE_CHOICE_GROUPS else "MULTISELECT"
        data = self._mutate("SyncAttributeCreate", "attributeCreate", {"input": {
            "name": label, "slug": slug, "type": "PRODUCT_TYPE", "inputType": input_type,
            "valueRequired": False, "visibleInStorefront": True,
        }})
        attribute = data["attribute"]
        if attribute["slug"] != slug:
            raise ProductSyncError(f"Saleor created attribute {attribute['slug']!r} instead of {slug!r}.")
        return {**attribute, "choices": None}

    def _product_type(self, attributes: dict[str, _Attribute]) -> str:
        product_ids = [attributes[g].id for g in FACET_GROUPS]
        variant_ids = [attributes[s].id for s in (TIER_ATTRIBUTE, *NUMERIC_ATTRIBUTES)]
        return self._product_type_by_slug(self.names.offering_type, PRODUCT_TYPE_NAME, product_ids, variant_ids)

    def _product_type_by_slug(self, slug: str, name: str, product_ids: list[str], variant_ids: list[str]) -> str:
        edges = (client.execute("SyncProductType", {"slug": slug}).get("productTypes") or {}).get("edges") or []
        if not edges:
            data = self._mutate("SyncProductTypeCreate", "productTypeCreate", {"input": {
                "name": name, "slug": slug, "kind": "NORMAL", "isShippingRequired": False,
                "productAttributes": product_ids, "variantAttributes": variant_ids,
            }})
            return data["productType"]["id"]
        node = edges[0]["node"]
        have_product = {a["id"] for a in node.get("productAttributes") or []}
        have_variant = {a["attribute"]["id"] for a in node.get("assignedVariantAttributes") or []}
        operations = [{"id": i, "type": "PRODUCT"} for i in product_ids if i not in have_product]
        operations += [{"id": i, "type": "VARIANT"} for i in variant_ids if i not in have_variant]
        if operations:
            self._mutate("SyncProductTypeAssign", "productAttributeAssign",
                         {"productType": node["id"], "operations": operations})
        return node["id"]

    def _category(self, category: str, *, name: str | None = None) -> str:
        found = client.execute("SyncCategory", {"slug": category}).get("category")
        if found is not None:
            return found["id"]
        name = name or (CATEGORY_NAMES.get(category) if category in CATEGORIES else category.title())
        data = self._mutate("SyncCategoryCreate", "categoryCreate", {"input": {"name": name, "slug": category}})
        return data["category"]["id"]

    def _find_product(self, product_id: str | None, slug: str) -> dict[str, Any] | None:
        if product_id:
            product = client.execute("SyncProduct", {"id": product_id}).get("product")
            if product is not None:
                return product
        return client.execute("SyncProduct", {"slug": slug}).get("product")

    def _product_input(self, offering: ProductData, attributes: dict[str, _Attribute], category_id: str) -> dict:
        assigned = []
        for group in FACET_GROUPS:
            attribute = attributes[group]
            ids = list(attribute.choices.values())
            if group in SINGLE_CHOICE_GROUPS:
                assigned.append({"id": attribute.id, "dropdown": {"id": ids[0]}} if ids else {"id": attribute.id})
            else:
                assigned.append({"id": attribute.id, "multiselect": [{"id": i} for i in ids]})
        versions = [{"version": v.version, "changelog": v.changelog, "released_at": v.released_at}
                    for v in offering.versions[:VERSIONS_KEPT]]
        metadata = {
            KIND_KEY: "offering",
            "offering_id": str(offering.offering_id),
            "version": offering.version,
            "changelog": offering.changelog,
            "versions": json.dumps(versions, separators=(",", ":")),
            "trial_days": str(offering.trial_days),
            "trial_credits": str(offering.trial_credits),
        }
        return {
            "name": offering.name,
            "slug": offering.slug,
            "description": html_to_editorjs(offering.description_html),
            "category": category_id,
            "attributes": assigned,
            "seo": {"title": offering.name, "description": offering.summary},
            "metadata": [{"key": k, "value": v} for k, v in metadata.items()],
        }

    def _variant(self, product_id: str, plan: PlanData, attributes: dict[str, _Attribute], warehouses: list[str]) -> str:
        tier = attributes[TIER_ATTRIBUTE]
        values = [{"id": tier.id, "dropdown": {"id": tier.choices[plan.tier]}}]
        for name, (_, field) in NUMERIC_ATTRIBUTES.items():
            number = getattr(plan, field)
            # an empty value clears the attribute (e.g. a run limit that became unlimited)
            values.append({"id": attributes[name].id, "numeric": str(number)} if number is not None
                          else {"id": attributes[name].id})
        return self._upsert_variant(product_id, sku=plan.sku, name=plan.name, attributes=values,
                                    warehouses=warehouses,
                                    metadata={"features": json.dumps(list(plan.features), separators=(",", ":"))})

    def _upsert_variant(self, product_id: str, *, sku: str, name: str, attributes: list[dict], warehouses: list[str],
                        metadata: dict[str, str]) -> str:
        found = client.execute("SyncVariant", {"sku": sku}).get("productVariant")
        variant_input = {"name": name, "sku": sku, "attributes": attributes, "trackInventory": False,
                         "metadata": [{"key": k, "value": v} for k, v in metadata.items()]}
        if found is None:
            create = {**variant_input, "product": product_id}
            if warehouses:
                # digital goods: never counted down, but Saleor sells only from a stock record
                create["stocks"] = [{"warehouse": warehouses[0], "quantity": 0}]
            return self._mutate("SyncVariantCreate", "productVariantCreate", {"input": create})["productVariant"]["id"]
        if found["product"]["id"] != product_id:
            raise ProductSyncError(f"SKU {sku} already belongs to another Saleor product.")
        self._mutate("SyncVariantUpdate", "productVariantUpdate", {"id": found["id"], "input": variant_input})
        return found["id"]

    def _membership(self, slug: str, name: str, product_id: str, wanted: bool, channel: dict[str, Any]) -> None:
        """Make the product a member of collection `slug` exactly when `wanted` (the collection is
        created, and published in the channel, the first time a product should be in it)."""
        collection = client.execute("SyncCollection", {"slug": slug, "product": product_id}).get("collection")
        if collection is None:
            if not wanted:
                return
            collection = self._mutate("SyncCollectionCreate", "collectionCreate", {"input": {
                "name": name, "slug": slug, "products": [product_id]}})["collection"]
            self._scope.setdefault("collections", {})[slug] = collection["id"]
            self._publish_collection(collection["id"], channel)
            return
        self._scope.setdefault("collections", {})[slug] = collection["id"]
        listed = {(c.get("channel") or {}).get("id") for c in collection.get("channelListings") or []}
        if channel["id"] not in listed:
            self._publish_collection(collection["id"], channel)
        member = bool(((collection.get("products") or {}).get("edges")))
        if wanted and not member:
            self._mutate("SyncCollectionAddProducts", "collectionAddProducts",
                         {"collection": collection["id"], "products": [product_id]})
        elif member and not wanted:
            self._mutate("SyncCollectionRemoveProducts", "collectionRemoveProducts",
                         {"collection": collection["id"], "products": [product_id]})

    def _publish_collection(self, collection_id: str, channel: dict[str, Any]) -> None:
        self._mutate("SyncCollectionChannelListing", "collectionChannelListingUpdate", {
            "id": collection_id, "input": {"addChannels": [{"channelId": channel["id"], "isPublished": True}]}})

    # --- transport -----------------------------------------------------------------------------
    @staticmethod
    def _mutate(operation: str, field: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run a mutation; the errors in its payload become a ProductSyncError naming the operation."""
        payload = client.execute(operation, variables).get(field) or {}
        errors = payload.get("errors") or []
        if errors:
            described = "; ".join(
                f"{e.get('field') or 'input'}: {e.get('message') or e.get('code')}" for e in errors
            )
            raise ProductSyncError(f"Saleor refused {operation}: {described}")
        return payload


def _facet_label(facet: FacetData) -> str:
    """The vocabulary's label, else the category's own name, else the value itself."""
    label = facet.label
    if facet.group == "category":
        label = label or CATEGORY_NAMES.get(facet.value)
    return label or facet.value


# --- Markdown to Editor.js ---------------------------------------------------------------------

class _Blocks(HTMLParser):
    """Top-level elements of the sanitized description HTML as Editor.js blocks."""

    BLOCK_TAGS = {"p", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "pre", "table", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.blocks: list[dict[str, Any]] = []
        self.depth = 0
        self.top: str | None = None
        self.buffer: list[str] = []
        self.items: list[str] = []
        self.item: list[str] | None = None
        self.list_depth = 0

    def handle_starttag(self, tag, attrs):
        if self.top is None:
            if tag in self.BLOCK_TAGS:
                self.top, self.buffer, self.items = tag, [], []
            return
        if self.top in ("ul", "ol") and tag in ("ul", "ol"):
            self.list_depth += 1
        if self.top in ("ul", "ol") and tag == "li" and self.list_depth == 0:
            self.item = []
            return
        if self.top == "table" and tag in ("td", "th"):
            self.buffer.append(" | " if self.buffer and not self.buffer[-1].endswith("\n") else "")
            return
        if self.top == "table" and tag == "tr":
            return
        if tag in ("strong", "b"):
            self._text("<b>")
        elif tag in ("em", "i"):
            self._text("<i>")
        elif tag == "a":
            href = dict(attrs).get("href")
            self._text(f'<a href="{_attr(href)}">' if href else "<a>")
        elif tag == "code" and self.top != "pre":
            self._text("<code>")
        elif tag == "br":
            self._text("<br>")

    def handle_endtag(self, tag):
        if self.top is None:
            return
        if tag == self.top and (tag not in ("ul", "ol") or self.list_depth == 0):
            self._flush()
            return
        if self.top in ("ul", "ol") and tag in ("ul", "ol"):
            self.list_depth -= 1
        elif self.top in ("ul", "ol") and tag == "li" and self.list_depth == 0 and self.item is not None:
            self.items.append("".join(self.item).strip())
            self.item = None
        elif self.top == "table" and tag == "tr":
            self.buffer.append("\n")
        elif tag in ("strong", "b"):
            self._text("</b>")
        elif tag in ("em", "i"):
            self._text("</i>")
        elif tag == "a":
            self._text("</a>")
        elif tag == "code" and self.top != "pre":
            self._text("</code>")

    def handle_data(self, data):
        if self.top == "table" and not data.strip():
            return  # the newlines between cells
        if self.top is not None:
            self._text(data.replace("<", "&lt;").replace(">", "&gt;") if self.top == "pre" else data)

    def handle_entityref(self, name):
        self._text(f"&{name};")

    def handle_charref(self, name):
        self._text(f"&#{name};")

    def _text(self, text: str) -> None:
        if self.top is None:
            return
        (self.item if self.item is not None else self.buffer).append(text)

    def _flush(self) -> None:
        tag, text = self.top, "".join(self.buffer).strip()
        if tag in ("h2", "h3", "h4", "h5", "h6"):
            self.blocks.append({"type": "header", "data": {"text": text, "level": int(tag[1])}})
        elif tag in ("ul", "ol"):
            self.blocks.append({"type": "list", "data": {
                "style": "ordered" if tag == "ol" else "unordered", "items": [i for i in self.items if i]}})
        elif tag == "blockquote":
            self.blocks.append({"type": "quote", "data": {"text": " ".join(text.split()), "caption": ""}})
        elif tag == "pre":
            self.blocks.append({"type": "paragraph", "data": {"text": f"<code>{text}</code>"}})
        elif tag == "table":
            for row in text.splitlines():
                if row.strip():
                    self.blocks.append({"type": "paragraph", "data": {"text": row.strip()}})
        elif tag == "p" and text:
            self.blocks.append({"type": "paragraph", "data": {"text": text}})
        self.top, self.buffer, self.items, self.item, self.list_depth = None, [], [], None, 0


def _attr(value: str | None) -> str:
    return (value or "").replace("&", "&amp;").replace('"', "&quot;")


def html_to_editorjs(description_html: str) -> str:
    """The rendered, sanitized description (the HTML the product page shows) as Saleor's rich text
    (Editor.js JSON)."""
    parser = _Blocks()
    parser.feed(description_html or "")
    parser.close()
    return json.dumps({"time": 0, "blocks": parser.blocks, "version": "2.24.3"})
