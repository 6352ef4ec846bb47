"""Saleor adapter of the product-sync port: an offering becomes a Saleor product.

The mapping is the one the Saleor catalog adapter reads (see `catalog.py`):
- one product type, `digitlify-offering`, carrying the six facet attributes (category and
  publisher single choice; outcome, role, capability and pricing multiple choice) and the plan
  attributes on variants (`tier` choice; `included-credits`, `credits-per-run`,
  `max-runs-per-period` numbers);
- the product (slug = offering slug, Saleor category = offering category, summary as SEO
  description, the Markdown description as Editor.js blocks, version/changelog/trial terms as
  metadata);
- one variant per plan, found by SKU, priced in the channel SALEOR_CHANNEL;
- a channel listing: published and purchasable, or neither for an archived offering.

It receives plain data (`ProductData`) from the offerings service, never a model or a session.

Idempotent: everything is looked up (product by stored id or slug, variants by SKU, attributes,
their values, the product type and the category by slug) before anything is created, so a
second run only updates. All calls go through the shared client (app token, short timeout).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from app.adapters.commerce.product_sync import FacetData, PlanData, ProductData, ProductSyncError
from app.adapters.commerce.saleor import client
from app.adapters.commerce.saleor.client import SaleorError
from app.formatting import decimal_amount  # the decimal string Saleor's PositiveDecimal takes
from app.models import CATEGORIES, FACET_GROUPS

PRODUCT_TYPE_SLUG = "digitlify-offering"
PRODUCT_TYPE_NAME = "Digitlify offering"
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


@dataclass
class _Attribute:
    id: str
    slug: str
    choices: dict[str, str]  # our value slug -> Saleor value id


class SaleorProductSync:
    """Pushes offerings to one Saleor channel. Needs an app context (the client reads its config)."""

    backend = "saleor"

    def __init__(self, *, channel: str) -> None:
        self.channel = channel

    # --- the port ------------------------------------------------------------------------------
    def sync_product(self, product: ProductData, *, on_product_id: Callable[[str], None]) -> str:
        try:
            return self._sync(product, on_product_id)
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
        category_id = self._category(offering.category)

        product_input = self._product_input(offering, attributes, category_id)
        product = self._find_product(offering)
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

        self._mutate("SyncProductChannelListing", "productChannelListingUpdate", {
            "id": product_id,
            "input": {"updateChannels": [{
                "channelId": channel["id"], "isPublished": live, "visibleInListings": live,
                "isAvailableForPurchase": live,
            }]},
        })
        warehouses = [w["id"] for w in channel.get("warehouses") or []]
        for plan in offering.plans:
            variant_id = self._variant(product_id, plan, attributes, warehouses)
            self._mutate("SyncVariantPrice", "productVariantChannelListingUpdate", {
                "id": variant_id,
                "input": [{"channelId": channel["id"], "price": decimal_amount(plan.price_minor, plan.currency)}],
            })
        return product_id

    # --- lookups and creation ------------------------------------------------------------------
    def _channel(self) -> dict[str, Any]:
        channel = client.execute("SyncChannel", {"slug": self.channel}).get("channel")
        if channel is None:
            raise ProductSyncError(f"Saleor has no channel {self.channel!r} (SALEOR_CHANNEL).")
        return channel

    def _wanted_values(self, offering: ProductData) -> dict[str, list[tuple[str, str]]]:
        """attribute slug -> [(value slug, label)] the offering needs: its facets and its plan tiers."""
        wanted: dict[str, list[tuple[str, str]]] = {group: [] for group in FACET_GROUPS}
        for facet in sorted(offering.facets, key=lambda f: (f.group, f.value)):
            if facet.group not in wanted:
                continue
            wanted[facet.group].append((facet.value, _facet_label(facet)))
        wanted[TIER_ATTRIBUTE] = [(p.tier, TIER_NAMES.get(p.tier, p.tier.title())) for p in offering.plans]
        for slug in NUMERIC_ATTRIBUTES:
            wanted[slug] = []
        return wanted

    def _attributes(self, wanted: dict[str, list[tuple[str, str]]]) -> dict[str, _Attribute]:
        slugs = list(wanted)
        value_slugs = sorted({slug for values in wanted.values() for slug, _ in values}) or ["-"]
        value_names = sorted({label for values in wanted.values() for _, label in values}) or ["-"]
        data = client.execute("SyncAttributes", {"slugs": slugs, "valueSlugs": value_slugs, "valueNames": value_names})
        found = {edge["node"]["slug"]: edge["node"] for edge in (data.get("attributes") or {}).get("edges") or []}
        attributes: dict[str, _Attribute] = {}
        for slug in slugs:
            node = found.get(slug)
            if node is None:
                node = self._create_attribute(slug)
            choices = [c["node"] for c in ((node.get("choices") or {}).get("edges") or [])]
            by_slug = {c["slug"]: c["id"] for c in choices}
            by_name = {c["name"]: c["id"] for c in choices}
            resolved: dict[str, str] = {}
            for value_slug, label in wanted[slug]:
                value_id = by_slug.get(value_slug) or by_name.get(label)
                if value_id is None:
                    value = self._mutate("SyncAttributeValueCreate", "attributeValueCreate",
                                         {"attribute": node["id"], "name": label})["attributeValue"]
                    value_id = value["id"]
                resolved[value_slug] = value_id
            attributes[slug] = _Attribute(node["id"], slug, resolved)
        return attributes

    def _create_attribute(self, slug: str) -> dict[str, Any]:
        if slug in NUMERIC_ATTRIBUTES:
            name, input_type = NUMERIC_ATTRIBUTES[slug][0], "NUMERIC"
        elif slug == TIER_ATTRIBUTE:
            name, input_type = "Plan tier", "DROPDOWN"
        else:
            name = GROUP_NAMES[slug]
            input_type = "DROPDOWN" if slug in SINGLE_CHOICE_GROUPS else "MULTISELECT"
        data = self._mutate("SyncAttributeCreate", "attributeCreate", {"input": {
            "name": name, "slug": slug, "type": "PRODUCT_TYPE", "inputType": input_type,
            "valueRequired": False, "visibleInStorefront": True,
        }})
        attribute = data["attribute"]
        if attribute["slug"] != slug:
            raise ProductSyncError(f"Saleor created attribute {attribute['slug']!r} instead of {slug!r}.")
        return {**attribute, "choices": None}

    def _product_type(self, attributes: dict[str, _Attribute]) -> str:
        product_ids = [attributes[g].id for g in FACET_GROUPS]
        variant_ids = [attributes[s].id for s in (TIER_ATTRIBUTE, *NUMERIC_ATTRIBUTES)]
        edges = (client.execute("SyncProductType", {"slug": PRODUCT_TYPE_SLUG}).get("productTypes") or {}).get(
            "edges"
        ) or []
        if not edges:
            data = self._mutate("SyncProductTypeCreate", "productTypeCreate", {"input": {
                "name": PRODUCT_TYPE_NAME, "slug": PRODUCT_TYPE_SLUG, "kind": "NORMAL", "isShippingRequired": False,
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

    def _category(self, category: str) -> str:
        found = client.execute("SyncCategory", {"slug": category}).get("category")
        if found is not None:
            return found["id"]
        name = CATEGORY_NAMES.get(category) if category in CATEGORIES else category.title()
        data = self._mutate("SyncCategoryCreate", "categoryCreate", {"input": {"name": name, "slug": category}})
        return data["category"]["id"]

    def _find_product(self, offering: ProductData) -> dict[str, Any] | None:
        if offering.product_id:
            product = client.execute("SyncProduct", {"id": offering.product_id}).get("product")
            if product is not None:
                return product
        return client.execute("SyncProduct", {"slug": offering.slug}).get("product")

    def _product_input(self, offering: ProductData, attributes: dict[str, _Attribute], category_id: str) -> dict:
        assigned = []
        for group in FACET_GROUPS:
            attribute = attributes[group]
            ids = list(attribute.choices.values())
            if group in SINGLE_CHOICE_GROUPS:
                assigned.append({"id": attribute.id, "dropdown": {"id": ids[0]}} if ids else {"id": attribute.id})
            else:
                assigned.append({"id": attribute.id, "multiselect": [{"id": i} for i in ids]})
        metadata = {
            "offering_id": str(offering.offering_id),
            "version": offering.version,
            "changelog": offering.changelog,
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
        for slug, (_, field) in NUMERIC_ATTRIBUTES.items():
            number = getattr(plan, field)
            # an empty value clears the attribute (e.g. a run limit that became unlimited)
            values.append({"id": attributes[slug].id, "numeric": str(number)} if number is not None
                          else {"id": attributes[slug].id})
        found = client.execute("SyncVariant", {"sku": plan.sku}).get("productVariant")
        variant_input = {"name": plan.name, "sku": plan.sku, "attributes": values, "trackInventory": False}
        if found is None:
            create = {**variant_input, "product": product_id}
            if warehouses:
                # digital goods: never counted down, but Saleor sells only from a stock record
                create["stocks"] = [{"warehouse": warehouses[0], "quantity": 0}]
            return self._mutate("SyncVariantCreate", "productVariantCreate", {"input": create})["productVariant"]["id"]
        if found["product"]["id"] != product_id:
            raise ProductSyncError(f"SKU {plan.sku} already belongs to another Saleor product.")
        self._mutate("SyncVariantUpdate", "productVariantUpdate", {"id": found["id"], "input": variant_input})
        return found["id"]

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
